package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/store"
)

// Builds keeps build records in Redis (see store/paths.go for the keys) and queues them
// for workers on a Redis stream.
type Builds struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewBuilds returns the build store on rdb.
func NewBuilds(rdb redis.UniversalClient) *Builds {
	return &Builds{rdb: rdb, now: time.Now}
}

// createScript records a new build unless a live build with the same inputs exists.
//
//	KEYS  build hash, all builds, builds in status queued, dedupe key, the app's events
//	ARGV  id, doc, event id, time, app, actor, source URL ("" for an uploaded source,
//	      whose build is deduplicated; a URL's content is known only once fetched), actor id,
//	      event type (build.queued)
//	returns {"ok"} or {"dup", existing id}; a new build also gets its build.queued event
var createScript = events.Script(`
if ARGV[7] == '' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {'dup', existing} end
end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'status', 'queued', 'attempt', '0')
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'source_url', ARGV[7])
else
  redis.call('SET', KEYS[4], ARGV[1])
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
append_event(KEYS[5], ARGV[3], ARGV[9], ARGV[5], ARGV[6], ARGV[8], ARGV[4], ARGV[2])
return {'ok'}
`)

// transitionScript moves a build from one state to the next if nobody moved it first:
// the attempt (fencing token) and status must be the ones the caller read. A build whose
// cancel was accepted never becomes succeeded: that transition is refused.
//
//	KEYS  build hash, set of the old status, set of the new status, dedupe key, the app's
//	      events, the build's running log
//	ARGV  id, expected attempt, expected status, new attempt, new status, doc,
//	      drop dedupe ("1": the build can no longer be reused), event id, time, app, actor,
//	      a line to append to the log in the same step ("" for none), actor id, the event
//	      type of the new status ("" for a status that reports none), the build's wake
//	      channel
//	returns "ok", "missing", "conflict" or "canceled"; a build that ends gets its
//	build.<status> event, and a change of status or log is published on the wake channel
var transitionScript = events.Script(`
local cur = redis.call('HMGET', KEYS[1], 'attempt', 'status', 'cancel')
if not cur[2] then return 'missing' end
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] then return 'conflict' end
if ARGV[5] == 'succeeded' and cur[3] == '1' then return 'canceled' end
redis.call('HSET', KEYS[1], 'attempt', ARGV[4], 'status', ARGV[5], 'doc', ARGV[6])
if ARGV[3] ~= ARGV[5] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[3], 0, ARGV[1])
end
if ARGV[7] == '1' and redis.call('GET', KEYS[4]) == ARGV[1] then
  redis.call('DEL', KEYS[4])
end
if ARGV[12] ~= '' then redis.call('APPEND', KEYS[6], ARGV[12]) end
if ARGV[3] ~= ARGV[5] and ARGV[14] ~= '' then
  append_event(KEYS[5], ARGV[8], ARGV[14], ARGV[10], ARGV[11], ARGV[13], ARGV[9], ARGV[6])
end
if ARGV[3] ~= ARGV[5] or ARGV[12] ~= '' then redis.call('PUBLISH', ARGV[15], '') end
return 'ok'
`)

// endEvents are the event types of the statuses a build ends in.
var endEvents = map[Status]string{
	StatusSucceeded: events.BuildSucceeded,
	StatusFailed:    events.BuildFailed,
	StatusCanceled:  events.BuildCanceled,
}

// requestCancelScript marks a running build for cancellation.
//
//	KEYS  build hash
//	returns the status, or false when the build does not exist
var requestCancelScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return false end
if st == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1') end
return st
`)

// record is a build as stored: its document and the fields scripts check.
type record struct {
	build   Build
	status  Status
	attempt int
	cancel  bool
	logBlob bool
}

var recordFields = []string{"doc", "status", "attempt", "cancel", "log"}

func (s *Builds) read(ctx context.Context, app, id string) (record, error) {
	vals, err := s.rdb.HMGet(ctx, store.BuildKey(app, id), recordFields...).Result()
	if err != nil {
		return record{}, fmt.Errorf("reading build %s: %w", id, err)
	}
	return decodeRecord(app, id, vals)
}

func decodeRecord(app, id string, vals []any) (record, error) {
	doc, _ := vals[0].(string)
	if doc == "" {
		return record{}, fmt.Errorf("%w: no build %s in app %s", ErrNotFound, id, app)
	}
	var r record
	if err := json.Unmarshal([]byte(doc), &r.build); err != nil {
		return record{}, fmt.Errorf("decoding build %s: %w", id, err)
	}
	st, _ := vals[1].(string)
	r.status = Status(st)
	r.build.Status = r.status
	att, _ := vals[2].(string)
	r.attempt, _ = strconv.Atoi(att)
	r.cancel = vals[3] == "1"
	r.logBlob = vals[4] == "blob"
	return r, nil
}

// Get returns a build.
func (s *Builds) Get(ctx context.Context, app, id string) (Build, error) {
	if !validID(id) {
		return Build{}, fmt.Errorf("%w: no build %s in app %s", ErrNotFound, id, app)
	}
	r, err := s.read(ctx, app, id)
	return r.build, err
}

// List returns up to limit builds of app, newest first, starting after the build id
// after ("" for the first page), optionally only those in one status; and the id to pass
// as after for the next page ("" on the last).
func (s *Builds) List(ctx context.Context, app string, status Status, after string, limit int) ([]Build, string, error) {
	key := store.BuildsKey(app)
	if status != "" {
		key = store.BuildsByStatusKey(app, string(status))
	}
	ids, next, err := store.PageIDs(ctx, s.rdb, key, after, limit)
	if err != nil {
		return nil, "", fmt.Errorf("listing builds of %s: %w", app, err)
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, store.BuildKey(app, id), recordFields...)
		}
		return nil
	}); err != nil {
		return nil, "", fmt.Errorf("reading builds of %s: %w", app, err)
	}
	out := make([]Build, 0, len(ids))
	for i, id := range ids {
		r, err := decodeRecord(app, id, cmds[i].Val())
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, r.build)
	}
	return out, next, nil
}

// create records a queued build. When a live build with the same input hash exists,
// it records nothing and returns that build's id. A build of a source URL (rawURL not
// empty) is never deduplicated; the URL is kept beside the build, not in its document.
func (s *Builds) create(ctx context.Context, b Build, rawURL string) (dupOf string, err error) {
	doc, err := json.Marshal(b)
	if err != nil {
		return "", fmt.Errorf("encoding build: %w", err)
	}
	now := s.now().UTC()
	res, err := createScript.Run(ctx, s.rdb, []string{
		store.BuildKey(b.App, b.ID), store.BuildsKey(b.App),
		store.BuildsByStatusKey(b.App, string(StatusQueued)), store.DedupeKey(b.App, b.InputHash),
		store.EventsKey(b.App),
	}, b.ID, doc, events.NewID(now), now.Format(time.RFC3339Nano), b.App, b.CreatedBy, rawURL, b.CreatedByID,
		events.BuildQueued).StringSlice()
	if err != nil {
		return "", fmt.Errorf("recording build %s: %w", b.ID, err)
	}
	if res[0] == "dup" {
		return res[1], nil
	}
	return "", nil
}

// transition writes b as the build's new state if the build is still at attempt
// fromAttempt in status from, and appends logLine to its log in the same step. It returns
// ErrStale when someone else moved it first, and errCancelFirst for a build that would
// succeed although a cancel was accepted.
func (s *Builds) transition(ctx context.Context, fromAttempt int, from Status, b Build, logLine string) error {
	doc, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encoding build: %w", err)
	}
	drop := "0"
	if b.Status == StatusFailed || b.Status == StatusCanceled {
		drop = "1"
	}
	now := s.now().UTC()
	res, err := transitionScript.Run(ctx, s.rdb, []string{
		store.BuildKey(b.App, b.ID), store.BuildsByStatusKey(b.App, string(from)),
		store.BuildsByStatusKey(b.App, string(b.Status)), store.DedupeKey(b.App, b.InputHash),
		store.EventsKey(b.App), store.BuildLogKey(b.App, b.ID),
	}, b.ID, fromAttempt, string(from), b.Attempts, string(b.Status), doc, drop,
		events.NewID(now), now.Format(time.RFC3339Nano), b.App, b.CreatedBy, logLine, b.CreatedByID,
		endEvents[b.Status], store.BuildWakeChannel(b.App, b.ID)).Text()
	if err != nil {
		return fmt.Errorf("updating build %s: %w", b.ID, err)
	}
	switch res {
	case "missing":
		return fmt.Errorf("%w: no build %s in app %s", ErrNotFound, b.ID, b.App)
	case "conflict":
		return fmt.Errorf("%w: build %s moved on without this worker", ErrStale, b.ID)
	case "canceled":
		return fmt.Errorf("recording build %s: %w", b.ID, errCancelFirst)
	}
	return nil
}

// sourceURL returns the source URL a build was asked to fetch.
func (s *Builds) sourceURL(ctx context.Context, app, id string) (string, error) {
	u, err := s.rdb.HGet(ctx, store.BuildKey(app, id), "source_url").Result()
	if err != nil {
		return "", fmt.Errorf("reading the source URL of build %s: %w", id, err)
	}
	return u, nil
}

// Cancel stops a build: a queued one at once (it is canceled when Cancel returns true),
// a running one as soon as its worker notices (within its cancel poll, 500ms by default).
// A running build whose cancel is accepted never ends succeeded. Canceling a canceled
// build is a no-op; canceling one that succeeded or failed is ErrConflict: too late.
func (s *Builds) Cancel(ctx context.Context, app, id string) (Build, bool, error) {
	if !validID(id) {
		return Build{}, false, fmt.Errorf("%w: no build %s in app %s", ErrNotFound, id, app)
	}
	for range 5 {
		r, err := s.read(ctx, app, id)
		if err != nil {
			return Build{}, false, err
		}
		switch r.status {
		case StatusCanceled:
			return r.build, true, nil
		case StatusSucceeded, StatusFailed:
			return r.build, false, fmt.Errorf("%w: too late to cancel: build %s already %s", ErrConflict, id, r.status)
		case StatusRunning:
			st, err := requestCancelScript.Run(ctx, s.rdb, []string{store.BuildKey(app, id)}).Text()
			if err != nil {
				return Build{}, false, fmt.Errorf("canceling build %s: %w", id, err)
			}
			if st != string(StatusRunning) {
				continue // it moved on meanwhile; look again
			}
			return r.build, false, nil
		case StatusQueued:
			b := r.build
			now := s.now().UTC()
			b.Status = StatusCanceled
			b.FinishedAt = &now
			b.Error = &BuildError{Reason: ReasonCanceled, Detail: "canceled before a worker started it"}
			b.Timings.TotalMS = ms(now.Sub(b.CreatedAt))
			err := s.transition(ctx, r.attempt, StatusQueued, b, "")
			if errors.Is(err, ErrStale) {
				continue // a worker claimed it meanwhile
			}
			if err != nil {
				return Build{}, false, err
			}
			return b, true, nil
		}
	}
	return Build{}, false, fmt.Errorf("canceling build %s: its state kept changing", id)
}

// validID reports whether id looks like a build id (a ULID), so a path parameter never
// reaches Redis unchecked.
func validID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
