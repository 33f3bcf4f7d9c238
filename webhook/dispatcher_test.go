package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/events/eventstest"
	"github.com/slipway/slipway/invalid"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// TestRetriesUntilSuccess: a receiver that answers 500, 500, then 200 gets one
// delivery in three attempts, with the same Slipway-Delivery and a valid signature
// each time.
func TestRetriesUntilSuccess(t *testing.T) {
	rdb := storetest.Redis(t)
	st := newStore(t, rdb, fast()...)
	rec := newReceiver(t, func(n int, _ http.ResponseWriter) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	sub, secret := subscribe(t, st, Spec{URL: rec.URL + "/hook", Actor: "tester"})
	runDispatcher(t, rdb, fast()...)
	evID := eventstest.Write(t, rdb, "hello", events.ChannelPromoted, map[string]any{"channel": "prod"})

	waitFor(t, "the delivery to succeed", func() bool {
		ds := deliveries(t, st, sub.ID)
		return len(ds) == 1 && ds[0].State == StateSucceeded
	})
	reqs := rec.requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(reqs))
	}
	d := deliveries(t, st, sub.ID)[0]
	for i, r := range reqs {
		if got := r.header.Get(HeaderDelivery); got != d.ID {
			t.Errorf("request %d: Slipway-Delivery %q, want %q on every attempt", i+1, got, d.ID)
		}
		if err := Verify([]string{secret}, r.header.Get(HeaderSignature), r.body, time.Now()); err != nil {
			t.Errorf("request %d: Verify = %v", i+1, err)
		}
		if r.header.Get(HeaderEvent) != events.ChannelPromoted || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("request %d headers: %v", i+1, r.header)
		}
		var ev events.Event
		if err := json.Unmarshal(r.body, &ev); err != nil || ev.ID != evID || ev.App != "hello" || ev.Type != events.ChannelPromoted || ev.Actor != "tester" {
			t.Errorf("request %d body = %s (%v), want event %s", i+1, r.body, err, evID)
		}
	}
	if d.Attempts != 3 || d.LastStatus != 200 || d.EventID != evID || d.NextAttemptAt != nil || len(d.Recent) != 3 ||
		d.Recent[0].Status != 500 || d.Recent[2].Status != 200 {
		t.Errorf("delivery = %+v, want succeeded after 3 attempts (500, 500, 200)", d)
	}
}

// TestReceiverDownThenUp: attempts fail while nothing listens; once the receiver is
// up, the event arrives.
func TestReceiverDownThenUp(t *testing.T) {
	rdb := storetest.Redis(t)
	st := newStore(t, rdb, fast()...)
	addr := storetest.FreeAddr(t)
	sub, secret := subscribe(t, st, Spec{URL: "http://" + addr + "/hook"})
	runDispatcher(t, rdb, fast()...)
	eventstest.Write(t, rdb, "hello", events.ReleaseCreated, map[string]any{"version": "1.0.0"})
	waitFor(t, "two failed attempts", func() bool {
		ds := deliveries(t, st, sub.ID)
		return len(ds) == 1 && ds[0].Attempts >= 2
	})
	if d := deliveries(t, st, sub.ID)[0]; d.State != StatePending && d.State != StateDelivering || d.LastStatus != 0 || !strings.Contains(d.LastError, "refused") {
		t.Errorf("while down: %+v, want pending with a connection error", d)
	}
	rec := newReceiverAt(t, addr, nil)
	<-rec.got
	r := rec.requests()[0]
	if err := Verify([]string{secret}, r.header.Get(HeaderSignature), r.body, time.Now()); err != nil {
		t.Errorf("Verify = %v", err)
	}
	waitFor(t, "the delivery to be recorded", func() bool { return deliveries(t, st, sub.ID)[0].State == StateSucceeded })
}

// TestThousandEventsThreeSubscribers: two dispatchers share the work; every receiver
// gets every event at least once and exactly 1 000 distinct deliveries.
func TestThousandEventsThreeSubscribers(t *testing.T) {
	rdb := storetest.Redis(t)
	st := newStore(t, rdb, fast()...)
	var recs []*receiver
	for range 3 {
		rec := newReceiver(t, nil)
		subscribe(t, st, Spec{URL: rec.URL})
		recs = append(recs, rec)
	}
	runDispatcher(t, rdb, fast(WithConsumer("one"), WithConcurrency(16))...)
	runDispatcher(t, rdb, fast(WithConsumer("two"), WithConcurrency(16))...)

	ctx := context.Background()
	apps := []string{"alpha", "beta", "gamma", "delta"}
	for _, a := range apps {
		rdb.ZAdd(ctx, store.AppsIndexKey, redis.Z{Member: a})
	}
	want := map[string]bool{}
	for batch := range 10 {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range 100 {
				id := writeEventNoIndex(p, apps[i%len(apps)], batch*100+i)
				want[id] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, rec := range recs {
		waitFor(t, "1000 distinct deliveries", func() bool {
			byDelivery := map[string]bool{}
			for _, r := range rec.requests() {
				byDelivery[r.header.Get(HeaderDelivery)] = true
			}
			return len(byDelivery) >= 1000
		})
		byDelivery := map[string]string{}
		seen := map[string]bool{}
		for _, r := range rec.requests() {
			var ev events.Event
			if err := json.Unmarshal(r.body, &ev); err != nil {
				t.Fatal(err)
			}
			if prev, ok := byDelivery[r.header.Get(HeaderDelivery)]; ok && prev != ev.ID {
				t.Errorf("receiver %d: delivery %s carried events %s and %s", i, r.header.Get(HeaderDelivery), prev, ev.ID)
			}
			byDelivery[r.header.Get(HeaderDelivery)] = ev.ID
			seen[ev.ID] = true
		}
		if len(byDelivery) != 1000 || len(seen) != 1000 {
			t.Errorf("receiver %d: %d deliveries of %d events, want 1000 of 1000", i, len(byDelivery), len(seen))
		}
		for id := range want {
			if !seen[id] {
				t.Errorf("receiver %d never got event %s", i, id)
				break
			}
		}
		t.Logf("receiver %d: %d requests for 1000 deliveries", i, len(rec.requests()))
	}
}

func writeEventNoIndex(p redis.Pipeliner, app string, i int) string {
	id := deliveryID("test", events.Event{ID: app + string(rune('a'+i%26))}, uint64(time.Now().UnixMilli()+int64(i))) // any ULID
	p.XAdd(context.Background(), &redis.XAddArgs{Stream: store.EventsKey(app), Values: []any{
		"id", id, "type", events.ChannelLocked, "app", app, "actor", "bot", "time", time.Now().UTC().Format(time.RFC3339Nano),
		"data", `{"channel":"prod","event":{"reason":"n ` + id + `"}}`,
	}})
	return id
}

// TestSlackFormat posts a Slack-compatible text.
func TestSlackFormat(t *testing.T) {
	rdb := storetest.Redis(t)
	st := newStore(t, rdb, fast()...)
	rec := newReceiver(t, nil)
	subscribe(t, st, Spec{URL: rec.URL, Format: FormatSlack, Events: []string{"channel.*"}})
	runDispatcher(t, rdb, fast()...)
	eventstest.Write(t, rdb, "hello", events.BuildQueued, map[string]any{}) // filtered out
	eventstest.Write(t, rdb, "hello", events.ChannelPromoted, map[string]any{"channel": "prod",
		"event": map[string]any{"to_version": "1.4.2", "reason": "hotfix for login"}})
	<-rec.got
	var msg map[string]string
	if err := json.Unmarshal(rec.requests()[0].body, &msg); err != nil || len(msg) != 1 ||
		msg["text"] != "hello 1.4.2 promoted to prod by tester: hotfix for login" {
		t.Errorf("slack body = %s (%v)", rec.requests()[0].body, err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(rec.requests()); n != 1 {
		t.Errorf("receiver got %d requests, want 1 (build.queued is not subscribed)", n)
	}
}

// TestSecretRotation: during the grace both secrets sign; after it, only the new one.
func TestSecretRotation(t *testing.T) {
	rdb := storetest.Redis(t)
	grace := 3 * time.Second
	st := newStore(t, rdb, fast(WithSecretGrace(grace))...)
	rec := newReceiver(t, nil)
	sub, old := subscribe(t, st, Spec{URL: rec.URL})
	runDispatcher(t, rdb, fast()...)

	rotated, cur, err := st.RotateSecret(context.Background(), sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cur == old || !strings.HasPrefix(cur, "whsec_") || rotated.PreviousSecretExpiresAt == nil {
		t.Fatalf("RotateSecret = %+v, %q", rotated, cur)
	}
	eventstest.Write(t, rdb, "hello", events.ChannelLocked, nil)
	<-rec.got
	r := rec.requests()[0]
	sig := r.header.Get(HeaderSignature)
	if n := strings.Count(sig, "v1="); n != 2 {
		t.Errorf("during the grace: %q has %d v1 entries, want 2", sig, n)
	}
	for _, s := range []string{old, cur} {
		if err := Verify([]string{s}, sig, r.body, time.Now()); err != nil {
			t.Errorf("during the grace, Verify with one secret = %v", err)
		}
	}

	time.Sleep(time.Until(*rotated.PreviousSecretExpiresAt) + 50*time.Millisecond)
	eventstest.Write(t, rdb, "hello", events.ChannelUnlocked, nil)
	<-rec.got
	r = rec.requests()[1]
	sig = r.header.Get(HeaderSignature)
	if err := Verify([]string{old}, sig, r.body, time.Now()); err == nil {
		t.Errorf("after the grace, the old secret still verifies %q", sig)
	}
	if err := Verify([]string{cur}, sig, r.body, time.Now()); err != nil || strings.Count(sig, "v1=") != 1 {
		t.Errorf("after the grace: %q, Verify(new) = %v; want one valid v1", sig, err)
	}
	if got, err := st.Get(context.Background(), sub.ID); err != nil || got.PreviousSecretExpiresAt != nil {
		t.Errorf("after the grace Get = %+v, %v; want no previous secret", got, err)
	}
}

// TestLeaseReclaim: a dispatcher that claims a delivery and dies leaves it to another
// after the lease; the dead one's late result is dropped.
func TestLeaseReclaim(t *testing.T) {
	rdb := storetest.Redis(t)
	ctx := context.Background()
	st := newStore(t, rdb, fast()...)
	rec := newReceiver(t, nil)
	sub, _ := subscribe(t, st, Spec{URL: rec.URL})
	eventstest.Write(t, rdb, "hello", events.ChannelLocked, nil)
	evs, _, err := events.NewLog(rdb).List(ctx, []string{"hello"}, nil, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	subs, _, _ := st.List(ctx, "", 0)
	if n, err := st.fanOut(ctx, subs, evs); n != 1 || err != nil {
		t.Fatalf("fanOut = %d, %v", n, err)
	}
	if n, _ := st.fanOut(ctx, subs, evs); n != 0 {
		t.Errorf("fanOut again made %d deliveries, want 0", n)
	}
	dead, err := NewDispatcher(rdb, fast(WithTimeout(time.Second), WithVisibility(2*time.Second), WithConsumer("dead"))...)
	if err != nil {
		t.Fatal(err)
	}
	id := deliveries(t, st, sub.ID)[0].ID
	c, ok, err := dead.claim(ctx, id, time.Now())
	if !ok || err != nil {
		t.Fatalf("claim = %v, %v", ok, err)
	}
	claimedAt := time.Now()
	if _, ok, _ := dead.claim(ctx, id, time.Now()); ok {
		t.Fatal("a leased delivery was claimed twice")
	}

	runDispatcher(t, rdb, fast(WithConsumer("alive"))...)
	<-rec.got
	if since := time.Since(claimedAt); since < 2*time.Second {
		t.Errorf("taken over %s after the claim, before the 2s lease ended", since)
	}
	waitFor(t, "the delivery to be recorded", func() bool { return deliveries(t, st, sub.ID)[0].State == StateSucceeded })
	dead.finish(ctx, c, StateFailed, time.Now(), time.Time{}, result{status: 500, err: "late"}, 0)
	if d := deliveries(t, st, sub.ID)[0]; d.State != StateSucceeded || d.Attempts != 1 {
		t.Errorf("after the dead dispatcher's late result: %+v, want succeeded after 1 attempt", d)
	}
}

// TestIngestReclaim: an event a dispatcher read but never fanned out (it died) is
// taken over by another after the visibility timeout.
func TestIngestReclaim(t *testing.T) {
	rdb := storetest.Redis(t)
	ctx := context.Background()
	st := newStore(t, rdb, fast()...)
	rec := newReceiver(t, nil)
	subscribe(t, st, Spec{URL: rec.URL})
	eventstest.Write(t, rdb, "hello", events.ChannelLocked, nil)
	key := store.EventsKey("hello")
	if err := rdb.XGroupCreateMkStream(ctx, key, store.EventsGroup, "0").Err(); err != nil {
		t.Fatal(err)
	}
	read, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: store.EventsGroup, Consumer: "died", Streams: []string{key, ">"}}).Result()
	if err != nil || len(read[0].Messages) != 1 {
		t.Fatalf("XREADGROUP = %v, %v", read, err)
	}
	runDispatcher(t, rdb, fast(WithTimeout(time.Second), WithVisibility(1500*time.Millisecond))...)
	<-rec.got
	waitFor(t, "the entry to be acknowledged", func() bool {
		p, err := rdb.XPending(ctx, key, store.EventsGroup).Result()
		return err == nil && p.Count == 0
	})
}

// TestRetryAfterAndHorizon: a 503 with Retry-After waits as asked; a receiver that
// never succeeds is given up on at the horizon.
func TestRetryAfterAndHorizon(t *testing.T) {
	rdb := storetest.Redis(t)
	slow := fast(WithHorizon(3*time.Second), WithBackoff(20*time.Millisecond, 5*time.Second))
	st := newStore(t, rdb, slow...)
	rec := newReceiver(t, func(n int, w http.ResponseWriter) int {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
		}
		return http.StatusServiceUnavailable
	})
	sub, _ := subscribe(t, st, Spec{URL: rec.URL})
	runDispatcher(t, rdb, slow...)
	eventstest.Write(t, rdb, "hello", events.ChannelLocked, nil)
	waitFor(t, "the delivery to fail", func() bool {
		ds := deliveries(t, st, sub.ID)
		return len(ds) == 1 && ds[0].State == StateFailed
	})
	reqs := rec.requests()
	if gap := reqs[1].at.Sub(reqs[0].at); gap < time.Second {
		t.Errorf("second attempt %s after the first, want at least the 1s of Retry-After", gap)
	}
	d := deliveries(t, st, sub.ID)[0]
	if d.Attempts != len(reqs) || d.LastStatus != 503 || d.NextAttemptAt != nil || d.Attempts < 3 {
		t.Errorf("failed delivery = %+v after %d requests", d, len(reqs))
	}

	// Redelivery sends it again, same id, and the receiver now says yes.
	rec.mu.Lock()
	rec.answer = nil
	rec.mu.Unlock()
	again, err := st.Redeliver(context.Background(), sub.ID, d.ID)
	if err != nil || again.State != StatePending {
		t.Fatalf("Redeliver = %+v, %v", again, err)
	}
	waitFor(t, "the redelivery", func() bool { return deliveries(t, st, sub.ID)[0].State == StateSucceeded })
	last := rec.requests()[len(rec.requests())-1]
	if last.header.Get(HeaderDelivery) != d.ID {
		t.Errorf("redelivery Slipway-Delivery = %q, want %q", last.header.Get(HeaderDelivery), d.ID)
	}
}

// TestRefusedRedirect: a receiver that redirects to cloud metadata gets no request
// through; the attempt records why.
func TestRefusedRedirect(t *testing.T) {
	rdb := storetest.Redis(t)
	st := newStore(t, rdb, fast(WithHorizon(time.Second))...)
	rec := newReceiver(t, func(_ int, w http.ResponseWriter) int {
		w.Header().Set("Location", "http://169.254.169.254/latest/meta-data/")
		return http.StatusTemporaryRedirect
	})
	sub, _ := subscribe(t, st, Spec{URL: rec.URL})
	runDispatcher(t, rdb, fast()...)
	eventstest.Write(t, rdb, "hello", events.ChannelLocked, nil)
	waitFor(t, "an attempt", func() bool {
		ds := deliveries(t, st, sub.ID)
		return len(ds) == 1 && ds[0].Attempts > 0
	})
	if d := deliveries(t, st, sub.ID)[0]; !strings.Contains(d.LastError, "169.254.169.254 is a link-local (cloud metadata) address") {
		t.Errorf("delivery = %+v, want the refused address in its error", d)
	}
}

// TestSubscriptionValidation covers what Create refuses.
func TestSubscriptionValidation(t *testing.T) {
	rdb := storetest.Redis(t)
	open := newStore(t, rdb)
	tests := []struct {
		name  string
		spec  Spec
		field string // the field named, or "refused"
	}{
		{"no url", Spec{}, "url"},
		{"ftp", Spec{URL: "ftp://example.com/"}, "url"},
		{"relative", Spec{URL: "/hook"}, "url"},
		{"credentials", Spec{URL: "https://u:p@example.com/"}, "url"},
		{"unknown event", Spec{URL: "https://example.com/", Events: []string{"build.exploded"}}, "events[0]"},
		{"bad app", Spec{URL: "https://example.com/", Apps: []string{"Bad_App"}}, "apps[0]"},
		{"bad format", Spec{URL: "https://example.com/", Format: "xml"}, "format"},
		{"loopback", Spec{URL: "http://127.0.0.1:8080/"}, "refused"},
		{"metadata", Spec{URL: "http://169.254.169.254/"}, "refused"},
		{"private", Spec{URL: "http://10.0.0.1/"}, "refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := open.Create(context.Background(), tc.spec)
			var ve *invalid.Error
			var re *RefusedError
			switch {
			case tc.field == "refused":
				if !errors.As(err, &re) {
					t.Errorf("Create = %v, want a RefusedError", err)
				}
			case !errors.As(err, &ve) || ve.Fields[0].Field != tc.field:
				t.Errorf("Create = %v, want a validation error on %s", err, tc.field)
			}
		})
	}
	sub, secret, err := open.Create(context.Background(), Spec{URL: "https://example.com/hook", Events: []string{"build.*", "build.*"}, Apps: []string{"hello"}})
	if err != nil || sub.Format != FormatJSON || len(sub.Events) != 1 || !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("Create = %+v %q %v", sub, secret, err)
	}
	if err := open.Delete(context.Background(), sub.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := open.Get(context.Background(), sub.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
}
