package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/store"
)

// BlobsOptions tunes the conformance suite for a backend.
type BlobsOptions struct {
	// LargeSize is the size of the streamed put whose heap growth is measured.
	LargeSize int64
	// MaxHeapGrowth is the most the heap may grow while LargeSize bytes stream in and out.
	MaxHeapGrowth uint64
	// Pending, when set, lists unfinished partial uploads the backend left behind; after a
	// refused put it must return none.
	Pending func(ctx context.Context) ([]string, error)
	// Tamper replaces the bytes stored under key in s (a store newStore returned) with
	// content, behind the store's back, as a disk fault or an intruder would. Required.
	Tamper func(t *testing.T, s store.Blobs, key string, content []byte)
}

// RunBlobs runs the conformance suite every Blobs backend must pass, one subtest per
// behaviour. newStore returns an empty store of the backend under test.
func RunBlobs(t *testing.T, newStore func(t *testing.T) store.Blobs, opts BlobsOptions) {
	if opts.LargeSize == 0 {
		opts.LargeSize = 200 << 20
	}
	if opts.MaxHeapGrowth == 0 {
		opts.MaxHeapGrowth = 32 << 20
	}
	b := blobSuite{newStore: newStore, opts: opts}
	for _, tc := range []struct {
		name string
		test func(t *testing.T)
	}{
		{"RoundTrip", b.testRoundTrip},
		{"PutWithoutDigest", b.testPutWithoutDigest},
		{"Ranges", b.testRanges},
		{"DigestMismatchStoresNothing", b.testDigestMismatch},
		{"ImmutablePut", b.testImmutable},
		{"ConcurrentPutsOneWins", b.testConcurrentPuts},
		{"NotFound", b.testNotFound},
		{"Delete", b.testDelete},
		{"List", b.testList},
		{"InvalidKeys", b.testInvalidKeys},
		{"CanceledPutStoresNothing", b.testCanceledPut},
		{"VerifiedReads", b.testVerifiedReads},
		{"LargeStreamedPutBoundedHeap", b.testLargePutBoundedHeap},
	} {
		t.Run(tc.name, tc.test)
	}
}

// blobSuite is the conformance suite for one backend: each test method checks one
// behaviour on a store of its own.
type blobSuite struct {
	newStore func(t *testing.T) store.Blobs
	opts     BlobsOptions
}

// testRoundTrip: what is put is stat'ed and read back whole, at every size.
func (b blobSuite) testRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := b.newStore(t)
	for _, size := range []int{0, 1, 4096, 9 << 20} { // 9 MiB takes the multipart path on S3
		content := pattern(int64(size))
		d := store.DigestBytes(content)
		key := store.BlobKey(d)
		info, err := s.Put(ctx, key, bytes.NewReader(content), d)
		if err != nil {
			t.Fatalf("Put(%d bytes) = %v, want nil", size, err)
		}
		if info.Size != int64(size) || info.Digest != d || info.Key != key {
			t.Errorf("Put(%d bytes) = %+v, want size %d digest %s", size, info, size, d)
		}
		st, err := s.Stat(ctx, key)
		if err != nil || st.Size != int64(size) {
			t.Errorf("Stat = %+v, %v, want size %d", st, err, size)
		}
		rc, gi, err := s.Get(ctx, key, 0, -1)
		if err != nil {
			t.Fatalf("Get = %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, content) || gi.Size != int64(size) {
			t.Errorf("Get(%d bytes) returned %d bytes (info size %d), err %v", size, len(got), gi.Size, err)
		}
	}
}

// testPutWithoutDigest: a put without an expected digest reports the digest it stored.
func (b blobSuite) testPutWithoutDigest(t *testing.T) {
	s := b.newStore(t)
	info, err := s.Put(context.Background(), "logs/app/01.log", strings.NewReader("hello\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := store.DigestBytes([]byte("hello\n")); info.Digest != want {
		t.Errorf("Put digest = %s, want %s", info.Digest, want)
	}
}

// testRanges: Get reads any range inside the object, and refuses one past its end.
func (b blobSuite) testRanges(t *testing.T) {
	ctx := context.Background()
	s := b.newStore(t)
	content := []byte("0123456789")
	if _, err := s.Put(ctx, "r/x", bytes.NewReader(content), ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		off, n int64
		want   string
	}{{0, -1, "0123456789"}, {3, -1, "3456789"}, {3, 4, "3456"}, {9, 1, "9"}, {10, -1, ""}, {4, 0, ""}, {8, 100, "89"}} {
		rc, info, err := s.Get(ctx, "r/x", tc.off, tc.n)
		if err != nil {
			t.Errorf("Get(off %d, n %d) = %v", tc.off, tc.n, err)
			continue
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != tc.want || info.Size != 10 {
			t.Errorf("Get(off %d, n %d) = %q (size %d), want %q (size 10)", tc.off, tc.n, got, info.Size, tc.want)
		}
	}
	if _, _, err := s.Get(ctx, "r/x", 11, -1); err == nil {
		t.Errorf("Get(off 11) of 10 bytes = nil error, want an error")
	}
}

// testDigestMismatch: content that does not hash to the expected digest stores nothing.
func (b blobSuite) testDigestMismatch(t *testing.T) {
	ctx := context.Background()
	s := b.newStore(t)
	for _, size := range []int64{100, 9 << 20} {
		content := pattern(size)
		wrong := store.DigestBytes([]byte("something else"))
		key := store.BlobKey(wrong)
		_, err := s.Put(ctx, key, bytes.NewReader(content), wrong)
		if !errors.Is(err, store.ErrDigestMismatch) {
			t.Errorf("Put(%d bytes, wrong digest) = %v, want ErrDigestMismatch", size, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Stat after refused put = %v, want ErrNotFound", err)
		}
	}
	checkNoPending(t, b.opts)
}

// testImmutable: a second put under a key is refused and leaves the first content.
func (b blobSuite) testImmutable(t *testing.T) {
	ctx := context.Background()
	s := b.newStore(t)
	for _, size := range []int64{5, 9 << 20} {
		key := "immutable/" + string(rune('a'+size%26))
		first := pattern(size)
		if _, err := s.Put(ctx, key, bytes.NewReader(first), ""); err != nil {
			t.Fatal(err)
		}
		second := bytes.Repeat([]byte{'z'}, int(size))
		if _, err := s.Put(ctx, key, bytes.NewReader(second), ""); !errors.Is(err, store.ErrExists) {
			t.Errorf("second Put(%d bytes) = %v, want ErrExists", size, err)
		}
		rc, _, err := s.Get(ctx, key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, first) {
			t.Errorf("content after refused overwrite changed")
		}
	}
	checkNoPending(t, b.opts)
}

// testConcurrentPuts: of puts racing for one key, exactly one wins.
func (b blobSuite) testConcurrentPuts(t *testing.T) {
	s := b.newStore(t)
	const writers = 8
	var wg sync.WaitGroup
	var ok, exists atomic.Int32
	for i := range writers {
		wg.Go(func() {
			_, err := s.Put(context.Background(), "race/key", strings.NewReader(strings.Repeat(string(rune('a'+i)), 1000)), "")
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrExists):
				exists.Add(1)
			default:
				t.Errorf("Put = %v, want nil or ErrExists", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || exists.Load() != writers-1 {
		t.Errorf("concurrent puts: %d succeeded, %d ErrExists, want 1 and %d", ok.Load(), exists.Load(), writers-1)
	}
}

// testNotFound: a missing key is ErrNotFound to Stat and Get, and no error to Delete.
func (b blobSuite) testNotFound(t *testing.T) {
	ctx := context.Background()
	s := b.newStore(t)
	if _, err := s.Stat(ctx, "missing/key"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat(missing) = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Get(ctx, "missing/key", 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Get(ctx, "missing/key", 5, 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(missing, range) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "missing/key"); err != nil {
		t.Errorf("Delete(missing) = %v, want nil", err)
	}
}

// testDelete: a deleted key is gone, and may be put again.
func (b blobSuite) testDelete(t *testing.T) {
	ctx := context.Background()
	s := b.newStore(t)
	if _, err := s.Put(ctx, "d/k", strings.NewReader("x"), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "d/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "d/k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat after Delete = %v, want ErrNotFound", err)
	}
	if _, err := s.Put(ctx, "d/k", strings.NewReader("y"), ""); err != nil {
		t.Errorf("Put after Delete = %v, want nil", err)
	}
}

// testList: List yields the keys under a prefix in key order, with their sizes, and may
// be stopped early.
func (b blobSuite) testList(t *testing.T) {
	ctx := context.Background()
	s := b.newStore(t)
	keys := []string{"a/b", "a-c", "a/c/d", "b", "ab", "a/c/e"}
	for _, k := range keys {
		if _, err := s.Put(ctx, k, strings.NewReader(k), ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a-c", "a/b", "a/c/d", "a/c/e", "ab", "b"}},
		{"a", []string{"a-c", "a/b", "a/c/d", "a/c/e", "ab"}},
		{"a/", []string{"a/b", "a/c/d", "a/c/e"}},
		{"a/c", []string{"a/c/d", "a/c/e"}},
		{"a/c/d", []string{"a/c/d"}},
		{"zz", nil},
	} {
		var got []string
		for info, err := range s.List(ctx, tc.prefix) {
			if err != nil {
				t.Fatalf("List(%q) = %v", tc.prefix, err)
			}
			if info.Size != int64(len(info.Key)) {
				t.Errorf("List(%q): %s has size %d, want %d", tc.prefix, info.Key, info.Size, len(info.Key))
			}
			got = append(got, info.Key)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
	// Stopping early is allowed.
	for range s.List(ctx, "") {
		break
	}
}

// testInvalidKeys: keys that are not relative paths of safe segments are refused.
func (b blobSuite) testInvalidKeys(t *testing.T) {
	ctx := context.Background()
	s := b.newStore(t)
	for _, key := range []string{"", "/abs", "a/../b", "..", "a//b", "a/", ".hidden", "a/.tmp/x", "sp ace", "a\\b", "a\x00b"} {
		if _, err := s.Put(ctx, key, strings.NewReader("x"), ""); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
}

// testCanceledPut: a put whose context is canceled midway stores nothing.
func (b blobSuite) testCanceledPut(t *testing.T) {
	ctx := context.Background()
	s := b.newStore(t)
	cctx, cancel := context.WithCancel(ctx)
	r := &cancelAfter{r: &patternReader{n: 20 << 20}, after: 10 << 20, cancel: cancel}
	if _, err := s.Put(cctx, "canceled/x", r, ""); err == nil {
		t.Fatal("Put with a context canceled midway = nil, want an error")
	}
	if _, err := s.Stat(ctx, "canceled/x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat after canceled put = %v, want ErrNotFound", err)
	}
	checkNoPending(t, b.opts)
}

// tamperCase is a blob that is stored intact, then changed behind the store's back.
type tamperCase struct {
	name   string
	size   int64
	key    func(store.Digest) string
	tamper func([]byte) []byte
}

// testVerifiedReads: store.Verified over the backend serves intact blobs, never the
// whole of a tampered one, reads keys that name no digest as they are, and keeps the
// backend's optional interfaces.
func (b blobSuite) testVerifiedReads(t *testing.T) {
	if b.opts.Tamper == nil {
		t.Fatal("BlobsOptions.Tamper is not set: every backend must show that tampered blobs are refused")
	}
	raw := b.newStore(t)
	s := store.Verified(raw)
	// One chunk and several; a tampered copy of the same size and a longer one.
	for _, tc := range []tamperCase{
		{"small blob, last byte flipped", 10, store.BlobKey, flipLast},
		{"large blob, last byte flipped", 600 << 10, store.BlobKey, flipLast},
		{"large blob, first byte flipped", 600<<10 + 1, store.BlobKey, flipFirst},
		{"large source, longer", 600<<10 + 2, store.SourceKey, func(c []byte) []byte { return append(c, "#!"...) }},
	} {
		t.Run(tc.name, func(t *testing.T) { b.checkTampered(t, raw, s, tc) })
	}
	b.checkUnverifiedKeys(t, raw, s)
	checkVerifiedPuts(t, s)
	checkVerifiedInterfaces(t, raw, s)
}

// checkTampered: s serves the intact blob of tc, and once it is tampered with in raw,
// refuses it with ErrDigestMismatch, holding back at least its last chunk.
func (b blobSuite) checkTampered(t *testing.T, raw, s store.Blobs, tc tamperCase) {
	ctx := context.Background()
	content := pattern(tc.size)
	d := store.DigestBytes(content)
	key := tc.key(d)
	if _, err := s.Put(ctx, key, bytes.NewReader(content), ""); err != nil {
		t.Fatal(err)
	}
	if got, err := readRange(ctx, s, key, 0, -1); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("Get(intact %s) = %d bytes, %v; want the %d bytes stored", key, len(got), err, len(content))
	}
	if got, err := readRange(ctx, s, key, 3, 4); err != nil || !bytes.Equal(got, content[3:7]) {
		t.Fatalf("Get(intact %s, off 3, n 4) = %q, %v; want %q", key, got, err, content[3:7])
	}

	tampered := tc.tamper(bytes.Clone(content))
	b.opts.Tamper(t, raw, key, tampered)
	// The whole object, asked for as such or by its length, copied (WriteTo) or read.
	for _, whole := range []struct {
		length int64
		read   func(context.Context, store.Blobs, string, int64, int64) ([]byte, error)
	}{{-1, readRange}, {tc.size, readRange}, {-1, readPlain}, {tc.size, readPlain}} {
		got, err := whole.read(ctx, s, key, 0, whole.length)
		if !errors.Is(err, store.ErrDigestMismatch) {
			t.Errorf("Get(tampered %s, n %d) = %d bytes, %v; want ErrDigestMismatch", key, whole.length, len(got), err)
		}
		if len(got) >= len(tampered) {
			t.Errorf("Get(tampered %s, n %d) yielded %d bytes, the whole tampered object; want its last chunk held back", key, whole.length, len(got))
		}
	}
	for _, r := range [][2]int64{{3, 4}, {0, 1}, {tc.size - 1, -1}} {
		got, err := readRange(ctx, s, key, r[0], r[1])
		if !errors.Is(err, store.ErrDigestMismatch) || len(got) > 0 {
			t.Errorf("Get(tampered %s, off %d, n %d) = %q, %v; want no bytes and ErrDigestMismatch", key, r[0], r[1], got, err)
		}
	}
}

// checkUnverifiedKeys: keys that name no digest are read as they are.
func (b blobSuite) checkUnverifiedKeys(t *testing.T, raw, s store.Blobs) {
	ctx := context.Background()
	if _, err := s.Put(ctx, "logs/app/01.log", strings.NewReader("hello\n"), ""); err != nil {
		t.Fatal(err)
	}
	b.opts.Tamper(t, raw, "logs/app/01.log", []byte("changed\n"))
	if got, err := readRange(ctx, s, "logs/app/01.log", 0, -1); err != nil || string(got) != "changed\n" {
		t.Errorf("Get(log changed out of band) = %q, %v; want its bytes as they are", got, err)
	}
}

// checkVerifiedPuts: a content-addressed key takes only content with its digest.
func checkVerifiedPuts(t *testing.T, s store.Blobs) {
	ctx := context.Background()
	d := store.DigestBytes([]byte("named"))
	if _, err := s.Put(ctx, store.BlobKey(d), strings.NewReader("other"), ""); !errors.Is(err, store.ErrDigestMismatch) {
		t.Errorf("Put(other content under %s) = %v, want ErrDigestMismatch", store.BlobKey(d), err)
	}
	if _, err := s.Stat(ctx, store.BlobKey(d)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Stat after refused put = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Get(ctx, "blobs/sha256/not-a-digest", 0, -1); !errors.Is(err, store.ErrInvalidKey) {
		t.Errorf("Get(blobs/sha256/not-a-digest) = %v, want ErrInvalidKey", err)
	}
}

// checkVerifiedInterfaces: the optional interfaces of the backend stay reachable.
func checkVerifiedInterfaces(t *testing.T, raw, s store.Blobs) {
	if _, ok := raw.(store.Pinger); ok {
		if _, ok := s.(store.Pinger); !ok {
			t.Errorf("Verified(%T) is no Pinger", raw)
		}
	}
	if _, ok := raw.(store.Presigner); ok {
		if _, ok := s.(store.Presigner); !ok {
			t.Errorf("Verified(%T) is no Presigner", raw)
		}
	}
}

// testLargePutBoundedHeap: a large put and get stream, so the heap stays bounded.
func (b blobSuite) testLargePutBoundedHeap(t *testing.T) {
	ctx := context.Background()
	s := b.newStore(t)
	size := b.opts.LargeSize
	want := patternDigest(size)
	key := store.BlobKey(want)
	peak := watchHeap()
	info, err := s.Put(ctx, key, &patternReader{n: size}, want)
	if err != nil {
		t.Fatalf("Put(%d MiB) = %v", size>>20, err)
	}
	rc, _, err := s.Get(ctx, key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, rc)
	rc.Close()
	growth := peak()
	if err != nil || n != size || store.DigestOf(h) != want || info.Size != size {
		t.Fatalf("round trip of %d bytes: read %d, err %v, digest match %v", size, n, err, store.DigestOf(h) == want)
	}
	t.Logf("heap growth while streaming %d MiB in and out: %.1f MiB", size>>20, float64(growth)/(1<<20))
	if growth > b.opts.MaxHeapGrowth {
		t.Errorf("heap grew by %d MiB while streaming %d MiB, want under %d MiB",
			growth>>20, size>>20, b.opts.MaxHeapGrowth>>20)
	}
}

// readRange reads the object under key from offset for length bytes, returning what it
// read before any error.
func readRange(ctx context.Context, s store.Blobs, key string, offset, length int64) ([]byte, error) {
	rc, _, err := s.Get(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, rc) // as a handler streams to its client
	return buf.Bytes(), err
}

// readPlain is readRange through Read alone, as a consumer without io.Copy reads.
func readPlain(ctx context.Context, s store.Blobs, key string, offset, length int64) ([]byte, error) {
	rc, _, err := s.Get(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(struct{ io.Reader }{rc})
}

func flipLast(b []byte) []byte  { b[len(b)-1] ^= 0xff; return b }
func flipFirst(b []byte) []byte { b[0] ^= 0xff; return b }

func checkNoPending(t *testing.T, opts BlobsOptions) {
	t.Helper()
	if opts.Pending == nil {
		return
	}
	keys, err := opts.Pending(context.Background())
	if err != nil {
		t.Fatalf("listing pending uploads: %v", err)
	}
	if len(keys) != 0 {
		t.Errorf("pending partial uploads left behind: %v", keys)
	}
}

// watchHeap samples the live heap until the returned function is called, which returns
// the peak growth over the heap at the start.
func watchHeap() func() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if v := read(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		if p := peak.Load(); p > base {
			return p - base
		}
		return 0
	}
}

// pattern returns n bytes of the test pattern.
func pattern(n int64) []byte {
	b, _ := io.ReadAll(&patternReader{n: n})
	return b
}

func patternDigest(n int64) store.Digest {
	h := sha256.New()
	_, _ = io.Copy(h, &patternReader{n: n})
	return store.DigestOf(h)
}

// patternReader yields n bytes of a fixed, non-repeating-per-block pattern without
// holding them in memory.
type patternReader struct {
	n, off int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	for i := range b {
		x := p.off + int64(i)
		b[i] = byte(x ^ x>>8 ^ x>>16 ^ x>>24)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// cancelAfter cancels a context once `after` bytes have been read.
type cancelAfter struct {
	r      io.Reader
	after  int64
	read   int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.read += int64(n)
	if c.read >= c.after {
		c.cancel()
	}
	return n, err
}
