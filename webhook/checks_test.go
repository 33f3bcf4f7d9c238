package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

func newChecker(t *testing.T, opts ...Option) *Checker {
	t.Helper()
	k, err := NewChecker(storetest.Redis(t), append([]Option{WithAllowNets(loopback),
		WithBackoff(10*time.Millisecond, 50*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var candidate = Candidate{App: "hello", Channel: "prod", Version: "1.2.0", ImageDigest: "sha256:" + strings.Repeat("ab", 32),
	BuildID: "01JD3Y7Q9V6K2M8N4P5R7S9T1W", Current: &CurrentRelease{Version: "1.1.0", ImageDigest: "sha256:" + strings.Repeat("cd", 32)}}

// TestCheckGates: each hook gets the release, signed so that Verify with the app's
// secret accepts it; 2xx passes, 4xx fails at once quoting a cleaned-up part of the answer,
// 5xx is retried until it passes, a hook that never answers fails at its deadline, and
// the checks of one call run at the same time.
func TestCheckGates(t *testing.T) {
	k := newChecker(t)
	ctx := context.Background()
	never := make(chan struct{})
	ok := newReceiver(t, nil)
	refuse := newReceiver(t, func(n int, w http.ResponseWriter) int {
		w.WriteHeader(http.StatusUnprocessableEntity)
		w.Write([]byte("  staging error rate\n 4.2%\x00\x1b[31m > 1%  "))
		return http.StatusUnprocessableEntity
	})
	flaky := newReceiver(t, func(n int, w http.ResponseWriter) int {
		if n < 3 {
			return http.StatusBadGateway
		}
		return http.StatusNoContent
	})
	busy := newReceiver(t, func(n int, w http.ResponseWriter) int {
		if n == 1 {
			w.Header().Set("Retry-After", "0")
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	later := newReceiver(t, func(n int, w http.ResponseWriter) int {
		w.Header().Set("Retry-After", "3600")
		return http.StatusTooManyRequests
	})
	hang := newReceiver(t, func(n int, w http.ResponseWriter) int {
		<-never
		return http.StatusOK
	})
	t.Cleanup(func() { close(never) }) // before the server's Close, which waits for its handlers
	specs := []CheckSpec{
		{Name: "ok", URL: ok.URL + "/smoke?token=x"},
		{Name: "refuse", URL: refuse.URL},
		{Name: "flaky", URL: flaky.URL, Deadline: time.Minute},
		{Name: "busy", URL: busy.URL},
		{Name: "hang", URL: hang.URL, Timeout: 100 * time.Millisecond, Deadline: 400 * time.Millisecond},
		{Name: "later", URL: later.URL},
	}
	begin := time.Now()
	got := k.Run(ctx, candidate, specs)
	took := time.Since(begin)
	want := []struct {
		status   string
		attempts int
		detail   string
	}{
		{CheckPassed, 1, "the hook answered 200"},
		{CheckFailed, 1, "the hook answered 422: staging error rate 4.2% [31m > 1%"},
		{CheckPassed, 3, "the hook answered 204"},
		{CheckPassed, 2, "the hook answered 200"},
		{CheckFailed, -1, "no passing answer within the deadline 400ms"},
		{CheckFailed, 1, "the hook asked to retry after 1h0m0s, past the deadline 1m0s"},
	}
	for i, w := range want {
		g := got[i]
		if g.Name != specs[i].Name || g.Status != w.status || (w.attempts > 0 && g.Attempts != w.attempts) ||
			!strings.HasPrefix(g.Detail, w.detail) || g.Cached || !strings.HasPrefix(g.CheckID, "chk_") {
			t.Errorf("Run: check %s = %+v, want %s after %d attempts, detail %q", specs[i].Name, g, w.status, w.attempts, w.detail)
		}
	}
	if got[4].Attempts < 2 || !strings.Contains(got[4].Detail, "no answer") {
		t.Errorf("Run: the hanging hook = %+v, want several attempts that each timed out", got[4])
	}
	// The checks ran side by side: the whole took about the longest one's deadline, not the sum.
	if took > 30*time.Second {
		t.Errorf("Run took %s", took)
	}
	if n := len(refuse.requests()); n != 1 {
		t.Errorf("the refusing hook got %d requests, want 1 (a 4xx is not retried)", n)
	}

	secrets, err := k.Secrets(ctx, "hello")
	if err != nil || len(secrets) != 1 || !strings.HasPrefix(secrets[0], "whsec_") {
		t.Fatalf("Secrets = %v, %v", secrets, err)
	}
	for _, r := range []*receiver{ok, refuse, flaky, busy} {
		for _, req := range r.requests() {
			if err := Verify(secrets, req.header.Get(HeaderSignature), req.body, time.Now()); err != nil {
				t.Errorf("a check request does not verify: %v", err)
			}
			if req.header.Get(HeaderEvent) != EventCheck || !strings.HasPrefix(req.header.Get(HeaderDelivery), "chk_") ||
				req.header.Get("Content-Type") != "application/json" {
				t.Errorf("check request headers = %v", req.header)
			}
		}
	}
	var body CheckRequest
	if err := json.Unmarshal(ok.requests()[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if body.App != "hello" || body.Channel != "prod" || body.Version != "1.2.0" || body.Check != "ok" ||
		body.ImageDigest != candidate.ImageDigest || body.BuildID != candidate.BuildID || body.Current == nil ||
		body.Current.Version != "1.1.0" || body.CheckID != got[0].CheckID || body.Time.IsZero() {
		t.Errorf("check body = %+v", body)
	}
	fl := flaky.requests()
	if fl[0].header.Get(HeaderDelivery) != fl[2].header.Get(HeaderDelivery) || string(fl[0].body) != string(fl[2].body) {
		t.Errorf("the retries of one check differ: %s %s", fl[0].body, fl[2].body)
	}

	// The results are recorded, and fresh ones are not asked again.
	vals, err := k.rdb.HGetAll(ctx, store.CheckResultKey("hello", "prod", "1.2.0", "refuse")).Result()
	if err != nil || vals["status"] != CheckFailed || vals["attempts"] != "1" || vals["check_id"] != got[1].CheckID {
		t.Errorf("recorded result = %v, %v", vals, err)
	}
	again := k.Run(ctx, candidate, specs[:2])
	if !again[0].Cached || !again[1].Cached || again[1].Detail != got[1].Detail || len(ok.requests()) != 1 {
		t.Errorf("Run again at once = %+v; the hook got %d requests, want the recorded results and 1", again, len(ok.requests()))
	}
	// Another URL for the same check is asked.
	other := newReceiver(t, nil)
	if r := k.Run(ctx, candidate, []CheckSpec{{Name: "refuse", URL: other.URL}}); r[0].Cached || r[0].Status != CheckPassed {
		t.Errorf("Run with a new URL = %+v, want a new evaluation", r)
	}
	// Past the freshness, the hook is asked again.
	k.now = func() time.Time { return time.Now().Add(time.Minute) }
	if r := k.Run(ctx, candidate, specs[:1]); r[0].Cached || len(ok.requests()) != 2 {
		t.Errorf("Run a minute later = %+v, %d requests; want the hook asked again", r, len(ok.requests()))
	}
}

// TestCheckGuard: a hook on an address webhooks may not reach fails without a request.
func TestCheckGuard(t *testing.T) {
	k, err := NewChecker(storetest.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, nil)
	got := k.Run(context.Background(), candidate, []CheckSpec{{Name: "local", URL: r.URL}})
	if got[0].Status != CheckFailed || got[0].Attempts != 1 || !strings.Contains(got[0].Detail, "loopback") ||
		len(r.requests()) != 0 {
		t.Errorf("Run against loopback = %+v with %d requests, want failed as loopback and none", got, len(r.requests()))
	}
}

// TestChecksSecretRotation: a rotated-out secret signs beside the new one for the grace.
func TestChecksSecretRotation(t *testing.T) {
	k := newChecker(t, WithSecretGrace(time.Hour))
	ctx := context.Background()
	first, err := k.Secret(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := k.Secret(ctx, "hello"); s.Secret != first.Secret || s.PreviousSecret != "" {
		t.Errorf("Secret twice = %+v, want the same secret %s", s, first.Secret)
	}
	rot, err := k.RotateSecret(ctx, "hello")
	if err != nil || rot.Secret == first.Secret || rot.PreviousSecret != first.Secret || rot.PreviousExpiresAt == nil {
		t.Fatalf("RotateSecret = %+v, %v", rot, err)
	}
	r := newReceiver(t, nil)
	k.Run(ctx, candidate, []CheckSpec{{Name: "a", URL: r.URL}})
	req := r.requests()[0]
	for _, s := range []string{first.Secret, rot.Secret} {
		if err := Verify([]string{s}, req.header.Get(HeaderSignature), req.body, time.Now()); err != nil {
			t.Errorf("during the grace, the request does not verify with %s: %v", s[:10], err)
		}
	}
	k.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if s, _ := k.Secrets(ctx, "hello"); len(s) != 1 || s[0] != rot.Secret {
		t.Errorf("Secrets after the grace = %v, want the new one alone", s)
	}
	if err := Verify([]string{"whsec_other"}, req.header.Get(HeaderSignature), req.body, time.Now()); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("Verify with another secret = %v", err)
	}
}

func TestSnippet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 200, ""},
		{"  a\n\nb\tc  ", 200, "a b c"},
		{"\x1b[31mred\x00", 200, "[31mred"},
		{"héllo", 200, "h llo"},
		{strings.Repeat("x", 300), 10, strings.Repeat("x", 10) + "..."},
	} {
		if got := Snippet([]byte(tc.in), tc.n); got != tc.want {
			t.Errorf("Snippet(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
