package store_test

import (
	"testing"

	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

func TestFSConformance(t *testing.T) {
	storetest.RunBlobs(t, func(t *testing.T) store.Blobs {
		s, err := store.NewFS(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, storetest.BlobsOptions{})
}
