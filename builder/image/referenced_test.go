package image_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/store"
)

// TestResultBlobsAreEverythingStored: Result.Blobs names the blobs an image needs,
// all stored, and Referenced finds the same set from the stored documents alone (what
// relinking older builds relies on).
func TestResultBlobsAreEverythingStored(t *testing.T) {
	f := hello(t)
	ctx := context.Background()
	blobs := newStore(t)
	res, err := image.Assemble(ctx, blobs, f.bins, builtinOptions(f))
	if err != nil {
		t.Fatalf("Assemble() = %v", err)
	}
	var stored []store.Digest
	for _, k := range keys(t, blobs) {
		d, err := store.ParseDigest("sha256:" + k[len("blobs/sha256/"):])
		if err != nil {
			t.Fatalf("key %s: %v", k, err)
		}
		stored = append(stored, d)
	}
	// The store also holds the built-in base's own index, manifests and configs, which
	// the image names only in annotations.
	for _, d := range res.Blobs {
		if !slices.Contains(stored, d) {
			t.Errorf("Result.Blobs names %s, which is not stored", d)
		}
	}
	if len(res.Blobs) < 4+5*len(res.Images) {
		t.Errorf("Result.Blobs = %d digests for %d images; want the index, its SBOM and referrer, the empty config, and per image its manifest, config, layers, SBOM and referrer", len(res.Blobs), len(res.Images))
	}
	for _, d := range []store.Digest{res.SBOM, res.SBOMReferrer} {
		if !slices.Contains(res.Blobs, d) {
			t.Errorf("Result.Blobs lacks the index's SBOM or its referrer, %s", d)
		}
	}
	roots := []store.Digest{res.Index, res.SBOMReferrer}
	for _, img := range res.Images {
		roots = append(roots, img.SBOMReferrer)
	}
	walked, err := image.Referenced(ctx, blobs, roots...)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(walked, res.Blobs) {
		t.Errorf("Referenced(index, referrers) = %v\nResult.Blobs = %v", walked, res.Blobs)
	}
	if _, err := image.Referenced(ctx, blobs, store.Digest("sha256:"+strings.Repeat("0", 64))); err == nil {
		t.Error("Referenced(a digest not stored) = nil error")
	}
}
