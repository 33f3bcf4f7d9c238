package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/openapi/openapitest"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
	"github.com/slipway/slipway/webhook"
)

var (
	toolchainOnce sync.Once
	toolchain     *gobuild.Toolchain
	toolchainErr  error
)

func loadToolchain(t *testing.T) *gobuild.Toolchain {
	t.Helper()
	toolchainOnce.Do(func() { toolchain, toolchainErr = gobuild.LoadToolchain(context.Background(), "go") })
	if toolchainErr != nil {
		t.Fatal(toolchainErr)
	}
	return toolchain
}

// env is a running API on a real Redis database and filesystem blob store, and a client
// whose every response is checked against openapi.yaml.
type env struct {
	t      *testing.T
	url    string
	client *http.Client
	rdb    redis.UniversalClient
	blobs  *store.FS
	builds *builder.Builds
	data   string
}

func newEnv(t *testing.T, rdb redis.UniversalClient, opts ...api.Option) *env {
	t.Helper()
	return newEventsEnv(t, rdb, nil, opts...)
}

// newEventsEnv is newEnv with options for its webhook store.
func newEventsEnv(t *testing.T, rdb redis.UniversalClient, hookOpts []webhook.Option, opts ...api.Option) *env {
	t.Helper()
	return newEnvWith(t, rdb, hookOpts, nil, opts...)
}

// newEnvWith is newEnv with options for its webhook store, and edit (if not nil) changing
// the API's dependencies before it starts.
func newEnvWith(t *testing.T, rdb redis.UniversalClient, hookOpts []webhook.Option, edit func(*api.Deps), opts ...api.Option) *env {
	t.Helper()
	blobs, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	builds := builder.NewBuilds(rdb)
	intake, err := builder.NewIntake(builds, blobs, loadToolchain(t), builder.IntakeOptions{
		SpoolDir: filepath.Join(data, "spool"),
	})
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := webhook.NewStore(rdb, hookOpts...)
	if err != nil {
		t.Fatal(err)
	}
	apps := release.NewApps(rdb, builder.AppChecker{Toolchain: loadToolchain(t)})
	deps := api.Deps{
		Apps:        apps,
		Releases:    release.NewReleases(rdb, blobs, api.ReleaseBuilds(builds)),
		Channels:    release.NewChannels(rdb, apps),
		Builds:      builds,
		Intake:      intake,
		Blobs:       blobs,
		Idempotency: api.NewIdempotency(rdb, 0),
		Tokens:      auth.NewTokens(rdb),
		Limiter:     auth.NewRateLimiter(rdb, 1000, 1000),
		Events:      events.NewLog(rdb),
		Webhooks:    hooks,
		Checks: []api.Check{
			{Name: "redis", Ping: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			{Name: "blobs", Ping: blobs.Ping},
		},
		Metrics: prometheus.NewRegistry(),
		Log:     slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&deps)
	}
	srv, err := api.New(deps, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Cleanup(srv.CloseStreams)
	return &env{t: t, url: ts.URL, client: openapitest.New(t).Client(t), rdb: rdb, blobs: blobs, builds: builds, data: data}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(method, path string, header map[string]string, body string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (r response) app(t *testing.T) openapi.App {
	t.Helper()
	var a openapi.App
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatalf("decoding app: %v: %s", err, r.body)
	}
	return a
}

func (r response) problem(t *testing.T) openapi.Problem {
	t.Helper()
	var p openapi.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decoding problem: %v: %s", err, r.body)
	}
	return p
}

func TestAppsLifecycle(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))

	r := e.do("PUT", "/v1/apps/hello", nil, `{}`)
	if r.status != http.StatusCreated {
		t.Fatalf("PUT /v1/apps/hello {} = %d %s, want 201", r.status, r.body)
	}
	if r.header.Get("Location") != "/v1/apps/hello" || r.header.Get("ETag") != `"1"` {
		t.Errorf("PUT headers Location %q ETag %q, want /v1/apps/hello and \"1\"", r.header.Get("Location"), r.header.Get("ETag"))
	}
	a := r.app(t)
	wantChannels := []openapi.ChannelSpec{{Name: "dev"}, {Name: "staging", From: ptr("dev")}, {Name: "prod", From: ptr("staging")}}
	if a.Name != "hello" || a.Main != "." || !slices.Equal(a.Platforms, []string{"linux/amd64", "linux/arm64"}) ||
		a.BaseImage != "" || a.Ldflags != "-X main.version={{.Version}}" || a.Generation != 1 ||
		!slices.EqualFunc(a.Channels, wantChannels, func(x, y openapi.ChannelSpec) bool {
			return x.Name == y.Name && deref(x.From) == deref(y.From)
		}) {
		t.Errorf("PUT {} created %+v, want the defaults", a)
	}

	r = e.do("GET", "/v1/apps/hello", nil, "")
	if r.status != http.StatusOK || r.header.Get("ETag") != `"1"` {
		t.Fatalf("GET = %d ETag %q", r.status, r.header.Get("ETag"))
	}
	if got := r.app(t); got.Name != "hello" || got.Generation != 1 || !got.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("GET = %+v, want what PUT returned", got)
	}
	if r = e.do("GET", "/v1/apps/hello", map[string]string{"If-None-Match": `"1"`}, ""); r.status != http.StatusNotModified {
		t.Errorf("GET If-None-Match \"1\" = %d, want 304", r.status)
	}

	// Same configuration: 200, nothing changes.
	if r = e.do("PUT", "/v1/apps/hello", nil, `{"name":"hello","main":"."}`); r.status != http.StatusOK || r.app(t).Generation != 1 {
		t.Errorf("PUT same = %d gen %d, want 200 gen 1", r.status, r.app(t).Generation)
	}
	r = e.do("PUT", "/v1/apps/hello", map[string]string{"If-Match": `"1"`},
		`{"main":"./cmd/hello","platforms":["linux/amd64","linux/arm/v7","windows/amd64"],"base_image":"gcr.io/distroless/static:nonroot",
		  "ldflags":"-s -w -X main.version={{.Version}} -X main.commit={{.Commit}}","channels":[{"name":"canary"},{"name":"prod","from":"canary"}]}`)
	if r.status != http.StatusOK {
		t.Fatalf("PUT change = %d %s", r.status, r.body)
	}
	if a = r.app(t); a.Generation != 2 || a.Main != "./cmd/hello" || len(a.Platforms) != 3 || len(a.Channels) != 2 {
		t.Errorf("PUT change = %+v", a)
	}
	r = e.do("PUT", "/v1/apps/hello", map[string]string{"If-Match": `"1"`}, `{"main":"./other"}`)
	if p := r.problem(t); r.status != http.StatusPreconditionFailed || p.Type != openapi.ProblemPreconditionFailed || !strings.Contains(deref(p.Detail), `"2"`) {
		t.Errorf("PUT stale If-Match = %d %s, want 412 naming generation 2", r.status, r.body)
	}
	if r = e.do("PUT", "/v1/apps/hello", map[string]string{"If-None-Match": "*"}, `{}`); r.status != http.StatusPreconditionFailed {
		t.Errorf("PUT If-None-Match * on existing = %d, want 412", r.status)
	}
	if r = e.do("PUT", "/v1/apps/nobody", map[string]string{"If-Match": "*"}, `{}`); r.status != http.StatusNotFound {
		t.Errorf("PUT If-Match * on missing = %d, want 404", r.status)
	}

	if r = e.do("DELETE", "/v1/apps/hello", map[string]string{"If-Match": `"1"`}, ""); r.status != http.StatusPreconditionFailed {
		t.Errorf("DELETE stale = %d, want 412", r.status)
	}
	if r = e.do("DELETE", "/v1/apps/hello", map[string]string{"If-Match": `"2"`}, ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE = %d %s, want 204", r.status, r.body)
	}
	if r = e.do("GET", "/v1/apps/hello", nil, ""); r.status != http.StatusNotFound || r.problem(t).Type != openapi.ProblemNotFound {
		t.Errorf("GET deleted = %d %s, want 404 not-found", r.status, r.body)
	}
	if r = e.do("DELETE", "/v1/apps/hello", nil, ""); r.status != http.StatusNotFound {
		t.Errorf("DELETE again = %d, want 404", r.status)
	}
}

func TestListAppsPagination(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	var want []string
	for _, n := range []string{"e", "a", "d", "b", "c"} {
		if r := e.do("PUT", "/v1/apps/"+n, nil, `{}`); r.status != http.StatusCreated {
			t.Fatalf("PUT %s = %d", n, r.status)
		}
	}
	want = []string{"a", "b", "c", "d", "e"}
	var got []string
	path := "/v1/apps?limit=2"
	for range 10 {
		r := e.do("GET", path, nil, "")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, r.status, r.body)
		}
		var page openapi.AppList
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Items {
			got = append(got, a.Name)
		}
		if page.NextCursor == nil {
			break
		}
		path = "/v1/apps?limit=2&cursor=" + *page.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged list = %v, want %v", got, want)
	}
	r := e.do("GET", "/v1/apps", nil, "")
	if !bytes.Contains(r.body, []byte(`"items":[`)) || bytes.Contains(r.body, []byte("next_cursor")) {
		t.Errorf("GET /v1/apps = %s, want all items and no next_cursor", r.body)
	}
}

// TestRejections sends bad requests: each gets the right problem, and Redis holds
// exactly what it held before.
func TestRejections(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	if r := e.do("PUT", "/v1/apps/existing", nil, `{}`); r.status != http.StatusCreated {
		t.Fatal(r.status)
	}
	big := `{"ldflags":"` + strings.Repeat("x", 2<<20) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		kind                     openapi.ProblemType
		field                    string
	}{
		{"form body that is not JSON", "PUT", "/v1/apps/x", `main=.`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 400, openapi.ProblemInvalidJSON, ""},
		{"malformed JSON", "PUT", "/v1/apps/x", `{"main":`, nil, 400, openapi.ProblemInvalidJSON, ""},
		{"trailing comma", "PUT", "/v1/apps/x", `{"main":"a",}`, nil, 400, openapi.ProblemInvalidJSON, ""},
		{"empty body", "PUT", "/v1/apps/x", ``, map[string]string{"Content-Type": "application/json"}, 400, openapi.ProblemInvalidJSON, ""},
		{"null body", "PUT", "/v1/apps/x", `null`, nil, 400, openapi.ProblemInvalidJSON, ""},
		{"array body", "PUT", "/v1/apps/x", `[]`, nil, 400, openapi.ProblemInvalidJSON, ""},
		{"two objects", "PUT", "/v1/apps/x", `{} {}`, nil, 400, openapi.ProblemInvalidJSON, ""},
		{"unknown field", "PUT", "/v1/apps/x", `{"mian":"."}`, nil, 422, openapi.ProblemValidationFailed, "mian"},
		{"read-only field", "PUT", "/v1/apps/x", `{"generation":4}`, nil, 422, openapi.ProblemValidationFailed, "generation"},
		{"wrong type", "PUT", "/v1/apps/x", `{"platforms":"linux/amd64"}`, nil, 422, openapi.ProblemValidationFailed, "platforms"},
		{"wrong nested type", "PUT", "/v1/apps/x", `{"channels":[{"name":1}]}`, nil, 422, openapi.ProblemValidationFailed, "channels.name"},
		{"invalid name", "PUT", "/v1/apps/Hello_World", `{}`, nil, 422, openapi.ProblemValidationFailed, "name"},
		{"name too long", "PUT", "/v1/apps/" + strings.Repeat("a", 64), `{}`, nil, 422, openapi.ProblemValidationFailed, "name"},
		{"name differs", "PUT", "/v1/apps/x", `{"name":"y"}`, nil, 422, openapi.ProblemValidationFailed, "name"},
		{"unknown platform", "PUT", "/v1/apps/x", `{"platforms":["linux/z80"]}`, nil, 422, openapi.ProblemValidationFailed, "platforms[0]"},
		{"cgo-only platform", "PUT", "/v1/apps/x", `{"platforms":["linux/amd64","ios/arm64"]}`, nil, 422, openapi.ProblemValidationFailed, "platforms[1]"},
		{"bad variant", "PUT", "/v1/apps/x", `{"platforms":["linux/arm/v9"]}`, nil, 422, openapi.ProblemValidationFailed, "platforms[0]"},
		{"no platforms", "PUT", "/v1/apps/x", `{"platforms":[]}`, nil, 422, openapi.ProblemValidationFailed, "platforms"},
		{"channel from later", "PUT", "/v1/apps/x", `{"channels":[{"name":"a","from":"b"},{"name":"b"}]}`, nil, 422, openapi.ProblemValidationFailed, "channels[0].from"},
		{"channel name", "PUT", "/v1/apps/x", `{"channels":[{"name":"Prod!"}]}`, nil, 422, openapi.ProblemValidationFailed, "channels[0].name"},
		{"ldflags flag", "PUT", "/v1/apps/x", `{"ldflags":"-linkmode external -extld /bin/sh"}`, nil, 422, openapi.ProblemValidationFailed, "ldflags"},
		{"ldflags template", "PUT", "/v1/apps/x", `{"ldflags":"-X main.v={{.Secret}}"}`, nil, 422, openapi.ProblemValidationFailed, "ldflags"},
		{"base image", "PUT", "/v1/apps/x", `{"base_image":"UPPER/Case::x"}`, nil, 422, openapi.ProblemValidationFailed, "base_image"},
		{"main escapes", "PUT", "/v1/apps/x", `{"main":"../x"}`, nil, 422, openapi.ProblemValidationFailed, "main"},
		{"body too large", "PUT", "/v1/apps/x", big, nil, 413, openapi.ProblemBodyTooLarge, ""},
		{"not JSON", "PUT", "/v1/apps/x", `<app/>`, map[string]string{"Content-Type": "application/xml"}, 415, openapi.ProblemUnsupportedMediaType, ""},
		{"bad If-Match", "PUT", "/v1/apps/x", `{}`, map[string]string{"If-Match": "soon"}, 400, openapi.ProblemInvalidParameter, ""},
		{"bad If-None-Match", "PUT", "/v1/apps/x", `{}`, map[string]string{"If-None-Match": `"3"`}, 400, openapi.ProblemInvalidParameter, ""},
		{"create-only on existing", "PUT", "/v1/apps/existing", `{"main":"./x"}`, map[string]string{"If-None-Match": "*"}, 412, openapi.ProblemPreconditionFailed, ""},
		{"stale If-Match", "PUT", "/v1/apps/existing", `{"main":"./x"}`, map[string]string{"If-Match": `"7"`}, 412, openapi.ProblemPreconditionFailed, ""},
		{"stale delete", "DELETE", "/v1/apps/existing", "", map[string]string{"If-Match": `"7"`}, 412, openapi.ProblemPreconditionFailed, ""},
		{"get invalid name", "GET", "/v1/apps/Bad_Name", "", nil, 400, openapi.ProblemInvalidParameter, ""},
		{"get missing", "GET", "/v1/apps/missing", "", nil, 404, openapi.ProblemNotFound, ""},
		{"delete missing", "DELETE", "/v1/apps/missing", "", nil, 404, openapi.ProblemNotFound, ""},
		{"limit zero", "GET", "/v1/apps?limit=0", "", nil, 400, openapi.ProblemInvalidParameter, ""},
		{"limit huge", "GET", "/v1/apps?limit=100000", "", nil, 400, openapi.ProblemInvalidParameter, ""},
		{"limit word", "GET", "/v1/apps?limit=ten", "", nil, 400, openapi.ProblemInvalidParameter, ""},
		{"bad cursor", "GET", "/v1/apps?cursor=***", "", nil, 400, openapi.ProblemInvalidParameter, ""},
		{"unknown route", "GET", "/v1/nothing", "", nil, 404, openapi.ProblemRouteNotFound, ""},
		{"unknown root", "GET", "/", "", nil, 404, openapi.ProblemRouteNotFound, ""},
		{"wrong method", "POST", "/v1/apps", `{}`, nil, 405, openapi.ProblemMethodNotAllowed, ""},
		{"wrong method on app", "PATCH", "/v1/apps/existing", `{}`, nil, 405, openapi.ProblemMethodNotAllowed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, e.rdb)
			r := e.do(tc.method, tc.path, tc.header, tc.body)
			if r.status != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.status)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			p := r.problem(t)
			if p.Type != tc.kind || p.Status != tc.status || p.Title == "" || deref(p.Detail) == "" || deref(p.RequestId) == "" {
				t.Errorf("problem = %s, want type %s status %d with title, detail and request_id", r.body, tc.kind, tc.status)
			}
			if tc.field != "" {
				if p.Errors == nil || !slices.ContainsFunc(*p.Errors, func(f openapi.FieldError) bool { return f.Field == tc.field }) {
					t.Errorf("problem errors = %s, want one for field %q", r.body, tc.field)
				}
			}
			if tc.status == 405 && r.header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			if after := snapshot(t, e.rdb); after != before {
				t.Errorf("a rejected request changed Redis:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// snapshot is every key and value in the test's Redis database.
func snapshot(t *testing.T, rdb redis.UniversalClient) string {
	t.Helper()
	ctx := context.Background()
	keys, err := storetest.Keys(ctx, rdb, "*")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(k + "=" + v + ";")
	}
	return b.String()
}

func TestRequestID(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	r := e.do("GET", "/healthz", map[string]string{"X-Request-ID": "ci-run-42.7"}, "")
	if got := r.header.Get("X-Request-ID"); got != "ci-run-42.7" {
		t.Errorf("X-Request-ID = %q, want the client's ci-run-42.7", got)
	}
	r = e.do("GET", "/v1/apps/missing", map[string]string{"X-Request-ID": "bad id with spaces"}, "")
	got := r.header.Get("X-Request-ID")
	if got == "" || strings.Contains(got, " ") {
		t.Errorf("X-Request-ID = %q, want a generated id", got)
	}
	if p := r.problem(t); deref(p.RequestId) != got {
		t.Errorf("problem request_id %q, header %q, want equal", deref(p.RequestId), got)
	}
}

func TestServiceEndpoints(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	if r := e.do("GET", "/healthz", nil, ""); r.status != 200 || !bytes.Contains(r.body, []byte(`"ok"`)) {
		t.Errorf("GET /healthz = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/readyz", nil, ""); r.status != 200 {
		t.Errorf("GET /readyz = %d %s", r.status, r.body)
	}
	r := e.do("GET", "/openapi.yaml", nil, "")
	if r.status != 200 || !bytes.Equal(r.body, openapi.Spec) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/yaml") {
		t.Errorf("GET /openapi.yaml = %d %q, want the embedded spec", r.status, r.header.Get("Content-Type"))
	}
	e.do("PUT", "/v1/apps/m", nil, `{}`)
	e.do("GET", "/v1/apps/m", nil, "")
	e.do("GET", "/nope", nil, "")
	r = e.do("GET", "/metrics", nil, "")
	for _, want := range []string{
		`slipway_http_requests_total{method="PUT",route="/v1/apps/:app",status="201"} 1`,
		`slipway_http_requests_total{method="GET",route="/v1/apps/:app",status="200"} 1`,
		`slipway_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`slipway_http_request_duration_seconds_bucket{method="GET",route="/v1/apps/:app",status="200",le="+Inf"} 1`,
	} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestReadyzFollowsRedis stops and restarts a Redis server under a running API.
func TestReadyzFollowsRedis(t *testing.T) {
	srv := storetest.StartRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	e := newEnv(t, rdb)

	if r := e.do("GET", "/readyz", nil, ""); r.status != 200 {
		t.Fatalf("GET /readyz with Redis up = %d %s", r.status, r.body)
	}
	srv.Stop()
	r := e.do("GET", "/readyz", nil, "")
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz with Redis down = %d %s, want 503", r.status, r.body)
	}
	p := r.problem(t)
	if p.Type != openapi.ProblemDependencyUnavailable || p.Checks == nil || (*p.Checks)["redis"] != "unavailable" ||
		(*p.Checks)["blobs"] != "ok" || !strings.Contains(deref(p.Detail), "redis") {
		t.Errorf("problem = %s, want dependency-unavailable naming redis", r.body)
	}
	srv.Start()
	if r := e.do("GET", "/readyz", nil, ""); r.status != 200 {
		t.Errorf("GET /readyz after Redis restarted = %d %s, want 200", r.status, r.body)
	}
}

// TestInternalErrorsHideCause makes Redis unreachable: the 500 names a request id and
// nothing of the cause.
func TestInternalErrorsHideCause(t *testing.T) {
	// Redis unreachable is the infrastructure's fault, for now: 503, and still no cause.
	addr := storetest.FreeAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	e := newEnv(t, rdb)
	r := e.do("GET", "/v1/apps/hello", nil, "")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("GET with Redis unreachable = %d %s, want 503 with Retry-After", r.status, r.body)
	}
	for _, leak := range []string{"dial", "refused", addr} {
		if bytes.Contains(r.body, []byte(leak)) {
			t.Errorf("503 body leaks %q: %s", leak, r.body)
		}
	}
	// A stored document that does not decode is the server's fault: 500.
	good := storetest.Redis(t)
	e = newEnv(t, good)
	e.do("PUT", "/v1/apps/hello", nil, `{}`)
	if err := good.HSet(context.Background(), store.AppKey("hello"), "spec", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	r = e.do("GET", "/v1/apps/hello", nil, "")
	if r.status != http.StatusInternalServerError {
		t.Fatalf("GET of a corrupt app = %d %s, want 500", r.status, r.body)
	}
	p := r.problem(t)
	if p.Type != openapi.ProblemInternal || !strings.Contains(deref(p.Detail), deref(p.RequestId)) {
		t.Errorf("problem = %s, want internal with the request id in detail", r.body)
	}
	for _, leak := range []string{"invalid character", "json", "spec", "slipway:"} {
		if bytes.Contains(r.body, []byte(leak)) {
			t.Errorf("500 body leaks %q: %s", leak, r.body)
		}
	}
}

func TestGeneratedClient(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	c, err := openapi.NewClientWithResponses(e.url, openapi.WithHTTPClient(e.client))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put, err := c.PutAppWithResponse(ctx, "gen", &openapi.PutAppParams{}, openapi.AppInput{Main: ptr("./cmd/gen")})
	if err != nil || put.JSON201 == nil || put.JSON201.Main != "./cmd/gen" {
		t.Fatalf("PutApp = %v, %v", err, put)
	}
	get, err := c.GetAppWithResponse(ctx, "gen", &openapi.GetAppParams{})
	if err != nil || get.JSON200 == nil || get.JSON200.Generation != 1 {
		t.Fatalf("GetApp = %v, %v", err, get)
	}
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
