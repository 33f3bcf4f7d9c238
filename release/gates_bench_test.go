package release_test

import (
	"context"
	"testing"
	"time"

	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// BenchmarkPromote times a promotion and a rollback of prod, with and without gates
// (a soak, an approval and a deny window), each promotion evaluated and re-checked.
func BenchmarkPromote(b *testing.B) {
	freeze := release.Window{Kind: "deny", RRule: "FREQ=WEEKLY;BYDAY=FR;BYHOUR=12", Duration: "60h", TimeZone: "Europe/Berlin"}
	for _, bc := range []struct {
		name  string
		gates *release.Gates
	}{
		{"ungated", nil},
		{"gated", &release.Gates{Soak: "1h", Approvals: 1, Windows: []release.Window{freeze}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			clk := newClock(wed)
			r := gatedRigB(b, bc.gates, clk)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if _, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: "1.0.1", Actor: "bot"}); err != nil {
					b.Fatal(err)
				}
				if _, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionRollback, Actor: "bot"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func gatedRigB(b *testing.B, g *release.Gates, clk *clock) *rig {
	b.Helper()
	rdb := storetest.Redis(b)
	apps := release.NewApps(rdb, fakeChecker{})
	chs := []release.Channel{{Name: "dev"}, {Name: "staging", From: "dev"}, {Name: "prod", From: "staging", Gates: g}}
	if _, _, err := apps.Put(context.Background(), "hello", release.AppSpec{Channels: &chs}, release.Precondition{}); err != nil {
		b.Fatal(err)
	}
	blobs := mustFS(b)
	r := &rig{rdb: rdb, apps: apps, releases: release.NewReleases(rdb, blobs, fakeBuilds{}), channels: release.NewChannels(rdb, apps, release.WithClock(clk.Now))}
	ctx := context.Background()
	for _, v := range []string{"1.0.0", "1.0.1"} {
		if _, _, err := r.releases.Create(ctx, "hello", release.ReleaseSpec{BuildID: "b-" + v, Actor: "ci", ActorID: "tok_ci"}); err != nil {
			b.Fatal(err)
		}
		for _, ch := range []string{"dev", "staging"} {
			if _, err := r.channels.Move(ctx, "hello", ch, release.Move{Action: release.ActionPromote, Version: v, Actor: "ci"}); err != nil {
				b.Fatal(err)
			}
		}
		if g != nil {
			if _, _, err := r.channels.Approve(ctx, "hello", "prod", release.ApprovalSpec{Version: v, Actor: "alice", ActorID: "tok_alice"}); err != nil {
				b.Fatal(err)
			}
		}
		clk.advance(2 * time.Hour)
		if _, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: v, Actor: "ci", Override: v == "1.0.0", Reason: "setup"}); err != nil {
			b.Fatal(err)
		}
	}
	// prod holds 1.0.1 and staging 1.0.1; roll back so that each iteration promotes 1.0.1.
	if _, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionRollback, Actor: "ci"}); err != nil {
		b.Fatal(err)
	}
	return r
}

func mustFS(tb testing.TB) *store.FS {
	tb.Helper()
	blobs, err := store.NewFS(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return blobs
}
