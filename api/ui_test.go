package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store/storetest"
)

// portal is a browser of the portal without JavaScript: a cookie jar, no redirects
// followed.
type portal struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newPortal(t *testing.T, base string) *portal {
	jar, _ := cookiejar.New(nil)
	return &portal{t: t, base: base, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (p *portal) do(method, path string, form url.Values, header map[string]string) page {
	p.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, p.base+path, body)
	if err != nil {
		p.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(b)}
}

func (p *portal) signIn(token string) {
	p.t.Helper()
	r := p.do("POST", "/ui/signin", url.Values{"token": {token}, "next": {"/ui/"}}, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/ui/" {
		p.t.Fatalf("POST /ui/signin = %d %s, want 303 to /ui/:\n%s", r.status, r.header.Get("Location"), r.body)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (r page) csrf(t *testing.T) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", r.body)
	}
	return m[1]
}

// TestPortalSessions: the cookie carries a session id only, with HttpOnly and
// SameSite=Strict; every form needs the session's CSRF token and a same-origin request;
// a revoked token ends its session; sign-out ends it on the server.
func TestPortalSessions(t *testing.T) {
	rdb := storetest.Redis(t)
	const admin = "portal-sessions-admin"
	e := newEnvWith(t, rdb, nil, func(d *api.Deps) { d.Sessions = auth.NewSessions(rdb, 0) }, api.WithAdminToken(admin))
	bearer := map[string]string{"Authorization": "Bearer " + admin}
	for _, app := range []string{"hello", "other"} {
		if r := e.do("PUT", "/v1/apps/"+app, bearer, `{}`); r.status != http.StatusCreated {
			t.Fatalf("PUT app = %d %s", r.status, r.body)
		}
	}
	r := e.do("POST", "/v1/tokens", bearer, `{"name":"reader","scopes":["read"],"apps":["hello"]}`)
	var tok struct{ Token string }
	if err := json.Unmarshal(r.body, &tok); err != nil || tok.Token == "" {
		t.Fatalf("POST token = %d %s", r.status, r.body)
	}

	p := newPortal(t, e.url)
	// Signed out, a page sends the browser to sign in.
	if r := p.do("GET", "/ui/apps/hello", nil, nil); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/ui/signin?next=") {
		t.Fatalf("GET a page signed out = %d %s, want 303 to the sign-in", r.status, r.header.Get("Location"))
	}
	// A wrong token, and a sign-in from another origin, are refused.
	if r := p.do("POST", "/ui/signin", url.Values{"token": {"slw_wrong"}}, nil); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "not valid") {
		t.Errorf("sign-in with a wrong token = %d, want 401 said in words", r.status)
	}
	if r := p.do("POST", "/ui/signin", url.Values{"token": {tok.Token}}, map[string]string{"Origin": "https://evil.example"}); r.status != http.StatusForbidden {
		t.Errorf("sign-in from another origin = %d, want 403", r.status)
	}

	r2 := p.do("POST", "/ui/signin", url.Values{"token": {tok.Token}, "next": {"https://evil.example/"}}, nil)
	if r2.header.Get("Location") != "/ui/" {
		t.Errorf("sign-in with next=https://evil.example/ goes to %q, want /ui/", r2.header.Get("Location"))
	}
	ck := r2.header.Get("Set-Cookie")
	if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") || strings.Contains(ck, "Secure") ||
		strings.Contains(ck, tok.Token) || strings.Contains(ck, auth.HashToken(tok.Token)) {
		t.Errorf("session cookie %q: want HttpOnly, SameSite=Strict, not Secure over HTTP, and no token in it", ck)
	}

	// The headers of every page.
	grid := p.do("GET", "/ui/", nil, nil)
	if grid.status != http.StatusOK {
		t.Fatalf("GET /ui/ = %d:\n%s", grid.status, grid.body)
	}
	for h, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
	} {
		if got := grid.header.Get(h); !strings.HasPrefix(got, want) {
			t.Errorf("%s: %q, want %q...", h, got, want)
		}
	}
	if !strings.Contains(grid.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("CSP %q lacks frame-ancestors 'none'", grid.header.Get("Content-Security-Policy"))
	}
	if strings.Contains(grid.body, "<script>") || strings.Contains(grid.body, " style=") || strings.Contains(grid.body, "https://") {
		t.Errorf("the grid has inline script or style, or a third-party address:\n%s", grid.body)
	}
	// Only what the token may read; no button it may not use.
	if !strings.Contains(grid.body, `href="/ui/apps/hello"`) || strings.Contains(grid.body, "other") {
		t.Errorf("the grid of a token limited to hello:\n%s", grid.body)
	}
	if r := p.do("GET", "/ui/apps/other", nil, nil); r.status != http.StatusForbidden {
		t.Errorf("GET another app's page = %d, want 403", r.status)
	}
	ch := p.do("GET", "/ui/apps/hello/channels/dev", nil, nil)
	if ch.status != http.StatusOK || strings.Contains(ch.body, `id="promote-form"`) || strings.Contains(ch.body, `id="rollback-form"`) || strings.Contains(ch.body, `id="lock-form"`) {
		t.Errorf("the channel page of a read-only token = %d, with forms it may not use:\n%s", ch.status, ch.body)
	}
	csrf := ch.csrf(t)
	// The server still checks: a read-only token's lock is refused.
	if r := p.do("POST", "/ui/apps/hello/channels/dev/lock", url.Values{"csrf": {csrf}, "if_match": {"0"}, "reason": {"x"}}, nil); r.status != http.StatusForbidden {
		t.Errorf("a read-only token's lock = %d, want 403", r.status)
	}
	// A form without the session's CSRF token, or from another site, is refused.
	if r := p.do("POST", "/ui/signout", url.Values{"csrf": {"forged"}}, nil); r.status != http.StatusForbidden {
		t.Errorf("sign-out with a forged CSRF token = %d, want 403", r.status)
	}
	if r := p.do("POST", "/ui/signout", url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.status != http.StatusForbidden {
		t.Errorf("sign-out from another site = %d, want 403", r.status)
	}

	// Revoking the token ends its session.
	if r := e.do("DELETE", "/v1/tokens/reader", bearer, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE token = %d %s", r.status, r.body)
	}
	if r := p.do("GET", "/ui/", nil, nil); r.status != http.StatusSeeOther {
		t.Errorf("GET /ui/ after the token was revoked = %d, want 303 to the sign-in", r.status)
	}

	// Sign-out ends the session on the server.
	p.signIn(admin)
	csrf = p.do("GET", "/ui/", nil, nil).csrf(t)
	u, _ := url.Parse(e.url + "/ui/")
	old := p.c.Jar.Cookies(u)
	if r := p.do("POST", "/ui/signout", url.Values{"csrf": {csrf}}, map[string]string{"Origin": e.url}); r.status != http.StatusSeeOther {
		t.Fatalf("sign-out = %d", r.status)
	}
	p.c.Jar.SetCookies(u, old)
	if r := p.do("GET", "/ui/", nil, nil); r.status != http.StatusSeeOther {
		t.Errorf("GET /ui/ with the signed-out cookie = %d, want 303 to the sign-in", r.status)
	}
	if r := p.do("POST", "/ui/apps/hello/channels/dev/lock", url.Values{"csrf": {csrf}, "if_match": {"0"}, "reason": {"x"}}, nil); r.status != http.StatusForbidden {
		t.Errorf("a form with the signed-out cookie = %d, want 403", r.status)
	}
}

// TestPortalRefusals: a move the channel refuses is explained in words, with its status,
// and changes nothing.
func TestPortalRefusals(t *testing.T) {
	rdb := storetest.Redis(t)
	e := newEnvWith(t, rdb, nil, func(d *api.Deps) { d.Sessions = auth.NewSessions(rdb, 0) })
	if r := e.do("PUT", "/v1/apps/hello", nil, `{}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	p := newPortal(t, e.url)
	// Without authentication, signing in needs no token.
	if r := p.do("GET", "/ui/signin", nil, nil); r.status != http.StatusOK || strings.Contains(r.body, `id="token"`) {
		t.Errorf("the sign-in page of a server without authentication = %d, asking for a token", r.status)
	}
	p.signIn("")
	if r := p.do("GET", "/ui/apps/nosuch", nil, nil); r.status != http.StatusNotFound || !strings.Contains(r.body, "Back to the apps") {
		t.Errorf("GET an app that does not exist = %d, want 404 and a page:\n%s", r.status, r.body)
	}
	ch := p.do("GET", "/ui/apps/hello/channels/dev", nil, nil)
	csrf := ch.csrf(t)
	move := func(action string, form url.Values) page {
		form.Set("csrf", csrf)
		return p.do("POST", "/ui/apps/hello/channels/dev/"+action, form, nil)
	}
	for _, tc := range []struct {
		name   string
		action string
		form   url.Values
		status int
		words  string
	}{
		{"no reason", "lock", url.Values{"if_match": {"0"}}, http.StatusUnprocessableEntity, "A reason is required."},
		{"stale", "lock", url.Values{"if_match": {"7"}, "reason": {"freeze"}}, http.StatusPreconditionFailed, "Someone else changed this channel after this page was loaded"},
		{"missing release", "promote", url.Values{"if_match": {"0"}, "reason": {"go"}, "version": {"9.9.9"}}, http.StatusNotFound, "Not found, so nothing was done."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := move(tc.action, tc.form)
			if r.status != tc.status || !strings.Contains(r.body, tc.words) {
				t.Errorf("%s = %d, want %d saying %q:\n%s", tc.action, r.status, tc.status, tc.words, r.body)
			}
		})
	}
	if r := move("lock", url.Values{"if_match": {"0"}, "reason": {"release freeze"}}); r.status != http.StatusSeeOther {
		t.Fatalf("lock = %d:\n%s", r.status, r.body)
	}
	if r := p.do("POST", "/ui/apps/hello/channels/nochan/lock", url.Values{"csrf": {csrf}, "if_match": {"0"}, "reason": {"x"}}, nil); r.status != http.StatusNotFound || !strings.Contains(r.body, "nochan") {
		t.Errorf("lock of a channel that does not exist = %d, want 404 naming it:\n%s", r.status, r.body)
	}
	ch = p.do("GET", "/ui/apps/hello/channels/dev", nil, nil)
	if !strings.Contains(ch.body, "release freeze") || !strings.Contains(ch.body, `action="/ui/apps/hello/channels/dev/unlock"`) {
		t.Errorf("the locked channel's page shows no lock reason or unlock form:\n%s", ch.body)
	}
	r := move("promote", url.Values{"if_match": {"1"}, "reason": {"go"}, "version": {"1.0.0"}})
	if r.status != http.StatusLocked || !strings.Contains(r.body, "The channel is locked, so nothing was done.") {
		t.Errorf("promote into a locked channel = %d:\n%s", r.status, r.body)
	}
}

// TestPortalSecureCookie: the session cookie is Secure when the browser came over TLS, as
// a trusted proxy says in X-Forwarded-Proto; an untrusted peer's header is ignored.
func TestPortalSecureCookie(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []netip.Prefix
		secure  bool
	}{
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, true},
		{"no trusted proxy", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := storetest.Redis(t)
			e := newEnvWith(t, rdb, nil, func(d *api.Deps) { d.Sessions = auth.NewSessions(rdb, 0) }, api.WithTrustedProxies(tc.proxies))
			p := newPortal(t, e.url)
			r := p.do("POST", "/ui/signin", url.Values{}, map[string]string{"X-Forwarded-Proto": "https"})
			ck := r.header.Get("Set-Cookie")
			if r.status != http.StatusSeeOther || strings.Contains(ck, "; Secure") != tc.secure {
				t.Errorf("sign-in behind X-Forwarded-Proto: https = %d, cookie %q, want Secure %v", r.status, ck, tc.secure)
			}
		})
	}
}

// TestPortalGatesRefusal: the channel page shows a gated promotion's gates before the
// form is sent, and a promotion they refuse is explained gate by gate, with nothing moved.
func TestPortalGatesRefusal(t *testing.T) {
	rdb := storetest.Redis(t)
	e := newEnvWith(t, rdb, nil, func(d *api.Deps) {
		d.Sessions = auth.NewSessions(rdb, 0)
		d.Releases = release.NewReleases(rdb, d.Blobs, anyBuild{})
	})
	app := `{"channels":[{"name":"dev"},{"name":"staging","from":"dev","gates":{"approvals":1}}]}`
	if r := e.do("PUT", "/v1/apps/hello", nil, app); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/releases", nil, `{"build_id":"b-1.0.0"}`); r.status != http.StatusCreated {
		t.Fatalf("POST release = %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/dev/promote", nil, `{"version":"1.0.0"}`); r.status != http.StatusOK {
		t.Fatalf("promote dev = %d %s", r.status, r.body)
	}
	p := newPortal(t, e.url)
	p.signIn("")
	ch := p.do("GET", "/ui/apps/hello/channels/staging", nil, nil)
	if !strings.Contains(ch.body, `class="gate-failed"`) || !strings.Contains(ch.body, "approvals") {
		t.Errorf("the staging page does not show the failing approvals gate before the promotion:\n%s", ch.body)
	}
	r := p.do("POST", "/ui/apps/hello/channels/staging/promote", url.Values{"csrf": {ch.csrf(t)}, "if_match": {"0"},
		"reason": {"ship it"}, "version": {"1.0.0"}}, nil)
	if r.status != http.StatusConflict || !strings.Contains(r.body, "Not every gate of this channel passes, so nothing was done.") ||
		!strings.Contains(r.body, "approvals (failed)") {
		t.Errorf("a promotion the gates refuse = %d, want 409 saying which gate:\n%s", r.status, r.body)
	}
	if st := e.do("GET", "/v1/apps/hello/channels/staging", nil, ""); !strings.Contains(string(st.body), `"release":null`) {
		t.Errorf("staging after the refused promotion = %s, want no release", st.body)
	}
}
