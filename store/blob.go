package store

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"
)

// Blobs is a store of immutable objects named by key. Content streams in and out; no
// backend holds a whole object in memory.
type Blobs interface {
	// Put stores the content of r under key. When want is not empty, the content must
	// hash to it, or Put returns ErrDigestMismatch and stores nothing. Put never
	// replaces an object: when key is taken it returns ErrExists. The returned Info
	// carries the content's digest.
	Put(ctx context.Context, key string, r io.Reader, want Digest) (Info, error)
	// Get opens the object under key from byte offset for length bytes (length < 0:
	// to the end). The caller closes the reader.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Info, error)
	// Stat describes the object under key.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the object under key; removing a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List yields every object whose key starts with prefix, in byte order of keys.
	List(ctx context.Context, prefix string) iter.Seq2[Info, error]
}

// Pinger is implemented by stores that can check that their backend is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Info describes a stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
	// Digest is the sha256 of the content. Put sets it; Stat, Get and List leave it
	// empty (content-addressed keys carry it in their name, see BlobKey).
	Digest Digest
}

// ValidateKey checks that key is a relative, slash-separated path whose segments are
// made of letters, digits, '.', '_', '-' and '+', do not start with '.', and are at
// most 255 bytes. Every backend refuses other keys with ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if !validSegment(seg) {
			return fmt.Errorf("%w: %q (segment %q)", ErrInvalidKey, key, seg)
		}
	}
	return nil
}

// validatePrefix checks a List prefix: empty, or a key, or a key followed by '/'.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	trimmed := strings.TrimSuffix(prefix, "/")
	if err := ValidateKey(trimmed); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	return nil
}

func validSegment(seg string) bool {
	if seg == "" || len(seg) > 255 || seg[0] == '.' {
		return false
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-', c == '+':
		default:
			return false
		}
	}
	return true
}

// Presigner is a blob store that can hand out a URL reading a key directly, valid for
// a while (S3 with WithPresign). ok is false when the store does not do it.
type Presigner interface {
	PresignGet(ctx context.Context, key string) (url string, ok bool, err error)
}

var _ Presigner = (*S3)(nil)

// ContextReader returns r with reads that fail once ctx is done, so a long copy from it
// stops when its caller goes away. It has no WriteTo, so io.Copy cannot go around it.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

// ctxReader is ContextReader's reader.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
