package webhook

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
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
	next := position{since: pos.since, streams: map[string]streamID{}}
	streams := make([]string, 0, 2*len(apps))
	ids := make([]string, 0, len(apps))
	for _, app := range apps {
		id, ok := pos.streams[app]
		if ok {
			next.streams[app] = id
		} else if pos.since > 0 {
			id = streamID{pos.since - 1, ^uint64(0)}
		}
		streams = append(streams, store.EventsKey(app))
		ids = append(ids, id.String())
	}
	if len(apps) == 0 {
		if block > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(block):
			}
		}
		return nil, next.encode(), nil
	}
	args := &redis.XReadArgs{Streams: append(streams, ids...), Count: int64(count), Block: -1}
	if block > 0 {
		args.Block = block
	}
	res, err := l.rdb.XRead(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		return nil, next.encode(), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading events: %w", err)
	}
	type entry struct {
		ev Event
		id streamID
	}
	var entries []entry
	byKey := map[string]string{}
	for _, app := range apps {
		byKey[store.EventsKey(app)] = app
	}
	for _, s := range res {
		app := byKey[s.Stream]
		for _, m := range s.Messages {
			id, ok := parseStreamID(m.ID)
			if !ok {
				continue
			}
			ev := decodeEvent(app, m)
			ev.App = app // the stream says whose event it is
			entries = append(entries, entry{ev, id})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := cmp.Compare(a.id.ms, b.id.ms); c != 0 {
			return c
		}
		if c := cmp.Compare(a.id.seq, b.id.seq); c != 0 {
			return c
		}
		return strings.Compare(a.ev.App, b.ev.App)
	})
	out := make([]Event, len(entries))
	for i, e := range entries {
		next.streams[e.ev.App] = e.id
		e.ev.Cursor = next.encode()
		out[i] = e.ev
	}
	return out, next.encode(), nil
}

// List returns up to limit events of apps whose type passes types, newest first, and
// the cursor of the next page ("" on the last). A page may hold fewer than limit events
// and still have a next page when the type filter skips many.
func (l *Log) List(ctx context.Context, apps, types []string, cursor string, limit int) ([]Event, string, error) {
	type stream struct {
		app   string
		bound *streamID // exclusive upper bound; nil for the top of the stream
		buf   []Event
		ids   []streamID
		done  bool
		taken bool
		top   *streamID // the first entry seen, for the next page's bound
	}
	var ss []*stream
	if cursor == "" {
		for _, app := range apps {
			ss = append(ss, &stream{app: app})
		}
	} else {
		bounds, err := decodeBounds(cursor)
		if err != nil {
			return nil, "", err
		}
		for _, app := range apps {
			if b, ok := bounds[app]; ok {
				ss = append(ss, &stream{app: app, bound: &b})
			}
		}
	}
	chunk := int64(min(max(limit+1, 50), 1000))
	fill := func(p redis.Cmdable, s *stream) *redis.XMessageSliceCmd {
		end := "+"
		if s.bound != nil {
			end = "(" + s.bound.String()
		}
		return p.XRevRangeN(ctx, store.EventsKey(s.app), end, "-", chunk)
	}
	take := func(s *stream, msgs []redis.XMessage) {
		for _, m := range msgs {
			id, ok := parseStreamID(m.ID)
			if !ok {
				continue
			}
			ev := decodeEvent(s.app, m)
			ev.App = s.app
			s.buf = append(s.buf, ev)
			s.ids = append(s.ids, id)
			if s.top == nil {
				s.top = &id
			}
			s.bound = &id
		}
		if int64(len(msgs)) < chunk {
			s.done = true
		}
	}
	cmds := make([]*redis.XMessageSliceCmd, len(ss))
	if _, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range ss {
			cmds[i] = fill(p, s)
		}
		return nil
	}); err != nil {
		return nil, "", fmt.Errorf("reading events: %w", err)
	}
	for i, s := range ss {
		take(s, cmds[i].Val())
	}

	var out []Event
	last := map[string]streamID{} // the last entry consumed of each stream
	budget := 10*limit + 1000     // entries a filtered page may skip before it ends early
	for len(out) < limit && budget > 0 {
		var best *stream
		for _, s := range ss {
			if len(s.buf) == 0 && !s.done {
				msgs, err := fill(l.rdb, s).Result()
				if err != nil {
					return nil, "", fmt.Errorf("reading events: %w", err)
				}
				take(s, msgs)
			}
			if len(s.buf) == 0 {
				continue
			}
			if best == nil || best.ids[0].less(s.ids[0]) || (best.ids[0] == s.ids[0] && best.app < s.app) {
				best = s
			}
		}
		if best == nil {
			break
		}
		ev, id := best.buf[0], best.ids[0]
		best.buf, best.ids = best.buf[1:], best.ids[1:]
		best.taken = true
		last[best.app] = id
		budget--
		if matchType(types, ev.Type) {
			out = append(out, ev)
		}
	}
	next := map[string]streamID{}
	for _, s := range ss {
		switch {
		case len(s.buf) == 0 && s.done:
			// nothing left below
		case s.taken:
			next[s.app] = last[s.app]
		case s.top != nil:
			next[s.app] = s.top.next()
		}
	}
	if out == nil {
		out = []Event{}
	}
	if len(next) == 0 {
		return out, "", nil
	}
	return out, encodeBounds(next), nil
}

// position is a tail cursor: the last entry read of each stream it names, and the
// time (ms) from which streams it does not name are read.
type position struct {
	since   uint64
	streams map[string]streamID
}

var appName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Cursors are base64url text: a kind ("a" for tails, "b" for pages), then for tails the
// since time, then app=ms-seq entries in app order, separated by ';'.
func encodeCursor(kind string, head string, m map[string]streamID) string {
	var b strings.Builder
	b.WriteString(kind)
	b.WriteString(head)
	for _, app := range slices.Sorted(maps.Keys(m)) {
		b.WriteByte(';')
		b.WriteString(app)
		b.WriteByte('=')
		b.WriteString(m[app].String())
	}
	return base64.RawURLEncoding.EncodeToString([]byte(b.String()))
}

func decodeCursor(kind, s string) (head string, m map[string]streamID, err error) {
	bad := fmt.Errorf("%w: not a cursor of this server; start again without it", ErrBadCursor)
	if len(s) > 1<<20 {
		return "", nil, bad
	}
	raw, derr := base64.RawURLEncoding.DecodeString(s)
	if derr != nil || !strings.HasPrefix(string(raw), kind) {
		return "", nil, bad
	}
	parts := strings.Split(string(raw)[len(kind):], ";")
	m = map[string]streamID{}
	for _, p := range parts[1:] {
		app, id, ok := strings.Cut(p, "=")
		sid, okID := parseStreamID(id)
		if !ok || !okID || !appName.MatchString(app) {
			return "", nil, bad
		}
		m[app] = sid
	}
	return parts[0], m, nil
}

func (p position) encode() string {
	return encodeCursor("a", strconv.FormatUint(p.since, 10), p.streams)
}

func decodePosition(s string) (position, error) {
	head, m, err := decodeCursor("a", s)
	if err != nil {
		return position{}, err
	}
	since, perr := strconv.ParseUint(head, 10, 64)
	if perr != nil {
		return position{}, fmt.Errorf("%w: not a cursor of this server; start again without it", ErrBadCursor)
	}
	return position{since: since, streams: m}, nil
}

func encodeBounds(m map[string]streamID) string { return encodeCursor("b", "", m) }

func decodeBounds(s string) (map[string]streamID, error) {
	head, m, err := decodeCursor("b", s)
	if err == nil && head != "" {
		err = fmt.Errorf("%w: not a cursor of this server; start again without it", ErrBadCursor)
	}
	return m, err
}
