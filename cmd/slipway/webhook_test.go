package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
	"github.com/slipway/slipway/webhook"
)

// webhookEnv is the environment of slipway processes that share one Redis, with short
// webhook timings and loopback receivers allowed.
func webhookEnv(t *testing.T) []string {
	return []string{
		"SLIPWAY_REDIS_URL=" + storetest.RedisURL(t),
		"SLIPWAY_WORKERS=0",
		"SLIPWAY_WEBHOOK_ALLOW_NETS=127.0.0.0/8",
		"SLIPWAY_WEBHOOK_MIN_BACKOFF=100ms",
		"SLIPWAY_WEBHOOK_MAX_BACKOFF=500ms",
		"SLIPWAY_WEBHOOK_TIMEOUT=2s",
		"SLIPWAY_WEBHOOK_VISIBILITY=3s",
	}
}

func hookCall(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

// hookKill ends a slipway process with SIGKILL, as a crash would.
func hookKill(t *testing.T, p *process) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil // for the cleanup
}

func hookDeliveries(t *testing.T, base, hook string) []openapi.Delivery {
	t.Helper()
	var l openapi.DeliveryList
	if code := hookCall(t, "GET", base+"/v1/webhooks/"+hook+"/deliveries", "", &l); code != 200 {
		t.Fatalf("GET deliveries = %d", code)
	}
	return l.Items
}

func hookWait(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hookReceiver records what it is sent on addr; hold, while set, makes it hang.
type hookReceiver struct {
	mu       sync.Mutex
	headers  []http.Header
	bodies   [][]byte
	hold     chan struct{}
	received chan struct{}
}

func startHookReceiver(t *testing.T, addr string, hold chan struct{}) *hookReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{hold: hold, received: make(chan struct{}, 100)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.headers, r.bodies = append(r.headers, req.Header.Clone()), append(r.bodies, b)
		hold := r.hold
		r.hold = nil // only the first request hangs
		r.mu.Unlock()
		r.received <- struct{}{}
		if hold != nil {
			select {
			case <-hold:
			case <-req.Context().Done():
			}
			return
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *hookReceiver) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.received:
	case <-time.After(time.Minute):
		t.Fatal("the receiver got nothing within a minute")
	}
}

// hookSetUp creates the app and a subscription to a receiver at addr; it returns the
// subscription.
func hookSetUp(t *testing.T, base, addr string) openapi.WebhookSecret {
	t.Helper()
	if code := hookCall(t, "PUT", base+"/v1/apps/hello", `{}`, nil); code != 201 {
		t.Fatalf("PUT app = %d", code)
	}
	var hook openapi.WebhookSecret
	if code := hookCall(t, "POST", base+"/v1/webhooks", `{"url":"http://`+addr+`/hook"}`, &hook); code != 201 {
		t.Fatalf("POST /v1/webhooks = %d", code)
	}
	if code := hookCall(t, "POST", base+"/v1/apps/hello/channels/prod/lock", `{"reason":"freeze"}`, nil); code != 200 {
		t.Fatalf("lock = %d", code)
	}
	return hook
}

// TestWebhookSurvivesRestart: the receiver is down, slipway is killed between attempts,
// a new slipway takes over from Redis, the receiver comes up: the event arrives, signed,
// under the delivery id it had from the start.
func TestWebhookSurvivesRestart(t *testing.T) {
	env := webhookEnv(t)
	first := startServe(t, env)
	addr := storetest.FreeAddr(t)
	hook := hookSetUp(t, first.url, addr)
	hookWait(t, time.Minute, "two failed attempts", func() bool {
		ds := hookDeliveries(t, first.url, hook.Id)
		return len(ds) == 1 && ds[0].Attempts >= 2
	})
	before := hookDeliveries(t, first.url, hook.Id)[0]
	hookKill(t, first)

	rec := startHookReceiver(t, addr, nil)
	second := startServe(t, env)
	rec.wait(t)
	rec.mu.Lock()
	h, body := rec.headers[0], rec.bodies[0]
	rec.mu.Unlock()
	if h.Get("Slipway-Delivery") != before.Id || h.Get("Slipway-Event") != "channel.locked" {
		t.Errorf("delivery %q of %q, want %q of channel.locked", h.Get("Slipway-Delivery"), h.Get("Slipway-Event"), before.Id)
	}
	if err := webhook.Verify([]string{hook.Secret}, h.Get("Slipway-Signature"), body, time.Now()); err != nil {
		t.Errorf("Verify = %v", err)
	}
	hookWait(t, time.Minute, "the delivery to be recorded", func() bool {
		ds := hookDeliveries(t, second.url, hook.Id)
		return ds[0].State == openapi.DeliveryStateSucceeded && ds[0].Attempts > before.Attempts
	})
}

// TestWebhookKilledMidDelivery: slipway dies while the receiver holds its request open;
// the next slipway takes the delivery over once the lease ends and completes it.
func TestWebhookKilledMidDelivery(t *testing.T) {
	env := webhookEnv(t)
	first := startServe(t, env)
	addr := storetest.FreeAddr(t)
	hold := make(chan struct{})
	defer close(hold)
	rec := startHookReceiver(t, addr, hold)
	hook := hookSetUp(t, first.url, addr)
	rec.wait(t) // the first attempt is in flight, and hangs
	hookKill(t, first)

	second := startServe(t, env)
	rec.wait(t)
	rec.mu.Lock()
	if a, b := rec.headers[0].Get("Slipway-Delivery"), rec.headers[1].Get("Slipway-Delivery"); a != b || a == "" {
		t.Errorf("the retry's Slipway-Delivery %q differs from the first %q", b, a)
	}
	rec.mu.Unlock()
	hookWait(t, time.Minute, "the delivery to be recorded", func() bool {
		ds := hookDeliveries(t, second.url, hook.Id)
		return len(ds) == 1 && ds[0].State == openapi.DeliveryStateSucceeded
	})
}
