// Package eventstest writes events for tests of the readers of the event streams.
package eventstest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// Write appends an event to app's stream as slipway's scripts did before actor ids were
// recorded (no actor_id field), with actor "tester", and indexes the app; it returns
// the event's id.
func Write(t testing.TB, rdb redis.Cmdable, app, typ string, data any) string {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	id := ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()
	doc, _ := json.Marshal(data)
	if err := rdb.ZAdd(ctx, store.AppsIndexKey, redis.Z{Member: app}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: store.EventsKey(app), Values: []any{
		"id", id, "type", typ, "app", app, "actor", "tester", "time", now.Format(time.RFC3339Nano), "data", string(doc),
	}}).Err(); err != nil {
		t.Fatal(err)
	}
	return id
}
