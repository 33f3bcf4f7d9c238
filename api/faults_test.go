package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// TestRedisOutageAnswers503: while Redis is down, a submit (and any other call) gets a
// 503 problem with Retry-After that shows no server address, not a bare 500; when it is
// back, the retried submit with the same Idempotency-Key goes through.
func TestRedisOutageAnswers503(t *testing.T) {
	srv := storetest.StartRedisServer(t)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	e := newEnv(t, rdb)
	if r := e.do("PUT", "/v1/apps/down", nil, `{"platforms":["linux/amd64"]}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	src := string(buildertest.Module(t, "down", map[string]string{"main.go": buildertest.HelloMain}))
	submit := map[string]string{"Content-Type": "application/gzip", "Idempotency-Key": "ci-run-1"}
	srv.Stop()
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/apps/down/builds?version=1.0.0", src},
		{"GET", "/v1/apps", ""},
		{"GET", "/v1/apps/down/releases", ""},
	} {
		h := map[string]string{}
		if tc.method == "POST" {
			h = submit
		}
		r := e.do(tc.method, tc.path, h, tc.body)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("%s %s during the outage = %d (Retry-After %q) %s, want 503 with Retry-After", tc.method, tc.path, r.status, r.header.Get("Retry-After"), r.body)
			continue
		}
		p := r.problem(t)
		if p.Type != openapi.ProblemDependencyUnavailable || strings.Contains(string(r.body), srv.Addr) || strings.Contains(string(r.body), "dial") {
			t.Errorf("%s %s problem = %s, want dependency-unavailable without the server's address", tc.method, tc.path, r.body)
		}
	}
	r := e.do("GET", "/v2/down/manifests/latest", nil, "")
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"UNAVAILABLE"`) || r.header.Get("Retry-After") == "" {
		t.Errorf("registry during the outage = %d %s, want 503 UNAVAILABLE", r.status, r.body)
	}
	srv.Start()
	if r := e.do("POST", "/v1/apps/down/builds?version=1.0.0", submit, src); r.status != http.StatusAccepted {
		t.Errorf("the retried submit after the outage = %d %s, want 202", r.status, r.body)
	}
}
