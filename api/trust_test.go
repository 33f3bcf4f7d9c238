package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/openapi/openapitest"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
	"github.com/slipway/slipway/webhook"
)

// newTrustEnv is newEnv with the rate limiter and log given.
func newTrustEnv(t *testing.T, rdb redis.UniversalClient, limiter api.RateLimiter, log *slog.Logger, opts ...api.Option) *env {
	t.Helper()
	blobs, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	builds := builder.NewBuilds(rdb)
	intake, err := builder.NewIntake(builds, blobs, loadToolchain(t), builder.IntakeOptions{SpoolDir: filepath.Join(data, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := webhook.NewStore(rdb)
	if err != nil {
		t.Fatal(err)
	}
	apps := release.NewApps(rdb, builder.AppChecker{Toolchain: loadToolchain(t)})
	srv, err := api.New(api.Deps{
		Apps:        apps,
		Releases:    release.NewReleases(rdb, blobs, api.ReleaseBuilds(builds)),
		Channels:    release.NewChannels(rdb, apps),
		Builds:      builds,
		Intake:      intake,
		Blobs:       blobs,
		Idempotency: api.NewIdempotency(rdb, 0),
		Tokens:      auth.NewTokens(rdb),
		Limiter:     limiter,
		Events:      events.NewLog(rdb),
		Webhooks:    hooks,
		Metrics:     prometheus.NewRegistry(),
		Log:         log,
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Cleanup(srv.CloseStreams)
	return &env{t: t, url: ts.URL, client: openapitest.New(t).Client(t), rdb: rdb, blobs: blobs, builds: builds, data: data}
}

// createToken makes a token as the caller whose secret is given and returns the answer.
func (e *env) createToken(as string, body string) response {
	e.t.Helper()
	return e.do("POST", "/v1/tokens", bearer(as), body)
}

func (r response) tokenCreated(t *testing.T) openapi.TokenCreated {
	t.Helper()
	var tc openapi.TokenCreated
	if err := json.Unmarshal(r.body, &tc); err != nil {
		t.Fatalf("decoding a created token: %v: %s", err, r.body)
	}
	return tc
}

func (r response) hasField(t *testing.T, field string) bool {
	t.Helper()
	p := r.problem(t)
	return p.Errors != nil && slices.ContainsFunc(*p.Errors, func(f openapi.FieldError) bool { return f.Field == field })
}

// stateOf is snapshot without what every authenticated request changes: rate limits and
// the last use noted in a token's document. The tokens index still shows every token made
// or revoked.
func stateOf(t *testing.T, rdb redis.UniversalClient) string {
	t.Helper()
	ctx := context.Background()
	keys, err := storetest.Keys(ctx, rdb, "*")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		if strings.HasPrefix(k, "slipway:ratelimit:") || strings.HasPrefix(k, "slipway:token:") {
			continue
		}
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(k + "=" + v + ";")
	}
	return b.String()
}

// TestTokenCannotWidenItself: an admin token limited to one app makes no token wider
// than itself, and every refusal leaves Redis as it was.
func TestTokenCannotWidenItself(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithAdminToken(adminToken))
	for _, a := range []string{"a", "b"} {
		if r := e.do("PUT", "/v1/apps/"+a, bearer(adminToken), `{}`); r.status != http.StatusCreated {
			t.Fatalf("PUT app %s = %d %s", a, r.status, r.body)
		}
	}
	limited := e.token("a-admin", []string{"admin"}, []string{"a"})

	for _, tc := range []struct {
		name, body string
		field      string
	}{
		{"every app", `{"name":"wide","scopes":["admin"]}`, "apps"},
		{"every app, empty list", `{"name":"wide","scopes":["read"],"apps":[]}`, "apps"},
		{"another app", `{"name":"wide","scopes":["read"],"apps":["b"]}`, "apps[0]"},
		{"its app and another", `{"name":"wide","scopes":["read"],"apps":["a","b"]}`, "apps[1]"},
		{"an app that does not exist yet", `{"name":"wide","scopes":["read"],"apps":["a","later"]}`, "apps[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := stateOf(t, e.rdb)
			r := e.createToken(limited, tc.body)
			if r.status != http.StatusForbidden || r.problem(t).Type != openapi.ProblemForbidden || !r.hasField(t, tc.field) {
				t.Errorf("POST /v1/tokens %s as a-admin = %d %s, want 403 forbidden naming %s", tc.body, r.status, r.body, tc.field)
			}
			if after := stateOf(t, e.rdb); after != before {
				t.Error("a refused token changed Redis")
			}
		})
	}

	// Within its own scopes and apps, it makes tokens; what they make is bounded again.
	r := e.createToken(limited, `{"name":"a-deputy","scopes":["admin"],"apps":["a"]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("POST admin token for app a as a-admin = %d %s, want 201", r.status, r.body)
	}
	deputy := r.tokenCreated(t)
	if deputy.Id == "" || !slices.Equal(deputy.Apps, []string{"a"}) {
		t.Errorf("created %+v, want an id and apps [a]", deputy)
	}
	if r := e.createToken(deputy.Token, `{"name":"wider","scopes":["read"],"apps":["b"]}`); r.status != http.StatusForbidden {
		t.Errorf("a token made by a limited token widened itself: %d %s", r.status, r.body)
	}
	if r := e.createToken(deputy.Token, `{"name":"a-ci","scopes":["build","promote:prod"],"apps":["a"]}`); r.status != http.StatusCreated {
		t.Errorf("POST build token for app a as a-deputy = %d %s, want 201", r.status, r.body)
	}
	// The server's admin token makes any token.
	if r := e.createToken(adminToken, `{"name":"everything","scopes":["admin"]}`); r.status != http.StatusCreated {
		t.Errorf("POST unlimited token as the admin = %d %s", r.status, r.body)
	}
}

// TestTokenNamesReserved: no token takes the name of the server's admin token, of what a
// server without authentication does, or the form of a token id.
func TestTokenNamesReserved(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithAdminToken(adminToken))
	for _, name := range []string{"admin", "anonymous", "tok_01jd3y7q9v6k2m8n4p5r7s9t1w"} {
		t.Run(name, func(t *testing.T) {
			before := stateOf(t, e.rdb)
			r := e.createToken(adminToken, `{"name":"`+name+`","scopes":["read"]}`)
			if r.status != http.StatusUnprocessableEntity || r.problem(t).Type != openapi.ProblemValidationFailed || !r.hasField(t, "name") ||
				!strings.Contains(deref(r.problem(t).Detail), "reserved") {
				t.Errorf("POST token named %s = %d %s, want 422 naming the field name as reserved", name, r.status, r.body)
			}
			if after := stateOf(t, e.rdb); after != before {
				t.Error("a refused token changed Redis")
			}
		})
	}
}

// TestLimitedTokenListsAndRevokesItsOwn: a limited admin sees and revokes only tokens
// within its apps; any other name is answered as one that does not exist.
func TestLimitedTokenListsAndRevokesItsOwn(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithAdminToken(adminToken))
	limited := e.token("a-admin", []string{"admin"}, []string{"a", "c"})
	e.token("a-reader", []string{"read"}, []string{"a"})
	e.token("ac-reader", []string{"read"}, []string{"c", "a"})
	bReader := e.token("b-reader", []string{"read"}, []string{"b"})
	abReader := e.token("ab-reader", []string{"read"}, []string{"a", "b"})
	everyReader := e.token("every-reader", []string{"read"}, nil)

	var list openapi.TokenList
	r := e.do("GET", "/v1/tokens", bearer(limited), "")
	if err := json.Unmarshal(r.body, &list); r.status != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/tokens as a-admin = %d %s", r.status, r.body)
	}
	var names []string
	for _, tok := range list.Items {
		names = append(names, tok.Name)
		if !strings.HasPrefix(tok.Id, "tok_") {
			t.Errorf("listed token %s has id %q, want tok_...", tok.Name, tok.Id)
		}
	}
	if want := []string{"a-admin", "a-reader", "ac-reader"}; !slices.Equal(names, want) {
		t.Errorf("tokens listed to a-admin = %v, want %v", names, want)
	}

	unknown := e.do("DELETE", "/v1/tokens/no-such-token", bearer(limited), "")
	if unknown.status != http.StatusNotFound {
		t.Fatalf("DELETE an unknown token = %d %s, want 404", unknown.status, unknown.body)
	}
	for _, name := range []string{"b-reader", "ab-reader", "every-reader"} {
		before := stateOf(t, e.rdb)
		r := e.do("DELETE", "/v1/tokens/"+name, bearer(limited), "")
		if r.status != http.StatusNotFound {
			t.Errorf("DELETE %s as a-admin = %d, want 404 as for an unknown token", name, r.status)
			continue
		}
		got, want := r.problem(t), unknown.problem(t)
		if got.Type != want.Type || got.Title != want.Title ||
			strings.ReplaceAll(deref(got.Detail), name, "X") != strings.ReplaceAll(deref(want.Detail), "no-such-token", "X") {
			t.Errorf("DELETE %s as a-admin = %d %s, want the 404 of an unknown token: %s", name, r.status, r.body, unknown.body)
		}
		if after := stateOf(t, e.rdb); after != before {
			t.Errorf("a refused revocation of %s changed Redis", name)
		}
	}
	for name, tok := range map[string]string{"b-reader": bReader, "ab-reader": abReader, "every-reader": everyReader} {
		if r := e.do("GET", "/v1/tokens", bearer(tok), ""); r.status != http.StatusForbidden {
			t.Errorf("%s after a-admin tried to revoke it = %d, want 403 (alive, without admin)", name, r.status)
		}
	}
	if r := e.do("DELETE", "/v1/tokens/ac-reader", bearer(limited), ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE ac-reader as a-admin = %d %s, want 204", r.status, r.body)
	}
}

// TestTokenIdentity: a token re-made under the name of a revoked one is another token:
// another id, and a rate of its own.
func TestTokenIdentity(t *testing.T) {
	rdb := storetest.Redis(t)
	// Nearly no rate: bursts of 10, then one request in 1000 s.
	e := newTrustEnv(t, rdb, auth.NewRateLimiter(rdb, 0.001, 10), slog.New(slog.DiscardHandler), api.WithAdminToken(adminToken))
	if r := e.do("PUT", "/v1/apps/hello", bearer(adminToken), `{}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	first := e.createToken(adminToken, `{"name":"bot","scopes":["read"]}`).tokenCreated(t)
	limited := 0
	for range 11 {
		if r := e.do("GET", "/v1/apps", bearer(first.Token), ""); r.status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 1 {
		t.Fatalf("11 requests with a burst of 10: %d limited, want 1", limited)
	}
	if r := e.do("DELETE", "/v1/tokens/bot", bearer(adminToken), ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE bot = %d", r.status)
	}
	second := e.createToken(adminToken, `{"name":"bot","scopes":["read"]}`).tokenCreated(t)
	if second.Id == first.Id || !strings.HasPrefix(second.Id, "tok_") {
		t.Errorf("ids of two tokens named bot: %q and %q, want two tok_ ids", first.Id, second.Id)
	}
	if r := e.do("GET", "/v1/apps", bearer(second.Token), ""); r.status != http.StatusOK {
		t.Errorf("the new bot's first request = %d %s, want 200: it must not inherit the revoked bot's rate", r.status, r.body)
	}
	var list openapi.TokenList
	_ = json.Unmarshal(e.do("GET", "/v1/tokens", bearer(adminToken), "").body, &list)
	if len(list.Items) != 1 || list.Items[0].Id != second.Id {
		t.Errorf("tokens = %+v, want the new bot with id %s", list.Items, second.Id)
	}
	// The server's admin token has a rate of its own too.
	if r := e.do("GET", "/v1/apps", bearer(adminToken), ""); r.status != http.StatusOK {
		t.Errorf("the admin's request = %d, want 200", r.status)
	}
}

// logBuffer collects a server's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns all the server has logged so far.
func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// request returns the attributes of the last request line logged for path.
func (b *logBuffer) request(t *testing.T, path string) map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var last map[string]any
	dec := json.NewDecoder(bytes.NewReader(b.buf.Bytes()))
	for {
		var line map[string]any
		if err := dec.Decode(&line); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if line["msg"] == "request" && line["path"] == path {
			last = line
		}
	}
	if last == nil {
		t.Fatalf("no request line logged for %s", path)
	}
	return last
}

// TestClientAddress: the logged client address is the TCP peer unless the peer is a
// trusted proxy; X-Forwarded-For from anyone else is ignored, and so is X-Real-IP.
func TestClientAddress(t *testing.T) {
	spoof := map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.10"}
	for _, tc := range []struct {
		name    string
		trusted []string
		header  map[string]string
		want    string
	}{
		{"no proxies: a spoofed header is ignored", nil, spoof, "127.0.0.1"},
		{"no proxies, no header", nil, nil, "127.0.0.1"},
		{"peer not a trusted proxy", []string{"10.0.0.0/8"}, spoof, "127.0.0.1"},
		{"peer a trusted proxy", []string{"127.0.0.0/8"}, spoof, "203.0.113.9"},
		{"a trusted proxy behind a client that spoofs", []string{"127.0.0.0/8"},
			map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}, "203.0.113.9"},
		{"a trusted chain of proxies", []string{"127.0.0.0/8", "10.0.0.0/8"},
			map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 10.1.2.3"}, "203.0.113.9"},
		{"private hops are trusted only when listed", []string{"127.0.0.0/8"},
			map[string]string{"X-Forwarded-For": "203.0.113.9, 10.1.2.3"}, "10.1.2.3"},
		{"a trusted proxy with no header", []string{"127.0.0.0/8"}, nil, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var prefixes []netip.Prefix
			for _, c := range tc.trusted {
				prefixes = append(prefixes, netip.MustParsePrefix(c))
			}
			var logs logBuffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			rdb := storetest.Redis(t)
			e := newTrustEnv(t, rdb, auth.NewRateLimiter(rdb, 1000, 1000), log, api.WithTrustedProxies(prefixes))
			if r := e.do("GET", "/v1/apps", tc.header, ""); r.status != http.StatusOK {
				t.Fatalf("GET /v1/apps = %d %s", r.status, r.body)
			}
			if got := logs.request(t, "/v1/apps")["remote"]; got != tc.want {
				t.Errorf("logged remote = %v, want %s", got, tc.want)
			}
		})
	}
}

// TestRequestLogNamesTheToken: the request log records who made each request by name
// and by token id, so two tokens that bore one name are told apart in the audit.
func TestRequestLogNamesTheToken(t *testing.T) {
	var logs logBuffer
	rdb := storetest.Redis(t)
	e := newTrustEnv(t, rdb, auth.NewRateLimiter(rdb, 1000, 1000),
		slog.New(slog.NewJSONHandler(&logs, nil)), api.WithAdminToken(adminToken))
	e.do("PUT", "/v1/apps/hello", bearer(adminToken), `{}`)
	if got := logs.request(t, "/v1/apps/hello"); got["actor"] != "admin" || got["actor_id"] != "admin" {
		t.Errorf("request line of the admin = %v, want actor and actor_id admin", got)
	}
	tok := e.createToken(adminToken, `{"name":"release-bot","scopes":["promote"],"apps":["hello"]}`).tokenCreated(t)
	if r := e.do("POST", "/v1/apps/hello/channels/dev/lock", bearer(tok.Token), `{"reason":"x"}`); r.status != http.StatusOK {
		t.Fatalf("lock = %d %s", r.status, r.body)
	}
	if got := logs.request(t, "/v1/apps/hello/channels/dev/lock"); got["actor"] != "release-bot" || got["actor_id"] != tok.Id {
		t.Errorf("request line of release-bot = %v, want actor release-bot and actor_id %s", got, tok.Id)
	}
	var hist openapi.ChannelHistory
	_ = json.Unmarshal(e.do("GET", "/v1/apps/hello/channels/dev/history", bearer(adminToken), "").body, &hist)
	if len(hist.Items) != 1 || hist.Items[0].Actor != "release-bot" {
		t.Errorf("history = %+v, want the lock by release-bot", hist.Items)
	}
}
