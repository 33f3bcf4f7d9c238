package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// TestOCIConformance runs the pull workflow of the OCI distribution-spec conformance
// test (installed by scripts/test.sh) against slipway's /v2/, pre-seeded with a build's
// image, a release and a channel.
func TestOCIConformance(t *testing.T) {
	bin := os.Getenv("SLIPWAY_TEST_OCI_CONFORMANCE")
	if bin == "" {
		msg := "SLIPWAY_TEST_OCI_CONFORMANCE is not set: run ./scripts/test.sh, which installs the conformance test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_, goEnv := buildertest.Toolchain(t)
	p := startServe(t, []string{"SLIPWAY_REDIS_URL=" + storetest.RedisURL(t), "SLIPWAY_GOCACHE=" + goEnv.Cache, "SLIPWAY_BUILD_CACHE=local",
		"SLIPWAY_GOMODCACHE=" + goEnv.ModCache, "SLIPWAY_GOPROXY=off", "SLIPWAY_GOSUMDB=off"})
	do := func(method, path, ct, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, p.url+path, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, b.String())
		}
		return b.Bytes()
	}
	do("PUT", "/v1/apps/conformance", "application/json", `{"platforms":["linux/amd64","linux/arm64"]}`)
	src := buildertest.Module(t, "conformance", map[string]string{"main.go": buildertest.HelloMain})
	var b openapi.Build
	_ = json.Unmarshal(do("POST", "/v1/apps/conformance/builds?version=1.0.0", "application/gzip", string(src)), &b)
	b = waitStatus(t, p.url, "conformance", b.Id, 3*time.Minute, func(b openapi.Build) bool { return b.Status == openapi.BuildStatusSucceeded })
	do("POST", "/v1/apps/conformance/releases", "application/json", `{"build_id":"`+b.Id+`"}`)
	do("POST", "/v1/apps/conformance/channels/dev/promote", "application/json", `{"version":"1.0.0"}`)

	manifests := []string{b.Image.Digest}
	blobs := map[string]bool{}
	var referrers []string
	for _, m := range b.Image.Manifests {
		manifests = append(manifests, m.Digest)
		referrers = append(referrers, m.Digest)
		var man v1.Manifest
		if err := json.Unmarshal(do("GET", "/v2/conformance/manifests/"+m.Digest, "", ""), &man); err != nil {
			t.Fatal(err)
		}
		blobs[man.Config.Digest.String()] = true
		for _, l := range man.Layers {
			blobs[l.Digest.String()] = true
		}
	}
	blobList := make([]string, 0, len(blobs))
	for d := range blobs {
		blobList = append(blobList, d)
	}

	results := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+strings.TrimPrefix(p.url, "http://"),
		"OCI_TLS=disabled",
		"OCI_VERSION=1.1",
		"OCI_REPO1=conformance",
		"OCI_REPO2=conformance",
		"OCI_RESULTS_DIR="+results,
		"OCI_API_PULL=true",
		"OCI_API_PUSH=false",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_TAGS_DELETE=false",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		// The test reads manifest headers only for content it pushed itself, so in
		// read-only mode it cannot see ours; the API tests check Docker-Content-Digest.
		"OCI_API_MANIFESTS_DIGEST_HEADER=false",
		"OCI_RO_DATA_TAGS=build-"+b.Id+" 1.0.0 dev",
		"OCI_RO_DATA_MANIFESTS="+strings.Join(manifests, " "),
		"OCI_RO_DATA_BLOBS="+strings.Join(blobList, " "),
		"OCI_RO_DATA_REFERRERS="+strings.Join(referrers, " "),
	)
	out, err := cmd.CombinedOutput()
	summary := string(out)
	if i := strings.Index(summary, "OCI Conformance Result:"); i >= 0 {
		summary = summary[i:]
	}
	t.Logf("conformance result (%v):\n%s", err, summary)
	// The tool (at this version) panics while writing results.yaml for read-only runs,
	// after it has printed its verdict; the verdict is what counts.
	if !strings.Contains(summary, "OCI Conformance Result: Pass") || !regexp.MustCompile(`FAIL\.+:\s+0\n`).MatchString(summary) ||
		!regexp.MustCompile(`Pass\.+:\s+[1-9]`).MatchString(summary) {
		t.Fatalf("the OCI conformance test did not pass:\n%s", out)
	}
	for _, api := range []string{"Manifest get by digest", "Manifest get by tag", "Manifest head by tag", "Blob get", "Blob head", "Tag listing", "Referrers"} {
		if !regexp.MustCompile(regexp.QuoteMeta(api) + `\.+:\s+Pass`).MatchString(summary) {
			t.Errorf("conformance: %s did not pass", api)
		}
	}
}
