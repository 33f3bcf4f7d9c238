package store_test

import (
	"context"
	"testing"

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
