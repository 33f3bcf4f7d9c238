package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store/storetest"
)

// testClock is a settable clock for soaks and windows.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// gatedApp is dev → staging → prod with a 24 h soak, one approval and a Friday freeze
// into prod.
const gatedApp = `{"channels":[{"name":"dev"},{"name":"staging","from":"dev"},{"name":"prod","from":"staging",
  "gates":{"soak":"24h","approvals":1,"windows":[{"kind":"deny","rrule":"FREQ=WEEKLY;BYDAY=FR;BYHOUR=12","duration":"60h","time_zone":"Europe/Berlin","reason":"weekend freeze"}]}}]}`

func gateStatuses(gs []openapi.GateState) string {
	var out []string
	for _, g := range gs {
		out = append(out, g.Gate+"="+string(g.Status))
	}
	return strings.Join(out, " ")
}

func TestGatesAPI(t *testing.T) {
	rdb := storetest.Redis(t)
	clk := &testClock{}
	clk.ns.Store(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC).UnixNano()) // a Wednesday
	e := newEnvWith(t, rdb, nil, func(d *api.Deps) {
		apps := release.NewApps(rdb, builder.AppChecker{Toolchain: loadToolchain(t)})
		d.Apps = apps
		d.Releases = release.NewReleases(rdb, d.Blobs, anyBuild{})
		d.Channels = release.NewChannels(rdb, apps, release.WithClock(clk.Now))
	}, api.WithAdminToken(adminToken))
	admin := bearer(adminToken)

	// The configuration: refused with field paths, then taken and shown back.
	bad := strings.Replace(gatedApp, `"soak":"24h"`, `"soak":"forever"`, 1)
	bad = strings.Replace(bad, `"time_zone":"Europe/Berlin"`, `"time_zone":"Europe/Atlantis"`, 1)
	r := e.do("PUT", "/v1/apps/hello", admin, bad)
	p := r.problem(t)
	if r.status != http.StatusUnprocessableEntity || p.Errors == nil || len(*p.Errors) != 2 ||
		(*p.Errors)[0].Field != "channels[2].gates.soak" || (*p.Errors)[1].Pointer != "/channels/2/gates/windows/0/time_zone" {
		t.Fatalf("PUT app with bad gates = %d %s", r.status, r.body)
	}
	if r := e.do("PUT", "/v1/apps/hello", admin, gatedApp); r.status != http.StatusCreated || r.app(t).Channels[2].Gates == nil ||
		r.app(t).Channels[2].Gates.Approvals == nil || *r.app(t).Channels[2].Gates.Approvals != 1 {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}

	ci := e.token("ci", []string{"release", "promote"}, nil)
	alice := e.token("alice", []string{"approve:prod"}, nil)
	bob := e.token("bob", []string{"approve:staging"}, nil)
	boss := e.token("boss", []string{"promote", "override:prod"}, nil)
	ship := func(v string) {
		t.Helper()
		if r := e.do("POST", "/v1/apps/hello/releases", bearer(ci), `{"build_id":"b-`+v+`"}`); r.status != http.StatusCreated {
			t.Fatalf("POST release = %d %s", r.status, r.body)
		}
		for _, ch := range []string{"dev", "staging"} {
			if r := e.do("POST", "/v1/apps/hello/channels/"+ch+"/promote", bearer(ci), `{"version":"`+v+`"}`); r.status != http.StatusOK {
				t.Fatalf("promote %s = %d %s", ch, r.status, r.body)
			}
		}
	}
	ship("1.0.0")

	// The dry run, and the promotion it predicts.
	var rep openapi.GateReport
	r = e.do("GET", "/v1/apps/hello/channels/prod/gates?version=1.0.0", bearer(alice), "")
	if err := json.Unmarshal(r.body, &rep); err != nil || r.status != http.StatusOK || rep.Allowed ||
		gateStatuses(rep.Gates) != "soak=pending approvals=failed windows=passed" || rep.Gates[0].RetryAt == nil {
		t.Fatalf("GET gates = %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/apps/hello/channels/prod/promote", bearer(ci), `{"from":"staging","reason":"ship"}`)
	p = r.problem(t)
	if r.status != http.StatusConflict || p.Type != openapi.ProblemGatesFailed || p.Gates == nil ||
		gateStatuses(*p.Gates) != "soak=pending approvals=failed windows=passed" || !strings.Contains(deref(p.Detail), "0 of 1 approvals") {
		t.Fatalf("promote past gates = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/apps/hello/channels/prod/gates?from=nope", bearer(alice), ""); r.status != http.StatusNotFound {
		t.Errorf("GET gates from an unknown channel = %d %s", r.status, r.body)
	}

	// Approvals: the release's creator does not count; scopes decide who may approve.
	var ap openapi.Approval
	r = e.do("POST", "/v1/apps/hello/channels/prod/approvals", bearer(ci), `{"version":"1.0.0"}`)
	if r.status != http.StatusForbidden {
		t.Errorf("approve without the approve scope = %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/prod/approvals", bearer(bob), `{"version":"1.0.0"}`); r.status != http.StatusForbidden ||
		!strings.Contains(deref(r.problem(t).Detail), "approve:prod") {
		t.Errorf("approve with approve:staging = %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/apps/hello/channels/prod/approvals", bearer(alice), `{"version":"1.0.0","reason":"looked at the canary"}`)
	if err := json.Unmarshal(r.body, &ap); err != nil || r.status != http.StatusCreated || !ap.Counts || ap.Actor != "alice" {
		t.Fatalf("approve = %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/prod/approvals", bearer(alice), `{"version":"1.0.0"}`); r.status != http.StatusOK {
		t.Errorf("approve again = %d %s, want 200 with the first", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/prod/approvals", bearer(alice), `{"version":"9.9.9"}`); r.status != http.StatusNotFound {
		t.Errorf("approve a missing release = %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/prod/approvals", bearer(alice), `{"version":"1.0.0","extra":1}`); r.status != http.StatusBadRequest && r.status != http.StatusUnprocessableEntity {
		t.Errorf("approve with an unknown field = %d %s", r.status, r.body)
	}
	var list openapi.ApprovalList
	r = e.do("GET", "/v1/apps/hello/channels/prod/approvals?version=1.0.0", bearer(bob), "")
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != http.StatusOK || len(list.Items) != 1 {
		t.Fatalf("list approvals = %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/v1/apps/hello/channels/prod/approvals/1.0.0", bearer(alice), ""); r.status != http.StatusOK {
		t.Fatalf("revoke = %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/v1/apps/hello/channels/prod/approvals/1.0.0", bearer(alice), ""); r.status != http.StatusNotFound {
		t.Errorf("revoke again = %d %s", r.status, r.body)
	}
	e.do("POST", "/v1/apps/hello/channels/prod/approvals", bearer(alice), `{"version":"1.0.0"}`)

	// Override: its own scope, a reason, and a loud record.
	if r := e.do("POST", "/v1/apps/hello/channels/prod/promote", bearer(ci), `{"version":"1.0.0","override":true,"reason":"x"}`); r.status != http.StatusForbidden ||
		!strings.Contains(deref(r.problem(t).Detail), "override:prod") {
		t.Errorf("override without the scope = %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/prod/promote", bearer(boss), `{"version":"1.0.0","override":true}`); r.status != http.StatusUnprocessableEntity {
		t.Errorf("override without a reason = %d %s", r.status, r.body)
	}
	var mv openapi.ChannelMove
	r = e.do("POST", "/v1/apps/hello/channels/prod/promote", bearer(boss), `{"version":"1.0.0","override":true,"reason":"incident 42"}`)
	if err := json.Unmarshal(r.body, &mv); err != nil || r.status != http.StatusOK || mv.Event == nil || mv.Event.Override == nil ||
		gateStatuses(mv.Event.Override.Gates) != "soak=pending" || mv.Gates == nil {
		t.Fatalf("override = %d %s", r.status, r.body)
	}

	// Soaked and approved, the next release goes without an override.
	ship("1.1.0")
	e.do("POST", "/v1/apps/hello/channels/prod/approvals", bearer(alice), `{"version":"1.1.0"}`)
	clk.advance(25 * time.Hour)
	r = e.do("GET", "/v1/apps/hello/channels/prod/gates?from=staging", bearer(ci), "")
	if err := json.Unmarshal(r.body, &rep); err != nil || !rep.Allowed || rep.Version != "1.1.0" {
		t.Fatalf("GET gates after the soak = %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/prod/promote", bearer(ci), `{"from":"staging","reason":"soaked"}`); r.status != http.StatusOK {
		t.Fatalf("promote = %d %s", r.status, r.body)
	}
	if r := e.do("DELETE", "/v1/apps/hello/channels/prod/approvals/1.1.0", bearer(alice), ""); r.status != http.StatusConflict {
		t.Errorf("revoke after the move = %d %s", r.status, r.body)
	}

	// A rollback pins; unpin unpins.
	var ch openapi.Channel
	r = e.do("POST", "/v1/apps/hello/channels/prod/rollback", bearer(ci), `{"reason":"errors up"}`)
	if err := json.Unmarshal(r.body, &mv); err != nil || mv.Channel.Pinned == nil || !*mv.Channel.Pinned || mv.Channel.Pin == nil ||
		mv.Channel.Pin.Reason != "errors up" || mv.Event.Pinned == nil {
		t.Fatalf("rollback = %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/apps/hello/channels/prod/unpin", bearer(ci), `{"reason":"fixed"}`)
	mv = openapi.ChannelMove{}
	if err := json.Unmarshal(r.body, &mv); err != nil || r.status != http.StatusOK || mv.Channel.Pinned != nil || mv.Event.Action != "unpin" {
		t.Fatalf("unpin = %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/apps/hello/channels/prod", bearer(ci), "")
	if err := json.Unmarshal(r.body, &ch); err != nil || ch.Since == nil {
		t.Errorf("GET channel = %s, want since", r.body)
	}
	var hist openapi.ChannelHistory
	r = e.do("GET", "/v1/apps/hello/channels/prod/history", bearer(ci), "")
	_ = json.Unmarshal(r.body, &hist)
	var actions []string
	for _, ev := range hist.Items {
		actions = append(actions, string(ev.Action))
	}
	if got := strings.Join(actions, " "); got != "unpin rollback promote approve promote approve revoke approve" {
		t.Errorf("history = %s", got)
	}
}
