package builder

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
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
	name := fmt.Sprintf("the %s binary in layer %s", a.Platform, layer)
	return store.NewVerifyReader(struct {
		io.Reader
		io.Closer
	}{bin, rc}, name, d, a.Size), nil
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
