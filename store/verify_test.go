package store_test

import (
	"context"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// BenchmarkVerifiedGet reads a 50 MiB blob whole, as the registry streams a layer, from
// each backend as it is and through Verified; the ratio of the two is the cost of the
// check (a SHA-256 of every byte and one more copy).
func BenchmarkVerifiedGet(b *testing.B) {
	const size = 50 << 20
	backends := []struct {
		name string
		open func(b *testing.B) store.Blobs
	}{
		{"fs", func(b *testing.B) store.Blobs {
			s, err := store.NewFS(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
		{"s3", func(b *testing.B) store.Blobs {
			client, cfg := storetest.S3(b)
			s, err := store.NewS3(client, cfg.Bucket)
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			raw := be.open(b)
			ctx := context.Background()
			r := &countingReader{n: size}
			d := r.digest()
			if _, err := raw.Put(ctx, store.BlobKey(d), &countingReader{n: size}, d); err != nil {
				b.Fatal(err)
			}
			for _, s := range []struct {
				name  string
				blobs store.Blobs
			}{{"plain", raw}, {"verified", store.Verified(raw)}} {
				b.Run(s.name, func(b *testing.B) {
					b.SetBytes(size)
					for b.Loop() {
						rc, _, err := s.blobs.Get(ctx, store.BlobKey(d), 0, -1)
						if err != nil {
							b.Fatal(err)
						}
						n, err := io.Copy(io.Discard, rc)
						rc.Close()
						if err != nil || n != size {
							b.Fatalf("read %d bytes, %v", n, err)
						}
					}
				})
			}
		})
	}
}

// countingReader yields n bytes of a simple pattern.
type countingReader struct{ n, off int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	if c.off >= c.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), c.n-c.off)]
	for i := range p {
		p[i] = byte((c.off + int64(i)) * 7)
	}
	c.off += int64(len(p))
	return len(p), nil
}

func (c *countingReader) digest() store.Digest {
	h := sha256.New()
	_, _ = io.Copy(h, &countingReader{n: c.n})
	return store.DigestOf(h)
}
