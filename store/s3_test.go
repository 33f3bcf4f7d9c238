package store_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

func TestS3Conformance(t *testing.T) {
	var pending func(ctx context.Context) ([]string, error)
	storetest.RunBlobs(t, func(t *testing.T) store.Blobs {
		client, cfg := storetest.S3(t)
		s, err := store.NewS3(client, cfg.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		pending = func(ctx context.Context) ([]string, error) {
			return storetest.PendingUploads(ctx, client, cfg.Bucket)
		}
		return s
	}, storetest.BlobsOptions{
		Pending: func(ctx context.Context) ([]string, error) { return pending(ctx) },
	})
}

func TestS3PingMissingBucket(t *testing.T) {
	client, _ := storetest.S3(t)
	s, err := store.NewS3(client, "no-such-bucket-slipway")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Errorf("Ping(missing bucket) = nil, want an error")
	}
}

func TestS3PresignGet(t *testing.T) {
	ctx := context.Background()
	client, cfg := storetest.S3(t)
	plain, err := store.NewS3(client, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := plain.PresignGet(ctx, "blobs/x"); ok || err != nil {
		t.Errorf("PresignGet without WithPresign = ok %v, %v; want false, nil", ok, err)
	}
	if _, err := store.NewS3(client, cfg.Bucket, store.WithPresign(client, 0)); err == nil {
		t.Errorf("WithPresign(0) = nil error, want one")
	}
	s, err := store.NewS3(client, cfg.Bucket, store.WithPresign(client, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("presigned content")
	d := store.DigestBytes(body)
	if _, err := s.Put(ctx, store.BlobKey(d), bytes.NewReader(body), d); err != nil {
		t.Fatal(err)
	}
	url, ok, err := s.PresignGet(ctx, store.BlobKey(d))
	if err != nil || !ok {
		t.Fatalf("PresignGet = %q %v %v", url, ok, err)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Errorf("GET presigned URL = %d %q, want 200 %q", resp.StatusCode, got, body)
	}
	// The signature covers the key: another key with the same query is refused.
	other := strings.Replace(url, d.Hex(), strings.Repeat("0", 64), 1)
	resp, err = http.Get(other)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("GET with the key changed = 200, want a refusal")
	}
}
