package builder_test

import (
	"context"
	"testing"
	"time"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// TestQueue walks an entry through the queue: claimed once, invisible to others while its
// heartbeats come, taken over once they stop, requeued as a new entry, acknowledged.
func TestQueue(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	if err := builder.EnsureQueue(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	if err := builder.EnsureQueue(ctx, rdb); err != nil {
		t.Fatalf("EnsureQueue again = %v, want nil", err)
	}
	q := builder.NewQueue(rdb)
	const visibility, block = 200 * time.Millisecond, 10 * time.Millisecond
	claim := func(consumer string) (builder.Entry, bool) {
		t.Helper()
		e, ok, err := q.Claim(ctx, consumer, visibility, block)
		if err != nil {
			t.Fatalf("Claim(%s) = %v", consumer, err)
		}
		return e, ok
	}

	if e, ok := claim("a"); ok {
		t.Fatalf("Claim of an empty queue = %+v, want none", e)
	}
	id, err := q.Enqueue(ctx, "app", "B1")
	if err != nil {
		t.Fatal(err)
	}
	e, ok := claim("a")
	if want := (builder.Entry{ID: id, App: "app", Build: "B1"}); !ok || e != want {
		t.Fatalf("Claim = %+v %v, want %+v", e, ok, want)
	}
	for range 3 {
		time.Sleep(visibility / 2)
		if err := q.Heartbeat(ctx, "a", e.ID); err != nil {
			t.Fatalf("Heartbeat = %v", err)
		}
		if other, ok := claim("b"); ok {
			t.Fatalf("Claim by another consumer during heartbeats = %+v, want none", other)
		}
	}
	time.Sleep(visibility + visibility/2)
	if got, ok := claim("b"); !ok || got != e {
		t.Fatalf("Claim after the heartbeats stopped = %+v %v, want %+v", got, ok, e)
	}

	if err := q.Requeue(ctx, e); err != nil {
		t.Fatalf("Requeue = %v", err)
	}
	again, ok := claim("c")
	if !ok || again.ID == e.ID || again.App != e.App || again.Build != e.Build {
		t.Fatalf("Claim after Requeue = %+v %v, want a new entry for %s/%s", again, ok, e.App, e.Build)
	}
	if err := q.Ack(ctx, again.ID); err != nil {
		t.Fatalf("Ack = %v", err)
	}
	time.Sleep(visibility + visibility/2)
	if got, ok := claim("d"); ok {
		t.Fatalf("Claim after Ack = %+v, want none", got)
	}
}

// TestQueueLostGroup: a queue whose stream (and so its consumer group) was lost, then
// got a new entry, gets its group back at the next claim, and the entry is claimed.
func TestQueueLostGroup(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	if err := builder.EnsureQueue(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, store.BuildQueueKey).Err(); err != nil {
		t.Fatal(err)
	}
	q := builder.NewQueue(rdb)
	id, err := q.Enqueue(ctx, "app", "B1")
	if err != nil {
		t.Fatal(err)
	}
	e, ok, err := q.Claim(ctx, "a", time.Minute, 10*time.Millisecond)
	if err != nil || !ok || e.ID != id {
		t.Fatalf("Claim after the group was lost = %+v %v %v, want entry %s", e, ok, err, id)
	}
	groups, err := rdb.XInfoGroups(ctx, store.BuildQueueKey).Result()
	if err != nil || len(groups) != 1 || groups[0].Name != store.BuildQueueGroup {
		t.Errorf("groups = %+v %v, want the workers' group back", groups, err)
	}
}
