package events

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// TestScriptAppendsTheStoredShape pins the shape of a stream entry, field by field and
// in order, as every script writes it, and reads it back.
func TestScriptAppendsTheStoredShape(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	script := Script(`return append_event(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])`)
	key := store.EventsKey("hello")
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).Format(time.RFC3339Nano)
	args := []any{"01JD3Y7Q9V6K2M8N4P5R7S9T1W", ChannelPromoted, "hello", "bot", "tok_1", at, `{"channel":"prod"}`}
	if err := script.Run(ctx, rdb, []string{key}, args...).Err(); err != nil {
		t.Fatal(err)
	}
	raw, err := rdb.Do(ctx, "XRANGE", key, "-", "+").Slice()
	if err != nil || len(raw) != 1 {
		t.Fatalf("XRANGE = %v, %v; want one entry", raw, err)
	}
	got := raw[0].([]any)[1]
	want := []any{"id", args[0], "type", args[1], "app", args[2], "actor", args[3], "actor_id", args[4], "time", args[5], "data", args[6]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entry fields = %v, want %v", got, want)
	}

	msgs, err := rdb.XRange(ctx, key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	ev := Decode("hello", msgs[0])
	if ev.ID != args[0] || ev.Type != ChannelPromoted || ev.App != "hello" || ev.Actor != "bot" || ev.ActorID != "tok_1" ||
		ev.Time.Format(time.RFC3339Nano) != at || !json.Valid(ev.Data) || string(ev.Data) != args[6] {
		t.Errorf("Decode = %+v, want the fields written", ev)
	}
	if ms, ok := ev.StreamMS(); !ok || ms == 0 {
		t.Errorf("StreamMS() = %d, %v; want the entry's time", ms, ok)
	}
}

func TestAppendLuaIsOneXADD(t *testing.T) {
	want := "redis.call('XADD', key, 'MAXLEN', '~', 100000, '*', 'id', v[1], 'type', v[2], 'app', v[3], " +
		"'actor', v[4], 'actor_id', v[5], 'time', v[6], 'data', v[7])"
	if !strings.Contains(appendLua, want) {
		t.Errorf("appendLua = %s\nwant it to call %s", appendLua, want)
	}
}
