package gocache

import (
	"context"
	"fmt"
	"time"

	"github.com/slipway/slipway/store"
)

// PruneResult is what Prune removed and kept.
type PruneResult struct {
	Deleted, Kept           int
	DeletedBytes, KeptBytes int64
}

// Prune deletes every object of the shared build cache (store.GoCachePrefix) in blobs
// last written before cutoff, in every namespace. An entry deleted while its output stays
// is gone; an output deleted while an entry names it makes that entry a miss, refused
// when fetched. Either way the go command builds the action again.
func Prune(ctx context.Context, blobs store.Blobs, cutoff time.Time) (PruneResult, error) {
	var r PruneResult
	for info, err := range blobs.List(ctx, store.GoCachePrefix) {
		if err != nil {
			return r, fmt.Errorf("listing %s: %w", store.GoCachePrefix, err)
		}
		if !info.ModTime.Before(cutoff) {
			r.Kept++
			r.KeptBytes += info.Size
			continue
		}
		if err := blobs.Delete(ctx, info.Key); err != nil {
			return r, fmt.Errorf("deleting %s: %w", info.Key, err)
		}
		r.Deleted++
		r.DeletedBytes += info.Size
	}
	return r, nil
}
