package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/redis/go-redis/v9"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// imageBlobs is every digest a build's image and its referrers reference.
func (e *env) imageBlobs(b openapi.Build) []store.Digest {
	e.t.Helper()
	roots := []store.Digest{store.Digest(b.Image.Digest)}
	full, err := e.builds.Get(context.Background(), b.App, b.Id)
	if err != nil {
		e.t.Fatal(err)
	}
	if full.Image.SBOMReferrer != "" {
		roots = append(roots, store.Digest(full.Image.SBOMReferrer))
	}
	for _, m := range full.Image.Manifests {
		roots = append(roots, store.Digest(m.SBOMReferrer))
	}
	ds, err := image.Referenced(context.Background(), e.blobs, roots...)
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

// registryAnswer is what a registry client learns from one response: the status and the
// error code (with the digest taken out of the message).
func registryAnswer(r response, d store.Digest) string {
	return fmt.Sprint(r.status) + " " + strings.ReplaceAll(string(r.body), string(d), "<digest>")
}

// TestRegistryServesOnlyTheAppsOwnDigests: a public app's repository does not serve
// what only a private app's images hold — not anonymously, not to a token limited to
// the public app, not by GET, HEAD, range, referrers or a registry client — and the
// answer is exactly that for a digest nobody stored.
func TestRegistryServesOnlyTheAppsOwnDigests(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithAdminToken(adminToken))
	e.startWorker()
	admin := bearer(adminToken)
	e.do("PUT", "/v1/apps/pub", admin, `{"platforms":["linux/amd64"],"public":true}`)
	e.do("PUT", "/v1/apps/priv", admin, `{"platforms":["linux/amd64","linux/arm64"]}`)
	pubToken := e.token("pub-reader", []string{"read"}, []string{"pub"})

	build := func(app string) openapi.Build {
		src := buildertest.Module(t, app, map[string]string{"main.go": buildertest.HelloMain})
		r := e.do("POST", "/v1/apps/"+app+"/builds?version=1.0.0", map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/gzip"}, string(src))
		if r.status != http.StatusAccepted {
			t.Fatalf("POST build = %d %s", r.status, r.body)
		}
		b := e.waitBuildAs(app, r.build(t).Id, admin)
		if b.Status != openapi.BuildStatusSucceeded {
			t.Fatalf("build %s = %s %+v", app, b.Status, b.Error)
		}
		return b
	}
	pub, priv := build("pub"), build("priv")
	pubBlobs, privBlobs := e.imageBlobs(pub), e.imageBlobs(priv)

	// Everything pub's images hold is served under pub, anonymously.
	for _, d := range pubBlobs {
		path := "/v2/pub/blobs/" + string(d)
		if r := e.do("HEAD", path, nil, ""); r.status != http.StatusOK {
			t.Errorf("HEAD %s = %d, want 200", path, r.status)
		}
	}
	nobody := store.Digest("sha256:" + strings.Repeat("ab", 32))
	foreign := 0
	for _, d := range privBlobs {
		if slices.Contains(pubBlobs, d) {
			continue // shared content, such as the built-in base's layer: pub's own too
		}
		foreign++
		for _, who := range []map[string]string{nil, bearer(pubToken)} {
			for _, probe := range []struct{ method, kind string }{
				{"GET", "manifests"}, {"HEAD", "manifests"}, {"GET", "blobs"}, {"HEAD", "blobs"},
			} {
				got := e.do(probe.method, "/v2/pub/"+probe.kind+"/"+string(d), who, "")
				want := e.do(probe.method, "/v2/pub/"+probe.kind+"/"+string(nobody), who, "")
				if got.status != http.StatusNotFound || registryAnswer(got, d) != registryAnswer(want, nobody) {
					t.Errorf("%s /v2/pub/%s/<priv's %s> = %s; want what a digest nobody stored gets: %s",
						probe.method, probe.kind, d, registryAnswer(got, d), registryAnswer(want, nobody))
				}
			}
			ranged := e.do("GET", "/v2/pub/blobs/"+string(d), map[string]string{"Range": "bytes=0-9", "Authorization": who["Authorization"]}, "")
			if ranged.status != http.StatusNotFound {
				t.Errorf("GET range of priv's %s under pub = %d, want 404", d, ranged.status)
			}
			refs := e.do("GET", "/v2/pub/referrers/"+string(d), who, "")
			var ix v1.IndexManifest
			if err := json.Unmarshal(refs.body, &ix); err != nil || refs.status != http.StatusOK || len(ix.Manifests) != 0 {
				t.Errorf("GET /v2/pub/referrers/<priv's %s> = %d %s, want an empty index", d, refs.status, refs.body)
			}
		}
	}
	if foreign < 5 {
		t.Fatalf("priv's images hold only %d digests pub's do not; the test proves nothing", foreign)
	}
	// A registry client, as `skopeo copy docker://host/pub@<priv's index>` would be.
	if _, err := remote.Index(e.ref("pub@"+priv.Image.Digest), remote.WithAuth(authn.Anonymous)); err == nil {
		t.Errorf("remote.Index(pub@<priv's index>) pulled priv's image anonymously")
	}
	// priv itself still serves its own to the admin, by digest and by tag.
	if _, err := remote.Index(e.ref("priv@"+priv.Image.Digest), remote.WithAuth(&authn.Basic{Username: "x", Password: adminToken})); err != nil {
		t.Errorf("remote.Index(priv@<its own index>) = %v", err)
	}
	// Builds recorded before links existed are linked on first use.
	if err := e.rdb.Del(context.Background(), store.LinksKey("priv"), store.LinksCompleteKey("priv")).Err(); err != nil {
		t.Fatal(err)
	}
	if r := e.do("HEAD", "/v2/priv/manifests/"+priv.Image.Manifests[1].Digest, admin, ""); r.status != http.StatusOK {
		t.Errorf("HEAD priv's manifest after its links were lost = %d, want 200 (relinked)", r.status)
	}
	if r := e.do("HEAD", "/v2/priv/blobs/"+string(nobody), admin, ""); r.status != http.StatusNotFound {
		t.Errorf("HEAD an unknown blob after relinking = %d, want 404", r.status)
	}

	// An anonymous pull of the public app reads the app once per request: the guard's
	// public check and the handler share it.
	reads := &keyReads{key: store.AppKey("pub")}
	e.rdb.AddHook(reads)
	if r := e.do("GET", "/v2/pub/blobs/"+string(pubBlobs[0]), nil, ""); r.status != http.StatusOK {
		t.Errorf("GET pub's blob anonymously = %d", r.status)
	}
	if n := reads.n.Load(); n != 1 {
		t.Errorf("an anonymous blob GET read pub's app %d times, want 1", n)
	}
}

// keyReads counts the commands, alone or in pipelines, that name key.
type keyReads struct {
	key string
	n   atomic.Int64
}

func (h *keyReads) count(cmd redis.Cmder) {
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && s == h.key {
			h.n.Add(1)
			return
		}
	}
}

func (h *keyReads) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *keyReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}

func (h *keyReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.count(c)
		}
		return next(ctx, cmds)
	}
}

// waitBuildAs is waitBuild with credentials.
func (e *env) waitBuildAs(app, id string, header map[string]string) openapi.Build {
	e.t.Helper()
	for {
		r := e.do("GET", "/v1/apps/"+app+"/builds/"+id+"/log?follow=true", header, "")
		if r.status != http.StatusOK {
			e.t.Fatalf("GET log = %d %s", r.status, r.body)
		}
		g := e.do("GET", "/v1/apps/"+app+"/builds/"+id, header, "")
		b := g.build(e.t)
		switch b.Status {
		case openapi.BuildStatusSucceeded, openapi.BuildStatusFailed, openapi.BuildStatusCanceled:
			return b
		}
	}
}

// TestRegistryTagsAndRanges: versions with build metadata are valid OCI tags, the page
// size is checked, and a Range the server does not understand is ignored.
func TestRegistryTagsAndRanges(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.startWorker()
	e.do("PUT", "/v1/apps/meta", nil, `{"platforms":["linux/amd64"]}`)
	b := e.buildVersion("meta", "1.0.0%2Bbuild.1")
	if r := e.do("POST", "/v1/apps/meta/releases", nil, `{"build_id":"`+b.Id+`"}`); r.status != http.StatusCreated {
		t.Fatalf("POST release = %d %s", r.status, r.body)
	}
	var tags struct{ Tags []string }
	r := e.do("GET", "/v2/meta/tags/list", nil, "")
	if err := json.Unmarshal(r.body, &tags); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tags.Tags, "1.0.0_build.1") || slices.ContainsFunc(tags.Tags, func(s string) bool { return strings.Contains(s, "+") }) {
		t.Errorf("tags = %q, want 1.0.0_build.1 and no '+'", tags.Tags)
	}
	for _, tag := range tags.Tags {
		if _, err := name.NewTag("localhost/meta:"+tag, name.StrictValidation); err != nil {
			t.Errorf("tag %q is not a valid OCI tag: %v", tag, err)
		}
	}
	d, err := remote.Head(e.ref("meta:1.0.0_build.1"))
	if err != nil || d.Digest.String() != b.Image.Digest {
		t.Errorf("pull meta:1.0.0_build.1 = %v, %v; want %s", d, err, b.Image.Digest)
	}

	for _, tc := range []struct {
		query  string
		status int
		code   string
	}{
		{"n=-1", 400, "PAGINATION_NUMBER_INVALID"},
		{"n=-9223372036854775808", 400, "PAGINATION_NUMBER_INVALID"},
		{"n=0", 200, ""},
		{"n=1&last=zzz", 200, ""},
	} {
		r := e.do("GET", "/v2/meta/tags/list?"+tc.query, nil, "")
		if r.status != tc.status || !strings.Contains(string(r.body), tc.code) {
			t.Errorf("tags/list?%s = %d %s, want %d %s", tc.query, r.status, r.body, tc.status, tc.code)
		}
	}

	layer := e.imageBlobs(b)[0]
	whole := e.do("GET", "/v2/meta/blobs/"+string(layer), nil, "")
	for _, tc := range []struct {
		rng    string
		status int
	}{
		{"items=0-1", 200},
		{"bytes=0-1,4-5", 200},
		{"bytes=abc", 200},
		{"bytes=0-1", 206},
		{"bytes=-3", 206},
		{"bytes=99999999-", 416},
	} {
		r := e.do("GET", "/v2/meta/blobs/"+string(layer), map[string]string{"Range": tc.rng}, "")
		if r.status != tc.status || (tc.status == 200 && string(r.body) != string(whole.body)) {
			t.Errorf("Range: %s = %d (%d bytes), want %d", tc.rng, r.status, len(r.body), tc.status)
		}
	}
}
