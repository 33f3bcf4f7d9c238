package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// releaseToProd builds app at version v, releases it and promotes it through staging to
// prod (the app must auto-promote into dev).
func (e *env) releaseToProd(app, v string) openapi.Build {
	e.t.Helper()
	b := e.buildVersion(app, v)
	steps := []struct{ path, body string }{
		{"/v1/apps/" + app + "/releases", `{"build_id":"` + b.Id + `"}`},
		{"/v1/apps/" + app + "/channels/staging/promote", `{"version":"` + v + `","reason":"qa"}`},
		{"/v1/apps/" + app + "/channels/prod/promote", `{"version":"` + v + `","reason":"ship"}`},
	}
	for _, s := range steps {
		if r := e.do("POST", s.path, nil, s.body); r.status != http.StatusCreated && r.status != http.StatusOK {
			e.t.Fatalf("POST %s = %d %s", s.path, r.status, r.body)
		}
	}
	return b
}

// referrers lists the referrers of app@digest with go-containerregistry's client, which
// asks the registry's referrers API.
func (e *env) referrers(app, digest string) []v1.Descriptor {
	e.t.Helper()
	d, err := name.NewDigest(strings.TrimPrefix(e.url, "http://")+"/"+app+"@"+digest, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	idx, err := remote.Referrers(d)
	if err != nil {
		e.t.Fatalf("remote.Referrers(%s) = %v", d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		e.t.Fatal(err)
	}
	return im.Manifests
}

// TestSBOMReferrers: the SBOMs are found from what a deployer pulls. hello:prod resolves
// to the index, whose referrers are one SPDX SBOM covering both platforms (the build's
// image.sbom_referrer and image.sbom); each platform's manifest has its own (the build's
// manifests[].sbom_referrer and sbom).
func TestSBOMReferrers(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.startWorker()
	e.do("PUT", "/v1/apps/hello", nil, `{"platforms":["linux/amd64","linux/arm64"],"auto_promote":true}`)
	b := e.releaseToProd("hello", "1.0.0")
	img := b.Image
	if img.Sbom == nil || img.SbomReferrer == nil {
		t.Fatalf("build image = %+v, want sbom and sbom_referrer", img)
	}
	head, err := remote.Head(e.ref("hello:prod"))
	if err != nil || head.Digest.String() != img.Digest {
		t.Fatalf("hello:prod = %v, %v; want the index %s", head, err, img.Digest)
	}
	refs := e.referrers("hello", img.Digest)
	if len(refs) != 1 || refs[0].Digest.String() != *img.SbomReferrer || refs[0].ArtifactType != "application/spdx+json" {
		t.Fatalf("referrers of the index = %+v, want the SBOM referrer %s", refs, *img.SbomReferrer)
	}
	ref, err := remote.Image(e.ref("hello@" + *img.SbomReferrer))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := ref.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("SBOM referrer layers = %v, %v; want one", layers, err)
	}
	if d, _ := layers[0].Digest(); d.String() != *img.Sbom {
		t.Errorf("SBOM referrer layer = %s, want the build's image.sbom %s", d, *img.Sbom)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Files []struct{ Comment string } }
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Files) != 2 ||
		!strings.Contains(doc.Files[0].Comment, "linux/amd64") || !strings.Contains(doc.Files[1].Comment, "linux/arm64") {
		t.Errorf("index SBOM files = %+v, %v; want the linux/amd64 and linux/arm64 binaries", doc.Files, err)
	}
	for _, m := range img.Manifests {
		refs := e.referrers("hello", m.Digest)
		if m.SbomReferrer == nil || len(refs) != 1 || refs[0].Digest.String() != *m.SbomReferrer {
			t.Errorf("referrers of the %s manifest = %+v, want its sbom_referrer %v", m.Platform, refs, m.SbomReferrer)
		}
	}
	// Links lost (or made before index SBOMs) are made again at the first miss, the
	// index's SBOM and its referrer included.
	if err := e.rdb.Del(context.Background(), store.LinksKey("hello"), store.LinksCompleteKey("hello")).Err(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{*img.SbomReferrer, *img.Sbom} {
		if r := e.do("HEAD", "/v2/hello/blobs/"+d, nil, ""); r.status != http.StatusOK {
			t.Errorf("HEAD /v2/hello/blobs/%s after the links were lost = %d, want 200 (relinked)", d, r.status)
		}
	}
	t.Run("oras discover", func(t *testing.T) { orasDiscover(t, e, "hello:prod", *img.SbomReferrer) })
}

// orasDiscover runs `oras discover` on ref, as a user would, and checks that it shows the
// referrer; it skips when oras is not installed.
func orasDiscover(t *testing.T, e *env, ref, referrer string) {
	t.Helper()
	oras, err := exec.LookPath("oras")
	if err != nil {
		t.Skip("oras is not installed, so `oras discover` is not tried: go install oras.land/oras/cmd/oras@v1.3.6")
	}
	target := strings.TrimPrefix(e.url, "http://") + "/" + ref
	out, err := exec.Command(oras, "discover", "--plain-http", target).CombinedOutput()
	t.Logf("oras discover %s:\n%s", target, out)
	if err != nil || !strings.Contains(string(out), referrer) || !strings.Contains(string(out), "application/spdx+json") {
		t.Errorf("oras discover %s = %v\n%s\nwant the SBOM referrer %s", target, err, out, referrer)
	}
}
