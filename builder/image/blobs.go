package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/store"
)

// maxManifestSize bounds the JSON documents (manifests, configs) read into memory.
const maxManifestSize = 8 << 20

// has reports whether the store holds the blob d.
func has(ctx context.Context, blobs store.Blobs, d store.Digest) (bool, error) {
	_, err := blobs.Stat(ctx, store.BlobKey(d))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("checking blob %s: %w", d, err)
	}
}

// ensure stores the content r opens under its digest d unless the store has it already:
// it asks first, so what is there is never uploaded again, and a concurrent writer that
// stored it in between (ErrExists) is success too. open is called only when needed.
func ensure(ctx context.Context, blobs store.Blobs, d store.Digest, open func() (io.ReadCloser, error)) error {
	ok, err := has(ctx, blobs, d)
	if err != nil || ok {
		return err
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := blobs.Put(ctx, store.BlobKey(d), rc, d); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("storing blob %s: %w", d, err)
	}
	return nil
}

// ensureBytes stores b under its digest unless the store has it, and returns the digest.
// A small document is put straight away: the store refuses to overwrite (ErrExists), so
// one round trip does what asking first and then putting does in two.
func ensureBytes(ctx context.Context, blobs store.Blobs, b []byte) (store.Digest, error) {
	d := store.DigestBytes(b)
	if _, err := blobs.Put(ctx, store.BlobKey(d), bytes.NewReader(b), d); err != nil && !errors.Is(err, store.ErrExists) {
		return d, fmt.Errorf("storing blob %s: %w", d, err)
	}
	return d, nil
}

// encodeJSON encodes v, a document of the image; what names it in errors.
func encodeJSON(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", what, err)
	}
	return b, nil
}

// docs are small documents to store under their digests, all at once: the round trips
// to the store overlap instead of following one another.
type docs struct {
	byDigest map[store.Digest][]byte
	order    []store.Digest
}

func newDocs() *docs { return &docs{byDigest: map[store.Digest][]byte{}} }

// add adds b, unless it is there already, and returns its digest.
func (d *docs) add(b []byte) store.Digest {
	dg := store.DigestBytes(b)
	if _, ok := d.byDigest[dg]; !ok {
		d.byDigest[dg] = b
		d.order = append(d.order, dg)
	}
	return dg
}

// store puts every document at once; one the store has already is left as it is.
func (d *docs) store(ctx context.Context, blobs store.Blobs) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, dg := range d.order {
		g.Go(func() error {
			_, err := ensureBytes(gctx, blobs, d.byDigest[dg])
			return err
		})
	}
	return g.Wait()
}

// readBlob reads a stored JSON document (at most maxManifestSize bytes).
func readBlob(ctx context.Context, blobs store.Blobs, d store.Digest) ([]byte, error) {
	rc, _, err := blobs.Get(ctx, store.BlobKey(d), 0, -1)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", d, err)
	}
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("reading blob %s: larger than %d bytes", d, maxManifestSize)
	}
	if got := store.DigestBytes(b); got != d {
		return nil, fmt.Errorf("reading blob %s: %w: content is %s", d, store.ErrDigestMismatch, got)
	}
	return b, nil
}

// toHash converts a store digest to ggcr's form.
func toHash(d store.Digest) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: d.Hex()}
}

// fromHash converts a ggcr digest to the store's form; only sha256 is supported.
func fromHash(h v1.Hash) (store.Digest, error) {
	return store.ParseDigest(h.String())
}

// descriptor describes stored bytes.
func descriptor(mt types.MediaType, d store.Digest, size int64) v1.Descriptor {
	return v1.Descriptor{MediaType: mt, Digest: toHash(d), Size: size}
}
