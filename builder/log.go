package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// buildLog is a running build's log: appended to a Redis string, so byte offsets are
// stable and a follower can resume at any of them; stored as a blob when the build ends.
type buildLog struct {
	rdb      redis.UniversalClient
	app, id  string
	max      int64
	scrub    *strings.Replacer // the worker's paths, out of what users read
	srv      *slog.Logger      // the server's own log, for what users do not read
	mu       sync.Mutex
	size     int64
	sizeRead bool
	cut      bool
}

func newBuildLog(rdb redis.UniversalClient, app, id string, max int64, scrub *strings.Replacer, srv *slog.Logger) *buildLog {
	return &buildLog{rdb: rdb, app: app, id: id, max: max, scrub: scrub, srv: srv}
}

// Write appends p, cutting the log at its maximum size.
func (l *buildLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx := context.Background()
	key := store.BuildLogKey(l.app, l.id)
	if !l.sizeRead {
		l.size, _ = l.rdb.StrLen(ctx, key).Result()
		l.sizeRead = true
	}
	if l.cut {
		return len(p), nil
	}
	chunk := p
	if l.scrub != nil {
		chunk = []byte(l.scrub.Replace(string(p)))
	}
	if l.size+int64(len(chunk)) > l.max {
		chunk = append(chunk[:max(0, l.max-l.size):max(0, l.max-l.size)], []byte("\n[log cut: over the build log limit]\n")...)
		l.cut = true
	}
	// The append and the wake-up of the log's followers go in one round trip.
	var appended *redis.IntCmd
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		appended = p.Append(ctx, key, string(chunk))
		p.Publish(ctx, store.BuildWakeChannel(l.app, l.id), "")
		return nil
	})
	n := appended.Val()
	if err != nil {
		// A line lost while Redis is away must not stop the compile writing to us.
		l.sizeRead = false
		return len(p), nil
	}
	l.size = n
	return len(p), nil
}

// Printf appends one timestamped line.
func (l *buildLog) Printf(format string, args ...any) {
	_, _ = l.Write([]byte(logLine(fmt.Sprintf(format, args...))))
}

// logLine is a timestamped line of a build log.
func logLine(s string) string {
	return time.Now().UTC().Format("15:04:05.000") + " " + s + "\n"
}

// Prefixed returns a writer that appends whole lines, each starting with prefix.
func (l *buildLog) Prefixed(prefix string) io.Writer {
	return &prefixWriter{prefix: []byte(prefix), w: l}
}

type prefixWriter struct {
	mu     sync.Mutex
	prefix []byte
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := append(append([]byte{}, p.prefix...), p.buf[:i+1]...)
		if _, err := p.w.Write(line); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Store writes the log to the blob store, marks the build's log as stored there, and
// lets the Redis copy expire (followers reading it switch to the blob).
func (l *buildLog) Store(ctx context.Context, blobs store.Blobs) error {
	key := store.BuildLogKey(l.app, l.id)
	data, err := l.rdb.Get(ctx, key).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("reading the build log: %w", err)
	}
	if _, err := blobs.Put(ctx, store.LogKey(l.app, l.id), bytes.NewReader(data), ""); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("storing the build log: %w", err)
	}
	if err := l.rdb.HSet(ctx, store.BuildKey(l.app, l.id), "log", "blob").Err(); err != nil {
		return fmt.Errorf("marking the build log stored: %w", err)
	}
	return l.rdb.Expire(ctx, key, 10*time.Minute).Err()
}

// WatchLog returns a channel that receives when the build's log may have grown or its
// status changed, and a function that stops the watch. Once WatchLog returns, no change
// is missed: a read after a receive sees it. When the watch cannot start, the channel is
// nil (it never receives) and the caller's own polling is all that is left.
func (s *Builds) WatchLog(ctx context.Context, app, id string) (<-chan struct{}, func()) {
	ps := s.rdb.Subscribe(ctx, store.BuildWakeChannel(app, id))
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		_ = ps.Close()
		return nil, func() {}
	}
	msgs := ps.Channel()
	wake := make(chan struct{}, 1)
	go func() {
		for range msgs { // closed by ps.Close
			select {
			case wake <- struct{}{}:
			default: // one pending wake-up covers every change before it
			}
		}
	}()
	return wake, func() { _ = ps.Close() }
}

// LogChunk is a piece of a build's log.
type LogChunk struct {
	Data []byte
	// Done is true when the build has ended and Data reaches the end of its log.
	Done bool
	// Status is the build's status when the chunk was read.
	Status Status
}

// ReadLog returns up to max bytes of the build's log from offset.
func (s *Builds) ReadLog(ctx context.Context, blobs store.Blobs, app, id string, offset, max int64) (LogChunk, error) {
	if !validID(id) {
		return LogChunk{}, fmt.Errorf("%w: no build %s in app %s", ErrNotFound, id, app)
	}
	vals, err := s.rdb.HMGet(ctx, store.BuildKey(app, id), "status", "log").Result()
	if err != nil {
		return LogChunk{}, fmt.Errorf("reading build %s: %w", id, err)
	}
	st, _ := vals[0].(string)
	if st == "" {
		return LogChunk{}, fmt.Errorf("%w: no build %s in app %s", ErrNotFound, id, app)
	}
	status := Status(st)
	if vals[1] == "blob" {
		rc, info, err := blobs.Get(ctx, store.LogKey(app, id), min(offset, maxInt), max)
		if err != nil {
			if offset > 0 && !errors.Is(err, store.ErrNotFound) {
				return LogChunk{Status: status, Done: true}, nil // past the end
			}
			return LogChunk{}, fmt.Errorf("reading the stored log: %w", err)
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			return LogChunk{}, fmt.Errorf("reading the stored log: %w", err)
		}
		return LogChunk{Data: data, Status: status, Done: offset+int64(len(data)) >= info.Size}, nil
	}
	data, err := s.rdb.GetRange(ctx, store.BuildLogKey(app, id), offset, offset+max-1).Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return LogChunk{}, fmt.Errorf("reading the build log: %w", err)
	}
	// A finished build whose log is not yet stored is done once we reach the end.
	done := status.Done() && int64(len(data)) < max
	return LogChunk{Data: data, Status: status, Done: done}, nil
}

const maxInt = int64(^uint64(0) >> 1)
