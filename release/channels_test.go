package release_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// fakeBuilds answers every build id "b-<version>" as a succeeded build with an image
// whose digest derives from the version; "b-failed" is a failed build and "b-noimage" has
// no image.
type fakeBuilds struct{}

func (fakeBuilds) BuildRef(_ context.Context, app, id string) (release.BuildRef, error) {
	switch id {
	case "b-failed":
		return release.BuildRef{ID: id, Version: "9.9.9", Status: "failed"}, nil
	case "b-noimage":
		return release.BuildRef{ID: id, Version: "9.9.8", Status: "succeeded", Succeeded: true}, nil
	}
	if len(id) < 3 {
		return release.BuildRef{}, fmt.Errorf("%w: no build %s", release.ErrNotFound, id)
	}
	v := id[2:]
	return release.BuildRef{ID: id, Version: v, Status: "succeeded", Succeeded: true, ImageDigest: string(store.DigestBytes([]byte(v)))}, nil
}

type rig struct {
	rdb      redis.UniversalClient
	apps     *release.Apps
	releases *release.Releases
	channels *release.Channels
}

func newRig(t *testing.T, rdb redis.UniversalClient) *rig {
	t.Helper()
	blobs, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	apps := release.NewApps(rdb, fakeChecker{})
	if _, _, err := apps.Put(context.Background(), "hello", release.AppSpec{}, release.Precondition{}); err != nil {
		t.Fatal(err)
	}
	return &rig{rdb: rdb, apps: apps, releases: release.NewReleases(rdb, blobs, fakeBuilds{}), channels: release.NewChannels(rdb, apps)}
}

func (r *rig) release(t *testing.T, versions ...string) {
	t.Helper()
	for _, v := range versions {
		if _, _, err := r.releases.Create(context.Background(), "hello", release.ReleaseSpec{BuildID: "b-" + v, Actor: "ci"}); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *rig) move(t *testing.T, ch string, m release.Move) release.MoveResult {
	t.Helper()
	if m.Actor == "" {
		m.Actor = "bot"
	}
	res, err := r.channels.Move(context.Background(), "hello", ch, m)
	if err != nil {
		t.Fatalf("Move(%s, %+v) = %v", ch, m, err)
	}
	return res
}

func TestReleasesCreate(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, storetest.Redis(t))
	rel, created, err := r.releases.Create(ctx, "hello", release.ReleaseSpec{BuildID: "b-1.0.0", Notes: "first", Actor: "ci"})
	if err != nil || !created || rel.Sequence != 1 || rel.Version != "1.0.0" || rel.ImageDigest == "" || rel.CreatedBy != "ci" {
		t.Fatalf("Create = %+v %v %v", rel, created, err)
	}
	again, created, err := r.releases.Create(ctx, "hello", release.ReleaseSpec{BuildID: "b-1.0.0"})
	if err != nil || created || again.Sequence != 1 || again.Notes != "first" {
		t.Errorf("Create(same version, same build) = %+v %v %v, want the existing release", again, created, err)
	}
	if _, _, err := r.releases.Create(ctx, "hello", release.ReleaseSpec{BuildID: "b-2.0.0", Version: "1.0.0"}); !errors.Is(err, release.ErrConflict) {
		t.Errorf("Create(same version, other build) = %v, want ErrConflict", err)
	}
	for _, id := range []string{"b-failed", "b-noimage"} {
		if _, _, err := r.releases.Create(ctx, "hello", release.ReleaseSpec{BuildID: id}); !errors.Is(err, release.ErrConflict) {
			t.Errorf("Create(%s) = %v, want ErrConflict", id, err)
		}
	}
	if _, _, err := r.releases.Create(ctx, "hello", release.ReleaseSpec{BuildID: "b-1.0.0", Version: "v2"}); err == nil {
		t.Error("Create(version v2) = nil error, want a validation error")
	}
	r.release(t, "1.1.0", "1.2.0")
	vs, err := r.releases.Versions(ctx, "hello")
	if err != nil || fmt.Sprint(vs) != "[1.0.0 1.1.0 1.2.0]" {
		t.Errorf("Versions = %v %v, want [1.0.0 1.1.0 1.2.0]", vs, err)
	}
}

func TestPromoteRollbackHistory(t *testing.T) {
	r := newRig(t, storetest.Redis(t))
	r.release(t, "1.0.0", "1.1.0", "1.2.0")
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: v, Reason: "ship " + v})
	}
	res := r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: "1.2.0"})
	if res.Changed || res.Channel.Generation != 3 {
		t.Errorf("promoting the current release: changed %v gen %d, want unchanged at 3", res.Changed, res.Channel.Generation)
	}
	// Rollback walks back one release at a time, each event linking what it reverses.
	rb := r.move(t, "dev", release.Move{Action: release.ActionRollback, Reason: "bad"})
	if rb.Channel.Release != "1.1.0" || rb.Event.Reverts != 3 || rb.Event.FromVersion != "1.2.0" || rb.Event.Action != "rollback" {
		t.Errorf("rollback 1 = %+v %+v", rb.Channel, rb.Event)
	}
	rb = r.move(t, "dev", release.Move{Action: release.ActionRollback, Reason: "worse"})
	if rb.Channel.Release != "1.0.0" || rb.Event.Reverts != 2 {
		t.Errorf("rollback 2 = %+v %+v", rb.Channel, rb.Event)
	}
	if _, err := r.channels.Move(context.Background(), "hello", "dev", release.Move{Action: release.ActionRollback}); !errors.Is(err, release.ErrConflict) {
		t.Errorf("rollback with nothing before = %v, want ErrConflict", err)
	}
	rb = r.move(t, "dev", release.Move{Action: release.ActionRollback, Version: "1.2.0", Reason: "roll forward"})
	if rb.Channel.Release != "1.2.0" {
		t.Errorf("rollback to 1.2.0 = %+v", rb.Channel)
	}
	hist, next, err := r.channels.History(context.Background(), "hello", "dev", 0, 4)
	if err != nil || len(hist) != 4 || hist[0].Seq != 6 || hist[3].Seq != 3 || next != 3 {
		t.Fatalf("History = %+v next %d %v", hist, next, err)
	}
	rest, next, _ := r.channels.History(context.Background(), "hello", "dev", next, 4)
	if len(rest) != 2 || rest[0].Seq != 2 || next != 0 || rest[1].Actor != "bot" || rest[1].Reason != "ship 1.0.0" {
		t.Errorf("History page 2 = %+v next %d", rest, next)
	}
}

func TestPolicyAndLocks(t *testing.T) {
	r := newRig(t, storetest.Redis(t))
	r.release(t, "1.0.0", "2.0.0")
	ctx := context.Background()
	// prod takes only what has been in staging.
	if _, err := r.channels.Move(ctx, "hello", "staging", release.Move{Action: release.ActionPromote, Version: "1.0.0"}); !errors.Is(err, release.ErrPolicy) {
		t.Errorf("promote to staging, never in dev = %v, want ErrPolicy", err)
	}
	r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: "1.0.0"})
	r.move(t, "staging", release.Move{Action: release.ActionPromote, FromChannel: "dev"})
	if _, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: "2.0.0"}); !errors.Is(err, release.ErrPolicy) {
		t.Errorf("promote 2.0.0 to prod = %v, want ErrPolicy", err)
	}
	p := r.move(t, "prod", release.Move{Action: release.ActionPromote, FromChannel: "staging"})
	if p.Channel.Release != "1.0.0" {
		t.Fatalf("prod = %+v", p.Channel)
	}
	// Has been in staging is enough, even after staging moved on.
	r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: "2.0.0"})
	r.move(t, "staging", release.Move{Action: release.ActionPromote, Version: "2.0.0"})
	r.move(t, "staging", release.Move{Action: release.ActionRollback})
	r.move(t, "prod", release.Move{Action: release.ActionPromote, Version: "2.0.0"})

	lock := r.move(t, "prod", release.Move{Action: release.ActionLock, Reason: "freeze"})
	if !lock.Channel.Locked || lock.Channel.LockReason != "freeze" {
		t.Errorf("lock = %+v", lock.Channel)
	}
	if _, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: "1.0.0"}); !errors.Is(err, release.ErrLocked) {
		t.Errorf("promote while locked = %v, want ErrLocked", err)
	}
	if rb := r.move(t, "prod", release.Move{Action: release.ActionRollback}); rb.Channel.Release != "1.0.0" {
		t.Errorf("rollback while locked = %+v, want 1.0.0", rb.Channel)
	}
	r.move(t, "prod", release.Move{Action: release.ActionUnlock, Reason: "thaw"})
	if _, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: "2.0.0"}); err != nil {
		t.Errorf("promote after unlock = %v", err)
	}
	if _, err := r.channels.Move(ctx, "hello", "nope", release.Move{Action: release.ActionLock}); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("move of an unknown channel = %v, want ErrNotFound", err)
	}
}

// TestConcurrentPromotes races 100 promotes with the same If-Match (one wins) and 100
// without (all land, and the pointer is the last event's).
func TestConcurrentPromotes(t *testing.T) {
	r := newRig(t, storetest.Redis(t))
	var versions []string
	for i := range 100 {
		versions = append(versions, fmt.Sprintf("1.0.%d", i))
	}
	r.release(t, versions...)
	r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: "1.0.0"})
	ctx := context.Background()

	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, stale := 0, 0
	for i := range 100 {
		wg.Go(func() {
			_, err := r.channels.Move(ctx, "hello", "dev", release.Move{Action: release.ActionPromote, Version: versions[i], Actor: "bot", IfGeneration: 1})
			mu.Lock()
			defer mu.Unlock()
			var se *release.ChannelStaleError
			switch {
			case err == nil:
				ok++
			case errors.As(err, &se) && se.Current.Generation == 2:
				stale++
			default:
				t.Errorf("Move = %v", err)
			}
		})
	}
	wg.Wait()
	// versions[0] is current, so its promote is unchanged and also "ok".
	hist, _, _ := r.channels.History(ctx, "hello", "dev", 0, 1000)
	if ok+stale != 100 || len(hist) > 2 || stale < 98 {
		t.Errorf("same If-Match: %d ok, %d stale, history %d events; want one move, 99 stale (+1 unchanged)", ok, stale, len(hist))
	}

	// staging only takes what has been in dev: promote all to dev first, then race.
	for i := 1; i < 100; i++ {
		r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: versions[i]})
	}
	hist0, _, _ := r.channels.History(ctx, "hello", "staging", 0, 1000)
	for i := range 100 {
		wg.Go(func() {
			if _, err := r.channels.Move(ctx, "hello", "staging", release.Move{Action: release.ActionPromote, Version: versions[i], Actor: "bot"}); err != nil {
				t.Errorf("Move = %v", err)
			}
		})
	}
	wg.Wait()
	hist, _, _ = r.channels.History(ctx, "hello", "staging", 0, 1000)
	st, _ := r.channels.Get(ctx, "hello", "staging")
	added := len(hist) - len(hist0)
	if added != 100 || hist[0].ToVersion != st.Release || st.Generation != int64(len(hist)) {
		t.Errorf("100 promotes without If-Match: %d events added, pointer %s, newest event to %s, gen %d", added, st.Release, hist[0].ToVersion, st.Generation)
	}
}

// TestMoveSurvivesRedisCrash kills Redis right after a promote answered and restarts it
// from its append-only file: the pointer and the history event are there.
func TestMoveSurvivesRedisCrash(t *testing.T) {
	srv := storetest.StartRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { rdb.Close() })
	r := newRig(t, rdb)
	r.release(t, "1.0.0")
	res := r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: "1.0.0", Reason: "durable"})
	srv.Stop() // SIGKILL
	srv.Start()
	st, err := r.channels.Get(context.Background(), "hello", "dev")
	if err != nil || st.Release != "1.0.0" || st.Generation != res.Channel.Generation {
		t.Fatalf("after the crash: %+v %v", st, err)
	}
	hist, _, err := r.channels.History(context.Background(), "hello", "dev", 0, 10)
	if err != nil || len(hist) != 1 || hist[0].Reason != "durable" {
		t.Errorf("history after the crash = %+v %v", hist, err)
	}
}

func TestReleasesPage(t *testing.T) {
	ctx := context.Background()
	r := newRig(t, storetest.Redis(t))
	r.release(t, "1.0.0", "1.1.0", "1.2.0")
	r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: "1.0.0"})
	r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: "1.2.0"})
	r.move(t, "staging", release.Move{Action: release.ActionPromote, Version: "1.2.0"})
	page, next, err := r.releases.Page(ctx, "hello", "", 0, 2)
	if err != nil || len(page) != 2 || page[0].Version != "1.2.0" || next != 2 ||
		fmt.Sprint(page[0].Channels) != "[dev staging]" || len(page[1].Channels) != 0 {
		t.Fatalf("Page = %+v next %d %v", page, next, err)
	}
	page, next, err = r.releases.Page(ctx, "hello", "", next, 2)
	if err != nil || len(page) != 1 || page[0].Version != "1.0.0" || next != 0 {
		t.Errorf("Page 2 = %+v next %d %v", page, next, err)
	}
	page, _, err = r.releases.Page(ctx, "hello", "dev", 0, 10)
	if err != nil || len(page) != 2 || page[0].Version != "1.2.0" || page[1].Version != "1.0.0" {
		t.Errorf("Page(dev) = %+v %v", page, err)
	}
}

// roundTrips counts the calls and pipelines a client sends to Redis.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestMoveIsOneRoundTrip counts what a promote, a rollback and a lock send to Redis once
// the app has been read: one script call each. A promotion from a channel reads that
// channel's release first: two.
func TestMoveIsOneRoundTrip(t *testing.T) {
	rdb := storetest.Redis(t)
	r := newRig(t, rdb)
	r.release(t, "1.0.0", "1.0.1")
	r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: "1.0.0"}) // reads the app, loads the script
	trips := &roundTrips{}
	rdb.AddHook(trips)
	for _, step := range []struct {
		ch   string
		m    release.Move
		want int64
	}{
		{"dev", release.Move{Action: release.ActionPromote, Version: "1.0.1"}, 1},
		{"dev", release.Move{Action: release.ActionRollback}, 1},
		{"dev", release.Move{Action: release.ActionLock, Reason: "freeze"}, 1},
		{"dev", release.Move{Action: release.ActionUnlock, Reason: "thaw"}, 1},
		{"staging", release.Move{Action: release.ActionPromote, FromChannel: "dev"}, 2},
	} {
		trips.n.Store(0)
		r.move(t, step.ch, step.m)
		if got := trips.n.Load(); got != step.want {
			t.Errorf("%s %+v: %d round trips, want %d", step.ch, step.m, got, step.want)
		}
	}
}

// TestMoveSeesAppChanges changes the app's configuration through another replica's store
// between moves: a move never acts on a configuration it read before the change.
func TestMoveSeesAppChanges(t *testing.T) {
	rdb := storetest.Redis(t)
	r := newRig(t, rdb)
	r.release(t, "1.0.0", "1.0.1")
	ctx := context.Background()
	r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: "1.0.0"})
	other := release.NewApps(rdb, fakeChecker{})

	// A new channel appears, with a policy: the cached configuration has neither.
	spec := release.AppSpec{Channels: &[]release.Channel{{Name: "dev"}, {Name: "canary", From: "dev"}, {Name: "prod", From: "canary"}}}
	if _, _, err := other.Put(ctx, "hello", spec, release.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if res := r.move(t, "canary", release.Move{Action: release.ActionPromote, FromChannel: "dev"}); res.Channel.Release != "1.0.0" {
		t.Errorf("canary = %+v", res.Channel)
	}
	// prod now takes only what has been in canary; 1.0.1 has not.
	if _, err := r.channels.Move(ctx, "hello", "prod", release.Move{Action: release.ActionPromote, Version: "1.0.1"}); !errors.Is(err, release.ErrPolicy) {
		t.Errorf("promote to prod past the new policy = %v, want ErrPolicy", err)
	}
	// staging is gone from the configuration.
	if _, err := r.channels.Move(ctx, "hello", "staging", release.Move{Action: release.ActionLock}); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("move of a channel the app no longer has = %v, want ErrNotFound", err)
	}

	// The app is deleted and created again: its generation starts over at 1, and the
	// stamp still tells the two apart.
	if err := other.Delete(ctx, "hello", release.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.channels.Move(ctx, "hello", "dev", release.Move{Action: release.ActionLock}); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("move in a deleted app = %v, want ErrNotFound", err)
	}
	spec = release.AppSpec{Channels: &[]release.Channel{{Name: "dev"}, {Name: "live", From: "dev"}}}
	if _, _, err := other.Put(ctx, "hello", spec, release.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.channels.Move(ctx, "hello", "live", release.Move{Action: release.ActionPromote, Version: "1.0.1"}); !errors.Is(err, release.ErrPolicy) {
		t.Errorf("promote to the recreated app's live = %v, want ErrPolicy", err)
	}
}

// TestPromoteFromAMovingChannel moves the source channel between the promotion's read of
// it and its script, through a hook: the promotion takes the source's new release, never
// the one it read first.
func TestPromoteFromAMovingChannel(t *testing.T) {
	rdb := storetest.Redis(t)
	r := newRig(t, rdb)
	r.release(t, "1.0.0", "1.0.1")
	r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: "1.0.0"})
	r.move(t, "staging", release.Move{Action: release.ActionPromote, FromChannel: "dev"})
	other := release.NewChannels(rdb, r.apps)
	var once sync.Once
	rdb.AddHook(&beforeScript{fn: func() {
		once.Do(func() {
			if _, err := other.Move(context.Background(), "hello", "dev", release.Move{Action: release.ActionPromote, Version: "1.0.1", Actor: "racer"}); err != nil {
				t.Errorf("racing promote = %v", err)
			}
		})
	}})
	res := r.move(t, "staging", release.Move{Action: release.ActionPromote, FromChannel: "dev"})
	if res.Channel.Release != "1.0.1" {
		t.Errorf("staging after a promotion from dev, which moved to 1.0.1 meanwhile = %q", res.Channel.Release)
	}
}

// beforeScript runs fn before the first script call of a client, once the hook is set.
type beforeScript struct {
	fn    func()
	armed atomic.Bool
	// pipeline runs fn before the first pipeline instead.
	pipeline bool
}

func (h *beforeScript) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *beforeScript) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.pipeline && (cmd.Name() == "evalsha" || cmd.Name() == "eval") && h.armed.CompareAndSwap(false, true) {
			h.fn()
		}
		return next(ctx, cmd)
	}
}

func (h *beforeScript) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.pipeline && h.armed.CompareAndSwap(false, true) {
			h.fn()
		}
		return next(ctx, cmds)
	}
}

// TestPromotedEventCarriesDiff checks that a promotion's channel.promoted event carries
// the diff summary WithMoveSummary makes, and only when it was made against the release
// the promotion replaced.
func TestPromotedEventCarriesDiff(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	r := newRig(t, rdb)
	var asked []string
	r.channels = release.NewChannels(rdb, r.apps, release.WithMoveSummary(func(_ context.Context, app, from, to string) (*release.DiffSummary, error) {
		asked = append(asked, from+"→"+to)
		if to == "3.0.0" { // a summary of another pair than the move makes is left out
			from = "0.0.1"
		}
		return &release.DiffSummary{FromVersion: from, ToVersion: to, Changed: 1,
			Modules: []release.ModuleChange{{Kind: release.ModuleChanged, Path: "example.com/greet", From: "v1.0.0", To: "v1.1.0"}}}, nil
	}))
	r.release(t, "1.0.0", "2.0.0", "3.0.0")
	for _, v := range []string{"1.0.0", "2.0.0", "3.0.0"} {
		r.move(t, "dev", release.Move{Action: release.ActionPromote, Version: v})
	}
	if want := []string{"1.0.0→2.0.0", "2.0.0→3.0.0"}; !slices.Equal(asked, want) {
		t.Errorf("summaries asked for %q, want %q (none for a first promotion)", asked, want)
	}
	evs, _, err := events.NewLog(rdb).List(ctx, []string{"hello"}, []string{events.ChannelPromoted}, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	diffs := map[string]string{}
	for _, ev := range evs {
		var data struct {
			Release string          `json:"release"`
			Diff    json.RawMessage `json:"diff"`
		}
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatal(err)
		}
		diffs[data.Release] = string(data.Diff)
	}
	if len(diffs) != 3 {
		t.Fatalf("promoted events = %v, want 3", diffs)
	}
	if diffs["1.0.0"] != "" || diffs["3.0.0"] != "" {
		t.Errorf("diffs of 1.0.0 and 3.0.0 = %q, %q, want none", diffs["1.0.0"], diffs["3.0.0"])
	}
	var got release.DiffSummary
	if err := json.Unmarshal([]byte(diffs["2.0.0"]), &got); err != nil {
		t.Fatalf("diff of 2.0.0 = %s: %v", diffs["2.0.0"], err)
	}
	if got.FromVersion != "1.0.0" || got.ToVersion != "2.0.0" || len(got.Modules) != 1 || got.Modules[0].Path != "example.com/greet" {
		t.Errorf("diff of 2.0.0 = %+v, want the summary from 1.0.0 with the module change", got)
	}
}
