package events

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/slipway/slipway/events/eventstest"
	"github.com/slipway/slipway/store/storetest"
)

func ids(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestLogTailResumesExactly(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	log := NewLog(rdb)
	eventstest.Write(t, rdb, "alpha", BuildQueued, map[string]any{"id": "before"}) // before the tail: never read
	apps := []string{"alpha", "beta", "gamma"}
	start, err := log.Start(ctx, apps)
	if err != nil {
		t.Fatal(err)
	}
	var written []string
	for i := range 12 {
		written = append(written, eventstest.Write(t, rdb, apps[i%3], ChannelLocked, map[string]any{"i": i}))
		time.Sleep(2 * time.Millisecond) // order across streams is by millisecond
	}

	// Small reads, resumed each time from the last event's cursor, see every event once.
	var seen []Event
	cursor := start
	for len(seen) < len(written) {
		evs, next, err := log.Read(ctx, apps, cursor, 0, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			t.Fatalf("Read stalled after %d of %d events", len(seen), len(written))
		}
		if evs[len(evs)-1].Cursor != next {
			t.Errorf("the last event's cursor is not the cursor after the read")
		}
		seen = append(seen, evs...)
		cursor = next
	}
	if !slices.Equal(ids(seen), written) {
		t.Fatalf("Read = %v, want %v", ids(seen), written)
	}

	// Resuming from any event's cursor yields exactly the events after it.
	for _, k := range []int{0, 4, 7, 11} {
		evs, _, err := log.Read(ctx, apps, seen[k].Cursor, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(evs), written[k+1:]) {
			t.Errorf("Read after event %d = %v, want %v", k, ids(evs), written[k+1:])
		}
	}

	// An app the tail did not read is read from the time the tail began.
	late := eventstest.Write(t, rdb, "delta", ReleaseCreated, map[string]any{})
	evs, _, err := log.Read(ctx, append(apps, "delta"), seen[11].Cursor, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(evs), []string{late}) {
		t.Errorf("Read with a new app = %v, want [%s]", ids(evs), late)
	}

	if _, _, err := log.Read(ctx, apps, "bm9wZQ", 0, 1); !errors.Is(err, ErrBadCursor) {
		t.Errorf("Read(bad cursor) = %v, want ErrBadCursor", err)
	}
	if err := CheckTailCursor(start); err != nil {
		t.Errorf("CheckTailCursor(Start()) = %v", err)
	}
}

func TestLogListPaginates(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	log := NewLog(rdb)
	apps := []string{"alpha", "beta"}
	var all, locks []string
	for i := range 25 {
		typ := BuildQueued
		if i%3 == 0 {
			typ = ChannelLocked
		}
		id := eventstest.Write(t, rdb, apps[i%2], typ, map[string]any{"i": i})
		time.Sleep(2 * time.Millisecond)   // order across streams is by millisecond
		all = append([]string{id}, all...) // newest first
		if typ == ChannelLocked {
			locks = append([]string{id}, locks...)
		}
	}
	tests := []struct {
		name  string
		apps  []string
		types []string
		limit int
		want  []string
	}{
		{"everything, pages of 7", apps, nil, 7, all},
		{"one page", apps, nil, 100, all},
		{"channel events, pages of 2", apps, []string{"channel.*"}, 2, locks},
		{"one app", []string{"beta"}, nil, 4, func() (out []string) {
			for i, id := range all { // all[i] is event 24-i, of app (24-i)%2
				if (24-i)%2 == 1 {
					out = append(out, id)
				}
			}
			return out
		}()},
		{"no apps", nil, nil, 5, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			cursor := ""
			for page := 0; ; page++ {
				evs, next, err := log.List(ctx, tc.apps, tc.types, cursor, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) > tc.limit {
					t.Fatalf("page %d has %d events, over the limit %d", page, len(evs), tc.limit)
				}
				got = append(got, ids(evs)...)
				if next == "" {
					break
				}
				cursor = next
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("List = %v\nwant %v", got, tc.want)
			}
		})
	}
	// Events newer than the first page never show on the next ones.
	first, next, err := log.List(ctx, apps, nil, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	newer := eventstest.Write(t, rdb, "beta", ChannelLocked, nil)
	rest, _, err := log.List(ctx, apps, nil, next, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(ids(first), ids(rest)...); !slices.Equal(got, all) || slices.Contains(got, newer) {
		t.Errorf("List with a write between pages = %v, want %v", got, all)
	}

	if _, _, err := log.List(ctx, apps, nil, "garbage!", 5); !errors.Is(err, ErrBadCursor) {
		t.Errorf("List(bad cursor) = %v, want ErrBadCursor", err)
	}
}
