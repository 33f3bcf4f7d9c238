package builder

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/store"
)

// link records that the app's images reference the digests, so the registry serves
// them under the app. Blobs are shared by every app; links are not.
func (s *Builds) link(ctx context.Context, app string, ds []store.Digest) error {
	if len(ds) == 0 {
		return nil
	}
	members := make([]any, len(ds))
	for i, d := range ds {
		members[i] = string(d)
	}
	if err := s.rdb.SAdd(ctx, store.LinksKey(app), members...).Err(); err != nil {
		return fmt.Errorf("linking %d blobs to %s: %w", len(ds), app, err)
	}
	return nil
}

// Linked reports whether the app's own images reference d: its builds' indexes,
// manifests, configs and layers, and their referrers. A digest another app made, or
// none did, is not linked; the registry answers both the same way.
//
// Builds recorded before links existed are linked the first time a lookup misses:
// the app's succeeded builds are walked once and the app marked complete.
func (s *Builds) Linked(ctx context.Context, blobs store.Blobs, app string, d store.Digest) (bool, error) {
	ok, complete, err := s.isLinked(ctx, app, d)
	if err != nil || ok || complete {
		return ok, err
	}
	if err := s.relink(ctx, blobs, app); err != nil {
		return false, err
	}
	ok, _, err = s.isLinked(ctx, app, d)
	return ok, err
}

func (s *Builds) isLinked(ctx context.Context, app string, d store.Digest) (linked, complete bool, err error) {
	var member *redis.BoolCmd
	var done *redis.IntCmd
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		member = p.SIsMember(ctx, store.LinksKey(app), string(d))
		done = p.Exists(ctx, store.LinksCompleteKey(app))
		return nil
	}); err != nil {
		return false, false, fmt.Errorf("looking up %s in %s: %w", d, app, err)
	}
	return member.Val(), done.Val() == 1, nil
}

// relink links everything the app's succeeded builds' images reference, then marks the
// app complete.
func (s *Builds) relink(ctx context.Context, blobs store.Blobs, app string) error {
	after := ""
	for {
		page, next, err := s.List(ctx, app, StatusSucceeded, after, 100)
		if err != nil {
			return err
		}
		for _, b := range page {
			if b.Image == nil {
				continue
			}
			roots := []store.Digest{store.Digest(b.Image.Digest)}
			if b.Image.SBOMReferrer != "" {
				roots = append(roots, store.Digest(b.Image.SBOMReferrer))
			}
			if b.Signing != nil {
				roots = append(roots, store.Digest(b.Signing.Signature), store.Digest(b.Signing.Attestation))
			}
			for _, m := range b.Image.Manifests {
				if m.SBOMReferrer != "" {
					roots = append(roots, store.Digest(m.SBOMReferrer))
				}
			}
			ds, err := image.Referenced(ctx, blobs, roots...)
			if err != nil {
				return fmt.Errorf("linking build %s: %w", b.ID, err)
			}
			if err := s.link(ctx, app, ds); err != nil {
				return err
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	return s.rdb.Set(ctx, store.LinksCompleteKey(app), "1", 0).Err()
}
