package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/openapi/openapitest"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// watchedBody is a request body that records whether it was read.
type watchedBody struct {
	r    io.Reader
	read atomic.Bool
}

func (w *watchedBody) Read(p []byte) (int, error) {
	w.read.Store(true)
	return w.r.Read(p)
}

// TestDigestFirst sends sources with their digest in Repr-Digest and Expect:
// 100-continue, as the CLI does: a source with a live identical build, or one whose
// Idempotency-Key has an answer, is answered without its body being sent; any other is
// read, and refused with nothing kept when it does not hash to the digest named.
func TestDigestFirst(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	if r := e.do("PUT", "/v1/apps/hello", nil, `{"platforms":["linux/amd64"]}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	// The client waits for the server's answer or its 100 Continue, however long that
	// takes on a loaded machine, before it sends a body.
	client := openapitest.New(t).ClientVia(t, &http.Transport{ExpectContinueTimeout: time.Hour})
	post := func(src []byte, digest, key string) (response, bool) {
		t.Helper()
		body := &watchedBody{r: bytes.NewReader(src)}
		req, err := http.NewRequest("POST", e.url+"/v1/apps/hello/builds?version=1.0.0", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(src))
		req.Header.Set("Content-Type", "application/gzip")
		req.Header.Set("Expect", "100-continue")
		if digest != "" {
			req.Header.Set("Repr-Digest", digest)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST build: %v", err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return response{resp.StatusCode, resp.Header, data}, body.read.Load()
	}
	field := func(src []byte) string {
		sum := sha256.Sum256(src)
		return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	}
	builds := func() int {
		t.Helper()
		var l openapi.BuildList
		r := e.do("GET", "/v1/apps/hello/builds?limit=100", nil, "")
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatalf("GET builds = %d %s", r.status, r.body)
		}
		return len(l.Items)
	}

	src := buildertest.Module(t, "hello", map[string]string{"main.go": buildertest.HelloMain})
	first, read := post(src, field(src), "")
	if first.status != http.StatusAccepted || !read {
		t.Fatalf("first POST with its digest = %d (body read %t) %s, want 202 and the body read", first.status, read, first.body)
	}
	b := first.build(t)

	// The same source, the digest first: answered from the queued build, no body sent.
	again, read := post(src, "sha-512=:AAAA:, "+field(src), "")
	if got := again.build(t); again.status != http.StatusOK || !got.Deduplicated || got.Id != b.Id || read {
		t.Errorf("POST of the same source, digest first = %d (body read %t) %s; want 200, build %s deduplicated, no body", again.status, read, again.body, b.Id)
	}
	if loc := again.header.Get("Location"); !strings.HasSuffix(loc, "/builds/"+b.Id) {
		t.Errorf("Location = %q", loc)
	}

	// An Idempotency-Key's answer: replayed without the body; a reused key with another
	// digest is refused without it too.
	keyed, _ := post(src, field(src), "key-1")
	replay, read := post(src, field(src), "key-1")
	if replay.status != keyed.status || string(replay.body) != string(keyed.body) || read {
		t.Errorf("replay of key-1 = %d (body read %t) %s, want %d %s and no body", replay.status, read, replay.body, keyed.status, keyed.body)
	}
	other := buildertest.Module(t, "hello", map[string]string{"main.go": buildertest.HelloMain + "\n// another\n"})
	if r, read := post(other, field(other), "key-1"); r.status != http.StatusUnprocessableEntity || read ||
		r.problem(t).Type != openapi.ProblemIdempotencyKeyReused {
		t.Errorf("key-1 with another digest = %d (body read %t) %s, want 422 idempotency-key-reused, no body", r.status, read, r.body)
	}

	// A body that does not hash to the digest named: refused, nothing kept.
	n := builds()
	r, read := post(other, field(src)[:9]+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:", "")
	if !read || r.status != http.StatusBadRequest || r.problem(t).Type != openapi.ProblemDigestMismatch {
		t.Errorf("POST with the wrong digest = %d (body read %t) %s, want 400 digest-mismatch", r.status, read, r.body)
	}
	sum := sha256.Sum256(other)
	if _, err := e.blobs.Stat(t.Context(), store.SourceKey(store.DigestBytes(other))); err == nil || builds() != n {
		t.Errorf("a refused body left its source (%x) or a build behind", sum[:4])
	}
	// The right digest of the same body builds.
	if r, read := post(other, field(other), ""); r.status != http.StatusAccepted || !read {
		t.Errorf("POST with its digest = %d (body read %t) %s, want 202", r.status, read, r.body)
	}

	for _, bad := range []string{"sha-256=AAAA", "sha-256=:AAAA:", "sha-256=:" + strings.Repeat("A", 44) + ":"} {
		if r, read := post(src, bad, ""); r.status != http.StatusBadRequest || r.problem(t).Type != openapi.ProblemInvalidParameter || read {
			t.Errorf("Repr-Digest %q = %d (body read %t) %s, want 400 invalid-parameter before the body", bad, r.status, read, r.body)
		}
	}
}
