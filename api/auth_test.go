package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

const adminToken = "admin-secret-0123456789"

func (e *env) token(name string, scopes []string, apps []string) string {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "scopes": scopes, "apps": apps})
	r := e.do("POST", "/v1/tokens", bearer(adminToken), string(body))
	if r.status != http.StatusCreated {
		e.t.Fatalf("POST /v1/tokens = %d %s", r.status, r.body)
	}
	var tc openapi.TokenCreated
	_ = json.Unmarshal(r.body, &tc)
	if !strings.HasPrefix(tc.Token, "slw_") || r.header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("token = %q, Cache-Control %q", tc.Token, r.header.Get("Cache-Control"))
	}
	return tc.Token
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func TestAuthScopes(t *testing.T) {
	rdb := storetest.Redis(t)
	e := newEnv(t, rdb, api.WithAdminToken(adminToken))
	if r := e.do("PUT", "/v1/apps/hello", bearer(adminToken), `{}`); r.status != http.StatusCreated {
		t.Fatalf("admin PUT app = %d %s", r.status, r.body)
	}
	e.do("PUT", "/v1/apps/other", bearer(adminToken), `{}`)
	reader := e.token("portal", []string{"read"}, nil)
	bot := e.token("release-bot", []string{"promote:staging"}, []string{"hello"})
	ci := e.token("ci", []string{"build", "release"}, nil)

	for _, tc := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		kind                     openapi.ProblemType
	}{
		{"open healthz", "GET", "/healthz", "", nil, 200, ""},
		{"open spec", "GET", "/openapi.yaml", "", nil, 200, ""},
		{"no token", "GET", "/v1/apps", "", nil, 401, openapi.ProblemUnauthorized},
		{"bad token", "GET", "/v1/apps", "", bearer("slw_nope"), 401, openapi.ProblemUnauthorized},
		{"bad token on an open route", "GET", "/healthz", "", bearer("slw_nope"), 200, ""},
		{"metrics need read", "GET", "/metrics", "", nil, 401, openapi.ProblemUnauthorized},
		{"read lists", "GET", "/v1/apps", "", bearer(reader), 200, ""},
		{"read cannot write", "PUT", "/v1/apps/x", `{}`, bearer(reader), 403, openapi.ProblemForbidden},
		{"read cannot build", "POST", "/v1/apps/hello/builds", "x", map[string]string{"Authorization": "Bearer " + reader, "Content-Type": "application/gzip"}, 403, openapi.ProblemForbidden},
		{"build implies read", "GET", "/v1/apps/hello", "", bearer(ci), 200, ""},
		{"ci cannot promote", "POST", "/v1/apps/hello/channels/dev/promote", `{"version":"1.0.0"}`, bearer(ci), 403, openapi.ProblemForbidden},
		{"bot promotes its channel", "POST", "/v1/apps/hello/channels/staging/lock", `{"reason":"x"}`, bearer(bot), 200, ""},
		{"bot not another channel", "POST", "/v1/apps/hello/channels/prod/lock", `{}`, bearer(bot), 403, openapi.ProblemForbidden},
		{"bot not another app", "GET", "/v1/apps/other", "", bearer(bot), 403, openapi.ProblemForbidden},
		{"tokens need admin", "GET", "/v1/tokens", "", bearer(reader), 403, openapi.ProblemForbidden},
		{"bad scope", "POST", "/v1/tokens", `{"name":"x","scopes":["root"]}`, bearer(adminToken), 422, openapi.ProblemValidationFailed},
		{"name taken", "POST", "/v1/tokens", `{"name":"ci","scopes":["read"]}`, bearer(adminToken), 409, openapi.ProblemConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.header, tc.body)
			if r.status != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.status)
			}
			if tc.kind != "" && r.problem(t).Type != tc.kind {
				t.Errorf("problem = %s, want %s", r.body, tc.kind)
			}
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	// The actor of a change is the token's name.
	var hist openapi.ChannelHistory
	_ = json.Unmarshal(e.do("GET", "/v1/apps/hello/channels/staging/history", bearer(reader), "").body, &hist)
	if len(hist.Items) != 1 || hist.Items[0].Actor != "release-bot" {
		t.Errorf("history = %+v, want the lock by release-bot", hist.Items)
	}
	// An app-limited token sees only its apps in lists.
	var apps openapi.AppList
	_ = json.Unmarshal(e.do("GET", "/v1/apps", bearer(bot), "").body, &apps)
	if len(apps.Items) != 1 || apps.Items[0].Name != "hello" {
		t.Errorf("apps visible to the bot = %+v", apps.Items)
	}
	// Listing never shows secrets; revoking works at once.
	list := e.do("GET", "/v1/tokens", bearer(adminToken), "")
	if strings.Contains(string(list.body), "slw_") || !strings.Contains(string(list.body), `"portal"`) {
		t.Errorf("token list = %s", list.body)
	}
	if r := e.do("DELETE", "/v1/tokens/portal", bearer(adminToken), ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE token = %d", r.status)
	}
	if r := e.do("GET", "/v1/apps", bearer(reader), ""); r.status != http.StatusUnauthorized {
		t.Errorf("revoked token = %d, want 401", r.status)
	}
	// Secrets never reach Redis in the clear.
	if strings.Contains(snapshot(t, rdb), strings.TrimPrefix(ci, "slw_")) {
		t.Error("a token's secret is stored in Redis")
	}
}

func TestRegistryAuth(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithAdminToken(adminToken))
	e.do("PUT", "/v1/apps/private", bearer(adminToken), `{}`)
	e.do("PUT", "/v1/apps/open", bearer(adminToken), `{"public":true}`)
	reader := e.token("puller", []string{"read"}, nil)
	basic := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:"+reader))}
	r := e.do("GET", "/v2/private/tags/list", nil, "")
	if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") || !strings.Contains(string(r.body), "UNAUTHORIZED") {
		t.Errorf("anonymous pull of a private app = %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
	if r := e.do("GET", "/v2/private/tags/list", basic, ""); r.status != 200 {
		t.Errorf("pull with the token as Basic password = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v2/private/tags/list", bearer(reader), ""); r.status != 200 {
		t.Errorf("pull with a Bearer token = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v2/open/tags/list", nil, ""); r.status != 200 {
		t.Errorf("anonymous pull of a public app = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v2/", nil, ""); r.status != 401 {
		t.Errorf("GET /v2/ without a token = %d, want 401 so docker login asks", r.status)
	}
	if r := e.do("GET", "/v2/", basic, ""); r.status != 200 {
		t.Errorf("GET /v2/ with a token = %d", r.status)
	}
}

func TestRateLimit(t *testing.T) {
	rdb := storetest.Redis(t)
	e := newEnv(t, rdb, api.WithAdminToken(adminToken))
	tok := e.token("chatty", []string{"read"}, nil)
	_ = tok
	// The env's limiter allows 1000/s with bursts of 1000; a tight one is tested in store.
	limited := 0
	for range 50 {
		if r := e.do("GET", "/v1/apps", bearer(tok), ""); r.status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 0 {
		t.Errorf("%d of 50 requests were limited under a generous rate", limited)
	}
}
