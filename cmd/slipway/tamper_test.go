package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// TestTamperedBlobIsNeverServed: a layer whose stored bytes were changed behind slipway's
// back (in the bucket) is an error to every reader — the registry, a registry client, a
// range, the artifact download — and never reaches one whole.
func TestTamperedBlobIsNeverServed(t *testing.T) {
	env := buildEnv(t)
	p := startServe(t, env)
	req, _ := http.NewRequest("PUT", p.url+"/v1/apps/tampered", strings.NewReader(`{"platforms":["linux/amd64"]}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT app: %v %v", resp, err)
	}
	src := buildertest.Module(t, "tampered", map[string]string{"main.go": buildertest.HelloMain})
	resp, err := http.Post(p.url+"/v1/apps/tampered/builds?version=1.0.0", "application/gzip", bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	var queued openapi.Build
	_ = json.NewDecoder(resp.Body).Decode(&queued)
	resp.Body.Close()
	b := waitStatus(t, p.url, "tampered", queued.Id, 3*time.Minute, func(b openapi.Build) bool {
		return b.Status != openapi.BuildStatusQueued && b.Status != openapi.BuildStatusRunning
	})
	if b.Status != openapi.BuildStatusSucceeded {
		t.Fatalf("build = %s %+v", b.Status, b.Error)
	}
	host := strings.TrimPrefix(p.url, "http://")
	ref, _ := name.ParseReference(host+"/tampered@"+b.Image.Digest, name.Insecure)
	img, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	layer, _ := layers[len(layers)-1].Digest()

	// Replace the layer's bytes, and the binary's, in the bucket (the raw client does not
	// ask for If-None-Match).
	var bucket string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SLIPWAY_S3_BUCKET="); ok {
			bucket = v
		}
	}
	_, s3cfg := storetest.S3(t)
	s3cfg.Bucket = bucket
	client := storetest.NewS3Client(s3cfg)
	evil := bytes.Repeat([]byte("evil"), 4096)
	for _, d := range []string{layer.String(), b.Artifacts[0].Digest} {
		key := store.BlobKey(store.Digest(d))
		if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(evil), ContentLength: aws.Int64(int64(len(evil)))}); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct{ name, path, rng string }{
		{"registry blob", "/v2/tampered/blobs/" + layer.String(), ""},
		{"registry blob range", "/v2/tampered/blobs/" + layer.String(), "bytes=0-99"},
		{"artifact", "/v1/apps/tampered/builds/" + b.Id + "/artifacts/linux/amd64", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", p.url+tc.path, nil)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return // refused before an answer: nothing served
			}
			defer resp.Body.Close()
			body, rerr := io.ReadAll(resp.Body)
			if resp.StatusCode < 300 && rerr == nil && len(body) > 0 && bytes.Contains(evil, body) {
				t.Errorf("GET %s = %d with %d tampered bytes and no error", tc.path, resp.StatusCode, len(body))
			}
			if bytes.Equal(body, evil) {
				t.Errorf("GET %s served the whole tampered blob", tc.path)
			}
		})
	}
	again, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err == nil {
		if err := validate.Image(again); err == nil {
			t.Errorf("a registry client pulled and validated an image whose layer was tampered with")
		}
	}
}
