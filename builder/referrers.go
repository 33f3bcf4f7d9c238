package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

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

// recordReferrer notes that the artifact manifest referrer has subject as its subject.
func (s *Builds) recordReferrer(ctx context.Context, blobs store.Blobs, app string, subject, referrer store.Digest, artifactType string) error {
	info, err := blobs.Stat(ctx, store.BlobKey(referrer))
	if err != nil {
		return err
	}
	d, err := json.Marshal(Referrer{MediaType: ociManifest, Digest: referrer.String(), Size: info.Size, ArtifactType: artifactType})
	if err != nil {
		return err
	}
	return s.rdb.HSet(ctx, store.ReferrersKey(app, subject), referrer.String(), d).Err()
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
