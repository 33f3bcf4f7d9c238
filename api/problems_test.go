package api_test

import (
	"testing"

	"github.com/slipway/slipway/store/storetest"
)

// TestProblemDetailSaysItOnce checks that a problem's detail does not begin with the
// words of the error kind its title already names ("not found: no app named ...").
func TestProblemDetailSaysItOnce(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.do("PUT", "/v1/apps/hello", nil, `{}`)
	e.do("POST", "/v1/apps/hello/channels/dev/lock", nil, `{"reason":"freeze"}`)
	for _, tc := range []struct {
		method, path, body, want string
	}{
		{"GET", "/v1/apps/nope", "", `no app named "nope"`},
		{"GET", "/v1/apps/hello/releases/9.9.9", "", `hello has no release "9.9.9"`},
		{"POST", "/v1/apps/hello/channels/dev/promote", `{"version":"9.9.9"}`, "dev is locked (freeze); unlock it first, or roll back"},
		{"PUT", "/v1/apps/hello", `{}`, `app "hello" exists; If-None-Match: * only creates`},
	} {
		h := map[string]string{}
		if tc.method == "PUT" {
			h["If-None-Match"] = "*"
		}
		p := e.do(tc.method, tc.path, h, tc.body).problem(t)
		if p.Detail == nil || *p.Detail != tc.want {
			t.Errorf("%s %s: detail %v, want %q", tc.method, tc.path, deref(p.Detail), tc.want)
		}
	}
}
