package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// Log reads the events of several apps, whose streams are separate Redis keys: as a
// live tail that resumes exactly where it stopped, and as pages newest first.
//
// A tail's cursor holds the last entry read of every stream it reads, so resuming from
// it is exact however the streams interleave; streams it does not name (an app created
// later) are read from the time the tail began. A page's cursor holds, for every stream
// with entries left, the id below which the next page continues.
type Log struct {
	rdb redis.UniversalClient
}

// NewLog returns the event reader on rdb.
func NewLog(rdb redis.UniversalClient) *Log { return &Log{rdb: rdb} }

// Apps returns every app name, in name order.
func (l *Log) Apps(ctx context.Context) ([]string, error) {
	apps, err := l.rdb.ZRange(ctx, store.AppsIndexKey, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("listing apps: %w", err)
	}
	return apps, nil
}

// Start returns a tail cursor at the end of every app's stream: reading from it yields
// the events written from now on.
func (l *Log) Start(ctx context.Context, apps []string) (string, error) {
	var timeCmd *redis.TimeCmd
	last := make([]*redis.XMessageSliceCmd, len(apps))
	if _, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		timeCmd = p.Time(ctx)
		for i, app := range apps {
			last[i] = p.XRevRangeN(ctx, store.EventsKey(app), "+", "-", 1)
		}
		return nil
	}); err != nil {
		return "", fmt.Errorf("reading the ends of the event streams: %w", err)
	}
	pos := position{since: uint64(timeCmd.Val().UnixMilli()), streams: map[string]streamID{}}
	for i, app := range apps {
		pos.streams[app] = streamID{}
		if msgs := last[i].Val(); len(msgs) > 0 {
			if id, ok := parseStreamID(msgs[0].ID); ok {
				pos.streams[app] = id
			}
		}
	}
	return pos.encode(), nil
}

// CheckTailCursor reports whether s is a tail cursor (an SSE Last-Event-ID).
func CheckTailCursor(s string) error {
	_, err := decodePosition(s)
	return err
}

// Read returns the events of apps after the tail cursor, at most count per stream,
// oldest first (by stream id across streams), each with the cursor just after it, and
// the cursor after them all. With block > 0 it waits that long for an event when there
// is none; with block 0 it does not wait.
func (l *Log) Read(ctx context.Context, apps []string, cursor string, block time.Duration, count int) ([]Event, string, error) {
	pos, err := decodePosition(cursor)
	if err != nil {
		return nil, "", err
	}
	next, after := pos.resume(apps)
	if len(apps) == 0 {
		sleep(ctx, block)
		return nil, next.encode(), nil
	}
	res, appOf, err := l.read(ctx, apps, after, block, count)
	if err != nil {
		return nil, "", fmt.Errorf("reading events: %w", err)
	}
	var all []entry
	for _, s := range res {
		all = append(all, entries(appOf[s.Stream], s.Messages)...)
	}
	slices.SortFunc(all, entry.compare)
	out := make([]Event, len(all))
	for i, e := range all {
		next.streams[e.ev.App] = e.id
		e.ev.Cursor = next.encode()
		out[i] = e.ev
	}
	return out, next.encode(), nil
}

// read reads each app's stream after the id at the same index of after, waiting up to
// block for an entry. One XREAD reads several streams only on one Redis: on Redis Cluster
// each app's stream lies in the slot of its app, and a command over keys of several slots
// is refused (CROSSSLOT). There each stream is read with a command of its own, all in one
// pipeline (one round trip per node), and a read that waits polls every clusterPoll.
func (l *Log) read(ctx context.Context, apps, after []string, block time.Duration, count int) ([]redis.XStream, map[string]string, error) {
	if len(apps) == 1 || !store.IsCluster(l.rdb) {
		args, appOf := readArgs(apps, after, block, count)
		res, err := l.rdb.XRead(ctx, args).Result()
		if errors.Is(err, redis.Nil) {
			return nil, appOf, nil
		}
		return res, appOf, err
	}
	appOf := make(map[string]string, len(apps))
	for _, app := range apps {
		appOf[store.EventsKey(app)] = app
	}
	deadline := time.Now().Add(block)
	for {
		cmds := make([]*redis.XStreamSliceCmd, len(apps))
		// Each command's own error is looked at below.
		_, _ = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, app := range apps {
				args, _ := readArgs([]string{app}, after[i:i+1], 0, count)
				cmds[i] = p.XRead(ctx, args)
			}
			return nil
		})
		var all []redis.XStream
		for _, c := range cmds {
			res, err := c.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			all = append(all, res...)
		}
		wait := time.Until(deadline)
		if len(all) > 0 || wait <= 0 || ctx.Err() != nil {
			return all, appOf, ctx.Err()
		}
		sleep(ctx, min(wait, clusterPoll))
	}
}

// clusterPoll is how often a read of several apps' events that waits for one reads
// again on Redis Cluster.
const clusterPoll = 100 * time.Millisecond

// readArgs are the arguments of the XREAD that takes each app's stream after the id
// at the same index of after, and the app of each stream key.
func readArgs(apps, after []string, block time.Duration, count int) (*redis.XReadArgs, map[string]string) {
	streams := make([]string, 0, 2*len(apps))
	appOf := make(map[string]string, len(apps))
	for _, app := range apps {
		streams = append(streams, store.EventsKey(app))
		appOf[store.EventsKey(app)] = app
	}
	args := &redis.XReadArgs{Streams: append(streams, after...), Count: int64(count), Block: -1}
	if block > 0 {
		args.Block = block
	}
	return args, appOf
}

// sleep waits d, or less when ctx ends first.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
