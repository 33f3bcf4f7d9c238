package release_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// clock is a settable clock for soaks and windows.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// wed is a Wednesday, 10:00 UTC.
var wed = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// fakeVerifier passes or fails every gate the channel gives it.
type fakeVerifier struct{ status string }

func (v fakeVerifier) Verify(_ context.Context, c release.Candidate) []release.GateState {
	var out []release.GateState
	for _, ck := range c.Channel.Gates.Checks {
		out = append(out, release.GateState{Gate: "check:" + ck.Name, Status: v.status, Detail: "the hook said " + v.status})
	}
	return out
}

// gatedRig is a rig whose app has dev → staging → prod with prod's gates, on a clock.
func gatedRig(t *testing.T, rdb redis.UniversalClient, prod release.Channel, clk *clock, opts ...release.ChannelsOption) *rig {
	t.Helper()
	r := newRig(t, rdb)
	prod.Name, prod.From = "prod", "staging"
	chs := []release.Channel{{Name: "dev"}, {Name: "staging", From: "dev"}, prod}
	if _, _, err := r.apps.Put(context.Background(), "hello", release.AppSpec{Channels: &chs}, release.Precondition{}); err != nil {
		t.Fatal(err)
	}
	opts = append([]release.ChannelsOption{release.WithClock(clk.Now)}, opts...)
	r.channels = release.NewChannels(rdb, r.apps, opts...)
	return r
}

// toStaging releases version (by the token tok_ci) and moves it through dev into staging
// at the clock's time.
func (r *rig) toStaging(t *testing.T, version string) {
	t.Helper()
	if _, _, err := r.releases.Create(context.Background(), "hello", release.ReleaseSpec{BuildID: "b-" + version, Actor: "ci", ActorID: "tok_ci"}); err != nil {
		t.Fatal(err)
	}
	r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: version})
	r.move(t, "staging", release.Move{Action: release.ActionPromote, Version: version})
}

func (r *rig) approve(t *testing.T, version, who string) release.Approval {
	t.Helper()
	ap, _, err := r.channels.Approve(context.Background(), "hello", "prod", release.ApprovalSpec{Version: version, Actor: who, ActorID: "tok_" + who})
	if err != nil {
		t.Fatalf("Approve(%s by %s) = %v", version, who, err)
	}
	return ap
}

func statuses(states []release.GateState) string {
	var b []string
	for _, s := range states {
		b = append(b, s.Gate+"="+s.Status)
	}
	return strings.Join(b, " ")
}

func TestGates(t *testing.T) {
	freeze := release.Window{Kind: "deny", RRule: "FREQ=WEEKLY;BYDAY=FR;BYHOUR=12", Duration: "60h", TimeZone: "Europe/Berlin", Reason: "weekend freeze"}
	office := release.Window{Kind: "allow", Cron: "0 9 * * 1-5", Duration: "8h"}
	monday := time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC) // Mon 7 Dec 00:00 in Berlin
	for _, tc := range []struct {
		name      string
		gates     release.Gates
		verifier  release.Verifier
		after     time.Duration // from the release's arrival in staging to the promotion
		approvers []string
		setup     func(t *testing.T, r *rig)
		want      string
		retryAt   time.Time // of the first gate that is pending
		detail    string    // in the details
	}{
		{name: "no gates", want: ""},
		{name: "soak passed", gates: release.Gates{Soak: "24h"}, after: 25 * time.Hour, want: "soak=passed", detail: "for 25h"},
		{name: "soak pending", gates: release.Gates{Soak: "24h"}, after: time.Hour, want: "soak=pending", retryAt: wed.Add(24 * time.Hour), detail: "1h of the 24h soak"},
		{name: "soak failed, staging moved on", gates: release.Gates{Soak: "1h"}, after: 2 * time.Hour,
			setup: func(t *testing.T, r *rig) { r.toStaging(t, "1.1.0") }, want: "soak=failed", detail: "staging holds 1.1.0"},
		{name: "approvals missing", gates: release.Gates{Approvals: 1}, want: "approvals=failed", detail: "0 of 1"},
		{name: "approval by the release's creator does not count", gates: release.Gates{Approvals: 1}, approvers: []string{"ci"},
			want: "approvals=failed", detail: "the approver created the release"},
		{name: "approval passed", gates: release.Gates{Approvals: 1}, approvers: []string{"alice"}, want: "approvals=passed", detail: "(alice)"},
		{name: "two approvals, one given", gates: release.Gates{Approvals: 2}, approvers: []string{"alice"}, want: "approvals=failed", detail: "1 more needed"},
		{name: "two approvals", gates: release.Gates{Approvals: 2}, approvers: []string{"alice", "bob"}, want: "approvals=passed"},
		{name: "outside the freeze", gates: release.Gates{Windows: []release.Window{freeze}}, want: "windows=passed", detail: "until Fri 4 Dec 2026 12:00 CET (Europe/Berlin)"},
		{name: "inside the freeze", gates: release.Gates{Windows: []release.Window{freeze}}, after: 50 * time.Hour, // Fri 13:00 in Berlin
			want: "windows=pending", retryAt: monday, detail: "opens at Mon 7 Dec 2026 00:00 CET (Europe/Berlin)"},
		{name: "inside an allow window", gates: release.Gates{Windows: []release.Window{office}}, want: "windows=passed"},
		{name: "outside every allow window", gates: release.Gates{Windows: []release.Window{office}}, after: 72 * time.Hour, // Saturday
			want: "windows=pending", retryAt: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)},
		{name: "check without a verifier", gates: release.Gates{Checks: []release.Check{{Name: "smoke", URL: "https://ci.example/smoke"}}},
			want: "check:smoke=failed", detail: "no verifier configured"},
		{name: "check passed", gates: release.Gates{Checks: []release.Check{{Name: "smoke", URL: "https://ci.example/smoke"}}},
			verifier: fakeVerifier{release.GatePassed}, want: "check:smoke=passed"},
		{name: "check failed", gates: release.Gates{Checks: []release.Check{{Name: "smoke", URL: "https://ci.example/smoke"}}},
			verifier: fakeVerifier{release.GateFailed}, want: "check:smoke=failed"},
		{name: "all pass together", gates: release.Gates{Soak: "24h", Approvals: 1, Windows: []release.Window{freeze}},
			after: 25 * time.Hour, approvers: []string{"alice"}, want: "soak=passed approvals=passed windows=passed"},
		{name: "all miss together", gates: release.Gates{Soak: "24h", Approvals: 1, Windows: []release.Window{freeze}, Checks: []release.Check{{Name: "smoke", URL: "http://x.example"}}},
			after: 50 * time.Hour, approvers: []string{"ci"}, want: "soak=passed approvals=failed windows=pending check:smoke=failed", retryAt: monday},
		{name: "soak pending, frozen", gates: release.Gates{Soak: "72h", Windows: []release.Window{freeze}},
			after: 50 * time.Hour, want: "soak=pending windows=pending", retryAt: wed.Add(72 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock(wed)
			var opts []release.ChannelsOption
			if tc.verifier != nil {
				opts = append(opts, release.WithVerifier(tc.verifier))
			}
			g := tc.gates
			r := gatedRig(t, storetest.Redis(t), release.Channel{Gates: &g}, clk, opts...)
			r.toStaging(t, "1.0.0")
			clk.advance(tc.after)
			if tc.setup != nil {
				tc.setup(t, r)
			}
			for _, who := range tc.approvers {
				r.approve(t, "1.0.0", who)
			}
			ctx := context.Background()
			rep, err := r.channels.Gates(ctx, "hello", "prod", release.GateQuery{Version: "1.0.0"})
			if err != nil {
				t.Fatal(err)
			}
			if got := statuses(rep.States); got != tc.want {
				t.Fatalf("Gates = %s, want %s\n%+v", got, tc.want, rep.States)
			}
			allowed := !strings.Contains(tc.want, "failed") && !strings.Contains(tc.want, "pending")
			if rep.Allowed != allowed {
				t.Errorf("Allowed = %v, want %v", rep.Allowed, allowed)
			}
			var details []string
			for _, s := range rep.States {
				details = append(details, s.Detail)
				if s.Status == release.GatePending && !tc.retryAt.IsZero() {
					if s.RetryAt == nil || !s.RetryAt.Equal(tc.retryAt) {
						t.Errorf("%s RetryAt = %v, want %v", s.Gate, s.RetryAt, tc.retryAt)
					}
					tc.retryAt = time.Time{}
				}
			}
			if !strings.Contains(strings.Join(details, " | "), tc.detail) {
				t.Errorf("details = %q, want them to say %q", details, tc.detail)
			}
			// The promotion meets the same gates.
			res, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: "1.0.0", Actor: "bot"})
			var gerr *release.GatesError
			switch {
			case allowed && err != nil:
				t.Fatalf("promote = %v, want it to pass", err)
			case allowed && res.Channel.Release != "1.0.0":
				t.Fatalf("prod = %+v", res.Channel)
			case !allowed && (!errors.As(err, &gerr) || !errors.Is(err, release.ErrGates) || statuses(gerr.States) != tc.want):
				t.Fatalf("promote = %v, want a GatesError with %s", err, tc.want)
			}
			if !allowed {
				// An override moves it, and records what it overrode.
				if _, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: "1.0.0", Override: true}); err == nil {
					t.Error("override without a reason = nil error")
				}
				res := r.move(t, "prod", release.Move{Action: release.ActionPromote, Version: "1.0.0", Override: true, Reason: "incident 42"})
				if res.Event.Override == nil || len(res.Event.Override.Gates) != len(gerr.Failed()) || res.Event.Reason != "incident 42" {
					t.Errorf("override event = %+v", res.Event)
				}
			}
		})
	}
}

// TestPromoteRacesRevocation races promotions of a release with one approval against the
// revocation of that approval, many times: the pointer moves only when the revocation
// came too late, and a revocation that succeeded leaves no promotion behind.
func TestPromoteRacesRevocation(t *testing.T) {
	clk := newClock(wed)
	r := gatedRig(t, storetest.Redis(t), release.Channel{Gates: &release.Gates{Approvals: 1}}, clk)
	ctx := context.Background()
	for i := range 30 {
		v := fmt.Sprintf("1.0.%d", i)
		r.toStaging(t, v)
		r.approve(t, v, "alice")
		var moved, revoked atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				<-start
				res, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: v, Actor: "bot"})
				switch {
				case err == nil && res.Changed:
					moved.Add(1)
				case err != nil && !errors.Is(err, release.ErrGates) && !errors.Is(err, release.ErrConflict):
					t.Errorf("promote = %v", err)
				}
			})
		}
		wg.Go(func() {
			<-start
			_, err := r.channels.Revoke(ctx, "hello", "prod", release.ApprovalSpec{Version: v, Actor: "alice", ActorID: "tok_alice"})
			switch {
			case err == nil:
				revoked.Add(1)
			case !errors.Is(err, release.ErrConflict):
				t.Errorf("revoke = %v", err)
			}
		})
		close(start)
		wg.Wait()
		st, err := r.channels.Get(ctx, "hello", "prod")
		if err != nil {
			t.Fatal(err)
		}
		hist, _, _ := r.channels.History(ctx, "hello", "prod", 0, 3)
		if moved.Load()+revoked.Load() != 1 {
			t.Fatalf("round %d: %d promotions and %d revocations succeeded, want exactly one of them", i, moved.Load(), revoked.Load())
		}
		if revoked.Load() == 1 {
			if st.Release == v || hist[0].Action != release.ActionRevoke {
				t.Fatalf("round %d: revoked, yet prod = %s, newest history %+v", i, st.Release, hist[0])
			}
			// Approved again, it goes.
			r.approve(t, v, "bob")
			r.move(t, "prod", release.Move{Action: release.ActionPromote, Version: v})
		} else if st.Release != v || hist[0].Action != release.ActionPromote {
			t.Fatalf("round %d: promoted, yet prod = %s, newest history %+v", i, st.Release, hist[0])
		}
	}
}

// TestPromoteRacesWindowClosing races promotions against a clock walking into a deny
// window (the first 30 seconds of every minute): no promotion is recorded inside it.
func TestPromoteRacesWindowClosing(t *testing.T) {
	clk := newClock(wed)
	deny := release.Window{Kind: "deny", Cron: "* * * * *", Duration: "30s"}
	r := gatedRig(t, storetest.Redis(t), release.Channel{Gates: &release.Gates{Windows: []release.Window{deny}}}, clk)
	ctx := context.Background()
	refused := 0
	for i := range 30 {
		v := fmt.Sprintf("1.0.%d", i)
		clk.set(wed.Add(time.Duration(i) * time.Minute).Add(40 * time.Second))
		r.toStaging(t, v)
		closes := wed.Add(time.Duration(i+1) * time.Minute)
		clk.set(closes.Add(-20 * time.Millisecond))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				<-start
				_, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: v, Actor: "bot"})
				if err != nil && !errors.Is(err, release.ErrGates) && !errors.Is(err, release.ErrConflict) {
					t.Errorf("promote = %v", err)
				}
			})
		}
		wg.Go(func() {
			<-start
			for range 40 {
				clk.advance(time.Millisecond)
				runtime.Gosched()
			}
		})
		close(start)
		wg.Wait()
		hist, _, _ := r.channels.History(ctx, "hello", "prod", 0, 1)
		if len(hist) == 0 || hist[0].ToVersion != v {
			refused++
			continue
		}
		if !hist[0].At.Before(closes) {
			t.Fatalf("round %d: promoted at %v, inside the deny window from %v", i, hist[0].At, closes)
		}
	}
	t.Logf("%d of 30 rounds found the window closed", refused)
}

// TestGatesChangeBeforeTheScript changes what the gates were evaluated from between the
// evaluation and the move script: each promotion is refused with the gates' new state.
func TestGatesChangeBeforeTheScript(t *testing.T) {
	friNoon := time.Date(2026, 12, 4, 11, 0, 0, 0, time.UTC) // 12:00 in Berlin
	freeze := release.Window{Kind: "deny", RRule: "FREQ=WEEKLY;BYDAY=FR;BYHOUR=12", Duration: "60h", TimeZone: "Europe/Berlin"}
	for _, tc := range []struct {
		name  string
		gates release.Gates
		start time.Time
		auto  bool
		// early races before the evaluation reads Redis, after it read the clock;
		// otherwise the race runs just before the move script.
		early bool
		race  func(t *testing.T, r *rig, clk *clock)
		want  string
		prod  string
	}{
		{name: "approval revoked", gates: release.Gates{Approvals: 1}, start: wed,
			race: func(t *testing.T, r *rig, _ *clock) {
				if _, err := r.channels.Revoke(context.Background(), "hello", "prod", release.ApprovalSpec{Version: "1.0.0", ActorID: "tok_alice"}); err != nil {
					t.Errorf("revoke = %v", err)
				}
			}, want: "approvals=failed", prod: "0.9.0"},
		{name: "window closes", gates: release.Gates{Approvals: 1, Windows: []release.Window{freeze}}, start: friNoon.Add(-time.Millisecond), early: true,
			race: func(_ *testing.T, _ *rig, clk *clock) { clk.set(friNoon) }, want: "approvals=passed windows=pending", prod: "0.9.0"},
		{name: "soak source moves on", gates: release.Gates{Approvals: 1, Soak: "1h"}, start: wed,
			race: func(t *testing.T, r *rig, clk *clock) { r.toStaging(t, "1.1.0") }, want: "soak=failed approvals=passed", prod: "0.9.0"},
		{name: "rollback pins it for automation", gates: release.Gates{Approvals: 1}, start: wed, auto: true,
			race: func(t *testing.T, r *rig, _ *clock) {
				r.move(t, "prod", release.Move{Action: release.ActionRollback, Reason: "bad"})
			}, want: "pinned=failed approvals=passed", prod: "0.8.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := storetest.Redis(t)
			clk := newClock(tc.start.Add(-6 * time.Hour))
			g := tc.gates
			r := gatedRig(t, rdb, release.Channel{Gates: &g}, clk)
			for _, v := range []string{"0.8.0", "0.9.0", "1.0.0"} {
				r.toStaging(t, v)
				clk.advance(2 * time.Hour)
				r.approve(t, v, "alice")
				if v != "1.0.0" {
					r.move(t, "prod", release.Move{Action: release.ActionPromote, Version: v})
				}
			}
			clk.set(tc.start)
			hook := &beforeScript{fn: func() { tc.race(t, r, clk) }, pipeline: tc.early}
			rdb.AddHook(hook)
			_, err := r.channels.Move(context.Background(), "hello", "prod", release.Move{Action: release.ActionPromote, Version: "1.0.0", Actor: "bot", Auto: tc.auto})
			var gerr *release.GatesError
			if !errors.As(err, &gerr) || statuses(gerr.States) != tc.want {
				t.Fatalf("promote = %v, want gates %s", err, tc.want)
			}
			if !hook.armed.Load() {
				t.Fatal("the race never ran")
			}
			st, _ := r.channels.Get(context.Background(), "hello", "prod")
			if st.Release != tc.prod {
				t.Errorf("prod = %s, want %s", st.Release, tc.prod)
			}
		})
	}
}

// TestRollbackPins checks that a rollback pins the channel, automation then stays out,
// and an unpin or a manual promotion lets it in again.
func TestRollbackPins(t *testing.T) {
	clk := newClock(wed)
	r := gatedRig(t, storetest.Redis(t), release.Channel{}, clk)
	ctx := context.Background()
	r.toStaging(t, "1.0.0")
	r.move(t, "prod", release.Move{Action: release.ActionPromote, Version: "1.0.0", Auto: true})
	r.toStaging(t, "1.1.0")
	r.move(t, "prod", release.Move{Action: release.ActionPromote, Version: "1.1.0", Auto: true})
	rb := r.move(t, "prod", release.Move{Action: release.ActionRollback, Reason: "errors up", Actor: "oncall", ActorID: "tok_oncall"})
	if !rb.Channel.Pinned || rb.Channel.PinnedBy != "oncall" || rb.Channel.PinReason != "errors up" || !rb.Event.Pinned {
		t.Fatalf("after rollback: %+v %+v", rb.Channel, rb.Event)
	}
	_, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: "1.1.0", Auto: true})
	var gerr *release.GatesError
	if !errors.As(err, &gerr) || statuses(gerr.States) != "pinned=failed" || !strings.Contains(gerr.States[0].Detail, "errors up") {
		t.Fatalf("automation on a pinned channel = %v", err)
	}
	un := r.move(t, "prod", release.Move{Action: release.ActionUnpin, Reason: "fixed"})
	if un.Channel.Pinned || un.Event.Action != release.ActionUnpin {
		t.Fatalf("unpin = %+v %+v", un.Channel, un.Event)
	}
	if again := r.move(t, "prod", release.Move{Action: release.ActionUnpin}); again.Changed {
		t.Error("unpinning an unpinned channel changed it")
	}
	r.move(t, "prod", release.Move{Action: release.ActionPromote, Version: "1.1.0", Auto: true})
	// A manual promotion unpins.
	r.move(t, "prod", release.Move{Action: release.ActionRollback})
	man := r.move(t, "prod", release.Move{Action: release.ActionPromote, Version: "1.1.0"})
	if man.Channel.Pinned || !man.Event.Unpinned {
		t.Errorf("manual promote = %+v %+v", man.Channel, man.Event)
	}
}

// TestApprovals checks approving, listing, revoking and their records.
func TestApprovals(t *testing.T) {
	clk := newClock(wed)
	r := gatedRig(t, storetest.Redis(t), release.Channel{Gates: &release.Gates{Approvals: 2}}, clk)
	ctx := context.Background()
	r.toStaging(t, "1.0.0")
	a := r.approve(t, "1.0.0", "alice")
	if !a.Counts || a.Note != "" {
		t.Errorf("alice's approval = %+v", a)
	}
	again, created, err := r.channels.Approve(ctx, "hello", "prod", release.ApprovalSpec{Version: "1.0.0", Actor: "alice", ActorID: "tok_alice", Reason: "again"})
	if err != nil || created || again.Reason != "" {
		t.Errorf("approving again = %+v %v %v, want the first approval", again, created, err)
	}
	ci := r.approve(t, "1.0.0", "ci")
	if ci.Counts || !strings.Contains(ci.Note, "created the release") {
		t.Errorf("the creator's approval = %+v", ci)
	}
	list, err := r.channels.Approvals(ctx, "hello", "prod", "1.0.0")
	if err != nil || len(list) != 2 || list[0].Actor != "alice" {
		t.Fatalf("Approvals = %+v %v", list, err)
	}
	if _, err := r.channels.Revoke(ctx, "hello", "prod", release.ApprovalSpec{Version: "1.0.0", ActorID: "tok_bob"}); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("revoking an approval never given = %v, want ErrNotFound", err)
	}
	if _, err := r.channels.Revoke(ctx, "hello", "prod", release.ApprovalSpec{Version: "1.0.0", Actor: "alice", ActorID: "tok_alice"}); err != nil {
		t.Fatal(err)
	}
	hist, _, _ := r.channels.History(ctx, "hello", "prod", 0, 10)
	if len(hist) != 2 || hist[0].Action != release.ActionRevoke || hist[1].Action != release.ActionApprove || hist[1].ActorID != "tok_alice" {
		t.Errorf("history = %+v, want the counted approval and its revocation", hist)
	}
	// Approvals are per release: a new release starts with none.
	r.toStaging(t, "1.1.0")
	if list, _ := r.channels.Approvals(ctx, "hello", "prod", "1.1.0"); len(list) != 0 {
		t.Errorf("approvals of a new release = %+v", list)
	}
	if _, _, err := r.channels.Approve(ctx, "hello", "staging", release.ApprovalSpec{Version: "1.0.0", ActorID: "tok_x"}); !errors.Is(err, release.ErrConflict) {
		t.Errorf("approving for a channel without approvals = %v, want ErrConflict", err)
	}
	if _, _, err := r.channels.Approve(ctx, "hello", "prod", release.ApprovalSpec{Version: "9.9.9", ActorID: "tok_x"}); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("approving a missing release = %v, want ErrNotFound", err)
	}
	n, _ := r.rdb.Exists(ctx, store.ChannelApprovalsKey("hello", "prod", "1.0.0")).Result()
	if n != 1 {
		t.Errorf("approvals key of 1.0.0 exists = %d", n)
	}
}

// TestDryRunSaysPolicyAndLock checks that the dry run reports what refuses a promotion
// besides the gates: the channel's policy and its lock.
func TestDryRunSaysPolicyAndLock(t *testing.T) {
	r := gatedRig(t, storetest.Redis(t), release.Channel{Gates: &release.Gates{Approvals: 1}}, newClock(wed))
	ctx := context.Background()
	r.release(t, "2.0.0")
	rep, err := r.channels.Gates(ctx, "hello", "prod", release.GateQuery{Version: "2.0.0"})
	if err != nil || rep.Allowed || statuses(rep.States) != "policy=failed approvals=failed" || !strings.Contains(rep.States[0].Detail, "promote it to staging first") {
		t.Fatalf("Gates(never in staging) = %+v %v", rep, err)
	}
	r.toStaging(t, "1.0.0")
	r.approve(t, "1.0.0", "alice")
	r.move(t, "prod", release.Move{Action: release.ActionLock, Reason: "audit"})
	rep, err = r.channels.Gates(ctx, "hello", "prod", release.GateQuery{FromChannel: "staging"})
	if err != nil || rep.Allowed || statuses(rep.States) != "locked=failed approvals=passed" || !strings.Contains(rep.States[0].Detail, "locked (audit)") {
		t.Fatalf("Gates(locked) = %+v %v", rep, err)
	}
	r.move(t, "prod", release.Move{Action: release.ActionUnlock})
	if rep, _ = r.channels.Gates(ctx, "hello", "prod", release.GateQuery{FromChannel: "staging"}); !rep.Allowed {
		t.Errorf("Gates(unlocked) = %+v", rep)
	}
}
