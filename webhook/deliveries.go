package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/store"
)

// The states of a delivery.
const (
	// StatePending waits for its next attempt (the first, or a retry).
	StatePending = "pending"
	// StateDelivering is being sent by a dispatcher, which holds its lease.
	StateDelivering = "delivering"
	// StateSucceeded was answered with a 2xx.
	StateSucceeded = "succeeded"
	// StateFailed was not answered with a 2xx before the horizon; it may be redelivered.
	StateFailed = "failed"
)

// Delivery is one event on its way to one subscription.
type Delivery struct {
	ID        string // stable across retries: the Slipway-Delivery header
	Webhook   string
	EventID   string
	EventType string
	App       string
	State     string
	Attempts  int
	// LastStatus is the HTTP status of the last attempt; 0 when it got no answer.
	LastStatus    int
	LastError     string
	LastAttemptAt *time.Time
	// NextAttemptAt is when a pending delivery is tried next.
	NextAttemptAt *time.Time
	CreatedAt     time.Time
	// GiveUpAt is when a delivery that still fails is marked failed.
	GiveUpAt time.Time
	// Recent are the last attempts, oldest first.
	Recent []Attempt
}

// Attempt is one try of a delivery.
type Attempt struct {
	At         time.Time
	Status     int // 0 when there was no answer
	Error      string
	DurationMS int64
}

// recentAttempts is how many attempts a delivery remembers; indexMax how many
// deliveries a subscription lists.
const (
	recentAttempts = 10
	indexMax       = 10000
)

// deliveryID is the delivery of event to subscription sub: a ULID with the event's
// time and randomness drawn from both ids, so that fanning an event out again finds
// the delivery made the first time.
func deliveryID(sub string, ev events.Event, streamMS uint64) string {
	ms := streamMS
	if id, err := ulid.ParseStrict(ev.ID); err == nil {
		ms = id.Time()
	}
	h := sha256.Sum256([]byte(sub + "\x00" + ev.ID))
	id, err := ulid.New(ms, bytes.NewReader(h[:10]))
	if err != nil { // ms beyond the year 10889
		id, _ = ulid.New(0, bytes.NewReader(h[:10]))
	}
	return id.String()
}

// createDeliveryScript schedules a delivery unless it exists or its subscription is gone.
//
//	KEYS  delivery hash, schedule, the subscription's deliveries index, subscription hash
//	ARGV  id, subscription id, event id, type, app, body, content type, now (ms),
//	      deadline (ms), index max
//	returns 1 when it was created, else 0
var createDeliveryScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[4]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'sub', ARGV[2], 'event_id', ARGV[3], 'type', ARGV[4], 'app', ARGV[5],
  'body', ARGV[6], 'ctype', ARGV[7], 'state', 'pending', 'attempts', 0, 'created', ARGV[8],
  'next_at', ARGV[8], 'deadline', ARGV[9], 'lease', 0, 'recent', '[]')
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
local n = redis.call('ZCARD', KEYS[3])
local max = tonumber(ARGV[10])
if n > max then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, n - max - 1) end
return 1
`)

// claimScript leases a due delivery to the caller: its schedule entry moves to the end
// of the lease (so it is due again if the caller dies) and its fencing token goes up.
//
//	KEYS  schedule, delivery hash
//	ARGV  id, now (ms), lease end (ms)
//	returns false when it is not due (or gone), else {lease, sub, body, ctype, type,
//	        attempts, deadline}
var claimScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s or tonumber(s) > tonumber(ARGV[2]) then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return false
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local lease = redis.call('HINCRBY', KEYS[2], 'lease', 1)
redis.call('HSET', KEYS[2], 'state', 'delivering')
local v = redis.call('HMGET', KEYS[2], 'sub', 'body', 'ctype', 'type', 'attempts', 'deadline')
local out = {tostring(lease)}
for i = 1, 6 do out[#out + 1] = v[i] or '' end
return out
`)

// finishScript records an attempt's outcome if the caller still holds the lease.
//
//	KEYS  schedule, delivery hash
//	ARGV  id, lease, outcome (succeeded, failed, retry, release or drop), now (ms), next
//	      attempt (ms), status, error, duration (ms), recent max, retention (s)
//	returns 1, or 0 when the lease was lost (the outcome is dropped)
var finishScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], 'lease') ~= ARGV[2] then return 0 end
local outcome = ARGV[3]
if outcome == 'drop' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
  return 1
end
if outcome == 'release' then
  redis.call('HSET', KEYS[2], 'state', 'pending', 'next_at', ARGV[4])
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  return 1
end
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
local rec = cjson.decode(redis.call('HGET', KEYS[2], 'recent') or '[]')
rec[#rec + 1] = {at = tonumber(ARGV[4]), status = tonumber(ARGV[6]), error = ARGV[7], duration_ms = tonumber(ARGV[8])}
while #rec > tonumber(ARGV[9]) do table.remove(rec, 1) end
redis.call('HSET', KEYS[2], 'last_status', ARGV[6], 'last_error', ARGV[7], 'last_at', ARGV[4], 'recent', cjson.encode(rec))
if outcome == 'retry' then
  redis.call('HSET', KEYS[2], 'state', 'pending', 'next_at', ARGV[5])
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
else
  redis.call('HSET', KEYS[2], 'state', outcome)
  redis.call('HDEL', KEYS[2], 'next_at')
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[10])
end
return 1
`)

// redeliverScript schedules a delivery again, now, with a new horizon; an attempt in
// flight loses its lease.
//
//	KEYS  schedule, delivery hash, the subscription's deliveries index
//	ARGV  id, subscription id, now (ms), deadline (ms)
//	returns 1, or 0 when the subscription has no such delivery
var redeliverScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], 'sub') ~= ARGV[2] then return 0 end
redis.call('HINCRBY', KEYS[2], 'lease', 1)
redis.call('HSET', KEYS[2], 'state', 'pending', 'next_at', ARGV[3], 'deadline', ARGV[4])
redis.call('PERSIST', KEYS[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return 1
`)

var deliveryFields = []string{"sub", "event_id", "type", "app", "state", "attempts", "last_status",
	"last_error", "last_at", "next_at", "created", "deadline", "recent"}

func decodeDelivery(id string, vals []any) (Delivery, bool) {
	str := func(i int) string { s, _ := vals[i].(string); return s }
	num := func(i int) int64 { n, _ := strconv.ParseInt(str(i), 10, 64); return n }
	msTime := func(i int) *time.Time {
		if str(i) == "" {
			return nil
		}
		t := time.UnixMilli(num(i)).UTC()
		return &t
	}
	if str(0) == "" {
		return Delivery{}, false
	}
	d := Delivery{
		ID: id, Webhook: str(0), EventID: str(1), EventType: str(2), App: str(3), State: str(4),
		Attempts: int(num(5)), LastStatus: int(num(6)), LastError: str(7), LastAttemptAt: msTime(8),
		CreatedAt: time.UnixMilli(num(10)).UTC(), GiveUpAt: time.UnixMilli(num(11)).UTC(),
	}
	if d.State == StatePending {
		d.NextAttemptAt = msTime(9)
	}
	var recent []struct {
		At         json.Number `json:"at"`
		Status     int         `json:"status"`
		Error      string      `json:"error"`
		DurationMS int64       `json:"duration_ms"`
	}
	_ = json.Unmarshal([]byte(str(12)), &recent) // "{}" (an empty Lua table) is no attempts
	for _, r := range recent {
		ms, _ := r.At.Int64()
		d.Recent = append(d.Recent, Attempt{At: time.UnixMilli(ms).UTC(), Status: r.Status, Error: r.Error, DurationMS: r.DurationMS})
	}
	return d, true
}

// Deliveries returns up to limit deliveries of a subscription, newest first, before
// the delivery id before ("" for the newest), and the id to pass as before for the
// next page ("" on the last).
func (s *Store) Deliveries(ctx context.Context, sub, before string, limit int) ([]Delivery, string, error) {
	if _, err := s.Get(ctx, sub); err != nil {
		return nil, "", err
	}
	ids, next, err := store.PageIDs(ctx, s.rdb, store.WebhookDeliveriesKey(sub), before, limit)
	if err != nil {
		return nil, "", fmt.Errorf("listing deliveries of webhook %s: %w", sub, err)
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, store.DeliveryKey(id), deliveryFields...)
		}
		return nil
	}); err != nil {
		return nil, "", fmt.Errorf("reading deliveries of webhook %s: %w", sub, err)
	}
	out := make([]Delivery, 0, len(ids))
	for i, id := range ids {
		if d, ok := decodeDelivery(id, cmds[i].Val()); ok && d.Webhook == sub {
			out = append(out, d) // expired ones are skipped
		}
	}
	return out, next, nil
}

// Delivery returns one delivery of a subscription.
func (s *Store) Delivery(ctx context.Context, sub, id string) (Delivery, error) {
	if !validULID(id) || !validULID(sub) {
		return Delivery{}, fmt.Errorf("%w: webhook %s has no delivery %s", ErrNotFound, sub, id)
	}
	vals, err := s.rdb.HMGet(ctx, store.DeliveryKey(id), deliveryFields...).Result()
	if err != nil {
		return Delivery{}, fmt.Errorf("reading delivery %s: %w", id, err)
	}
	d, ok := decodeDelivery(id, vals)
	if !ok || d.Webhook != sub {
		return Delivery{}, fmt.Errorf("%w: webhook %s has no delivery %s", ErrNotFound, sub, id)
	}
	return d, nil
}

// Redeliver sends a delivery again, at once, whatever its state, with a new horizon;
// it keeps its id, so receivers that deduplicate see it as the same delivery.
func (s *Store) Redeliver(ctx context.Context, sub, id string) (Delivery, error) {
	if _, err := s.Get(ctx, sub); err != nil {
		return Delivery{}, err
	}
	if !validULID(id) {
		return Delivery{}, fmt.Errorf("%w: webhook %s has no delivery %s", ErrNotFound, sub, id)
	}
	now := s.now()
	n, err := redeliverScript.Run(ctx, s.rdb, []string{store.DeliveriesDueKey, store.DeliveryKey(id), store.WebhookDeliveriesKey(sub)},
		id, sub, now.UnixMilli(), now.Add(s.opts.horizon).UnixMilli()).Int()
	if err != nil {
		return Delivery{}, fmt.Errorf("redelivering %s: %w", id, err)
	}
	if n == 0 {
		return Delivery{}, fmt.Errorf("%w: webhook %s has no delivery %s", ErrNotFound, sub, id)
	}
	return s.Delivery(ctx, sub, id)
}

// fanOut schedules the deliveries of events to the subscriptions that want them; it is
// idempotent. It returns how many deliveries it created.
func (s *Store) fanOut(ctx context.Context, subs []Subscription, evs []events.Event) (int, error) {
	n, err := s.fanOutOnce(ctx, subs, evs)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis lost its scripts (restarted, or SCRIPT FLUSH): load it and go again.
		if err := createDeliveryScript.Load(ctx, s.rdb).Err(); err != nil {
			return 0, fmt.Errorf("loading the delivery script: %w", err)
		}
		return s.fanOutOnce(ctx, subs, evs)
	}
	return n, err
}

func (s *Store) fanOutOnce(ctx context.Context, subs []Subscription, evs []events.Event) (int, error) {
	now := s.now()
	var cmds []*redis.Cmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ev := range evs {
			ms, ok := ev.StreamMS()
			if !ok {
				continue
			}
			for _, sub := range subs {
				if !sub.wants(ev, ms) {
					continue
				}
				b, err := body(sub.Format, ev)
				if err != nil {
					return fmt.Errorf("encoding event %s: %w", ev.ID, err)
				}
				id := deliveryID(sub.ID, ev, ms)
				cmds = append(cmds, createDeliveryScript.EvalSha(ctx, p,
					[]string{store.DeliveryKey(id), store.DeliveriesDueKey, store.WebhookDeliveriesKey(sub.ID), store.WebhookKey(sub.ID)},
					id, sub.ID, ev.ID, ev.Type, ev.App, b, "application/json", now.UnixMilli(),
					now.Add(s.opts.horizon).UnixMilli(), indexMax))
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("scheduling deliveries: %w", err)
	}
	created := 0
	for _, c := range cmds {
		if n, _ := c.Int(); n == 1 {
			created++
		}
	}
	return created, nil
}
