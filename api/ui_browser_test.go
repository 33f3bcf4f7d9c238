package api_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/store/storetest"
)

var updateScreenshots = flag.Bool("update", false, "write the portal's screenshots to docs/portal/")

// chromium is the system browser the portal's test drives: SLIPWAY_TEST_CHROMIUM, or
// Debian's /usr/bin/chromium, which ./scripts/test.sh installs. Without it the test fails
// under CI=true and is skipped otherwise.
func chromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("SLIPWAY_TEST_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no browser at %s: ./scripts/test.sh installs it (apt-get install chromium)", path)
		}
		t.Skipf("no browser at %s: install it with apt-get install chromium (./scripts/test.sh does), or set SLIPWAY_TEST_CHROMIUM", path)
	}
	return path
}

// axeSource is axe-core's axe.min.js, which ./scripts/test.sh fetches from npm at a pinned
// version into SLIPWAY_TEST_AXE; "" when it is missing (the checks are then skipped,
// except under CI=true, where they fail).
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("SLIPWAY_TEST_AXE")
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("SLIPWAY_TEST_AXE is not set: ./scripts/test.sh fetches axe-core with npm")
		}
		t.Log("SLIPWAY_TEST_AXE is not set, so the accessibility checks are skipped: ./scripts/test.sh fetches axe-core with npm")
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// browserEnv is the portal on a real server on loopback, and a browser at it.
type browserEnv struct {
	*env
	t      *testing.T
	ctx    context.Context
	axe    string
	admin  string
	shots  string // where screenshots go; "" for nowhere
	cspMu  sync.Mutex
	cspErr []string
}

func newBrowserEnv(t *testing.T) *browserEnv {
	t.Helper()
	if os.Getenv("SLIPWAY_TEST_REDIS") == "cluster" {
		t.Skip("the portal's browser test runs once, on the single Redis; its stores are tested on the cluster by the other tests")
	}
	exe := chromium(t)
	rdb := storetest.Redis(t)
	const admin = "portal-test-admin-token"
	e := newEnvWith(t, rdb, nil, func(d *api.Deps) {
		d.Sessions = auth.NewSessions(rdb, 0)
	}, api.WithAdminToken(admin), api.WithEventPoll(20*time.Millisecond), api.WithCredentialCheck(200*time.Millisecond))
	e.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancelTimeout)
	b := &browserEnv{env: e, t: t, ctx: ctx, axe: axeSource(t), admin: admin}
	if *updateScreenshots {
		b.shots = filepath.Join("..", "docs", "portal")
	}
	// Every message the page logs about the Content-Security-Policy is a failure: the
	// portal needs no inline script or style.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if strings.Contains(m.Text, "Content Security Policy") {
				b.cspMu.Lock()
				b.cspErr = append(b.cspErr, m.Text)
				b.cspMu.Unlock()
			}
		}
	}()
	return b
}

// do runs browser steps, failing the test with what was being done.
func (b *browserEnv) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		b.t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
	}
}

// wait waits until the page's expression is true; a page that navigates meanwhile is
// asked again once it has loaded.
func (b *browserEnv) wait(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			loc, _ := chromedp.Run(b.ctx, chromedp.Location())
			body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			b.t.Fatalf("waiting for %s (%s): %v\nat %s:\n%s", what, expr, err, loc, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browserEnv) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).innerText || ""`, sel)))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// check runs axe-core on the page and fails on every serious or critical violation, then
// takes the page's screenshot when asked (-update).
func (b *browserEnv) check(name string) {
	b.t.Helper()
	b.cspMu.Lock()
	if len(b.cspErr) > 0 {
		b.t.Errorf("page %s: Content-Security-Policy violations: %v", name, b.cspErr)
		b.cspErr = nil
	}
	b.cspMu.Unlock()
	if b.axe != "" {
		_, err := chromedp.Run(b.ctx, chromedp.Evaluate[chromedp.Void](b.axe))
		if err != nil {
			b.t.Fatalf("injecting axe-core: %v", err)
		}
		res, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`axe.run(document).then(r => JSON.stringify({
			passes: r.passes.length,
			violations: r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
				.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))}))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			b.t.Fatalf("running axe-core: %v", err)
		}
		var out struct {
			Passes     int
			Violations []map[string]any
		}
		if err := json.Unmarshal([]byte(res), &out); err != nil || out.Passes == 0 {
			b.t.Fatalf("axe-core said %s: %v", res, err)
		}
		for _, v := range out.Violations {
			b.t.Errorf("page %s: axe-core: %v", name, v)
		}
		b.t.Logf("page %s: axe-core: %d rules pass, no serious or critical violation", name, out.Passes)
	}
	if b.shots != "" {
		png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			b.t.Fatal(err)
		}
		if err := os.MkdirAll(b.shots, 0o755); err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
}

// api calls the API as another client would, with the admin token.
func (b *browserEnv) api(method, path, body string, header map[string]string) response {
	b.t.Helper()
	h := map[string]string{"Authorization": "Bearer " + b.admin}
	for k, v := range header {
		h[k] = v
	}
	return b.env.do(method, path, h, body)
}

// TestPortalInBrowser drives the portal in Chromium as a person would: sign in, the grid,
// a build's live log, a promotion through the form with its diff, the grid following a
// move made elsewhere, a stale promotion, a rollback, and signing out.
func TestPortalInBrowser(t *testing.T) {
	b := newBrowserEnv(t)
	b.startWorker()
	u := b.url

	// An app, and a token that may read, build, release and promote it.
	if r := b.api("PUT", "/v1/apps/hello", `{"platforms":["linux/amd64","linux/arm64"]}`, nil); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	r := b.api("POST", "/v1/tokens", `{"name":"release-manager","scopes":["read","build","release","promote"],"apps":["hello"]}`, nil)
	if r.status != http.StatusCreated {
		t.Fatalf("POST token = %d %s", r.status, r.body)
	}
	var tok struct{ Token string }
	_ = json.Unmarshal(r.body, &tok)

	// Sign in: a wrong token is refused in words, the right one opens the grid.
	b.do("open the sign-in page", chromedp.Navigate(u+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.check("signin")
	b.do("sign in with a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "slw_nottoken"), chromedp.Submit(chromedp.CSS("#token")))
	b.wait("the refusal", `!!document.querySelector("#problem")`)
	b.do("sign in", chromedp.SendKeys(chromedp.CSS("#token"), tok.Token), chromedp.Submit(chromedp.CSS("#token")))
	b.wait("the grid", `!!document.querySelector("h1") && document.querySelector("h1").innerText === "Apps"`)
	if got := b.text("#grid"); !strings.Contains(got, "hello") {
		t.Fatalf("the grid shows %q, want the app hello", got)
	}

	// Submit a build and follow its live log to success.
	src := buildertest.Module(t, "hello", map[string]string{"main.go": buildertest.HelloMain})
	r = b.api("POST", "/v1/apps/hello/builds?version=1.0.0", string(src), map[string]string{"Content-Type": "application/gzip"})
	if r.status != http.StatusAccepted {
		t.Fatalf("POST build = %d %s", r.status, r.body)
	}
	build := r.build(t)
	b.do("open the build page", chromedp.Navigate(u+"/ui/apps/hello/builds/"+build.Id))
	b.wait("the build's log to end in success", `document.querySelector("#log").dataset.done === "1"`)
	if st := b.text("#build-status"); st != "succeeded" {
		t.Fatalf("build status on the page = %q (%s), want succeeded (the API says %s); log:\n%s", st, b.text("#log-state"), b.api("GET", "/v1/apps/hello/builds/"+build.Id, "", nil).build(t).Status, b.text("#log"))
	}
	if log := b.text("#log"); !strings.Contains(log, "succeeded") {
		t.Errorf("the followed log does not end with the build's success:\n%s", log)
	}
	b.check("build")

	// A build that fails: the page says why, above the log, and marks the line.
	bad := buildertest.Module(t, "hello", map[string]string{"main.go": "package main\n\nfunc main() { undefinedCall() }\n"})
	r = b.api("POST", "/v1/apps/hello/builds?version=0.0.1", string(bad), map[string]string{"Content-Type": "application/gzip"})
	if r.status != http.StatusAccepted {
		t.Fatalf("POST failing build = %d %s", r.status, r.body)
	}
	b.do("open the failing build", chromedp.Navigate(u+"/ui/apps/hello/builds/"+r.build(t).Id))
	b.wait("the failure to be shown and marked in the log", `document.querySelector("#log").dataset.done === "1" && !!document.querySelector("#failure") && !!document.querySelector("#log mark.fail")`)
	if f := b.text("#failure"); !strings.Contains(f, "compile_failed") || !strings.Contains(f, "undefinedCall") {
		t.Errorf("the failure says %q, want the reason and the compiler's message", f)
	}
	b.check("build-failed")

	// Two releases of it; dev holds 1.0.0.
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if r := b.api("POST", "/v1/apps/hello/releases", `{"build_id":"`+build.Id+`","version":"`+v+`","notes":"release `+v+`"}`, nil); r.status != http.StatusCreated {
			t.Fatalf("POST release %s = %d %s", v, r.status, r.body)
		}
	}
	if r := b.api("POST", "/v1/apps/hello/channels/dev/promote", `{"version":"1.0.0","reason":"first"}`, nil); r.status != http.StatusOK {
		t.Fatalf("promote dev = %d %s", r.status, r.body)
	}

	// Promote dev → staging through the form, the diff shown, with the keyboard alone:
	// Tab from the reason to the button, and Enter.
	b.do("open staging", chromedp.Navigate(u+"/ui/apps/hello/channels/staging"), chromedp.WaitVisible(chromedp.CSS("#diff")))
	if d := b.text("#diff"); !strings.Contains(d, "1.0.0") || !strings.Contains(d, "what dev holds") {
		t.Errorf("the diff section says %q, want the release dev holds", d)
	}
	b.do("type a reason", chromedp.Focus(chromedp.CSS("#promote-reason")), chromedp.KeyEvent("tested in dev"), chromedp.KeyEvent(kb.Tab))
	focused, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	if focused != "promote" {
		t.Fatalf("after Tab from the reason, the focus is on %q, want the promote button", focused)
	}
	b.check("channel-promote")
	b.do("press Enter", chromedp.KeyEvent(kb.Enter))
	b.wait("the promotion", `(document.querySelector(".flash") || {}).innerText === "Promoted: staging now holds 1.0.0."`)

	// The grid follows a move made by another client, without a reload.
	b.do("open the grid", chromedp.Navigate(u+"/ui/"))
	b.wait("the live stream", `document.body.dataset.liveReady === "1"`)
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	if r := b.api("POST", "/v1/apps/hello/channels/dev/promote", `{"version":"1.1.0","reason":"next"}`, nil); r.status != http.StatusOK {
		t.Fatalf("promote dev = %d %s", r.status, r.body)
	}
	b.wait("the dev cell to show 1.1.0", `(document.querySelector('[data-app="hello"][data-channel="dev"] .cell-version') || {}).innerText.startsWith("1.1.0") && window.notReloaded === true`)
	b.check("apps")

	// A stale promotion: another client moves staging after the form was loaded.
	b.do("open staging again", chromedp.Navigate(u+"/ui/apps/hello/channels/staging"), chromedp.WaitVisible(chromedp.CSS("#promote-form")))
	if r := b.api("POST", "/v1/apps/hello/channels/staging/promote", `{"from":"dev","reason":"elsewhere"}`, nil); r.status != http.StatusOK {
		t.Fatalf("promote staging = %d %s", r.status, r.body)
	}
	b.do("promote from the stale form", chromedp.SendKeys(chromedp.CSS("#promote-reason"), "stale"), chromedp.Click(chromedp.CSS("#promote")))
	b.wait("the stale refusal", `!!document.querySelector("#problem")`)
	if p := b.text("#problem"); !strings.Contains(p, "Someone else changed this channel after this page was loaded") || !strings.Contains(p, "412") {
		t.Errorf("the stale promotion says %q, want it explained", p)
	}
	b.check("channel-stale")

	// Roll back through the form: the history links the rollback to what it reverses.
	b.do("roll back", chromedp.SendKeys(chromedp.CSS("#rollback-reason"), "1.1.0 misbehaves"), chromedp.Click(chromedp.CSS("#rollback")))
	b.wait("the rollback", `(document.querySelector(".flash") || {}).innerText === "Rolled back: staging now holds 1.0.0."`)
	if h := b.text("#history"); !strings.Contains(h, "reverses #2") {
		t.Errorf("the history says %q, want the rollback to name the event it reverses", h)
	}
	b.check("channel")

	// The app and the release pages.
	b.do("open the app", chromedp.Navigate(u+"/ui/apps/hello"), chromedp.WaitVisible(chromedp.CSS("#releases-h")))
	b.check("app")
	b.do("open a release", chromedp.Navigate(u+"/ui/apps/hello/releases/1.0.0"), chromedp.WaitVisible(chromedp.CSS("#ref-digest")))
	ref, _ := chromedp.Run(b.ctx, chromedp.Value(chromedp.CSS("#ref-digest")))
	host := strings.TrimPrefix(u, "http://")
	if !strings.HasPrefix(ref, host+"/hello@sha256:") {
		t.Errorf("the release's image reference is %q, want %s/hello@sha256:...", ref, host)
	}
	b.check("release")

	// Sign out: the session is gone on the server, so its cookie opens nothing.
	var session string
	cs, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u + "/ui/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs.Cookies {
		if c.Name == "slipway_session" {
			session = c.Value
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Secure {
				t.Errorf("session cookie HttpOnly %v SameSite %q Secure %v, want HttpOnly, Strict, and not Secure over plain HTTP", c.HTTPOnly, c.SameSite, c.Secure)
			}
		}
	}
	if session == "" {
		t.Fatalf("no session cookie in the browser (%v)", err)
	}
	b.do("sign out", chromedp.Click(chromedp.CSS(".signout button")))
	b.wait("the sign-in page", `!!document.querySelector("#token")`)
	req, _ := http.NewRequest("GET", u+"/ui/apps/hello", nil)
	req.AddCookie(&http.Cookie{Name: "slipway_session", Value: session})
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Path != "/ui/signin" {
		t.Errorf("GET /ui/apps/hello with the signed-out cookie = %d %s, want 303 to /ui/signin", resp.StatusCode, resp.Header.Get("Location"))
	}
}
