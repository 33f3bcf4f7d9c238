package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// startWorker runs a build worker for the env until the test ends.
func (e *env) startWorker() {
	e.t.Helper()
	tc, goEnv := buildertest.Toolchain(e.t)
	w, err := builder.NewWorker(e.builds, e.blobs, tc, builder.WorkerOptions{DataDir: e.data, Go: goEnv, Visibility: 5 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
}

func (r response) build(t *testing.T) openapi.Build {
	t.Helper()
	var b openapi.Build
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("decoding build: %v: %s", err, r.body)
	}
	return b
}

func gz([]byte) map[string]string { return map[string]string{"Content-Type": "application/gzip"} }

// waitBuild polls a build until it has ended.
func (e *env) waitBuild(app, id string) openapi.Build {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := e.do("GET", "/v1/apps/"+app+"/builds/"+id, nil, "")
		if r.status != http.StatusOK {
			e.t.Fatalf("GET build = %d %s", r.status, r.body)
		}
		b := r.build(e.t)
		switch b.Status {
		case openapi.BuildStatusSucceeded, openapi.BuildStatusFailed, openapi.BuildStatusCanceled:
			return b
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("build %s still %s", id, b.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBuildsOverHTTP(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.startWorker()
	if r := e.do("PUT", "/v1/apps/hello", nil, `{"platforms":["linux/amd64","linux/arm/v7"]}`); r.status != http.StatusCreated {
		t.Fatal(r.status)
	}
	src := buildertest.Module(t, "hello", map[string]string{"main.go": buildertest.HelloMain})
	r := e.do("POST", "/v1/apps/hello/builds?version=2.0.0&commit=deadbeef", gz(src), string(src))
	if r.status != http.StatusAccepted {
		t.Fatalf("POST build = %d %s, want 202", r.status, r.body)
	}
	b := r.build(t)
	if loc := r.header.Get("Location"); loc != "/v1/apps/hello/builds/"+b.Id || b.Status != openapi.BuildStatusQueued || b.Deduplicated {
		t.Errorf("POST build: Location %q, build %+v", loc, b)
	}
	sum := sha256.Sum256(src)
	if b.SourceDigest != "sha256:"+hex.EncodeToString(sum[:]) || b.Version != "2.0.0" || deref(b.Commit) != "deadbeef" {
		t.Errorf("build = %+v, want the upload's digest, version and commit", b)
	}

	// Follow the log over HTTP while it runs: the response ends when the build does.
	resp, err := http.Get(e.url + "/v1/apps/hello/builds/" + b.Id + "/log?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	followed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(followed, []byte("succeeded")) {
		t.Errorf("followed log = %d:\n%s", resp.StatusCode, followed)
	}
	done := e.waitBuild("hello", b.Id)
	if done.Status != openapi.BuildStatusSucceeded || len(done.Artifacts) != 2 {
		t.Fatalf("build = %s %+v", done.Status, done.Error)
	}
	whole := e.do("GET", "/v1/apps/hello/builds/"+b.Id+"/log", nil, "")
	if !bytes.Equal(whole.body, followed) {
		t.Errorf("the followed log differs from the whole log")
	}
	tail := e.do("GET", "/v1/apps/hello/builds/"+b.Id+"/log?offset=10", nil, "")
	if !bytes.Equal(tail.body, followed[10:]) {
		t.Errorf("log from offset 10 differs")
	}

	// Artifacts and checksums agree.
	sums := e.do("GET", "/v1/apps/hello/builds/"+b.Id+"/checksums", nil, "")
	if sums.status != 200 {
		t.Fatalf("checksums = %d %s", sums.status, sums.body)
	}
	for _, p := range []string{"linux/amd64", "linux/arm/v7"} {
		a := e.do("GET", "/v1/apps/hello/builds/"+b.Id+"/artifacts/"+p, nil, "")
		if a.status != 200 || a.header.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("artifact %s = %d %s", p, a.status, a.header.Get("Content-Type"))
		}
		s := sha256.Sum256(a.body)
		line := hex.EncodeToString(s[:]) + "  hello_" + strings.ReplaceAll(p, "/", "_")
		if !bytes.Contains(sums.body, []byte(line+"\n")) {
			t.Errorf("SHA256SUMS lacks %q:\n%s", line, sums.body)
		}
	}
	if r := e.do("GET", "/v1/apps/hello/builds/"+b.Id+"/artifacts/windows/amd64", nil, ""); r.status != 404 {
		t.Errorf("artifact for a platform not built = %d, want 404", r.status)
	}

	// Identical source: the same build, at once.
	again := e.do("POST", "/v1/apps/hello/builds?commit=deadbeef&version=2.0.0", gz(src), string(src))
	if again.status != http.StatusOK || again.build(t).Id != b.Id || !again.build(t).Deduplicated {
		t.Errorf("resubmit = %d %s, want 200 with the same build, deduplicated", again.status, again.body)
	}

	// Listing, newest first, with a status filter.
	list := e.do("GET", "/v1/apps/hello/builds?status=succeeded", nil, "")
	var page openapi.BuildList
	_ = json.Unmarshal(list.body, &page)
	if len(page.Items) != 1 || page.Items[0].Id != b.Id {
		t.Errorf("list succeeded = %s", list.body)
	}
	if r := e.do("GET", "/v1/apps/hello/builds?status=queued", nil, ""); !bytes.Contains(r.body, []byte(`"items":[]`)) {
		t.Errorf("list queued = %s, want none", r.body)
	}
}

func TestBuildFromZipAndURL(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.startWorker()
	e.do("PUT", "/v1/apps/zipped", nil, `{"platforms":["linux/amd64"]}`)
	z := buildertest.ModuleZip(t, "zipped", map[string]string{"main.go": buildertest.HelloMain})
	r := e.do("POST", "/v1/apps/zipped/builds", map[string]string{"Content-Type": "application/zip"}, string(z))
	if r.status != http.StatusAccepted {
		t.Fatalf("POST zip = %d %s", r.status, r.body)
	}
	if b := e.waitBuild("zipped", r.build(t).Id); b.Status != openapi.BuildStatusSucceeded {
		t.Errorf("zip build = %s %+v", b.Status, b.Error)
	}

	src := buildertest.Module(t, "zipped", map[string]string{"main.go": buildertest.HelloMain, "extra.go": "package main\n"})
	var hits sync.Map
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n, _ := hits.LoadOrStore(req.URL.Path, new(int))
		*n.(*int)++
		if req.URL.Path == "/flaky.tar.gz" && *n.(*int) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // retried
			return
		}
		if req.URL.Path != "/src.tar.gz" && req.URL.Path != "/flaky.tar.gz" {
			http.NotFound(w, req)
			return
		}
		if req.URL.Query().Get("as") == "zip" {
			w.Write([]byte("this is not a tar.gz"))
			return
		}
		w.Write(src)
	}))
	defer origin.Close()
	r = e.do("POST", "/v1/apps/zipped/builds", nil, `{"source_url":"`+origin.URL+`/flaky.tar.gz","version":"3.1.0"}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST source_url = %d %s", r.status, r.body)
	}
	if b := e.waitBuild("zipped", r.build(t).Id); b.Status != openapi.BuildStatusSucceeded || b.Version != "3.1.0" {
		t.Errorf("source_url build = %s %s %+v", b.Status, b.Version, b.Error)
	}
	// A URL that is not http(s) is refused at once; the worker fetches the others, and a
	// URL that cannot be fetched fails its build, not the request.
	if r := e.do("POST", "/v1/apps/zipped/builds", nil, `{"source_url":"file:///etc/passwd"}`); r.status != http.StatusUnprocessableEntity || r.problem(t).Type != openapi.ProblemSourceInvalid {
		t.Errorf("POST file:// = %d %s, want 422 source-invalid", r.status, r.body)
	}
	for _, tc := range []struct{ name, url, reason string }{
		{"not found", origin.URL + "/missing.tar.gz", "source_unreachable"},
		{"metadata address", "http://169.254.169.254/latest/meta-data/", "source_unreachable"},
		{"not an archive", origin.URL + "/src.tar.gz?as=zip", "source_invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"source_url":"` + tc.url + `"}`
			if tc.reason == "source_invalid" {
				body = `{"source_url":"` + tc.url + `","version":"9.9.9"}`
			}
			r := e.do("POST", "/v1/apps/zipped/builds", nil, body)
			if r.status != http.StatusAccepted {
				t.Fatalf("POST %s = %d %s, want 202", body, r.status, r.body)
			}
			b := e.waitBuild("zipped", r.build(t).Id)
			if b.Status != openapi.BuildStatusFailed || b.Error == nil || string(b.Error.Reason) != tc.reason {
				t.Errorf("build of %s = %s %+v, want failed %s", tc.url, b.Status, b.Error, tc.reason)
			}
		})
	}
}

// TestBuildFromHangingURL: a source URL that never answers does not hold the request;
// the build is accepted at once and shows the URL without its secrets.
func TestBuildFromHangingURL(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.startWorker()
	e.do("PUT", "/v1/apps/hang", nil, `{"platforms":["linux/amd64"]}`)
	release := make(chan struct{})
	asked := make(chan struct{}, 1)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}))
	t.Cleanup(origin.Close)
	t.Cleanup(func() { close(release) })
	secretURL := strings.Replace(origin.URL, "http://", "http://user:hunter2@", 1) + "/src.tar.gz?X-Amz-Signature=s3cret#frag"
	start := time.Now()
	r := e.do("POST", "/v1/apps/hang/builds", nil, `{"source_url":"`+secretURL+`"}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST hanging source_url = %d %s, want 202", r.status, r.body)
	}
	t.Logf("answered in %s", time.Since(start))
	b := r.build(t)
	if b.SourceUrl == nil || *b.SourceUrl != origin.URL+"/src.tar.gz" || strings.Contains(string(r.body), "hunter2") || strings.Contains(string(r.body), "s3cret") {
		t.Errorf("build shows source_url %v in %s, want %s without credentials or query", b.SourceUrl, r.body, origin.URL+"/src.tar.gz")
	}
	<-asked // the worker is fetching, and the request was long answered
	if got := e.do("GET", "/v1/apps/hang/builds/"+b.Id, nil, ""); strings.Contains(string(got.body), "hunter2") || strings.Contains(string(got.body), "s3cret") {
		t.Errorf("GET build leaks the URL's secrets: %s", got.body)
	}
}

func TestBuildRejections(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.do("PUT", "/v1/apps/rej", nil, `{}`)
	good := string(buildertest.Module(t, "rej", map[string]string{"main.go": buildertest.HelloMain}))
	nested := string(buildertest.Archive(t, map[string]string{"a/b/go.mod": "module x\n\ngo 1.22\n", "a/b/main.go": buildertest.HelloMain}))
	for _, tc := range []struct {
		name, path, body string
		header           map[string]string
		status           int
		kind             openapi.ProblemType
	}{
		{"not gzip", "/v1/apps/rej/builds", "this is not gzip", gz(nil), 422, openapi.ProblemSourceInvalid},
		{"empty body", "/v1/apps/rej/builds", "", map[string]string{"Content-Type": "application/gzip"}, 422, openapi.ProblemSourceInvalid},
		{"go.mod not at the root", "/v1/apps/rej/builds", nested, gz(nil), 422, openapi.ProblemSourceInvalid},
		{"bad version", "/v1/apps/rej/builds?version=v1", good, gz(nil), 422, openapi.ProblemValidationFailed},
		{"bad commit", "/v1/apps/rej/builds?commit=a%20b", good, gz(nil), 422, openapi.ProblemValidationFailed},
		{"bad platform", "/v1/apps/rej/builds?platforms=linux/z80", good, gz(nil), 422, openapi.ProblemValidationFailed},
		{"text body", "/v1/apps/rej/builds", "hello", map[string]string{"Content-Type": "text/plain"}, 415, openapi.ProblemUnsupportedMediaType},
		{"unknown app", "/v1/apps/nope/builds", good, gz(nil), 404, openapi.ProblemNotFound},
		{"json with query", "/v1/apps/rej/builds?version=1.0.0", `{"source_url":"http://x/y"}`, nil, 400, openapi.ProblemInvalidParameter},
		{"json unknown field", "/v1/apps/rej/builds", `{"source":"http://x/y"}`, nil, 422, openapi.ProblemValidationFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, e.rdb)
			r := e.do("POST", tc.path, tc.header, tc.body)
			if r.status != tc.status || r.problem(t).Type != tc.kind {
				t.Fatalf("POST = %d %s, want %d %s", r.status, r.body, tc.status, tc.kind)
			}
			if after := snapshot(t, e.rdb); after != before {
				t.Errorf("a rejected build changed Redis")
			}
			var n int
			for range e.blobs.List(context.Background(), "") {
				n++
			}
			if n != 0 {
				t.Errorf("a rejected build stored %d blobs", n)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.do("PUT", "/v1/apps/idem", nil, `{}`)
	src := string(buildertest.Module(t, "idem", map[string]string{"main.go": buildertest.HelloMain}))
	other := string(buildertest.Module(t, "idem", map[string]string{"main.go": buildertest.HelloMain, "b.go": "package main\n"}))
	hdr := map[string]string{"Content-Type": "application/gzip", "Idempotency-Key": "ci-run-1"}

	first := e.do("POST", "/v1/apps/idem/builds", hdr, src)
	if first.status != http.StatusAccepted {
		t.Fatalf("first = %d %s", first.status, first.body)
	}
	again := e.do("POST", "/v1/apps/idem/builds", hdr, src)
	if again.status != http.StatusAccepted || !bytes.Equal(again.body, first.body) || again.header.Get("Location") != first.header.Get("Location") {
		t.Errorf("same key, same request = %d %s, want the first answer", again.status, again.body)
	}
	var page openapi.BuildList
	_ = json.Unmarshal(e.do("GET", "/v1/apps/idem/builds", nil, "").body, &page)
	if len(page.Items) != 1 {
		t.Errorf("after a retried request there are %d builds, want 1", len(page.Items))
	}
	if r := e.do("POST", "/v1/apps/idem/builds", hdr, other); r.status != http.StatusUnprocessableEntity || r.problem(t).Type != openapi.ProblemIdempotencyKeyReused {
		t.Errorf("same key, other body = %d %s, want 422", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/idem/builds?version=1.0.0", hdr, src); r.status != http.StatusUnprocessableEntity {
		t.Errorf("same key, other query = %d %s, want 422", r.status, r.body)
	}

	// Concurrent: the first is still uploading when the second arrives.
	hdr2 := map[string]string{"Content-Type": "application/gzip", "Idempotency-Key": "ci-run-2"}
	idemKeys := func() int {
		keys, err := storetest.Keys(context.Background(), e.rdb, "slipway:{idem}:idem:*")
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	reserved := idemKeys()
	pr, pw := io.Pipe()
	firstDone := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest("POST", e.url+"/v1/apps/idem/builds", pr)
		for k, v := range hdr2 {
			req.Header.Set(k, v)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Error(err)
			firstDone <- response{}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		firstDone <- response{resp.StatusCode, resp.Header, b}
	}()
	pw.Write([]byte(other[:10]))
	for idemKeys() == reserved { // wait until the first request has reserved its key
		time.Sleep(5 * time.Millisecond)
	}
	second := e.do("POST", "/v1/apps/idem/builds", hdr2, other)
	pw.Write([]byte(other[10:]))
	pw.Close()
	firstResp := <-firstDone
	if firstResp.status != http.StatusAccepted || second.status != http.StatusConflict || second.problem(t).Type != openapi.ProblemIdempotencyInFlight {
		t.Errorf("concurrent = %d and %d %s, want 202 and 409", firstResp.status, second.status, second.body)
	}
}

// TestLogFollowQueuedAnswersAtOnce: following the log of a build no worker has taken
// yet answers with its headers at once, not when the first byte comes.
func TestLogFollowQueuedAnswersAtOnce(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.do("PUT", "/v1/apps/waiting", nil, `{"platforms":["linux/amd64"]}`)
	src := string(buildertest.Module(t, "waiting", map[string]string{"main.go": buildertest.HelloMain}))
	b := e.do("POST", "/v1/apps/waiting/builds", gz(nil), src).build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/apps/waiting/builds/"+b.Id+"/log?follow=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("following a queued build's log: no answer: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Slipway-Build-Status") != "queued" {
		t.Errorf("follow = %d, status %q; want 200 queued", resp.StatusCode, resp.Header.Get("Slipway-Build-Status"))
	}
	e.do("POST", "/v1/apps/waiting/builds/"+b.Id+"/cancel", nil, "")
}

// TestLogFollowEndsOnRevocation: a follower of a build log whose token is revoked is cut
// off within the credential check period; the build itself goes on.
func TestLogFollowEndsOnRevocation(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithAdminToken(adminToken), api.WithCredentialCheck(100*time.Millisecond))
	e.do("PUT", "/v1/apps/followed", bearer(adminToken), `{"platforms":["linux/amd64"]}`)
	src := string(buildertest.Module(t, "followed", map[string]string{"main.go": buildertest.HelloMain}))
	b := e.do("POST", "/v1/apps/followed/builds", map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/gzip"}, src).build(t)
	follower := e.token("follower", []string{"read"}, []string{"followed"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/apps/followed/builds/"+b.Id+"/log?follow=true", nil)
	req.Header.Set("Authorization", "Bearer "+follower)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("follow = %v %v", resp, err)
	}
	defer resp.Body.Close()
	if r := e.do("DELETE", "/v1/tokens/follower", bearer(adminToken), ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE token = %d %s", r.status, r.body)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Errorf("the revoked follower's stream did not end cleanly: %v", err)
	}
	if ctx.Err() != nil {
		t.Errorf("the revoked follower's stream was still open after 30 s")
	}
	if cur := e.do("GET", "/v1/apps/followed/builds/"+b.Id, bearer(adminToken), "").build(t); cur.Status != openapi.BuildStatusQueued {
		t.Errorf("the build is %s, want still queued", cur.Status)
	}
}

func TestCancelOverHTTP(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.do("PUT", "/v1/apps/can", nil, `{"platforms":["linux/amd64"]}`)
	src := string(buildertest.Module(t, "can", map[string]string{"main.go": buildertest.HelloMain}))
	b := e.do("POST", "/v1/apps/can/builds", gz(nil), src).build(t)
	r := e.do("POST", "/v1/apps/can/builds/"+b.Id+"/cancel", nil, "")
	if r.status != http.StatusOK || r.build(t).Status != openapi.BuildStatusCanceled || r.build(t).Error == nil {
		t.Errorf("cancel queued = %d %s, want 200 canceled", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/can/builds/"+b.Id+"/cancel", nil, ""); r.status != http.StatusOK {
		t.Errorf("cancel again = %d, want 200", r.status)
	}
	if r := e.do("POST", "/v1/apps/can/builds/01JD3Y7Q9V6K2M8N4P5R7S9T1W/cancel", nil, ""); r.status != http.StatusNotFound {
		t.Errorf("cancel unknown = %d, want 404", r.status)
	}
	if r := e.do("GET", "/v1/apps/can/builds/not-an-id", nil, ""); r.status != http.StatusNotFound {
		t.Errorf("get malformed id = %d, want 404", r.status)
	}
	// A canceled build is not reused: the same source is built again.
	if r := e.do("POST", "/v1/apps/can/builds", gz(nil), src); r.status != http.StatusAccepted {
		t.Errorf("resubmit after cancel = %d, want 202", r.status)
	}
}
