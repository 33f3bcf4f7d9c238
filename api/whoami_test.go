package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// TestWhoami asks who each caller is: any token may, the admin token is admin, and a
// server without authentication answers anonymous with every scope.
func TestWhoami(t *testing.T) {
	rdb := storetest.Redis(t)
	e := newEnv(t, rdb, api.WithAdminToken(adminToken))
	bot := e.token("release-bot", []string{"promote:staging"}, []string{"hello"})
	open := newEnv(t, rdb)
	for _, tc := range []struct {
		name   string
		env    *env
		header map[string]string
		want   openapi.Whoami
	}{
		{"limited token", e, bearer(bot), openapi.Whoami{Name: "release-bot", Scopes: []string{"promote:staging"}, Apps: []string{"hello"}, Authenticated: true}},
		{"admin token", e, bearer(adminToken), openapi.Whoami{Name: "admin", Id: "admin", Scopes: []string{"admin"}, Apps: []string{}, Authenticated: true}},
		{"no authentication", open, nil, openapi.Whoami{Name: "anonymous", Id: "anonymous", Scopes: []string{"read", "build", "release", "promote", "admin"}, Apps: []string{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.env.do("GET", "/v1/whoami", tc.header, "")
			var got openapi.Whoami
			if err := json.Unmarshal(r.body, &got); err != nil || r.status != http.StatusOK {
				t.Fatalf("GET /v1/whoami = %d %s", r.status, r.body)
			}
			if tc.want.Id == "" && strings.HasPrefix(got.Id, "tok_") {
				tc.want.Id = got.Id // a token's id is made with it
			}
			if got.Name != tc.want.Name || got.Id != tc.want.Id || !slices.Equal(got.Scopes, tc.want.Scopes) ||
				!slices.Equal(got.Apps, tc.want.Apps) || got.Authenticated != tc.want.Authenticated {
				t.Errorf("GET /v1/whoami = %+v, want %+v", got, tc.want)
			}
		})
	}
	if r := e.do("GET", "/v1/whoami", nil, ""); r.status != http.StatusUnauthorized {
		t.Errorf("GET /v1/whoami without a token = %d, want 401", r.status)
	}
	if r := e.do("GET", "/v1/whoami", bearer("slw_nope"), ""); r.status != http.StatusUnauthorized {
		t.Errorf("GET /v1/whoami with a bad token = %d, want 401", r.status)
	}
}
