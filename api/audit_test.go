package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
	"github.com/slipway/slipway/webhook"
)

// TestAuditRecordsTheTokenID: two tokens named bot, the second made after the first was
// revoked, build, release and promote. Everything that records who did it (channel
// history, the channel, releases, the event list and webhook payloads) shows the same
// actor, bot, and tells the two apart by actor_id: the ids their creation answered.
func TestAuditRecordsTheTokenID(t *testing.T) {
	rdb := storetest.Redis(t)
	opts := []webhook.Option{webhook.WithAllowNets(testNets), webhook.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		webhook.WithTimeout(2 * time.Second), webhook.WithVisibility(5 * time.Second)}
	e := newEventsEnv(t, rdb, opts, api.WithAdminToken(adminToken))
	e.startWorker()
	admin := bearer(adminToken)
	if r := e.do("PUT", "/v1/apps/hello", admin, `{"platforms":["linux/amd64"]}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}

	var mu sync.Mutex
	type payload struct {
		Type    string `json:"type"`
		Actor   string `json:"actor"`
		ActorID string `json:"actor_id"`
	}
	var payloads []payload
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev payload
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Errorf("webhook payload %s: %v", b, err)
		}
		mu.Lock()
		payloads = append(payloads, ev)
		mu.Unlock()
	}))
	defer recv.Close()
	r := e.do("POST", "/v1/webhooks", admin, `{"url":"`+recv.URL+`","apps":["hello"]}`)
	var sub openapi.WebhookSecret
	if err := json.Unmarshal(r.body, &sub); r.status != http.StatusCreated || err != nil {
		t.Fatalf("POST /v1/webhooks = %d %s", r.status, r.body)
	}
	if sub.CreatedBy != "admin" || deref(sub.CreatedById) != "admin" {
		t.Errorf("webhook created by %q (%q), want admin (admin)", sub.CreatedBy, deref(sub.CreatedById))
	}
	runWebhookDispatcher(t, e, opts)

	// ship builds, releases and promotes version as the token.
	ship := func(tok, version string) {
		t.Helper()
		src := buildertest.Module(t, "hello", map[string]string{"main.go": buildertest.HelloMain})
		r := e.do("POST", "/v1/apps/hello/builds?version="+version,
			map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/gzip"}, string(src))
		if r.status != http.StatusAccepted {
			t.Fatalf("POST build %s = %d %s", version, r.status, r.body)
		}
		if b := e.waitBuildAs("hello", r.build(t).Id, admin); b.Status != openapi.BuildStatusSucceeded {
			t.Fatalf("build %s = %s %+v", version, b.Status, b.Error)
		} else if r := e.do("POST", "/v1/apps/hello/releases", bearer(tok), `{"build_id":"`+b.Id+`"}`); r.status != http.StatusCreated {
			t.Fatalf("POST release %s = %d %s", version, r.status, r.body)
		}
		if r := e.do("POST", "/v1/apps/hello/channels/dev/promote", bearer(tok), `{"version":"`+version+`"}`); r.status != http.StatusOK {
			t.Fatalf("promote %s = %d %s", version, r.status, r.body)
		}
	}
	const scopes = `"scopes":["build","release","promote"],"apps":["hello"]`
	first := e.createToken(adminToken, `{"name":"bot",`+scopes+`}`).tokenCreated(t)
	ship(first.Token, "1.0.0")
	if r := e.do("DELETE", "/v1/tokens/bot", admin, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE bot = %d %s", r.status, r.body)
	}
	second := e.createToken(adminToken, `{"name":"bot",`+scopes+`}`).tokenCreated(t)
	ship(second.Token, "2.0.0")
	if first.Id == second.Id || first.Id == "" {
		t.Fatalf("token ids %q and %q, want two", first.Id, second.Id)
	}
	idOf := map[string]string{"1.0.0": first.Id, "2.0.0": second.Id}

	var hist openapi.ChannelHistory
	_ = json.Unmarshal(e.do("GET", "/v1/apps/hello/channels/dev/history", admin, "").body, &hist)
	if len(hist.Items) != 2 {
		t.Fatalf("history = %+v, want two promotions", hist.Items)
	}
	for _, ev := range hist.Items {
		if v := deref(ev.ToVersion); ev.Actor != "bot" || deref(ev.ActorId) != idOf[v] {
			t.Errorf("history: promotion of %s by %q (%q), want bot (%s)", v, ev.Actor, deref(ev.ActorId), idOf[v])
		}
	}
	var ch openapi.Channel
	_ = json.Unmarshal(e.do("GET", "/v1/apps/hello/channels/dev", admin, "").body, &ch)
	if deref(ch.UpdatedBy) != "bot" || deref(ch.UpdatedById) != second.Id {
		t.Errorf("channel updated by %q (%q), want bot (%s)", deref(ch.UpdatedBy), deref(ch.UpdatedById), second.Id)
	}
	for v, id := range idOf {
		var rel openapi.Release
		_ = json.Unmarshal(e.do("GET", "/v1/apps/hello/releases/"+v, admin, "").body, &rel)
		if rel.CreatedBy != "bot" || deref(rel.CreatedById) != id {
			t.Errorf("release %s created by %q (%q), want bot (%s)", v, rel.CreatedBy, deref(rel.CreatedById), id)
		}
	}

	// Each token's events: its build queued and succeeded, its release, its promotion.
	wantTypes := []string{"build.queued", "build.succeeded", "release.created", "channel.promoted"}
	var list openapi.EventList
	_ = json.Unmarshal(e.do("GET", "/v1/events?app=hello", admin, "").body, &list)
	byID := map[string][]string{}
	for _, ev := range list.Items {
		if ev.Actor != "bot" {
			t.Errorf("event %s by %q, want bot", ev.Type, ev.Actor)
		}
		byID[deref(ev.ActorId)] = append(byID[deref(ev.ActorId)], string(ev.Type))
	}
	for _, id := range []string{first.Id, second.Id} {
		got := byID[id]
		slices.Reverse(got) // newest first
		if !slices.Equal(got, wantTypes) {
			t.Errorf("GET /v1/events: events with actor_id %s = %v, want %v", id, got, wantTypes)
		}
	}
	if len(byID) != 2 {
		t.Errorf("GET /v1/events: actor_ids %v, want %s and %s", byID, first.Id, second.Id)
	}

	waitUntil(t, "eight webhook deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(payloads) >= 8 })
	mu.Lock()
	defer mu.Unlock()
	perID := map[string]int{}
	for _, ev := range payloads {
		if ev.Actor != "bot" {
			t.Errorf("webhook payload %s by %q, want bot", ev.Type, ev.Actor)
		}
		perID[ev.ActorID]++
	}
	if len(perID) != 2 || perID[first.Id] != 4 || perID[second.Id] != 4 {
		t.Errorf("webhook payloads per actor_id = %v, want 4 each for %s and %s", perID, first.Id, second.Id)
	}
}

// TestAuditAnonymousAndAdmin: without authentication the actor_id is anonymous; with
// it, the server's admin token acts as admin.
func TestAuditAnonymousAndAdmin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []api.Option
		header map[string]string
		want   string
	}{
		{"authentication off", nil, nil, "anonymous"},
		{"admin token", []api.Option{api.WithAdminToken(adminToken)}, bearer(adminToken), "admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, storetest.Redis(t), tc.opts...)
			if r := e.do("PUT", "/v1/apps/hello", tc.header, `{}`); r.status != http.StatusCreated {
				t.Fatalf("PUT app = %d %s", r.status, r.body)
			}
			e.moveAs(tc.header, "hello", 0)
			var hist openapi.ChannelHistory
			_ = json.Unmarshal(e.do("GET", "/v1/apps/hello/channels/dev/history", tc.header, "").body, &hist)
			if len(hist.Items) != 1 || hist.Items[0].Actor != tc.want || deref(hist.Items[0].ActorId) != tc.want {
				t.Errorf("history = %+v, want the lock by %s with actor_id %s", hist.Items, tc.want, tc.want)
			}
			var list openapi.EventList
			_ = json.Unmarshal(e.do("GET", "/v1/events?app=hello", tc.header, "").body, &list)
			if len(list.Items) != 1 || list.Items[0].Actor != tc.want || deref(list.Items[0].ActorId) != tc.want {
				t.Errorf("events = %+v, want the lock by %s with actor_id %s", list.Items, tc.want, tc.want)
			}
		})
	}
}

// TestEventsWrittenBeforeActorIDs: an entry written before actor ids (no actor_id field)
// reads back without one, and matches the spec.
func TestEventsWrittenBeforeActorIDs(t *testing.T) {
	rdb := storetest.Redis(t)
	e := newEnv(t, rdb)
	if r := e.do("PUT", "/v1/apps/hello", nil, `{}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	if err := rdb.XAdd(t.Context(), &redis.XAddArgs{Stream: store.EventsKey("hello"), Values: []any{
		"id", "01JD3Y7Q9V6K2M8N4P5R7S9T1W", "type", "channel.locked", "app", "hello", "actor", "old-bot",
		"time", time.Now().UTC().Format(time.RFC3339Nano), "data", `{"channel":"dev"}`,
	}}).Err(); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/v1/events?app=hello", nil, "")
	var list openapi.EventList
	if err := json.Unmarshal(r.body, &list); r.status != http.StatusOK || err != nil || len(list.Items) != 1 {
		t.Fatalf("GET /v1/events = %d %s", r.status, r.body)
	}
	if ev := list.Items[0]; ev.Actor != "old-bot" || ev.ActorId != nil {
		t.Errorf("old event = actor %q, actor_id %v; want old-bot and none", ev.Actor, ev.ActorId)
	}
}

// runWebhookDispatcher runs a webhook dispatcher on the env's Redis until the test ends.
func runWebhookDispatcher(t *testing.T, e *env, opts []webhook.Option) {
	t.Helper()
	d, err := webhook.NewDispatcher(e.rdb, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}
