package builder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// Queue is the build queue: a Redis stream (store.BuildQueueKey) whose entries name a
// build, read by every worker through one consumer group. An entry a worker claimed stays
// pending, kept fresh by its heartbeats, until the worker acknowledges it; one whose
// heartbeats stop is taken over by another worker.
type Queue struct {
	rdb redis.UniversalClient
}

// NewQueue returns the build queue on rdb.
func NewQueue(rdb redis.UniversalClient) *Queue { return &Queue{rdb: rdb} }

// Entry is one queue entry: the build it names.
type Entry struct {
	ID         string // the stream entry's id
	App, Build string
}

// EnsureQueue creates the build queue's consumer group if it does not exist yet.
func EnsureQueue(ctx context.Context, rdb redis.UniversalClient) error {
	err := rdb.XGroupCreateMkStream(ctx, store.BuildQueueKey, store.BuildQueueGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("creating the build queue: %w", err)
	}
	return nil
}

// Enqueue adds an entry for the build and returns its id.
func (q *Queue) Enqueue(ctx context.Context, app, build string) (string, error) {
	return q.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: store.BuildQueueKey,
		Values: map[string]any{"app": app, "build": build},
	}).Result()
}

// Claim returns the next entry for consumer: first one whose heartbeats stopped for
// longer than visibility (XAUTOCLAIM), else a new one, waiting up to block for it
// (XREADGROUP). ok is false when there is none. A queue whose consumer group is gone (a
// Redis that lost its data, then got a new entry) gets its group back, from the first
// entry, so the entries since are built and a scaler reading the group's lag sees them.
func (q *Queue) Claim(ctx context.Context, consumer string, visibility, block time.Duration) (e Entry, ok bool, err error) {
	autoClaim := func() ([]redis.XMessage, error) {
		claimed, _, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: store.BuildQueueKey, Group: store.BuildQueueGroup, Consumer: consumer,
			MinIdle: visibility, Start: "0-0", Count: 1,
		}).Result()
		return claimed, err
	}
	claimed, err := autoClaim()
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		if err := EnsureQueue(ctx, q.rdb); err != nil {
			return Entry{}, false, err
		}
		claimed, err = autoClaim()
	}
	if err != nil {
		return Entry{}, false, err
	}
	if len(claimed) > 0 {
		return entryOf(claimed[0]), true, nil
	}
	streams, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: store.BuildQueueGroup, Consumer: consumer,
		Streams: []string{store.BuildQueueKey, ">"}, Count: 1, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, err
	}
	if len(streams[0].Messages) == 0 {
		return Entry{}, false, nil
	}
	return entryOf(streams[0].Messages[0]), true, nil
}

func entryOf(m redis.XMessage) Entry {
	app, _ := m.Values["app"].(string)
	build, _ := m.Values["build"].(string)
	return Entry{ID: m.ID, App: app, Build: build}
}

// Heartbeat resets the idle time of consumer's entry (XCLAIM), so no other worker takes
// it over.
func (q *Queue) Heartbeat(ctx context.Context, consumer, entry string) error {
	return q.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream: store.BuildQueueKey, Group: store.BuildQueueGroup, Consumer: consumer,
		MinIdle: 0, Messages: []string{entry},
	}).Err()
}

// Ack acknowledges a handled entry and removes it from the stream.
func (q *Queue) Ack(ctx context.Context, entry string) error {
	err := q.rdb.XAck(ctx, store.BuildQueueKey, store.BuildQueueGroup, entry).Err()
	q.Remove(ctx, entry)
	return err
}

// Remove deletes an entry that no worker should take, such as one whose build was not
// recorded after all.
func (q *Queue) Remove(ctx context.Context, entry string) {
	q.rdb.XDel(ctx, store.BuildQueueKey, entry)
}

// Requeue puts the entry's build back on the queue as a new entry and acknowledges the
// old one. When the new entry cannot be added, the old one stays pending, to be taken
// over once its heartbeats have stopped.
func (q *Queue) Requeue(ctx context.Context, e Entry) error {
	if _, err := q.Enqueue(ctx, e.App, e.Build); err != nil {
		return err
	}
	return q.Ack(ctx, e.ID)
}
