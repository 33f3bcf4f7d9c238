package builder

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/gzip"

	"github.com/slipway/slipway/store"
)

// OpenArtifact opens the binary a of app's build: read out of the image layer it is
// stored in (a.Layer, as /app/<app>), or, for a build made before binaries were kept in
// their layers, from its own blob. The reader checks the binary against a.Digest as it
// goes and holds back its last bytes until they match: content that differs ends in an
// error wrapping store.ErrDigestMismatch, never in a whole binary. The caller closes it.
func OpenArtifact(ctx context.Context, blobs store.Blobs, app string, a Artifact) (io.ReadCloser, error) {
	d, err := store.ParseDigest(a.Digest)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", a.Platform, err)
	}
	if a.Layer == "" {
		rc, _, err := blobs.Get(ctx, store.BlobKey(d), 0, -1)
		return rc, err
	}
	layer, err := store.ParseDigest(a.Layer)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", a.Platform, err)
	}
	rc, _, err := blobs.Get(ctx, store.BlobKey(layer), 0, -1)
	if err != nil {
		return nil, err
	}
	bin, err := findBinary(rc, "app/"+app, a.Size)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("%w: the %s binary in layer %s: %v", store.ErrDigestMismatch, a.Platform, layer, err)
	}
	return &artifactReader{r: bin, c: rc, left: a.Size, h: sha256.New(), want: d}, nil
}

// findBinary returns a reader of the regular file name, of size bytes, in the gzipped
// tar layer r.
func findBinary(r io.Reader, name string, size int64) (io.Reader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("no %s", name)
		}
		if err != nil {
			return nil, err
		}
		if hdr.Name != name {
			continue
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size != size {
			return nil, fmt.Errorf("%s is not a regular file of %d bytes", name, size)
		}
		return tr, nil
	}
}

// artifactReader reads left more bytes of a binary from r, hashing them, and returns
// the last of them only once the hash is want.
type artifactReader struct {
	r    io.Reader
	c    io.Closer
	left int64
	h    hash.Hash
	want store.Digest
}

func (a *artifactReader) Read(p []byte) (int, error) {
	if a.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) < a.left {
		// Not the end: at least one byte stays behind.
		n, err := a.r.Read(p)
		a.h.Write(p[:n])
		a.left -= int64(n)
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	// The rest fits: read all of it, and release it only if the whole binary matches.
	n, err := io.ReadFull(a.r, p[:a.left])
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	a.h.Write(p[:n])
	if got := store.DigestOf(a.h); got != a.want {
		clear(p[:n])
		return 0, fmt.Errorf("%w: the binary is %s, expected %s", store.ErrDigestMismatch, got, a.want)
	}
	a.left = 0
	return n, nil
}

func (a *artifactReader) Close() error { return a.c.Close() }
