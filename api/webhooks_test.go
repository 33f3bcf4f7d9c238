package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
	"github.com/slipway/slipway/webhook"
)

var testNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func TestWebhookTargetsRefused(t *testing.T) {
	rdb := storetest.Redis(t)
	strict := newEventsEnv(t, rdb, nil)
	allowing := newEventsEnv(t, rdb, []webhook.Option{webhook.WithAllowNets(testNets)})
	for _, tc := range []struct {
		name string
		e    *env
		url  string
		addr string
	}{
		{"loopback without the allow list", strict, "http://127.0.0.1:9/hook", "127.0.0.1"},
		{"localhost without the allow list", strict, "http://localhost:9/hook", ""},
		{"cloud metadata", allowing, "http://169.254.169.254/latest/meta-data/", "169.254.169.254"},
		{"private", allowing, "http://10.1.2.3/", "10.1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.e.do("POST", "/v1/webhooks", nil, `{"url":"`+tc.url+`"}`)
			p := r.problem(t)
			if r.status != 422 || p.Type != openapi.ProblemTargetRefused || !strings.Contains(deref(p.Detail), tc.addr) ||
				p.Errors == nil || (*p.Errors)[0].Field != "url" {
				t.Errorf("POST %s = %d %s, want 422 target-refused naming %s", tc.url, r.status, r.body, tc.addr)
			}
			if strings.Contains(string(r.body), "whsec_") {
				t.Errorf("the problem holds a secret: %s", r.body)
			}
		})
	}
	r := allowing.do("POST", "/v1/webhooks", nil, `{"url":"http://127.0.0.1:9/hook"}`)
	if r.status != 201 {
		t.Errorf("POST with 127.0.0.0/8 allowed = %d %s", r.status, r.body)
	}
}

func TestWebhooksOverHTTP(t *testing.T) {
	rdb := storetest.Redis(t)
	opts := []webhook.Option{webhook.WithAllowNets(testNets), webhook.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		webhook.WithTimeout(2 * time.Second), webhook.WithVisibility(5 * time.Second)}
	e := newEventsEnv(t, rdb, opts, api.WithAdminToken(adminToken))
	admin := bearer(adminToken)
	if r := e.do("PUT", "/v1/apps/hello", admin, `{}`); r.status != 201 {
		t.Fatalf("PUT app = %d", r.status)
	}

	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
	}))
	defer recv.Close()
	received := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }

	reader := e.token("portal", []string{"read"}, nil)
	if r := e.do("POST", "/v1/webhooks", bearer(reader), `{"url":"`+recv.URL+`"}`); r.status != 403 {
		t.Errorf("POST /v1/webhooks with read = %d, want 403", r.status)
	}
	for _, body := range []string{`{"url":"ftp://x/"}`, `{"url":"` + recv.URL + `","events":["nope"]}`, `{"url":"` + recv.URL + `","format":"xml"}`} {
		if r := e.do("POST", "/v1/webhooks", admin, body); r.status != 422 || r.problem(t).Type != openapi.ProblemValidationFailed {
			t.Errorf("POST %s = %d %s, want 422 validation-failed", body, r.status, r.body)
		}
	}

	r := e.do("POST", "/v1/webhooks", admin, `{"url":"`+recv.URL+`/hook","events":["channel.*"],"apps":["hello"]}`)
	if r.status != 201 {
		t.Fatalf("POST /v1/webhooks = %d %s", r.status, r.body)
	}
	var created openapi.WebhookSecret
	_ = json.Unmarshal(r.body, &created)
	if !strings.HasPrefix(created.Secret, "whsec_") || created.Format != "json" || r.header.Get("Location") != "/v1/webhooks/"+created.Id ||
		r.header.Get("Cache-Control") != "no-store" || created.CreatedBy != "admin" {
		t.Errorf("created = %+v, headers %v", created, r.header)
	}
	for _, path := range []string{"/v1/webhooks", "/v1/webhooks/" + created.Id} {
		r := e.do("GET", path, admin, "")
		if r.status != 200 || strings.Contains(string(r.body), created.Secret) || strings.Contains(string(r.body), `"secret"`) {
			t.Errorf("GET %s = %d %s, want 200 without the secret", path, r.status, r.body)
		}
	}

	d, err := webhook.NewDispatcher(rdb, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	e.moveAs(admin, "hello", 0)
	waitUntil(t, "the delivery", func() bool { return received() == 1 })
	mu.Lock()
	req, body := got[0], bodies[0]
	mu.Unlock()
	if err := webhook.Verify([]string{created.Secret}, req.Header.Get("Slipway-Signature"), body, time.Now()); err != nil {
		t.Errorf("Verify = %v", err)
	}

	var list openapi.DeliveryList
	waitUntil(t, "the delivery to be recorded", func() bool {
		r := e.do("GET", "/v1/webhooks/"+created.Id+"/deliveries", admin, "")
		_ = json.Unmarshal(r.body, &list)
		return r.status == 200 && len(list.Items) == 1 && list.Items[0].State == "succeeded"
	})
	dl := list.Items[0]
	if dl.Id != req.Header.Get("Slipway-Delivery") || dl.EventType != "channel.locked" || dl.Attempts != 1 || deref(dl.LastStatus) != 200 {
		t.Errorf("delivery = %+v", dl)
	}
	if r := e.do("GET", "/v1/webhooks/"+created.Id+"/deliveries/"+dl.Id, admin, ""); r.status != 200 {
		t.Errorf("GET delivery = %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/webhooks/"+created.Id+"/deliveries/"+dl.Id+"/redeliver", admin, "")
	if r.status != 202 {
		t.Fatalf("redeliver = %d %s", r.status, r.body)
	}
	waitUntil(t, "the redelivery", func() bool { return received() == 2 })
	mu.Lock()
	if got[1].Header.Get("Slipway-Delivery") != dl.Id {
		t.Errorf("redelivery has Slipway-Delivery %q, want %q", got[1].Header.Get("Slipway-Delivery"), dl.Id)
	}
	mu.Unlock()

	r = e.do("POST", "/v1/webhooks/"+created.Id+"/rotate-secret", admin, "")
	var rotated openapi.WebhookSecret
	_ = json.Unmarshal(r.body, &rotated)
	if r.status != 200 || rotated.Secret == created.Secret || rotated.PreviousSecretExpiresAt == nil {
		t.Errorf("rotate = %d %s", r.status, r.body)
	}
	e.moveAs(admin, "hello", 1)
	waitUntil(t, "the delivery after the rotation", func() bool { return received() == 3 })
	mu.Lock()
	sig := got[2].Header.Get("Slipway-Signature")
	for _, secret := range []string{created.Secret, rotated.Secret} {
		if err := webhook.Verify([]string{secret}, sig, bodies[2], time.Now()); err != nil {
			t.Errorf("after the rotation, Verify with one secret = %v (%s)", err, sig)
		}
	}
	mu.Unlock()

	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/webhooks/01JD3Y7Q9V6K2M8N4P5R7S9T1W", 404},
		{"GET", "/v1/webhooks/not-an-id", 404},
		{"GET", "/v1/webhooks/" + created.Id + "/deliveries/01JD3Y7Q9V6K2M8N4P5R7S9T1W", 404},
		{"POST", "/v1/webhooks/" + created.Id + "/deliveries/01JD3Y7Q9V6K2M8N4P5R7S9T1W/redeliver", 404},
		{"GET", "/v1/webhooks?cursor=!!", 400},
		{"DELETE", "/v1/webhooks/" + created.Id, 204},
		{"GET", "/v1/webhooks/" + created.Id, 404},
		{"DELETE", "/v1/webhooks/" + created.Id, 404},
	} {
		if r := e.do(tc.method, tc.path, admin, ""); r.status != tc.status {
			t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, r.status, r.body, tc.status)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 60s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
