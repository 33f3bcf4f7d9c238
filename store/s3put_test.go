package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// TestS3PutEveryReader stores content of every size class (within the first read, within
// one part, several parts) from every kind of reader Put tells apart — a file and a
// bytes.Reader, read from where they are, each already partly read; and a plain reader,
// buffered — and reads each back. A wrong digest stores nothing and leaves no upload.
func TestS3PutEveryReader(t *testing.T) {
	ctx := context.Background()
	client, cfg := storetest.S3(t)
	s, err := store.NewS3(client, cfg.Bucket, store.WithPartSize(store.MinPartSize))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const skip = 1000 // bytes each reader has had read before Put
	for _, size := range []int{10, 64 << 10, 64<<10 + 1, store.MinPartSize, store.MinPartSize + 1, 2*store.MinPartSize + 12345} {
		content := make([]byte, skip+size)
		_, _ = rand.Read(content)
		want := store.DigestBytes(content[skip:])
		path := filepath.Join(dir, "content")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		readers := map[string]func() io.Reader{
			"file": func() io.Reader {
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				_, _ = f.Read(make([]byte, skip))
				return f
			},
			"bytes.Reader": func() io.Reader {
				r := bytes.NewReader(content)
				_, _ = r.Read(make([]byte, skip))
				return r
			},
			"plain": func() io.Reader { return struct{ io.Reader }{bytes.NewReader(content[skip:])} },
		}
		for name, mk := range readers {
			key := "test/" + name + "/" + want.Hex()
			r := mk()
			info, err := s.Put(ctx, key, r, want)
			if err != nil {
				t.Fatalf("%s of %d bytes: Put = %v", name, size, err)
			}
			if info.Size != int64(size) || info.Digest != want {
				t.Errorf("%s of %d bytes: Put = %+v, want size %d, %s", name, size, info, size, want)
			}
			if n, _ := r.Read(make([]byte, 1)); n != 0 {
				t.Errorf("%s of %d bytes: the reader has more after Put", name, size)
			}
			rc, _, err := s.Get(ctx, key, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, content[skip:]) {
				t.Errorf("%s of %d bytes: read back %d bytes that differ", name, size, len(got))
			}

			// The same content under a digest it does not have: nothing stored.
			bad := "test/bad/" + name + "/" + want.Hex()
			if _, err := s.Put(ctx, bad, mk(), store.DigestBytes([]byte("other"))); !errors.Is(err, store.ErrDigestMismatch) {
				t.Errorf("%s of %d bytes under a wrong digest: Put = %v, want ErrDigestMismatch", name, size, err)
			}
			if _, err := s.Stat(ctx, bad); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s of %d bytes under a wrong digest: Stat = %v, want ErrNotFound", name, size, err)
			}
		}
	}
	if pending, err := storetest.PendingUploads(ctx, client, cfg.Bucket); err != nil || len(pending) > 0 {
		t.Errorf("uploads left behind: %v %v", pending, err)
	}
}
