package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"
	"strings"
)

// Verified returns b with every read of a content-addressed key (BlobKey, SourceKey)
// checked against the digest the key names, so bytes changed behind the store's back are
// an error wrapping ErrDigestMismatch, never content.
//
// Get of a whole object (offset 0, and a length that is negative or covers it) returns a
// reader that hashes as it goes and holds back the last chunk it has read until the next
// one arrives, so the final chunk is released only once the digest matches: a consumer
// streaming it to a client never passes on a complete tampered object. Get of a range
// first reads and hashes the whole object, then serves the range. Put under a content-addressed key needs content that hashes to the key's
// digest. Other keys (logs, releases) pass through unchanged.
//
// Whatever else b implements of Pinger and Presigner stays reachable by type assertion.
// A presigned URL is read from the backend directly, without this check.
func Verified(b Blobs) Blobs {
	if _, ok := b.(interface{ verifying() }); ok {
		return b
	}
	v := &verified{b: b}
	pinger, isPinger := b.(Pinger)
	presigner, isPresigner := b.(Presigner)
	switch {
	case isPinger && isPresigner:
		return verifiedPingPresign{v, pinger, presigner}
	case isPinger:
		return verifiedPing{v, pinger}
	case isPresigner:
		return verifiedPresign{v, presigner}
	}
	return v
}

// verified is Verified's store; the types below add the optional interfaces of the
// store it wraps.
type verified struct{ b Blobs }

type (
	verifiedPing struct {
		*verified
		Pinger
	}
	verifiedPresign struct {
		*verified
		Presigner
	}
	verifiedPingPresign struct {
		*verified
		Pinger
		Presigner
	}
)

var (
	_ Blobs     = (*verified)(nil)
	_ Pinger    = verifiedPing{}
	_ Presigner = verifiedPresign{}
	_ Pinger    = verifiedPingPresign{}
	_ Presigner = verifiedPingPresign{}
)

func (v *verified) verifying() {}

// keyDigest returns the digest a content-addressed key names. ok is false for other keys;
// err is set for a key under a content-addressed prefix that names no digest.
func keyDigest(key string) (d Digest, ok bool, err error) {
	// BlobKey("") and SourceKey("") are the prefixes, so they are spelled in one place.
	for _, prefix := range []string{BlobKey(""), SourceKey("")} {
		if hexPart, found := strings.CutPrefix(key, prefix); found {
			d, err := ParseDigest(sha256Prefix + hexPart)
			if err != nil {
				return "", true, fmt.Errorf("%w: %q is under %s but names no digest", ErrInvalidKey, key, prefix)
			}
			return d, true, nil
		}
	}
	return "", false, nil
}

// Put implements Blobs: under a content-addressed key the content must hash to the key's
// digest.
func (v *verified) Put(ctx context.Context, key string, r io.Reader, want Digest) (Info, error) {
	d, ok, err := keyDigest(key)
	if err != nil {
		return Info{}, err
	}
	if ok {
		if want != "" && want != d {
			return Info{}, fmt.Errorf("%w: %s: expected %s, but the key names %s", ErrDigestMismatch, key, want, d)
		}
		want = d
	}
	return v.b.Put(ctx, key, r, want)
}

// Get implements Blobs.
func (v *verified) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Info, error) {
	d, ok, err := keyDigest(key)
	if err != nil {
		return nil, Info{}, err
	}
	if !ok {
		return v.b.Get(ctx, key, offset, length)
	}
	whole, info, err := v.b.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, Info{}, err
	}
	if offset == 0 && (length < 0 || length >= info.Size) {
		return newVerifyReader(whole, key, d, info.Size), info, nil
	}
	h := sha256.New()
	_, err = io.Copy(h, whole)
	whole.Close()
	if err != nil {
		return nil, Info{}, fmt.Errorf("verifying %s: %w", key, err)
	}
	if got := DigestOf(h); got != d {
		return nil, Info{}, mismatch(key, got)
	}
	rc, rinfo, err := v.b.Get(ctx, key, offset, length)
	if err != nil {
		return nil, Info{}, err
	}
	if rinfo.Size != info.Size || !rinfo.ModTime.Equal(info.ModTime) {
		rc.Close()
		return nil, Info{}, fmt.Errorf("%w: %s changed while it was verified", ErrDigestMismatch, key)
	}
	return rc, rinfo, nil
}

func mismatch(key string, got Digest) error {
	return fmt.Errorf("%w: %s: content is %s", ErrDigestMismatch, key, got)
}

// Stat implements Blobs.
func (v *verified) Stat(ctx context.Context, key string) (Info, error) { return v.b.Stat(ctx, key) }

// Delete implements Blobs.
func (v *verified) Delete(ctx context.Context, key string) error { return v.b.Delete(ctx, key) }

// List implements Blobs.
func (v *verified) List(ctx context.Context, prefix string) iter.Seq2[Info, error] {
	return v.b.List(ctx, prefix)
}

// verifyChunk is the most a verifyReader reads at once, and so the most it holds back.
// A reader holds two chunks; larger chunks mean fewer, larger reads and writes when a
// layer is streamed to a client.
const verifyChunk = 256 << 10

// verifyReader hashes an object as it is read and holds back the last chunk read until
// either another arrives (so it was not the last) or the object ends with the digest
// matching. On a mismatch the held chunk is dropped and every read fails.
type verifyReader struct {
	rc   io.ReadCloser
	key  string
	want Digest
	h    hash.Hash
	bufs [2][]byte
	next int    // the buffer the next read fills: neither out's nor held's
	out  []byte // released, not yet returned
	held []byte // read and hashed, not yet released
	ok   bool   // the object ended and matched: held may go
	err  error  // sticky: io.EOF, a mismatch, or the read error
}

// NewVerifyReader returns rc, whose content is named name in errors, checked as it is
// read against want: its last chunk is held back until the content ends with the digest
// matching, and content that differs ends in an error wrapping ErrDigestMismatch, never
// in the whole of it. size, when not negative, sizes its buffers.
func NewVerifyReader(rc io.ReadCloser, name string, want Digest, size int64) io.ReadCloser {
	return newVerifyReader(rc, name, want, size)
}

func newVerifyReader(rc io.ReadCloser, key string, want Digest, size int64) *verifyReader {
	n := verifyChunk
	if size >= 0 && size < int64(n) {
		n = int(size) + 1 // small objects (manifests) take small buffers; +1 to see the end
	}
	return &verifyReader{rc: rc, key: key, want: want, h: sha256.New(),
		bufs: [2][]byte{make([]byte, n), make([]byte, n)}}
}

// Read implements io.Reader.
func (v *verifyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(v.out) == 0 {
		switch {
		case v.ok && len(v.held) > 0:
			v.out, v.held = v.held, nil
		case v.err != nil:
			return 0, v.err
		default:
			v.fill()
		}
	}
	n := copy(p, v.out)
	v.out = v.out[n:]
	return n, nil
}

// WriteTo implements io.WriterTo, so io.Copy goes through it rather than around it: it
// writes each chunk from its own buffers once it may be released, as Read does, without
// a copy into a buffer of the caller's.
func (v *verifyReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		for len(v.out) == 0 {
			switch {
			case v.ok && len(v.held) > 0:
				v.out, v.held = v.held, nil
			case errors.Is(v.err, io.EOF):
				return total, nil
			case v.err != nil:
				return total, v.err
			default:
				v.fill()
			}
		}
		n, err := w.Write(v.out)
		total += int64(n)
		v.out = v.out[n:]
		if err != nil {
			return total, err
		}
	}
}

// fill reads the next chunk; out is empty, so the buffer it used is free again.
func (v *verifyReader) fill() {
	buf := v.bufs[v.next]
	n, err := v.rc.Read(buf)
	if n > 0 {
		v.h.Write(buf[:n])
		v.out, v.held = v.held, buf[:n]
		v.next ^= 1
	}
	switch {
	case errors.Is(err, io.EOF):
		if got := DigestOf(v.h); got != v.want {
			v.held = nil
			v.err = mismatch(v.key, got)
			return
		}
		v.ok, v.err = true, io.EOF
	case err != nil:
		v.held = nil
		v.err = err
	}
}

// Close implements io.Closer.
func (v *verifyReader) Close() error {
	v.out, v.held = nil, nil
	return v.rc.Close()
}
