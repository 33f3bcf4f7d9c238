package builder

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// Referrer is an OCI descriptor of an artifact (an SBOM) that refers to a manifest.
type Referrer struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

// referrer is an artifact manifest (an SBOM's) of size bytes, and the manifest or index
// it refers to.
type referrer struct {
	subject, digest store.Digest
	size            int64
	artifactType    string // "" for the artifactType recordImage is given
}

// recordImage records, in one round trip, the referrers of a build's image (each of its
// own artifactType, or else artifactType), the links of the blobs it references (see
// link) and the cosign tags its signing moved.
func (s *Builds) recordImage(ctx context.Context, app string, refs []referrer, artifactType string, blobs []store.Digest, tags map[string]string) error {
	docs := make([][]byte, len(refs))
	for i, r := range refs {
		at := cmp.Or(r.artifactType, artifactType)
		d, err := json.Marshal(Referrer{MediaType: ociManifest, Digest: r.digest.String(), Size: r.size, ArtifactType: at})
		if err != nil {
			return err
		}
		docs[i] = d
	}
	members := make([]any, len(blobs))
	for i, d := range blobs {
		members[i] = string(d)
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range refs {
			p.HSet(ctx, store.ReferrersKey(app, r.subject), r.digest.String(), docs[i])
		}
		if len(members) > 0 {
			p.SAdd(ctx, store.LinksKey(app), members...)
		}
		if len(tags) > 0 {
			p.HSet(ctx, store.CosignTagsKey(app), tags)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording the referrers and links of an image of %s: %w", app, err)
	}
	return nil
}

// CosignTag returns the manifest cosign's tag of an image (sha256-<hex>.sig or .att)
// names in the app, or "" when it names none.
func (s *Builds) CosignTag(ctx context.Context, app, tag string) (store.Digest, error) {
	v, err := s.rdb.HGet(ctx, store.CosignTagsKey(app), tag).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading tag %s of %s: %w", tag, app, err)
	}
	return store.ParseDigest(v)
}

// CosignTags returns the app's cosign tags (sha256-<hex>.sig and .att), unordered.
func (s *Builds) CosignTags(ctx context.Context, app string) ([]string, error) {
	tags, err := s.rdb.HKeys(ctx, store.CosignTagsKey(app)).Result()
	if err != nil {
		return nil, fmt.Errorf("listing the cosign tags of %s: %w", app, err)
	}
	return tags, nil
}

// Referrers returns the artifacts that refer to the manifest subject, optionally only
// those of one artifact type, in digest order.
func (s *Builds) Referrers(ctx context.Context, app string, subject store.Digest, artifactType string) ([]Referrer, error) {
	m, err := s.rdb.HGetAll(ctx, store.ReferrersKey(app, subject)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading referrers of %s: %w", subject, err)
	}
	out := make([]Referrer, 0, len(m))
	for _, v := range m {
		var r Referrer
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return nil, fmt.Errorf("decoding a referrer of %s: %w", subject, err)
		}
		if artifactType == "" || r.ArtifactType == artifactType {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Referrer) int { return strings.Compare(a.Digest, b.Digest) })
	return out, nil
}

// Imaged returns the ids of the app's succeeded builds that have images, newest first.
func (s *Builds) Imaged(ctx context.Context, app string) ([]string, error) {
	var ids []string
	after := ""
	for {
		page, next, err := s.List(ctx, app, StatusSucceeded, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, b := range page {
			if b.Image != nil {
				ids = append(ids, b.ID)
			}
		}
		if next == "" {
			return ids, nil
		}
		after = next
	}
}
