package gocache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// stores runs f against each blob store: the filesystem's, and S3's (versitygw).
func stores(t *testing.T, f func(t *testing.T, newBlobs func(t *testing.T) store.Blobs)) {
	t.Run("fs", func(t *testing.T) {
		f(t, func(t *testing.T) store.Blobs {
			s, err := store.NewFS(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
	t.Run("s3", func(t *testing.T) {
		f(t, func(t *testing.T) store.Blobs {
			client, cfg := storetest.S3(t)
			s, err := store.NewS3(client, cfg.Bucket)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

// newServer starts a server over blobs with its local tier in a new directory.
func newServer(t *testing.T, blobs store.Blobs, opts ...Option) *Server {
	t.Helper()
	s, err := New(t.TempDir(), blobs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// client speaks the go command's side of the protocol straight to a server's socket.
type client struct {
	t    *testing.T
	c    net.Conn
	dec  *json.Decoder
	mu   sync.Mutex
	next int64
	wait map[int64]chan response
}

func dial(t *testing.T, s *Server, ns string) *client {
	t.Helper()
	c, err := net.Dial("unix", s.Socket())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmtHello, _ := json.Marshal(hello{Namespace: ns})
	c.Write(append(fmtHello, '\n'))
	cl := &client{t: t, c: c, dec: json.NewDecoder(bufio.NewReader(c)), wait: map[int64]chan response{}}
	var caps response
	if err := cl.dec.Decode(&caps); err != nil || len(caps.KnownCommands) != 3 {
		t.Fatalf("handshake = %+v, %v; want get, put, close", caps, err)
	}
	go func() {
		for {
			var r response
			if err := cl.dec.Decode(&r); err != nil {
				return
			}
			cl.mu.Lock()
			ch := cl.wait[r.ID]
			cl.mu.Unlock()
			ch <- r
		}
	}()
	return cl
}

func (cl *client) send(req request, body []byte) response {
	cl.mu.Lock()
	cl.next++
	req.ID = cl.next
	ch := make(chan response, 1)
	cl.wait[req.ID] = ch
	var buf bytes.Buffer
	json.NewEncoder(&buf).Encode(req)
	if len(body) > 0 {
		buf.WriteString(`"` + base64.StdEncoding.EncodeToString(body) + "\"\n")
	}
	_, err := cl.c.Write(buf.Bytes())
	cl.mu.Unlock()
	if err != nil {
		cl.t.Fatal(err)
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(time.Minute):
		cl.t.Fatalf("no answer to %+v", req)
		return response{}
	}
}

func actionID(name string) []byte { s := sha256.Sum256([]byte("action " + name)); return s[:] }

func (cl *client) put(name string, body []byte) response {
	cl.t.Helper()
	out := sha256.Sum256(body)
	r := cl.send(request{Command: "put", ActionID: actionID(name), OutputID: out[:], BodySize: int64(len(body))}, body)
	if r.Err != "" || r.DiskPath == "" {
		cl.t.Fatalf("put %s = %+v", name, r)
	}
	return r
}

func (cl *client) get(name string) response {
	cl.t.Helper()
	r := cl.send(request{Command: "get", ActionID: actionID(name)}, nil)
	if r.Err != "" {
		cl.t.Fatalf("get %s = %+v", name, r)
	}
	if !r.Miss {
		b, err := os.ReadFile(r.DiskPath)
		if err != nil || sha256.Sum256(b) != [32]byte(r.OutputID) {
			cl.t.Fatalf("get %s: DiskPath %s does not hold the output (%v)", name, r.DiskPath, err)
		}
	}
	return r
}

func flush(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.Stats().UploadErrors.Load(); n > 0 {
		t.Fatalf("%d uploads failed", n)
	}
}

func TestPutGetAcrossWorkers(t *testing.T) {
	stores(t, func(t *testing.T, newBlobs func(t *testing.T) store.Blobs) {
		blobs := newBlobs(t)
		a := newServer(t, blobs)
		ca := dial(t, a, SharedNamespace)
		if r := ca.get("x"); !r.Miss {
			t.Fatalf("get of an empty cache = %+v, want a miss", r)
		}
		body := bytes.Repeat([]byte("output of x "), 1000)
		ca.put("x", body)
		if r := ca.get("x"); r.Miss || r.Size != int64(len(body)) {
			t.Fatalf("get after put = %+v, want a hit of %d bytes", r, len(body))
		}
		flush(t, a)
		b := newServer(t, blobs)
		cb := dial(t, b, SharedNamespace)
		if r := cb.get("x"); r.Miss {
			t.Fatal("a fresh worker missed what another put")
		}
		if r := cb.get("x"); r.Miss {
			t.Fatal("second get missed")
		}
		st := b.Stats()
		if st.RemoteHits.Load() != 1 || st.LocalHits.Load() != 1 || st.BytesFetched.Load() != int64(len(body)) {
			t.Errorf("fresh worker: remote hits %d, local hits %d, bytes fetched %d; want 1, 1, %d",
				st.RemoteHits.Load(), st.LocalHits.Load(), st.BytesFetched.Load(), len(body))
		}
		if a.Stats().BytesUploaded.Load() != int64(len(body)) || a.Stats().Uploads.Load() != 1 {
			t.Errorf("first worker uploaded %d bytes in %d entries, want %d in 1", a.Stats().BytesUploaded.Load(), a.Stats().Uploads.Load(), len(body))
		}
		if r := cb.send(request{Command: "close"}, nil); r.Err != "" {
			t.Fatalf("close = %+v", r)
		}
	})
}

func TestPutRefusesWrongOutputID(t *testing.T) {
	s := newServer(t, nil)
	c := dial(t, s, SharedNamespace)
	body := []byte("bytes")
	wrong := sha256.Sum256([]byte("other bytes"))
	r := c.send(request{Command: "put", ActionID: actionID("w"), OutputID: wrong[:], BodySize: int64(len(body))}, body)
	if r.Err == "" {
		t.Fatalf("put with a wrong output ID = %+v, want an error", r)
	}
	if r := c.get("w"); !r.Miss {
		t.Fatalf("get after a refused put = %+v, want a miss", r)
	}
}

func TestTamperedRemoteOutputRefused(t *testing.T) {
	stores(t, func(t *testing.T, newBlobs func(t *testing.T) store.Blobs) {
		ctx := context.Background()
		blobs := newBlobs(t)
		a := newServer(t, blobs)
		body := []byte("the true output")
		dial(t, a, SharedNamespace).put("t", body)
		flush(t, a)
		sum := sha256.Sum256(body)
		okey := store.GoCacheOutputKey(SharedNamespace, hexOf(sum[:]))
		tamper(t, blobs, okey, []byte("the false output"))

		b := newServer(t, blobs)
		if r := dial(t, b, SharedNamespace).get("t"); !r.Miss {
			t.Fatalf("get of a tampered entry = %+v, want a miss", r)
		}
		if n := b.Stats().RemoteRefused.Load(); n != 1 {
			t.Errorf("RemoteRefused = %d, want 1", n)
		}
		// The corrupt objects are gone, so the next put stores the entry again.
		if _, err := blobs.Stat(ctx, okey); err == nil {
			t.Errorf("the tampered output is still in the store")
		}
		dial(t, b, SharedNamespace).put("t", body)
		flush(t, b)
		c := newServer(t, blobs)
		if r := dial(t, c, SharedNamespace).get("t"); r.Miss {
			t.Fatal("the entry put again after the tampering is a miss")
		}
	})
}

func hexOf(b []byte) string { h, _ := hashHex(b); return h }

// tamper replaces the object under key with content.
func tamper(t *testing.T, blobs store.Blobs, key string, content []byte) {
	t.Helper()
	ctx := context.Background()
	if err := blobs.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.Put(ctx, key, bytes.NewReader(content), ""); err != nil {
		t.Fatal(err)
	}
}

// countingBlobs counts the Gets of each key, each one slowed down.
type countingBlobs struct {
	store.Blobs
	mu   sync.Mutex
	gets map[string]int
}

func (c *countingBlobs) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, store.Info, error) {
	c.mu.Lock()
	c.gets[key]++
	c.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	return c.Blobs.Get(ctx, key, off, n)
}

func TestConcurrentGetsCollapse(t *testing.T) {
	blobs, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := newServer(t, blobs)
	body := bytes.Repeat([]byte("y"), 1<<20)
	dial(t, a, SharedNamespace).put("y", body)
	flush(t, a)

	counting := &countingBlobs{Blobs: blobs, gets: map[string]int{}}
	b := newServer(t, counting)
	const n = 8
	var wg sync.WaitGroup
	var hits atomic.Int64
	for range n {
		c := dial(t, b, SharedNamespace)
		wg.Go(func() {
			if r := c.get("y"); !r.Miss {
				hits.Add(1)
			}
		})
	}
	wg.Wait()
	if hits.Load() != n {
		t.Fatalf("%d of %d concurrent gets hit", hits.Load(), n)
	}
	for key, got := range counting.gets {
		if got != 1 {
			t.Errorf("%d concurrent gets fetched %s %d times, want once", n, key, got)
		}
	}
	if len(counting.gets) != 2 {
		t.Errorf("fetched %v, want the entry and its output", counting.gets)
	}
	if r := b.Stats().RemoteHits.Load(); r != n {
		t.Errorf("RemoteHits = %d, want %d", r, n)
	}
}

func TestPerAppNamespace(t *testing.T) {
	stores(t, func(t *testing.T, newBlobs func(t *testing.T) store.Blobs) {
		blobs := newBlobs(t)
		a := newServer(t, blobs, WithPerApp(true))
		if ns := a.Namespace("one"); ns != "one" {
			t.Fatalf("Namespace(one) = %q with WithPerApp, want one", ns)
		}
		dial(t, a, a.Namespace("one")).put("z", []byte("one's output"))
		flush(t, a)
		if r := dial(t, a, a.Namespace("two")).get("z"); !r.Miss {
			t.Error("app two hit app one's entry in the local tier")
		}
		b := newServer(t, blobs, WithPerApp(true))
		if r := dial(t, b, b.Namespace("two")).get("z"); !r.Miss {
			t.Error("app two hit app one's entry in the blob store")
		}
		if r := dial(t, b, b.Namespace("one")).get("z"); r.Miss {
			t.Error("app one missed its own entry")
		}
		shared := newServer(t, blobs)
		if ns := shared.Namespace("one"); ns != SharedNamespace {
			t.Errorf("Namespace(one) = %q without WithPerApp, want %q", ns, SharedNamespace)
		}
		if r := dial(t, shared, SharedNamespace).get("z"); !r.Miss {
			t.Error("the shared namespace hit app one's entry")
		}
	})
}

func TestBadGreetingRefused(t *testing.T) {
	s := newServer(t, nil)
	for _, ns := range []string{"", "../x", "A", "a/b", "-x"} {
		c, err := net.Dial("unix", s.Socket())
		if err != nil {
			t.Fatal(err)
		}
		h, _ := json.Marshal(hello{Namespace: ns})
		c.Write(append(h, '\n'))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("namespace %q: the server answered (%d bytes), want the connection closed", ns, n)
		}
		c.Close()
	}
}

func TestLocalTrimLRU(t *testing.T) {
	const max = 64 << 10
	s := newServer(t, nil, WithMaxSize(max), WithTrimGrace(0))
	c := dial(t, s, SharedNamespace)
	const n = 32
	base := time.Now().Add(-time.Hour)
	for i := range n {
		body := bytes.Repeat([]byte{byte(i)}, 4<<10)
		r := c.put(string(rune('a'+i)), body)
		// The i-th output was last used i seconds after base: the first ones are the
		// least recently used.
		tm := base.Add(time.Duration(i) * time.Second)
		os.Chtimes(r.DiskPath, tm, tm)
		os.Chtimes(s.local.entryPath(SharedNamespace, hexOf(actionID(string(rune('a'+i))))), tm, tm)
	}
	if _, _, err := s.local.trim(); err != nil {
		t.Fatal(err)
	}
	if got := dirSize(t, s.local.dir); got > max {
		t.Errorf("local tier is %d bytes after the trim, over its limit %d", got, max)
	}
	if s.Stats().Evicted.Load() == 0 {
		t.Error("Evicted = 0 after a trim of a tier over its size")
	}
	if r := c.get(string(rune('a'))); !r.Miss {
		t.Error("the least recently used entry survived the trim")
	}
	if r := c.get(string(rune('a' + n - 1))); r.Miss {
		t.Error("the most recently used entry was trimmed")
	}
}

func TestTrimGraceKeepsRecentFiles(t *testing.T) {
	s := newServer(t, nil, WithMaxSize(1<<10), WithTrimGrace(time.Hour))
	c := dial(t, s, SharedNamespace)
	c.put("recent", bytes.Repeat([]byte("r"), 8<<10))
	if _, _, err := s.local.trim(); err != nil {
		t.Fatal(err)
	}
	if r := c.get("recent"); r.Miss {
		t.Error("a file used within the grace period was trimmed")
	}
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func TestPrune(t *testing.T) {
	stores(t, func(t *testing.T, newBlobs func(t *testing.T) store.Blobs) {
		ctx := context.Background()
		blobs := newBlobs(t)
		other := "logs/app/01.log"
		if _, err := blobs.Put(ctx, other, bytes.NewReader([]byte("not the cache's")), ""); err != nil {
			t.Fatal(err)
		}
		a := newServer(t, blobs)
		dial(t, a, SharedNamespace).put("old", []byte("old output"))
		flush(t, a)
		time.Sleep(1100 * time.Millisecond) // S3 keeps times to the second
		cutoff := time.Now()
		time.Sleep(1100 * time.Millisecond)
		dial(t, a, SharedNamespace).put("new", []byte("new output"))
		flush(t, a)

		r, err := Prune(ctx, blobs, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		if r.Deleted != 2 || r.Kept != 2 || r.DeletedBytes <= int64(len("old output")) || r.KeptBytes <= int64(len("new output")) {
			t.Errorf("Prune = %+v, want 2 deleted (the old entry and output), 2 kept", r)
		}
		b := newServer(t, blobs)
		cb := dial(t, b, SharedNamespace)
		if r := cb.get("old"); !r.Miss {
			t.Error("a pruned entry hit")
		}
		if r := cb.get("new"); r.Miss {
			t.Error("an entry newer than the cutoff was pruned")
		}
		if _, err := blobs.Stat(ctx, other); err != nil {
			t.Errorf("Prune touched a key outside gocache/: %v", err)
		}
	})
}

// TestProgAnswersLocalHits runs the cache program as the go command would, over pipes: it
// answers a get the local tier holds without the server, tells the server which entry it
// used (whose time the server sets again) and how many gets it answered, and relays the
// rest.
func TestProgAnswersLocalHits(t *testing.T) {
	s := newServer(t, nil)
	body := []byte("warm output")
	put := dial(t, s, SharedNamespace).put("w", body)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(put.DiskPath, old, old)

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		args := []string{"--socket", s.Socket(), "--namespace", SharedNamespace, "--local", s.local.dir}
		done <- RunProg(context.Background(), args, inR, outW)
		outW.Close()
	}()
	dec := json.NewDecoder(outR)
	var caps response
	if err := dec.Decode(&caps); err != nil || len(caps.KnownCommands) == 0 {
		t.Fatalf("handshake through the program = %+v, %v", caps, err)
	}
	send := func(req request) response {
		t.Helper()
		b, _ := json.Marshal(req)
		inW.Write(append(b, '\n', '\n')) // the go command ends each request with an empty line
		var r response
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := send(request{ID: 1, Command: "get", ActionID: actionID("w")}); r.Miss || r.DiskPath != put.DiskPath || r.ID != 1 {
		t.Errorf("get of a local entry through the program = %+v, want a hit at %s", r, put.DiskPath)
	}
	if r := send(request{ID: 2, Command: "get", ActionID: actionID("absent")}); !r.Miss || r.ID != 2 {
		t.Errorf("get of an absent entry through the program = %+v, want a miss", r)
	}
	if r := send(request{ID: 3, Command: "close"}); r.ID != 3 || r.Err != "" {
		t.Errorf("close = %+v", r)
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Fatalf("RunProg = %v", err)
	}
	if n := s.Stats().LocalHits.Load(); n != 1 {
		t.Errorf("server's LocalHits = %d, want the program's 1", n)
	}
	if n := s.Stats().Misses.Load(); n != 1 {
		t.Errorf("server's Misses = %d, want 1", n)
	}
	if fi, err := os.Stat(put.DiskPath); err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Errorf("the output's time was not set again after the program used it: %v", fi.ModTime())
	}
}

func TestConcurrentGetsOfTamperedEntry(t *testing.T) {
	blobs, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := newServer(t, blobs)
	body := []byte("the true output")
	dial(t, a, SharedNamespace).put("c", body)
	flush(t, a)
	sum := sha256.Sum256(body)
	tamper(t, blobs, store.GoCacheOutputKey(SharedNamespace, hexOf(sum[:])), []byte("the false output"))

	b := newServer(t, &countingBlobs{Blobs: blobs, gets: map[string]int{}})
	var wg sync.WaitGroup
	for range 4 {
		c := dial(t, b, SharedNamespace)
		wg.Go(func() {
			if r := c.get("c"); !r.Miss {
				t.Error("a get of a tampered entry hit")
			}
		})
	}
	wg.Wait()
	if n := b.Stats().RemoteRefused.Load(); n != 1 {
		t.Errorf("RemoteRefused = %d after concurrent gets of one tampered entry, want 1", n)
	}
}
