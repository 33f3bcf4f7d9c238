package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/store"
)

// TestOpenArtifact: a binary kept in its layer reads back whole when it has the
// artifact's digest, and otherwise ends in ErrDigestMismatch without its last bytes.
func TestOpenArtifact(t *testing.T) {
	bin := bytes.Repeat([]byte("binary\n"), 50000)
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	tw := tar.NewWriter(zw)
	_ = tw.WriteHeader(&tar.Header{Name: "app/", Typeflag: tar.TypeDir, Mode: 0o755})
	_ = tw.WriteHeader(&tar.Header{Name: "app/hello", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))})
	_, _ = tw.Write(bin)
	_ = tw.Close()
	_ = zw.Close()
	blobs := fsBlobs(t)
	ld := store.DigestBytes(layer.Bytes())
	if _, err := blobs.Put(context.Background(), store.BlobKey(ld), bytes.NewReader(layer.Bytes()), ld); err != nil {
		t.Fatal(err)
	}
	other := append(bytes.Clone(bin[:len(bin)-1]), '!')
	for _, tc := range []struct {
		name string
		a    builder.Artifact
		ok   bool
	}{
		{"intact", builder.Artifact{Platform: "linux/amd64", Digest: store.DigestBytes(bin).String(), Size: int64(len(bin)), Layer: ld.String()}, true},
		{"another digest", builder.Artifact{Platform: "linux/amd64", Digest: store.DigestBytes(other).String(), Size: int64(len(bin)), Layer: ld.String()}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := builder.OpenArtifact(context.Background(), blobs, "hello", tc.a)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			switch {
			case tc.ok && (err != nil || !bytes.Equal(got, bin)):
				t.Errorf("OpenArtifact read %d bytes, %v; want the binary's %d", len(got), err, len(bin))
			case !tc.ok && (!errors.Is(err, store.ErrDigestMismatch) || len(got) >= len(bin)):
				t.Errorf("OpenArtifact read %d bytes, %v; want fewer than %d and ErrDigestMismatch", len(got), err, len(bin))
			}
		})
	}
	// A layer without the app's binary.
	a := builder.Artifact{Platform: "linux/amd64", Digest: store.DigestBytes(bin).String(), Size: int64(len(bin)), Layer: ld.String()}
	if _, err := builder.OpenArtifact(context.Background(), blobs, "other", a); !errors.Is(err, store.ErrDigestMismatch) {
		t.Errorf("OpenArtifact(app other) = %v, want ErrDigestMismatch", err)
	}
}
