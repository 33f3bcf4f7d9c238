package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
	"github.com/slipway/slipway/webhook"
)

// subscribeAs makes a subscription to apps (none: every app) as the token and returns
// its id.
func (e *env) subscribeAs(tok string, apps ...string) string {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"url": "http://127.0.0.1:9/hook", "apps": apps})
	r := e.do("POST", "/v1/webhooks", bearer(tok), string(body))
	var sub openapi.WebhookSecret
	if err := json.Unmarshal(r.body, &sub); r.status != http.StatusCreated || err != nil {
		e.t.Fatalf("POST /v1/webhooks %s = %d %s", body, r.status, r.body)
	}
	return sub.Id
}

// TestListWebhooksLimitedToken: a token limited to some apps pages over the
// subscriptions within them alone, however many others lie between: every page but the
// last is full, and every cursor names a subscription it may see.
func TestListWebhooksLimitedToken(t *testing.T) {
	e := newEventsEnv(t, storetest.Redis(t), []webhook.Option{webhook.WithAllowNets(testNets)}, api.WithAdminToken(adminToken))
	tok := e.token("hooks", []string{"admin"}, []string{"a", "b"})
	var want []string
	others := func(n int) {
		for i := range n {
			switch i % 3 {
			case 0:
				e.subscribeAs(adminToken) // every app
			case 1:
				e.subscribeAs(adminToken, "c")
			default:
				e.subscribeAs(adminToken, "a", "c")
			}
		}
	}
	others(5)
	want = append(want, e.subscribeAs(adminToken, "a"), e.subscribeAs(tok), e.subscribeAs(adminToken, "b", "a"))
	others(130) // more than one read of the store between two it may see
	want = append(want, e.subscribeAs(adminToken, "b"), e.subscribeAs(tok, "a"))
	others(2)
	want = append(want, e.subscribeAs(adminToken, "a"), e.subscribeAs(adminToken, "b"))
	others(4)

	for _, limit := range []int{1, 2, 3, 7, 100} {
		var got []string
		path := "/v1/webhooks?limit=" + itoa(int64(limit))
		for pages := 0; ; pages++ {
			if pages > len(want) {
				t.Fatalf("limit %d: more pages than subscriptions", limit)
			}
			r := e.do("GET", path, bearer(tok), "")
			var page openapi.WebhookList
			if err := json.Unmarshal(r.body, &page); r.status != http.StatusOK || err != nil {
				t.Fatalf("GET %s = %d %s", path, r.status, r.body)
			}
			for _, w := range page.Items {
				got = append(got, w.Id)
			}
			if page.NextCursor == nil {
				break
			}
			if len(page.Items) != limit {
				t.Errorf("limit %d: a page of %d before the last", limit, len(page.Items))
			}
			if after, err := base64.RawURLEncoding.DecodeString(*page.NextCursor); err != nil || !slices.Contains(want, string(after)) {
				t.Errorf("limit %d: next_cursor names %q, not a subscription the token may see", limit, after)
			}
			path = "/v1/webhooks?limit=" + itoa(int64(limit)) + "&cursor=" + *page.NextCursor
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: paged %v, want %v", limit, got, want)
		}
	}
	// Unlimited tokens page over every subscription as before.
	var page openapi.WebhookList
	_ = json.Unmarshal(e.do("GET", "/v1/webhooks?limit=2", bearer(adminToken), "").body, &page)
	if len(page.Items) != 2 || page.NextCursor == nil {
		t.Errorf("first page of 2 for the admin = %+v", page)
	}
}

// TestWebhookOutsideTheTokensAppsIsUnknown: for a token limited to some apps, every
// route of a subscription outside them answers exactly as an unknown id does (404, the
// same problem), and changes nothing.
func TestWebhookOutsideTheTokensAppsIsUnknown(t *testing.T) {
	e := newEventsEnv(t, storetest.Redis(t), []webhook.Option{webhook.WithAllowNets(testNets)}, api.WithAdminToken(adminToken))
	tok := e.token("hooks", []string{"admin"}, []string{"a"})
	const unknown = "01JD3Y7Q9V6K2M8N4P5R7S9T1W"
	const delivery = "01JD3Y7Q9V6K2M8N4P5R7S9T1X"
	mine := e.subscribeAs(tok)
	for _, tc := range []struct {
		name string
		apps []string
	}{
		{"another app", []string{"b"}},
		{"its app and another", []string{"a", "b"}},
		{"every app", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			foreign := e.subscribeAs(adminToken, tc.apps...)
			before := e.do("GET", "/v1/webhooks/"+foreign, bearer(adminToken), "")
			for _, rt := range []struct{ method, path string }{
				{"GET", "/v1/webhooks/{id}"},
				{"POST", "/v1/webhooks/{id}/rotate-secret"},
				{"GET", "/v1/webhooks/{id}/deliveries"},
				{"GET", "/v1/webhooks/{id}/deliveries/" + delivery},
				{"POST", "/v1/webhooks/{id}/deliveries/" + delivery + "/redeliver"},
				{"DELETE", "/v1/webhooks/{id}"},
			} {
				path := func(id string) string { return strings.ReplaceAll(rt.path, "{id}", id) }
				got := e.do(rt.method, path(foreign), bearer(tok), "")
				ref := e.do(rt.method, path(unknown), bearer(tok), "")
				if got.status != http.StatusNotFound || ref.status != http.StatusNotFound {
					t.Errorf("%s %s: %d for another's subscription, %d for an unknown id; want 404 for both", rt.method, rt.path, got.status, ref.status)
					continue
				}
				gp, rp := got.problem(t), ref.problem(t)
				if gp.Type != rp.Type || strings.ReplaceAll(deref(gp.Detail), foreign, unknown) != deref(rp.Detail) {
					t.Errorf("%s %s: another's subscription answers %s, an unknown id %s", rt.method, rt.path, got.body, ref.body)
				}
			}
			if after := e.do("GET", "/v1/webhooks/"+foreign, bearer(adminToken), ""); after.status != http.StatusOK || string(after.body) != string(before.body) {
				t.Errorf("the subscription after the limited token's calls = %d %s, want %s", after.status, after.body, before.body)
			}
		})
	}
	// Its own subscriptions it reads, as before.
	if r := e.do("GET", "/v1/webhooks/"+mine, bearer(tok), ""); r.status != http.StatusOK {
		t.Errorf("GET its own subscription = %d %s, want 200", r.status, r.body)
	}
}
