package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/invalid"
	"github.com/slipway/slipway/store"
)

// Format is how a subscription's requests are written.
type Format string

// The formats of deliveries.
const (
	// FormatJSON posts the event itself.
	FormatJSON Format = "json"
	// FormatSlack posts {"text": "<a sentence>"}, for Slack's (and compatible) incoming
	// webhooks.
	FormatSlack Format = "slack"
)

// Spec asks for a subscription.
type Spec struct {
	URL    string
	Events []string // types or families ("build.*"); empty for every event
	Apps   []string // empty for every app
	Format Format   // "" for FormatJSON
	Actor  string
	// ActorID is the identity behind Actor: a token's id, admin or anonymous.
	ActorID string
}

// Subscription is a target that receives events.
type Subscription struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Apps      []string  `json:"apps"`
	Format    Format    `json:"format"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	// CreatedByID is who CreatedBy is: a token's id, admin or anonymous; "" for
	// subscriptions made before ids were recorded.
	CreatedByID string `json:"created_by_id,omitempty"`

	// PreviousSecretExpiresAt, while a rotated-out secret still signs, is when it stops.
	PreviousSecretExpiresAt *time.Time `json:"-"`
	// createdMS is the Redis time the subscription was written; it receives the events
	// whose stream id is at or after it.
	createdMS int64
}

// wants reports whether the subscription receives ev, whose stream id is at ms.
func (s Subscription) wants(ev events.Event, ms uint64) bool {
	return ms >= uint64(s.createdMS) &&
		(len(s.Apps) == 0 || slices.Contains(s.Apps, ev.App)) &&
		events.MatchType(s.Events, ev.Type)
}

// Store keeps subscriptions and their deliveries in Redis (see store/paths.go).
type Store struct {
	rdb   redis.UniversalClient
	opts  options
	guard guard
	now   func() time.Time
}

// NewStore returns the subscription store. It heeds WithAllowNets, WithSecretGrace and
// WithHorizon (for redeliveries).
func NewStore(rdb redis.UniversalClient, opts ...Option) (*Store, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Store{rdb: rdb, opts: o, guard: guard{allow: o.allow}, now: time.Now}, nil
}

// createScript writes a subscription, stamped with the Redis time.
//
//	KEYS  subscription hash, subscriptions index
//	ARGV  id, doc, secret
//	returns the created time in ms
var createScript = redis.NewScript(`
local t = redis.call('TIME')
local ms = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'secret', ARGV[3], 'created_ms', ms)
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return ms
`)

// rotateScript makes a new secret current and keeps the old one until a time.
//
//	KEYS  subscription hash
//	ARGV  new secret, when the old one expires (ms)
//	returns 1, or 0 when the subscription does not exist
var rotateScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'secret')
if not cur then return 0 end
redis.call('HSET', KEYS[1], 'prev_secret', cur, 'prev_expires', ARGV[2], 'secret', ARGV[1])
return 1
`)

// deleteScript removes a subscription and its delivery index; its pending deliveries
// are dropped when they come due.
//
//	KEYS  subscription hash, subscriptions index, its deliveries index
//	ARGV  id
//	returns 1, or 0 when the subscription does not exist
var deleteScript = redis.NewScript(`
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
return 1
`)

// CheckTarget reports whether a delivery may reach rawURL now: a *RefusedError naming
// the address when its host resolves into a refused range.
func (s *Store) CheckTarget(ctx context.Context, rawURL string) error {
	return s.guard.checkURL(ctx, rawURL)
}

func (s *Store) validate(spec *Spec) error {
	var verr invalid.Error
	bad := verr.Add
	u, err := url.Parse(spec.URL)
	switch {
	case spec.URL == "":
		bad("url", "is required: the http(s) URL events are posted to")
	case len(spec.URL) > 2048:
		bad("url", "is longer than 2048 bytes")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		bad("url", "must be an absolute http or https URL")
	case u.User != nil:
		bad("url", "must not carry a user or password; receivers check the signature instead")
	}
	if len(spec.Events) > 50 {
		bad("events", "at most 50 entries")
	}
	for i, e := range spec.Events {
		if !events.ValidTypeFilter(e) {
			bad(fmt.Sprintf("events[%d]", i), fmt.Sprintf("%q is not an event type (%v) or a family such as build.*", e, events.Types))
		}
	}
	if len(spec.Apps) > 1000 {
		bad("apps", "at most 1000 entries")
	}
	for i, a := range spec.Apps {
		if !events.ValidApp(a) {
			bad(fmt.Sprintf("apps[%d]", i), fmt.Sprintf("%q is not an app name", a))
		}
	}
	switch spec.Format {
	case "":
		spec.Format = FormatJSON
	case FormatJSON, FormatSlack:
	default:
		bad("format", fmt.Sprintf("%q is not json or slack", spec.Format))
	}
	return verr.Err()
}

// Create records a subscription after checking its target, and returns it with its
// secret, which nothing shows again. It receives the events written from now on.
func (s *Store) Create(ctx context.Context, spec Spec) (Subscription, string, error) {
	if err := s.validate(&spec); err != nil {
		return Subscription{}, "", err
	}
	if err := s.CheckTarget(ctx, spec.URL); err != nil {
		return Subscription{}, "", err
	}
	now := s.now().UTC()
	sub := Subscription{
		ID: ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String(), URL: spec.URL,
		Events: dedupe(spec.Events), Apps: dedupe(spec.Apps), Format: spec.Format,
		CreatedAt: now, CreatedBy: spec.Actor, CreatedByID: spec.ActorID,
	}
	doc, err := json.Marshal(sub)
	if err != nil {
		return Subscription{}, "", fmt.Errorf("encoding subscription: %w", err)
	}
	secret := newSecret()
	ms, err := createScript.Run(ctx, s.rdb, []string{store.WebhookKey(sub.ID), store.WebhooksKey}, sub.ID, doc, secret).Text()
	if err != nil {
		return Subscription{}, "", fmt.Errorf("recording subscription: %w", err)
	}
	sub.createdMS, _ = strconv.ParseInt(ms, 10, 64)
	return sub, secret, nil
}

func dedupe(s []string) []string {
	out := []string{}
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

var subFields = []string{"doc", "created_ms", "prev_expires"}

func (s *Store) decodeSub(id string, vals []any) (Subscription, error) {
	doc, _ := vals[0].(string)
	if doc == "" {
		return Subscription{}, fmt.Errorf("%w: no webhook %s", ErrNotFound, id)
	}
	var sub Subscription
	if err := json.Unmarshal([]byte(doc), &sub); err != nil {
		return Subscription{}, fmt.Errorf("decoding webhook %s: %w", id, err)
	}
	ms, _ := vals[1].(string)
	sub.createdMS, _ = strconv.ParseInt(ms, 10, 64)
	exp, _ := vals[2].(string)
	if n, err := strconv.ParseInt(exp, 10, 64); err == nil && n > s.now().UnixMilli() {
		t := time.UnixMilli(n).UTC()
		sub.PreviousSecretExpiresAt = &t
	}
	return sub, nil
}

// Get returns a subscription.
func (s *Store) Get(ctx context.Context, id string) (Subscription, error) {
	if !validULID(id) {
		return Subscription{}, fmt.Errorf("%w: no webhook %s", ErrNotFound, id)
	}
	vals, err := s.rdb.HMGet(ctx, store.WebhookKey(id), subFields...).Result()
	if err != nil {
		return Subscription{}, fmt.Errorf("reading webhook %s: %w", id, err)
	}
	return s.decodeSub(id, vals)
}

// List returns up to limit subscriptions in id (creation) order after the id after
// ("" for the first page), and the id to pass as after for the next page ("" on the
// last). A limit of 0 returns them all.
func (s *Store) List(ctx context.Context, after string, limit int) ([]Subscription, string, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	args := redis.ZRangeArgs{Key: store.WebhooksKey, Start: start, Stop: "+", ByLex: true}
	if limit > 0 {
		args.Count = int64(limit) + 1
	}
	ids, err := s.rdb.ZRangeArgs(ctx, args).Result()
	if err != nil {
		return nil, "", fmt.Errorf("listing webhooks: %w", err)
	}
	next := ""
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, store.WebhookKey(id), subFields...)
		}
		return nil
	}); err != nil {
		return nil, "", fmt.Errorf("reading webhooks: %w", err)
	}
	out := make([]Subscription, 0, len(ids))
	for i, id := range ids {
		sub, err := s.decodeSub(id, cmds[i].Val())
		if errors.Is(err, ErrNotFound) {
			continue // deleted between the two reads
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, sub)
	}
	return out, next, nil
}

// Delete removes a subscription; nothing more is sent to it.
func (s *Store) Delete(ctx context.Context, id string) error {
	if !validULID(id) {
		return fmt.Errorf("%w: no webhook %s", ErrNotFound, id)
	}
	n, err := deleteScript.Run(ctx, s.rdb, []string{store.WebhookKey(id), store.WebhooksKey, store.WebhookDeliveriesKey(id)}, id).Int()
	if err != nil {
		return fmt.Errorf("deleting webhook %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: no webhook %s", ErrNotFound, id)
	}
	return nil
}

// RotateSecret gives a subscription a new secret and returns it. The old one keeps
// signing, next to the new, for the secret grace; a second rotation within the grace
// ends the oldest at once.
func (s *Store) RotateSecret(ctx context.Context, id string) (Subscription, string, error) {
	if !validULID(id) {
		return Subscription{}, "", fmt.Errorf("%w: no webhook %s", ErrNotFound, id)
	}
	secret := newSecret()
	expires := s.now().Add(s.opts.grace).UnixMilli()
	n, err := rotateScript.Run(ctx, s.rdb, []string{store.WebhookKey(id)}, secret, expires).Int()
	if err != nil {
		return Subscription{}, "", fmt.Errorf("rotating the secret of webhook %s: %w", id, err)
	}
	if n == 0 {
		return Subscription{}, "", fmt.Errorf("%w: no webhook %s", ErrNotFound, id)
	}
	sub, err := s.Get(ctx, id)
	return sub, secret, err
}

// secrets returns the secrets that sign a subscription's requests at now: the current
// one, and the previous one during its grace.
func (s *Store) secrets(ctx context.Context, id string, now time.Time) ([]string, error) {
	vals, err := s.rdb.HMGet(ctx, store.WebhookKey(id), "secret", "prev_secret", "prev_expires").Result()
	if err != nil {
		return nil, fmt.Errorf("reading webhook %s: %w", id, err)
	}
	cur, _ := vals[0].(string)
	if cur == "" {
		return nil, fmt.Errorf("%w: no webhook %s", ErrNotFound, id)
	}
	out := []string{cur}
	prev, _ := vals[1].(string)
	exp, _ := vals[2].(string)
	if n, err := strconv.ParseInt(exp, 10, 64); err == nil && prev != "" && n > now.UnixMilli() {
		out = append(out, prev)
	}
	return out, nil
}

func validULID(s string) bool {
	_, err := ulid.ParseStrict(s)
	return err == nil
}
