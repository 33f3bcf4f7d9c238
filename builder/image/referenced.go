package image

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/slipway/slipway/store"
)

// maxReferenced bounds how many documents Referenced reads, so a hostile or broken
// graph cannot keep it walking.
const maxReferenced = 10000

// Referenced returns every digest the stored documents roots reference, the roots
// included, sorted: for an index its manifests (and nested indexes), for a manifest its
// config and layers. A subject is not followed: a referrer points at its subject, the
// subject does not contain it. Layers and configs are not read, only named.
func Referenced(ctx context.Context, blobs store.Blobs, roots ...store.Digest) ([]store.Digest, error) {
	seen := map[store.Digest]bool{}
	todo := slices.Clone(roots)
	read := 0
	for len(todo) > 0 {
		d := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[d] {
			continue
		}
		seen[d] = true
		if read++; read > maxReferenced {
			return nil, fmt.Errorf("walking %s: more than %d documents", roots, maxReferenced)
		}
		raw, err := readBlob(ctx, blobs, d)
		if err != nil {
			return nil, err
		}
		var doc struct {
			MediaType string            `json:"mediaType"`
			Manifests []json.RawMessage `json:"manifests"`
			Config    *json.RawMessage  `json:"config"`
			Layers    []json.RawMessage `json:"layers"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", d, err)
		}
		digestOf := func(desc json.RawMessage) (store.Digest, error) {
			var x struct {
				Digest string `json:"digest"`
			}
			if err := json.Unmarshal(desc, &x); err != nil {
				return "", fmt.Errorf("decoding a descriptor in %s: %w", d, err)
			}
			return store.ParseDigest(x.Digest)
		}
		for _, m := range doc.Manifests {
			md, err := digestOf(m)
			if err != nil {
				return nil, err
			}
			todo = append(todo, md)
		}
		leaves := doc.Layers
		if doc.Config != nil {
			leaves = append(leaves, *doc.Config)
		}
		for _, l := range leaves {
			ld, err := digestOf(l)
			if err != nil {
				return nil, err
			}
			seen[ld] = true
		}
	}
	out := make([]store.Digest, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	slices.Sort(out)
	return out, nil
}
