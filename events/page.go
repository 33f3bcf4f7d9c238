package events

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// List returns up to limit events of apps whose type passes types, newest first, and
// the cursor of the next page ("" on the last). A page may hold fewer than limit events
// and still have a next page when the type filter skips many.
func (l *Log) List(ctx context.Context, apps, types []string, cursor string, limit int) ([]Event, string, error) {
	ss, err := pageStreams(apps, cursor, int64(min(max(limit+1, 50), 1000)))
	if err != nil {
		return nil, "", err
	}
	if err := l.fillAll(ctx, ss); err != nil {
		return nil, "", err
	}
	out := []Event{}
	budget := 10*limit + 1000 // entries a filtered page may skip before it ends early
	for len(out) < limit && budget > 0 {
		s, err := l.newest(ctx, ss)
		if err != nil {
			return nil, "", err
		}
		if s == nil {
			break
		}
		ev := s.pop()
		budget--
		if MatchType(types, ev.Type) {
			out = append(out, ev)
		}
	}
	return out, nextPage(ss), nil
}

// pageStream is one app's stream as a page reads it, newest first, a chunk at a time.
type pageStream struct {
	app   string
	chunk int64     // entries read at a time
	bound *streamID // exclusive upper bound of the next read; nil for the top of the stream
	buf   []entry   // read and not yet consumed, newest first
	done  bool      // nothing is left below bound
	top   *streamID // the first entry read, for the next page's bound
	last  *streamID // the last entry consumed
}

// pageStreams returns the streams a page from cursor reads: every app's from its top
// without a cursor; else those the cursor names, from where it says.
func pageStreams(apps []string, cursor string, chunk int64) ([]*pageStream, error) {
	var ss []*pageStream
	if cursor == "" {
		for _, app := range apps {
			ss = append(ss, &pageStream{app: app, chunk: chunk})
		}
		return ss, nil
	}
	bounds, err := decodeBounds(cursor)
	if err != nil {
		return nil, err
	}
	for _, app := range apps {
		if b, ok := bounds[app]; ok {
			ss = append(ss, &pageStream{app: app, chunk: chunk, bound: &b})
		}
	}
	return ss, nil
}

// read asks for the stream's next chunk below its bound.
func (s *pageStream) read(ctx context.Context, p redis.Cmdable) *redis.XMessageSliceCmd {
	end := "+"
	if s.bound != nil {
		end = "(" + s.bound.String()
	}
	return p.XRevRangeN(ctx, store.EventsKey(s.app), end, "-", s.chunk)
}

// take buffers a chunk the stream's read returned.
func (s *pageStream) take(msgs []redis.XMessage) {
	for _, e := range entries(s.app, msgs) {
		s.buf = append(s.buf, e)
		if s.top == nil {
			s.top = &e.id
		}
		s.bound = &e.id
	}
	if int64(len(msgs)) < s.chunk {
		s.done = true
	}
}

// pop consumes the stream's newest buffered event.
func (s *pageStream) pop() Event {
	e := s.buf[0]
	s.buf = s.buf[1:]
	s.last = &e.id
	return e.ev
}

// fillAll reads the first chunk of every stream in one round trip.
func (l *Log) fillAll(ctx context.Context, ss []*pageStream) error {
	cmds := make([]*redis.XMessageSliceCmd, len(ss))
	if _, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range ss {
			cmds[i] = s.read(ctx, p)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("reading events: %w", err)
	}
	for i, s := range ss {
		s.take(cmds[i].Val())
	}
	return nil
}

// newest returns the stream whose next event is the newest across ss (reading on in
// any stream whose buffer ran out), or nil when every stream is exhausted.
func (l *Log) newest(ctx context.Context, ss []*pageStream) (*pageStream, error) {
	var best *pageStream
	for _, s := range ss {
		if len(s.buf) == 0 && !s.done {
			msgs, err := s.read(ctx, l.rdb).Result()
			if err != nil {
				return nil, fmt.Errorf("reading events: %w", err)
			}
			s.take(msgs)
		}
		if len(s.buf) > 0 && (best == nil || s.buf[0].compare(best.buf[0]) > 0) {
			best = s
		}
	}
	return best, nil
}

// nextPage is the cursor of the page after the one read from ss, or "" when no stream
// has entries left.
func nextPage(ss []*pageStream) string {
	next := map[string]streamID{}
	for _, s := range ss {
		switch {
		case len(s.buf) == 0 && s.done:
			// nothing left below
		case s.last != nil:
			next[s.app] = *s.last
		case s.top != nil:
			next[s.app] = s.top.next()
		}
	}
	if len(next) == 0 {
		return ""
	}
	return encodeBounds(next)
}
