package api_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/openapi/openapitest"
	"github.com/slipway/slipway/store/storetest"
)

// Short settings, so the tests take about a second: 1 KiB/s after 1s.
const (
	testMinRate = 1 << 10
	testGrace   = time.Second
	// slack is how long after the grace a stalled request may still take to be cut off,
	// on a busy machine under the race detector.
	slack = 5 * time.Second
)

// stalledRequest sends a request's head with Expect: 100-continue and, once the server
// asks for the body (the handler has started reading it), a few bytes of it; then it
// sends nothing more and waits for the answer.
type stalledRequest struct {
	method, path, contentType, first string
}

type stalledResult struct {
	resp    *http.Response
	body    []byte
	elapsed time.Duration
	err     error
}

func (s stalledRequest) send(base string, asked *sync.WaitGroup) stalledResult {
	u, err := url.Parse(base)
	if err != nil {
		return stalledResult{err: err}
	}
	start := time.Now()
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		asked.Done()
		return stalledResult{err: err}
	}
	defer conn.Close()
	// Nothing below may wait longer than the grace and the slack together.
	_ = conn.SetDeadline(start.Add(testGrace + slack))
	head := s.method + " " + s.path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: " + s.contentType +
		"\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n"
	br := bufio.NewReader(conn)
	_, err = io.WriteString(conn, head)
	var status string
	if err == nil {
		status, err = br.ReadString('\n')
		if err == nil {
			_, err = br.ReadString('\n') // the blank line after 100 Continue
		}
	}
	asked.Done()
	if err != nil || !strings.Contains(status, " 100 ") {
		return stalledResult{err: err, body: []byte(status)}
	}
	if _, err := io.WriteString(conn, s.first); err != nil {
		return stalledResult{err: err}
	}
	req, _ := http.NewRequest(s.method, base+s.path, nil)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return stalledResult{err: err, elapsed: time.Since(start)}
	}
	body, err := io.ReadAll(resp.Body)
	return stalledResult{resp: resp, body: body, elapsed: time.Since(start), err: err}
}

// TestStalledUploadsTimeOut starts 20 uploads that send a few bytes and stop, and a JSON
// request that does the same: each is answered 408 request-timeout soon after the grace,
// and none leaves a spool file behind.
func TestStalledUploadsTimeOut(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithBodyMinRate(testMinRate, testGrace))
	if r := e.do("PUT", "/v1/apps/stall", nil, `{}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	spool := filepath.Join(e.data, "spool")
	requests := []stalledRequest{{"PUT", "/v1/apps/stalled-json", "application/json", `{"platforms":`}}
	for range 20 {
		requests = append(requests, stalledRequest{"POST", "/v1/apps/stall/builds", "application/gzip", "\x1f\x8b\x08\x00"})
	}

	var asked sync.WaitGroup
	asked.Add(len(requests))
	results := make([]stalledResult, len(requests))
	var done sync.WaitGroup
	for i, r := range requests {
		done.Go(func() { results[i] = r.send(e.url, &asked) })
	}
	// Every handler is reading its body now, so every upload has its spool file.
	asked.Wait()
	if files := spoolFiles(t, spool); len(files) != 20 {
		t.Errorf("spool files while 20 uploads stall = %d, want 20", len(files))
	}
	done.Wait()

	v := openapitest.New(t)
	for i, r := range results {
		if r.err != nil {
			t.Errorf("request %d (%s %s): %v after %s (%q)", i, requests[i].method, requests[i].path, r.err, r.elapsed, r.body)
			continue
		}
		req, _ := http.NewRequest(requests[i].method, e.url+requests[i].path, nil)
		v.Check(t, req, r.resp.StatusCode, r.resp.Header, r.body)
		var p openapi.Problem
		_ = json.Unmarshal(r.body, &p)
		if r.resp.StatusCode != http.StatusRequestTimeout || p.Type != openapi.ProblemRequestTimeout {
			t.Errorf("request %d (%s %s) = %d %s, want 408 %s", i, requests[i].method, requests[i].path, r.resp.StatusCode, r.body, openapi.ProblemRequestTimeout)
		}
		if !r.resp.Close {
			t.Errorf("request %d: the connection stays open after a body that timed out", i)
		}
		if r.elapsed < testGrace || r.elapsed > testGrace+slack {
			t.Errorf("request %d ended after %s, want between the grace %s and %s", i, r.elapsed, testGrace, testGrace+slack)
		}
	}
	t.Logf("one answer: %s", results[len(results)-1].body)
	if files := spoolFiles(t, spool); len(files) != 0 {
		t.Errorf("spool files after the uploads timed out = %v, want none", files)
	}
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// pacedReader yields its content chunk bytes at a time, one chunk per tick.
type pacedReader struct {
	r     io.Reader
	chunk int
	tick  <-chan time.Time
}

func (p *pacedReader) Read(b []byte) (int, error) {
	<-p.tick
	return p.r.Read(b[:min(len(b), p.chunk)])
}

// TestSteadyUploadSucceeds sends an upload at twice the minimum rate, for longer than the
// grace: it is accepted, and the request goes on after its body as usual.
func TestSteadyUploadSucceeds(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithBodyMinRate(testMinRate, testGrace))
	if r := e.do("PUT", "/v1/apps/steady", nil, `{}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	// Random bytes, hex-encoded, so the archive does not compress below 3 KiB.
	noise := make([]byte, 3<<10)
	_, _ = rand.Read(noise)
	src := buildertest.Module(t, "steady", map[string]string{
		"main.go":   buildertest.HelloMain,
		"noise.txt": hex.EncodeToString(noise),
	})
	if len(src) < 3<<10 {
		t.Fatalf("archive is %d bytes, want at least 3 KiB so the upload outlasts the grace", len(src))
	}
	const chunk = 128
	interval := time.Second * chunk / (2 * testMinRate) // twice the minimum rate
	tick := time.NewTicker(interval)
	defer tick.Stop()
	req, err := http.NewRequest("POST", e.url+"/v1/apps/steady/builds", &pacedReader{r: bytes.NewReader(src), chunk: chunk, tick: tick.C})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(src))
	req.Header.Set("Content-Type", "application/gzip")
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("steady upload of %d bytes over %s = %d %s, want 202", len(src), elapsed, resp.StatusCode, body)
	}
	if elapsed < testGrace {
		t.Errorf("the upload took %s, less than the grace %s: it did not test the rate", elapsed, testGrace)
	}
	t.Logf("%d bytes in %s accepted", len(src), elapsed.Round(time.Millisecond))
	if files := spoolFiles(t, filepath.Join(e.data, "spool")); len(files) != 0 {
		t.Errorf("spool files after the upload = %v, want none", files)
	}
}
