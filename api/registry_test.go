package api_test

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// buildVersion uploads the hello module at version v and waits for it.
func (e *env) buildVersion(app, v string) openapi.Build {
	e.t.Helper()
	src := buildertest.Module(e.t, app, map[string]string{"main.go": buildertest.HelloMain})
	r := e.do("POST", "/v1/apps/"+app+"/builds?version="+v, gz(nil), string(src))
	if r.status != http.StatusAccepted {
		e.t.Fatalf("POST build %s = %d %s", v, r.status, r.body)
	}
	b := e.waitBuild(app, r.build(e.t).Id)
	if b.Status != openapi.BuildStatusSucceeded || b.Image == nil {
		e.t.Fatalf("build %s = %s %+v image %v", v, b.Status, b.Error, b.Image)
	}
	return b
}

func (e *env) ref(s string) name.Reference {
	e.t.Helper()
	host := strings.TrimPrefix(e.url, "http://")
	r, err := name.ParseReference(host+"/"+s, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// runEntrypoint flattens img, writes the file its entrypoint names and runs it.
func runEntrypoint(t *testing.T, img v1.Image) string {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimPrefix(cfg.Config.Entrypoint[0], "/")
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no %s in the image: %v", want, err)
		}
		if strings.TrimPrefix(h.Name, "./") != want {
			continue
		}
		path := filepath.Join(t.TempDir(), "entrypoint")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		f.Close()
		out, err := exec.Command(path).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
}

// TestImagesPulledFromRegistry builds an image and pulls it back with go-containerregistry's
// remote client, by digest and by build tag.
func TestImagesPulledFromRegistry(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.startWorker()
	e.do("PUT", "/v1/apps/hello", nil, `{"platforms":["linux/amd64","linux/arm64"]}`)
	b := e.buildVersion("hello", "1.0.0")

	idx, err := remote.Index(e.ref("hello@" + b.Image.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate.Index = %v", err)
	}
	byTag, err := remote.Index(e.ref("hello:build-" + b.Id))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := byTag.Digest(); d.String() != b.Image.Digest {
		t.Errorf("pull by build-%s = %s, want %s", b.Id, d, b.Image.Digest)
	}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		plat, _ := v1.ParsePlatform(p)
		img, err := remote.Image(e.ref("hello@"+b.Image.Digest), remote.WithPlatform(*plat))
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("validate.Image(%s) = %v", p, err)
		}
		cfg, _ := img.ConfigFile()
		if cfg.Config.User != "65532:65532" || cfg.Config.Entrypoint[0] != "/app/hello" ||
			cfg.Config.Labels["org.opencontainers.image.version"] != "1.0.0" || cfg.Config.Labels["org.opencontainers.image.title"] != "hello" ||
			cfg.OS != "linux" || cfg.Architecture != plat.Architecture {
			t.Errorf("%s config = %+v", p, cfg.Config)
		}
		if p == "linux/amd64" {
			if out := runEntrypoint(t, img); out != "1.0.0" {
				t.Errorf("the image's entrypoint printed %q, want 1.0.0", out)
			}
			d, _ := img.Digest()
			r := e.do("GET", "/v2/hello/referrers/"+d.String()+"?artifactType=application/spdx%2Bjson", nil, "")
			var ix v1.IndexManifest
			if err := json.Unmarshal(r.body, &ix); err != nil || r.status != 200 || len(ix.Manifests) != 1 || ix.Manifests[0].ArtifactType != "application/spdx+json" {
				t.Errorf("referrers of %s = %d %s", d, r.status, r.body)
			}
		}
	}

	tags := e.do("GET", "/v2/hello/tags/list", nil, "")
	if !strings.Contains(string(tags.body), `"build-`+b.Id+`"`) {
		t.Errorf("tags = %s", tags.body)
	}
	for _, tc := range []struct {
		method, path, code string
		header             map[string]string
		status             int
	}{
		{"GET", "/v2/hello/manifests/nope", "MANIFEST_UNKNOWN", nil, 404},
		{"GET", "/v2/nobody/manifests/latest", "NAME_UNKNOWN", nil, 404},
		{"GET", "/v2/hello/manifests/sha256:abc", "DIGEST_INVALID", nil, 400},
		{"GET", "/v2/hello/blobs/sha256:" + strings.Repeat("0", 64), "BLOB_UNKNOWN", nil, 404},
		{"PUT", "/v2/hello/manifests/x", "UNSUPPORTED", nil, 405},
		{"DELETE", "/v2/hello/manifests/" + b.Image.Digest, "UNSUPPORTED", nil, 405},
		{"POST", "/v2/hello/blobs/uploads/", "UNSUPPORTED", nil, 405},
	} {
		r := e.do(tc.method, tc.path, tc.header, "")
		if r.status != tc.status || !strings.Contains(string(r.body), `"code":"`+tc.code+`"`) {
			t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.path, r.status, r.body, tc.status, tc.code)
		}
	}
	// A range of a blob.
	m := e.do("GET", "/v2/hello/manifests/"+b.Image.Manifests[0].Digest, nil, "")
	var man v1.Manifest
	if err := json.Unmarshal(m.body, &man); err != nil {
		t.Fatal(err)
	}
	layer := man.Layers[len(man.Layers)-1].Digest.String()
	whole := e.do("GET", "/v2/hello/blobs/"+layer, nil, "")
	part := e.do("GET", "/v2/hello/blobs/"+layer, map[string]string{"Range": "bytes=10-19"}, "")
	if part.status != http.StatusPartialContent || string(part.body) != string(whole.body[10:20]) {
		t.Errorf("range request = %d, %d bytes", part.status, len(part.body))
	}
}

// TestChannelsMoveTags promotes and rolls back, and pulls the channel tag after each step:
// the pull always gets the digest the channel reports.
func TestChannelsMoveTags(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.startWorker()
	e.do("PUT", "/v1/apps/hello", nil, `{"platforms":["linux/amd64"],"auto_promote":true}`)
	var digests []string
	for i, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		b := e.buildVersion("hello", v)
		r := e.do("POST", "/v1/apps/hello/releases", map[string]string{"Idempotency-Key": "rel-" + v}, `{"build_id":"`+b.Id+`","notes":"release `+v+`"}`)
		var rel openapi.Release
		_ = json.Unmarshal(r.body, &rel)
		if r.status != http.StatusCreated || rel.Sequence != int64(i+1) || rel.ImageDigest != b.Image.Digest {
			t.Fatalf("POST release %s = %d %s", v, r.status, r.body)
		}
		if again := e.do("POST", "/v1/apps/hello/releases", nil, `{"build_id":"`+b.Id+`"}`); again.status != http.StatusOK {
			t.Errorf("releasing the same build again = %d, want 200", again.status)
		}
		digests = append(digests, rel.ImageDigest)
	}
	// auto_promote put each new release in dev.
	pullDigest := func(tag string) string {
		t.Helper()
		d, err := remote.Head(e.ref("hello:" + tag))
		if err != nil {
			t.Fatalf("pull hello:%s: %v", tag, err)
		}
		return d.Digest.String()
	}
	channel := func(name string) openapi.Channel {
		t.Helper()
		var ch openapi.Channel
		_ = json.Unmarshal(e.do("GET", "/v1/apps/hello/channels/"+name, nil, "").body, &ch)
		return ch
	}
	if got := pullDigest("dev"); got != digests[2] || *channel("dev").ImageDigest != got {
		t.Fatalf("dev = %s, want the newest release %s", got, digests[2])
	}
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		if r := e.do("POST", "/v1/apps/hello/channels/staging/promote", nil, `{"version":"`+v+`","reason":"qa"}`); r.status != 200 {
			t.Fatalf("promote staging %s = %d %s", v, r.status, r.body)
		}
		if r := e.do("POST", "/v1/apps/hello/channels/prod/promote", nil, `{"from":"staging","reason":"ship"}`); r.status != 200 {
			t.Fatalf("promote prod from staging = %d %s", r.status, r.body)
		}
		if got, ch := pullDigest("prod"), channel("prod"); got != *ch.ImageDigest || *ch.Release != v {
			t.Errorf("after promoting %s: prod pulls %s, reports %s (%s)", v, got, *ch.ImageDigest, *ch.Release)
		}
	}
	for _, want := range []string{"1.1.0", "1.0.0"} {
		r := e.do("POST", "/v1/apps/hello/channels/prod/rollback", nil, `{"reason":"regression"}`)
		var mv openapi.ChannelMove
		_ = json.Unmarshal(r.body, &mv)
		if r.status != 200 || *mv.Channel.Release != want || mv.Event == nil || mv.Event.Reverts == nil {
			t.Fatalf("rollback = %d %s, want %s", r.status, r.body, want)
		}
		if got := pullDigest("prod"); got != *mv.Channel.ImageDigest {
			t.Errorf("after rolling back to %s: prod pulls %s, reports %s", want, got, *mv.Channel.ImageDigest)
		}
	}
	if r := e.do("POST", "/v1/apps/hello/channels/prod/rollback", nil, `{}`); r.status != http.StatusConflict {
		t.Errorf("rollback with nothing left = %d, want 409", r.status)
	}

	// If-Match: a stale generation gets 412 with the channel in the body.
	cur := channel("prod")
	r := e.do("POST", "/v1/apps/hello/channels/prod/promote", map[string]string{"If-Match": `"1"`}, `{"version":"1.2.0"}`)
	if p := r.problem(t); r.status != http.StatusPreconditionFailed || p.Channel == nil || p.Channel.Generation != cur.Generation {
		t.Errorf("stale If-Match = %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/apps/hello/channels/prod/promote", map[string]string{"If-Match": `"` + itoa(cur.Generation) + `"`}, `{"version":"1.2.0"}`)
	if r.status != 200 {
		t.Errorf("current If-Match = %d %s", r.status, r.body)
	}
	// Policy, locks.
	e.do("PUT", "/v1/apps/other", nil, `{"platforms":["linux/amd64"]}`)
	if r := e.do("POST", "/v1/apps/hello/channels/prod/lock", nil, `{"reason":"freeze"}`); r.status != 200 {
		t.Fatalf("lock = %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/prod/promote", nil, `{"version":"1.1.0"}`); r.status != http.StatusLocked || r.problem(t).Type != openapi.ProblemChannelLocked {
		t.Errorf("promote while locked = %d %s, want 423", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/prod/rollback", nil, `{"to":"1.1.0","reason":"hotfix"}`); r.status != 200 {
		t.Errorf("rollback while locked = %d %s, want 200", r.status, r.body)
	}
	var hist openapi.ChannelHistory
	_ = json.Unmarshal(e.do("GET", "/v1/apps/hello/channels/prod/history?limit=3", nil, "").body, &hist)
	if len(hist.Items) != 3 || hist.Items[0].Action != "rollback" || hist.Items[1].Action != "lock" || hist.NextCursor == nil {
		t.Errorf("history = %+v", hist)
	}
	var rels openapi.ReleaseList
	rr := e.do("GET", "/v1/apps/hello/releases?channel=prod", nil, "")
	_ = json.Unmarshal(rr.body, &rels)
	if rr.status != 200 || len(rels.Items) != 3 || rels.Items[0].Version != "1.2.0" || fmt.Sprint(rels.Items[1].Channels) != "[prod]" {
		t.Errorf("releases in prod = %d %s", rr.status, rr.body)
	}
	if rr := e.do("GET", "/v1/apps/hello/releases?channel=qa", nil, ""); rr.status != 404 ||
		!strings.Contains(string(rr.body), `has no channel \"qa\"; its channels are dev, staging, prod`) {
		t.Errorf("releases in an unknown channel = %d %s, want 404 naming the channels", rr.status, rr.body)
	}
	tags := string(e.do("GET", "/v2/hello/tags/list", nil, "").body)
	for _, want := range []string{`"1.0.0"`, `"1.2.0"`, `"dev"`, `"staging"`, `"prod"`} {
		if !strings.Contains(tags, want) {
			t.Errorf("tags lack %s: %s", want, tags)
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
