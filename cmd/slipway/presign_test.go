package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// TestRegistryRedirectsToPresignedS3 runs serve on S3 with SLIPWAY_S3_PRESIGN_TTL: blob
// downloads answer 307 to a presigned URL of the test S3 server, a registry client
// follows it and gets a valid image, and HEAD still answers from slipway.
func TestRegistryRedirectsToPresignedS3(t *testing.T) {
	_, s3cfg := storetest.S3(t)
	p := startServe(t, append(buildEnv(t), "SLIPWAY_S3_PRESIGN_TTL=5m"))

	req, _ := http.NewRequest("PUT", p.url+"/v1/apps/hello", strings.NewReader(`{"platforms":["linux/amd64"]}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT app: %v %v", resp, err)
	}
	src := buildertest.Module(t, "hello", map[string]string{"main.go": buildertest.HelloMain})
	resp, err := http.Post(p.url+"/v1/apps/hello/builds?version=1.2.3", "application/gzip", bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	var queued openapi.Build
	if err := json.NewDecoder(resp.Body).Decode(&queued); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST build = %d, %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	b := waitStatus(t, p.url, "hello", queued.Id, 3*time.Minute, func(b openapi.Build) bool {
		return b.Status != openapi.BuildStatusQueued && b.Status != openapi.BuildStatusRunning
	})
	if b.Status != openapi.BuildStatusSucceeded || b.Image == nil {
		t.Fatalf("build %s: %+v\n%s", b.Status, b.Error, buildLog(t, p.url, "hello", b.Id))
	}

	host := strings.TrimPrefix(p.url, "http://")
	ref, err := name.ParseReference(host+"/hello@"+b.Image.Digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image through presigned redirects = %v", err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers = %d, %v", len(layers), err)
	}
	d, _ := layers[1].Digest()

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(p.url + "/v2/hello/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, s3cfg.Endpoint+"/") ||
		!strings.Contains(loc, "X-Amz-Signature=") || !strings.Contains(loc, "X-Amz-Expires=300") {
		t.Fatalf("GET blob = %d, Location %q; want 307 to a presigned URL of %s valid 300 s", resp.StatusCode, loc, s3cfg.Endpoint)
	}
	if resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("Docker-Content-Digest = %q, want %s", resp.Header.Get("Docker-Content-Digest"), d)
	}
	direct, err := http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(direct.Body)
	direct.Body.Close()
	if sum := sha256.Sum256(body); direct.StatusCode != http.StatusOK || "sha256:"+hex.EncodeToString(sum[:]) != d.String() {
		t.Errorf("GET presigned URL = %d, %d bytes, want the blob %s", direct.StatusCode, len(body), d)
	}

	head, err := http.Head(p.url + "/v2/hello/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != http.StatusOK || head.ContentLength <= 0 {
		t.Errorf("HEAD blob = %d, Content-Length %d; want 200 from slipway", head.StatusCode, head.ContentLength)
	}
	// A blob that is not there is still slipway's 404, not a URL to nothing.
	resp, err = noFollow.Get(p.url + "/v2/hello/blobs/sha256:" + strings.Repeat("0", 64))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET missing blob = %d, want 404", resp.StatusCode)
	}
	// Nor is another app's blob: no presigned URL for what the app's images do not hold.
	req, _ = http.NewRequest("PUT", p.url+"/v1/apps/other", strings.NewReader(`{"platforms":["linux/amd64"]}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT app: %v %v", resp, err)
	}
	resp, err = noFollow.Get(p.url + "/v2/other/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" {
		t.Errorf("GET hello's layer under other = %d, Location %q; want 404 and no URL", resp.StatusCode, resp.Header.Get("Location"))
	}
}
