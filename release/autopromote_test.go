package release_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store/storetest"
)

// passes collects the evaluations of schedulers, and lets a test wait for one.
type passes struct {
	mu   sync.Mutex
	all  []release.AutoPass
	more chan struct{}
}

func newPasses() *passes { return &passes{more: make(chan struct{}, 1000)} }

func (p *passes) observe(ap release.AutoPass) {
	p.mu.Lock()
	p.all = append(p.all, ap)
	p.mu.Unlock()
	p.more <- struct{}{}
}

// wait returns the first evaluation from index from on that matches, waiting for it.
func (p *passes) wait(t *testing.T, from int, match func(release.AutoPass) bool) (release.AutoPass, int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		p.mu.Lock()
		for i := from; i < len(p.all); i++ {
			if match(p.all[i]) {
				ap := p.all[i]
				p.mu.Unlock()
				return ap, i + 1
			}
		}
		from = len(p.all)
		p.mu.Unlock()
		select {
		case <-p.more:
		case <-deadline:
			t.Fatal("no such evaluation within 30s")
		}
	}
}

// TestAutoPromoteOnceAcrossThree runs three schedulers against one Redis: each release
// that enters staging is promoted into prod exactly once, by slipway; a rollback pins
// prod and automation leaves it alone until an unpin.
func TestAutoPromoteOnceAcrossThree(t *testing.T) {
	rdb := storetest.Redis(t)
	clk := newClock(wed)
	r := gatedRig(t, rdb, release.Channel{AutoPromote: true, Gates: &release.Gates{Soak: "1h"}}, clk)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	seen := newPasses()
	for i := range 3 {
		p := release.NewAutoPromoter(r.channels, fmt.Sprintf("w%d", i), release.WithObserver(seen.observe), release.WithRescan(time.Hour))
		wg.Go(func() { _ = p.Run(ctx) })
	}
	next := 0
	for i := range 4 {
		v := fmt.Sprintf("1.0.%d", i)
		r.toStaging(t, v)
		// Not soaked yet: evaluated, pending, with the soak's end to come back at.
		var ap release.AutoPass
		ap, next = seen.wait(t, next, func(ap release.AutoPass) bool { return ap.Version == v })
		if ap.Moved || statuses(ap.Report.States) != "pinned=passed soak=pending" {
			t.Fatalf("%s before its soak: %+v", v, ap)
		}
		clk.advance(time.Hour)
		// An event of the app wakes the schedulers, as the soak's end would.
		r.move(t, "dev", release.Move{Action: release.ActionLock, Reason: "tick"})
		r.move(t, "dev", release.Move{Action: release.ActionUnlock, Reason: "tock"})
		_, next = seen.wait(t, next, func(ap release.AutoPass) bool { return ap.Version == v && ap.Moved })
	}
	hist, _, _ := r.channels.History(context.Background(), "hello", "prod", 0, 100)
	if len(hist) != 4 {
		t.Fatalf("prod history = %+v, want 4 promotions", hist)
	}
	for i, ev := range hist {
		if want := fmt.Sprintf("1.0.%d", 3-i); ev.ToVersion != want || ev.Actor != release.AutoActor || ev.Action != release.ActionPromote {
			t.Errorf("prod history[%d] = %+v, want a promotion of %s by slipway", i, ev, want)
		}
	}

	// A rollback pins prod: the next release stays out.
	r.move(t, "prod", release.Move{Action: release.ActionRollback, Reason: "errors up"})
	r.toStaging(t, "1.1.0")
	clk.advance(2 * time.Hour)
	r.move(t, "dev", release.Move{Action: release.ActionLock, Reason: "tick"})
	ap, next := seen.wait(t, next, func(ap release.AutoPass) bool {
		return ap.Version == "1.1.0" && statuses(ap.Report.States) == "pinned=failed soak=passed"
	})
	if ap.Moved {
		t.Fatalf("a pinned prod moved: %+v", ap)
	}
	if st, _ := r.channels.Get(context.Background(), "hello", "prod"); st.Release != "1.0.2" || !st.Pinned {
		t.Fatalf("prod = %+v, want pinned at 1.0.2", st)
	}
	r.move(t, "prod", release.Move{Action: release.ActionUnpin, Reason: "fixed"})
	seen.wait(t, next, func(ap release.AutoPass) bool { return ap.Version == "1.1.0" && ap.Moved })
	if st, _ := r.channels.Get(context.Background(), "hello", "prod"); st.Release != "1.1.0" || st.Pinned {
		t.Fatalf("prod = %+v, want 1.1.0", st)
	}
}
