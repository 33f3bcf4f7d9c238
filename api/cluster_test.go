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

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
	"github.com/slipway/slipway/webhook"
)

// TestRedisCluster runs what touches every kind of key once on a Redis Cluster of 3
// masters, where a command or script over keys of several hash slots fails (CROSSSLOT):
// apps created, listed and deleted (the apps index and each app's slot), a token made,
// used and revoked (the tokens index and the token's key), a build submitted, claimed,
// built and acknowledged (the queue and the app's keys), a release and a promotion (one
// script of the app's slot), the events of two apps read as one list and one stream, and
// fanned out to a webhook (every app's events stream, the {webhooks} slot).
func TestRedisCluster(t *testing.T) {
	rdb := storetest.RedisCluster(t)
	opts := []webhook.Option{webhook.WithAllowNets(testNets), webhook.WithBackoff(20*time.Millisecond, 200*time.Millisecond)}
	e := newEventsEnv(t, rdb, opts, api.WithAdminToken(adminToken))
	admin := bearer(adminToken)
	e.startWorker()

	var mu sync.Mutex
	var delivered []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Type, App string }
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &ev)
		mu.Lock()
		delivered = append(delivered, ev.App+" "+ev.Type)
		mu.Unlock()
	}))
	defer recv.Close()
	if r := e.do("POST", "/v1/webhooks", admin, `{"url":"`+recv.URL+`"}`); r.status != http.StatusCreated {
		t.Fatalf("POST /v1/webhooks = %d %s", r.status, r.body)
	}
	d, err := webhook.NewDispatcher(rdb, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Apps "hello" and "other" hash to different slots (of different masters).
	for _, app := range []string{"hello", "other", "gone"} {
		if r := e.do("PUT", "/v1/apps/"+app, admin, `{"platforms":["linux/amd64"],"auto_promote":true}`); r.status != http.StatusCreated {
			t.Fatalf("PUT app %s = %d %s", app, r.status, r.body)
		}
	}
	if r := e.do("DELETE", "/v1/apps/gone", admin, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE app gone = %d %s", r.status, r.body)
	}
	var apps openapi.AppList
	if r := e.do("GET", "/v1/apps", admin, ""); r.status != http.StatusOK || json.Unmarshal(r.body, &apps) != nil {
		t.Fatalf("GET /v1/apps = %d %s", r.status, r.body)
	}
	var names []string
	for _, a := range apps.Items {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"hello", "other"}) {
		t.Errorf("GET /v1/apps = %v, want [hello other]", names)
	}

	watcher := e.token("watcher", []string{"read"}, nil)
	stream := e.openStream("/v1/events", watcher)
	ci := e.token("ci", []string{"build", "release", "promote"}, []string{"hello"})
	if r := e.do("GET", "/v1/tokens", admin, ""); r.status != http.StatusOK {
		t.Errorf("GET /v1/tokens = %d %s", r.status, r.body)
	}

	src := buildertest.Module(t, "hello", map[string]string{"main.go": buildertest.HelloMain})
	r := e.do("POST", "/v1/apps/hello/builds?version=1.0.0", map[string]string{"Authorization": "Bearer " + ci, "Content-Type": "application/gzip"}, string(src))
	if r.status != http.StatusAccepted {
		t.Fatalf("POST build = %d %s", r.status, r.body)
	}
	b := e.waitBuildAs("hello", r.build(t).Id, bearer(ci))
	if b.Status != openapi.BuildStatusSucceeded {
		t.Fatalf("build = %s %+v", b.Status, b.Error)
	}
	for _, s := range []struct{ path, body string }{
		{"/v1/apps/hello/releases", `{"build_id":"` + b.Id + `"}`},
		{"/v1/apps/hello/channels/staging/promote", `{"version":"1.0.0","reason":"qa"}`},
	} {
		if r := e.do("POST", s.path, bearer(ci), s.body); r.status != http.StatusCreated && r.status != http.StatusOK {
			t.Fatalf("POST %s = %d %s", s.path, r.status, r.body)
		}
	}
	e.moveAs(admin, "other", 0)

	if r := e.do("DELETE", "/v1/tokens/ci", admin, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE /v1/tokens/ci = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/apps/hello", bearer(ci), ""); r.status != http.StatusUnauthorized {
		t.Errorf("GET with a revoked token = %d, want 401", r.status)
	}

	want := []string{"hello build.queued", "hello build.succeeded", "hello release.created", "hello channel.promoted", "other channel.locked"}
	has := func(got []string) bool {
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	}
	waitUntil(t, "the deliveries of both apps' events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return has(delivered)
	})

	var list openapi.EventList
	if r := e.do("GET", "/v1/events", admin, ""); r.status != http.StatusOK || json.Unmarshal(r.body, &list) != nil {
		t.Fatalf("GET /v1/events = %d %s", r.status, r.body)
	}
	var listed []string
	for _, ev := range list.Items {
		listed = append(listed, ev.App+" "+string(ev.Type))
	}
	if !has(listed) {
		t.Errorf("GET /v1/events = %v, want %v among them", listed, want)
	}

	var streamed []string
	for !has(streamed) {
		m, ok := stream.next(t, 30*time.Second)
		if !ok {
			t.Fatalf("the event stream ended after %v, want %v among them", streamed, want)
		}
		var ev openapi.Event
		_ = json.Unmarshal([]byte(m.data), &ev)
		streamed = append(streamed, ev.App+" "+string(ev.Type))
	}
}
