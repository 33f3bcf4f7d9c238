package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/invalid"
	"github.com/slipway/slipway/store"
)

// ChannelState is where a channel points now.
type ChannelState struct {
	Name        string
	From        string // the policy: the channel a release must have been in first
	Release     string // the current release's version; "" before the first promotion
	ImageDigest string
	Generation  int64 // counts the channel's changes; the ETag
	Locked      bool
	LockReason  string
	UpdatedAt   *time.Time
	UpdatedBy   string
	UpdatedByID string // "" when the last change was recorded before actor ids
	// Since is when Release became current; nil when it was recorded before this was.
	Since *time.Time
	// Pinned is set by a rollback: automation does not move the channel until someone
	// unpins it or promotes by hand.
	Pinned     bool
	PinnedAt   *time.Time
	PinnedBy   string
	PinnedByID string
	PinReason  string
}

// The actions of channel events.
const (
	ActionPromote  = "promote"
	ActionRollback = "rollback"
	ActionLock     = "lock"
	ActionUnlock   = "unlock"
	ActionUnpin    = "unpin"
)

// Event is one entry of a channel's history, the audit trail of who moved it, when and
// why.
type Event struct {
	Seq         int64     `json:"seq"`
	Action      string    `json:"action"`
	FromVersion string    `json:"from_version,omitempty"`
	ToVersion   string    `json:"to_version,omitempty"`
	Actor       string    `json:"actor"`
	ActorID     string    `json:"actor_id,omitempty"` // who Actor is: a token's id, admin or anonymous; "" before ids were recorded
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
	// Reverts is, for a rollback, the seq of the event it reverses.
	Reverts int64 `json:"reverts,omitempty"`
	// Override is set on a promotion that overrode gates that did not pass.
	Override *Override `json:"override,omitempty"`
	// Pinned is set on a rollback, which pins the channel; Unpinned on a manual
	// promotion that unpinned it.
	Pinned   bool `json:"pinned,omitempty"`
	Unpinned bool `json:"unpinned,omitempty"`
}

// Override records the gates a promotion overrode, and their states then; the reason is
// the event's.
type Override struct {
	Gates []GateState `json:"gates"`
}

// Move asks for a change of a channel.
type Move struct {
	Action string
	// Version is the release to promote, or to roll back to ("" for the one before).
	Version string
	// FromChannel, for a promotion, takes the version that channel holds now.
	FromChannel string
	Reason      string
	Actor       string
	// ActorID is the identity behind Actor: a token's id, admin or anonymous.
	ActorID string
	// IfGeneration, when positive, must be the channel's generation (If-Match); -1 asks
	// for generation 0, a channel never moved; 0 sets no condition.
	IfGeneration int64
	// Override promotes past gates that did not pass; it needs a Reason, and the event
	// records every such gate.
	Override bool
	// Auto marks a promotion by automation (auto_promote): it refuses a pinned channel and
	// does not unpin it.
	Auto bool
}

// MoveResult is a channel after a move.
type MoveResult struct {
	Channel ChannelState
	// Gates is the report of the gates a promotion met (and overrode); nil for other
	// moves and ungated channels.
	Gates *GateReport
	// Changed is false when the channel already was as asked; nothing was written.
	Changed bool
	// Event is the history entry the move wrote, when it changed something.
	Event *Event
}

// Channels moves an app's channels: promotion, rollback, locks, each one atomic script.
type Channels struct {
	rdb      redis.UniversalClient
	apps     *Apps
	now      func() time.Time
	verifier Verifier
	builds   BuildLookup
	// summarize, when set, makes the diff summary a promotion's event carries.
	summarize func(ctx context.Context, app, from, to string) (*DiffSummary, error)

	// known holds the apps as moves last read them, so that a move is one round trip:
	// the move script checks the app's stamp (generation and creation time) and refuses
	// when the configuration changed, and the move reads it again and retries.
	mu    sync.Mutex
	known map[string]stampedApp
}

// stampedApp is an app's configuration and the stamp it had when it was read.
type stampedApp struct {
	app   App
	stamp string
}

// maxKnownApps bounds Channels.known; past it the map starts over.
const maxKnownApps = 4096

// NewChannels returns the channel store; apps supplies each app's channels and policies.
func NewChannels(rdb redis.UniversalClient, apps *Apps, opts ...ChannelsOption) *Channels {
	c := &Channels{rdb: rdb, apps: apps, now: time.Now, known: map[string]stampedApp{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// appForMove returns app's configuration as last read, or reads it when fresh is set or
// it was never read.
func (c *Channels) appForMove(ctx context.Context, app string, fresh bool) (stampedApp, error) {
	c.mu.Lock()
	sa, ok := c.known[app]
	c.mu.Unlock()
	if ok && !fresh {
		return sa, nil
	}
	a, stamp, err := c.apps.getStamped(ctx, app)
	if err != nil {
		c.mu.Lock()
		delete(c.known, app)
		c.mu.Unlock()
		return stampedApp{}, err
	}
	sa = stampedApp{app: a, stamp: stamp}
	c.mu.Lock()
	if len(c.known) >= maxKnownApps {
		clear(c.known)
	}
	c.known[app] = sa
	c.mu.Unlock()
	return sa, nil
}

// moveScript applies one move to a channel if its preconditions hold: the expected
// generation, the lock, the policy, the target. It writes the pointer, the generation,
// the history event, the policy record and the app's event stream together.
//
//	KEYS  1 channel hash, 2 history, 3 seen set, 4 rollback stack, 5 seen set of the
//	      policy's channel, 6 the target release (or any key), 7 the app's events,
//	      8 the app's hash, 9 the channel a promotion takes its release from (or any key),
//	      10 the policy's channel (or any key), 11 the target's approvals for the channel
//	      (or any key)
//	ARGV  1 action, 2 expected generation ("" for any), 3 target version ("" for the
//	      default rollback), 4 actor, 5 reason, 6 now, 7 policy channel ("" for none),
//	      8 event id, 9 channel name, 10 app, 11 actor id ("" for none), 12 event type,
//	      13 the app's stamp the caller read its channels from, 14 the release KEYS[9]
//	      held when the caller read it ("" when the promotion names its version),
//	      15 "1" to check the gates again, 16 the soak (ms, 0 for none), 17 now (unix ms),
//	      18 the approvals needed, 19 the time (unix ms) the windows allow moves until (""
//	      for no limit), 20 the channel's generation when the gates were evaluated,
//	      21 "1" for automation (refused by a pinned channel), 22 the override's JSON (""
//	      for none), 23 the soak's start (unix ms) when KEYS[10] records none, 24 the
//	      JSON of the promotion's DiffSummary ("" for none), which the event carries when
//	      its from_version is the release the promotion replaces
//
// A promotion with gates is evaluated first (GateReport); the script checks again what
// may have changed since: the generation (a move, a pin), the soak of the release in the
// policy's channel, the count of approvals that count, and the windows' deadline, on the
// caller's clock. Any of those changed answers {regate}, and the caller evaluates again.
//
//	returns {outcome, event JSON or "", the channel hash's fields and values...}; outcome is
//	        ok, unchanged, stale, locked, policy, nothing, missing_release or
//	        not_in_channel; or {app_changed}, {source_moved} or {regate} alone, when what
//	        the caller read is no longer so
var moveScript = events.Script(`
local app = redis.call('HMGET', KEYS[8], 'gen', 'created_at')
if (app[1] or '') .. ' ' .. (app[2] or '') ~= ARGV[13] then return {'app_changed'} end
if ARGV[14] ~= '' and redis.call('HGET', KEYS[9], 'release') ~= ARGV[14] then return {'source_moved'} end
local ch = KEYS[1]
local function done(outcome, ev)
  local out = {outcome, ev}
  for _, v in ipairs(redis.call('HGETALL', ch)) do out[#out + 1] = v end
  return out
end
local action = ARGV[1]
local gen = tonumber(redis.call('HGET', ch, 'generation') or '0')
local cur = redis.call('HGET', ch, 'release') or ''
local curDigest = redis.call('HGET', ch, 'image_digest') or ''
local locked = redis.call('HGET', ch, 'locked') == '1'
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= gen then return done('stale', '') end
local pinned = redis.call('HGET', ch, 'pinned') == '1'
local nowMs = tonumber(ARGV[17])
if action == 'promote' then
  if ARGV[21] == '1' and pinned then return {'regate'} end
  if ARGV[15] == '1' then
    if tonumber(ARGV[20]) ~= gen then return {'regate'} end
    local soak = tonumber(ARGV[16])
    if soak > 0 then
      local src = redis.call('HMGET', KEYS[10], 'release', 'since')
      local since = tonumber(src[2] or ARGV[23])
      if src[1] ~= ARGV[3] or since == nil or nowMs - since < soak then return {'regate'} end
    end
    local need = tonumber(ARGV[18])
    if need > 0 then
      local n = 0
      for _, v in ipairs(redis.call('HVALS', KEYS[11])) do
        if cjson.decode(v).counts then n = n + 1 end
      end
      if n < need then return {'regate'} end
    end
    if ARGV[19] ~= '' and nowMs >= tonumber(ARGV[19]) then return {'regate'} end
  end
end

local target = ARGV[3]
local digest = ''
local relSeq = 0
local reverts = nil
local function release()
  local doc = redis.call('GET', KEYS[6])
  if not doc then return false end
  local r = cjson.decode(doc)
  digest = r.image_digest
  relSeq = r.sequence
  return true
end
local function split(entry)
  local v, s, d = string.match(entry, '^(%S+) (%d+) (%S*)$')
  return v, tonumber(s), d
end

if action == 'promote' then
  if locked then return done('locked', '') end
  if not release() then return done('missing_release', '') end
  if ARGV[7] ~= '' and not redis.call('ZSCORE', KEYS[5], target) then return done('policy', '') end
  if target == cur then return done('unchanged', '') end
elseif action == 'rollback' then
  local top = redis.call('LINDEX', KEYS[4], -1)
  if top then
    local _, s = split(top)
    reverts = s
  end
  if target == '' then
    if redis.call('LLEN', KEYS[4]) < 2 then return done('nothing', '') end
    redis.call('RPOP', KEYS[4])
    local v, _, d = split(redis.call('LINDEX', KEYS[4], -1))
    target, digest = v, d
    relSeq = redis.call('ZSCORE', KEYS[3], target)
  else
    if target == cur then return done('unchanged', '') end
    if not redis.call('ZSCORE', KEYS[3], target) then return done('not_in_channel', '') end
    if not release() then return done('missing_release', '') end
  end
elseif action == 'lock' then
  if locked then return done('unchanged', '') end
elseif action == 'unlock' then
  if not locked then return done('unchanged', '') end
elseif action == 'unpin' then
  if not pinned then return done('unchanged', '') end
end

local seq = redis.call('LLEN', KEYS[2]) + 1
local ev = {seq = seq, action = action, actor = ARGV[4], reason = ARGV[5], at = ARGV[6]}
if ARGV[11] ~= '' then ev.actor_id = ARGV[11] end
gen = gen + 1
redis.call('HSET', ch, 'generation', gen, 'updated_at', ARGV[6], 'updated_by', ARGV[4])
if ARGV[11] ~= '' then
  redis.call('HSET', ch, 'updated_by_id', ARGV[11])
else
  redis.call('HDEL', ch, 'updated_by_id')
end
if action == 'promote' or action == 'rollback' then
  if cur ~= '' then ev.from_version = cur end
  ev.to_version = target
  ev.reverts = reverts
  if action == 'promote' then ev.reverts = nil end
  redis.call('HSET', ch, 'release', target, 'image_digest', digest, 'since', ARGV[17])
  if action == 'rollback' then
    redis.call('HSET', ch, 'pinned', '1', 'pinned_at', ARGV[6], 'pinned_by', ARGV[4], 'pinned_by_id', ARGV[11], 'pin_reason', ARGV[5])
    ev.pinned = true
  elseif pinned and ARGV[21] ~= '1' then
    redis.call('HDEL', ch, 'pinned', 'pinned_at', 'pinned_by', 'pinned_by_id', 'pin_reason')
    ev.unpinned = true
  end
  if ARGV[22] ~= '' then ev.override = cjson.decode(ARGV[22]) end
  redis.call('ZADD', KEYS[3], relSeq, target)
  if action == 'promote' then
    redis.call('RPUSH', KEYS[4], target .. ' ' .. seq .. ' ' .. digest)
  elseif ARGV[3] ~= '' then
    -- A rollback to a named release walks the stack back to it, or starts from it.
    local entries = redis.call('LRANGE', KEYS[4], 0, -1)
    local keep = -1
    for i = #entries, 1, -1 do
      local v = split(entries[i])
      if v == target then keep = i; break end
    end
    if keep > 0 then
      redis.call('LTRIM', KEYS[4], 0, keep - 1)
    else
      redis.call('RPUSH', KEYS[4], target .. ' ' .. seq .. ' ' .. digest)
    end
  end
elseif action == 'lock' then
  redis.call('HSET', ch, 'locked', '1', 'lock_reason', ARGV[5])
elseif action == 'unlock' then
  redis.call('HSET', ch, 'locked', '0', 'lock_reason', '')
else
  redis.call('HDEL', ch, 'pinned', 'pinned_at', 'pinned_by', 'pinned_by_id', 'pin_reason')
end
local evJSON = cjson.encode(ev)
redis.call('RPUSH', KEYS[2], evJSON)
local state = redis.call('HGETALL', ch)
local data = {channel = ARGV[9], event = ev}
for i = 1, #state, 2 do data[state[i]] = state[i + 1] end
if ARGV[24] ~= '' and action == 'promote' then
  -- The diff was made against the release the caller read; it holds only if that is
  -- still the one the promotion replaces.
  local d = cjson.decode(ARGV[24])
  if d.from_version == cur and d.to_version == target then data.diff = d end
end
append_event(KEYS[7], ARGV[8], ARGV[12], ARGV[10], ARGV[4], ARGV[11], ARGV[6], cjson.encode(data))
return done('ok', evJSON)
`)

// WithMoveSummary makes every promotion's channel.promoted event carry, as "diff", what
// the promotion changes in brief (summarize is a Differ's MoveSummary). It costs a
// promotion a read of the channel and of the two releases' facts, bounded by
// summaryTimeout; a summary that cannot be made in time is left out and never holds the
// move back. Without it events carry no diff.
func WithMoveSummary(summarize func(ctx context.Context, app, from, to string) (*DiffSummary, error)) ChannelsOption {
	return func(c *Channels) { c.summarize = summarize }
}

// summaryTimeout bounds the making of a promotion's diff summary.
const summaryTimeout = 2 * time.Second

// moveSummary is moveScript's diff argument: the JSON of the summary of promoting
// channel name from the release it holds now to target, or "".
func (c *Channels) moveSummary(ctx context.Context, app, name, target string, m Move) string {
	if c.summarize == nil || m.Action != ActionPromote || target == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, summaryTimeout)
	defer cancel()
	cur, err := c.rdb.HGet(ctx, store.ChannelKey(app, name), "release").Result()
	if err != nil || cur == "" || cur == target {
		return ""
	}
	sum, err := c.summarize(ctx, app, cur, target)
	if err != nil || sum == nil {
		return ""
	}
	if len(sum.Modules) == 0 {
		// The script's JSON would write an empty list back as {}: leave it out instead.
		sum.Modules = nil
	}
	doc, err := json.Marshal(sum)
	if err != nil {
		return ""
	}
	return string(doc)
}

// moveEvents are the event types of the channel actions.
var moveEvents = map[string]string{
	ActionPromote:  events.ChannelPromoted,
	ActionRollback: events.ChannelRolledBack,
	ActionLock:     events.ChannelLocked,
	ActionUnlock:   events.ChannelUnlocked,
	ActionUnpin:    events.ChannelUnpinned,
}

// channelOf returns an app's channel configuration, or ErrNotFound.
func (c *Channels) channelOf(ctx context.Context, app, name string) (App, Channel, error) {
	a, err := c.apps.Get(ctx, app)
	if err != nil {
		return App{}, Channel{}, err
	}
	i, err := a.channel(name)
	if err != nil {
		return App{}, Channel{}, err
	}
	return a, a.Channels[i], nil
}

// channel returns the index of the app's channel called name, or ErrNotFound naming the
// channels it has.
func (a App) channel(name string) (int, error) {
	i := slices.IndexFunc(a.Channels, func(ch Channel) bool { return ch.Name == name })
	if i < 0 {
		names := make([]string, len(a.Channels))
		for j, ch := range a.Channels {
			names[j] = ch.Name
		}
		return -1, fmt.Errorf("%w: app %s has no channel %q; its channels are %s", ErrNotFound, a.Name, name, strings.Join(names, ", "))
	}
	return i, nil
}

// Get returns a channel's state.
func (c *Channels) Get(ctx context.Context, app, name string) (ChannelState, error) {
	_, ch, err := c.channelOf(ctx, app, name)
	if err != nil {
		return ChannelState{}, err
	}
	return c.state(ctx, app, ch)
}

// List returns every channel of an app, in the app's order.
func (c *Channels) List(ctx context.Context, app string) ([]ChannelState, error) {
	a, err := c.apps.Get(ctx, app)
	if err != nil {
		return nil, err
	}
	cmds := make([]*redis.MapStringStringCmd, len(a.Channels))
	if _, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ch := range a.Channels {
			cmds[i] = p.HGetAll(ctx, store.ChannelKey(app, ch.Name))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading channels of %s: %w", app, err)
	}
	out := make([]ChannelState, len(a.Channels))
	for i, ch := range a.Channels {
		out[i] = decodeChannel(ch, cmds[i].Val())
	}
	return out, nil
}

func (c *Channels) state(ctx context.Context, app string, ch Channel) (ChannelState, error) {
	h, err := c.rdb.HGetAll(ctx, store.ChannelKey(app, ch.Name)).Result()
	if err != nil {
		return ChannelState{}, fmt.Errorf("reading channel %s: %w", ch.Name, err)
	}
	return decodeChannel(ch, h), nil
}

func decodeChannel(ch Channel, h map[string]string) ChannelState {
	s := ChannelState{Name: ch.Name, From: ch.From, Release: h["release"], ImageDigest: h["image_digest"],
		Locked: h["locked"] == "1", LockReason: h["lock_reason"], UpdatedBy: h["updated_by"], UpdatedByID: h["updated_by_id"]}
	s.Generation, _ = strconv.ParseInt(h["generation"], 10, 64)
	if t, err := time.Parse(time.RFC3339Nano, h["updated_at"]); err == nil {
		s.UpdatedAt = &t
	}
	if ms, err := strconv.ParseInt(h["since"], 10, 64); err == nil {
		t := time.UnixMilli(ms).UTC()
		s.Since = &t
	}
	if h["pinned"] == "1" {
		s.Pinned, s.PinnedBy, s.PinnedByID, s.PinReason = true, h["pinned_by"], h["pinned_by_id"], h["pin_reason"]
		if t, err := time.Parse(time.RFC3339Nano, h["pinned_at"]); err == nil {
			s.PinnedAt = &t
		}
	}
	return s
}

// Move applies m to the channel in one atomic step. A move that changes nothing (the
// release is already current, the lock already set) writes nothing and reports
// Changed false. A move by version is one round trip to Redis once the app has been read;
// one from a channel reads that channel's release first, and the move re-checks it.
func (c *Channels) Move(ctx context.Context, app, name string, m Move) (MoveResult, error) {
	for attempt := 0; ; attempt++ {
		res, err := c.moveOnce(ctx, app, name, m, attempt > 0)
		if (errors.Is(err, errReadAgain) || errors.Is(err, errRegate)) && attempt < 5 {
			continue
		}
		return res, err
	}
}

// errReadAgain is a move refused because what it was computed from changed: the app's
// configuration, or the release of the channel it promotes from.
// Past the retries it is a conflict the caller may retry.
var errReadAgain = fmt.Errorf("%w: the app's configuration or the source channel changed while the move was made; try again", ErrConflict)

// errRegate is a promotion refused because what its gates were evaluated from changed
// (an approval revoked, a window closed, the channel moved); it evaluates them again.
var errRegate = fmt.Errorf("%w: the channel's gates kept changing while the promotion was made; try again", ErrConflict)

func (c *Channels) moveOnce(ctx context.Context, app, name string, m Move, fresh bool) (MoveResult, error) {
	sa, err := c.appForMove(ctx, app, fresh)
	if err != nil {
		return MoveResult{}, err
	}
	i, err := sa.app.channel(name)
	if err != nil {
		if !fresh {
			return MoveResult{}, errReadAgain // the app may have gained the channel since
		}
		return MoveResult{}, err
	}
	ch := sa.app.Channels[i]
	target, source, err := c.moveTarget(ctx, sa.app, name, m)
	if err != nil {
		return MoveResult{}, err
	}
	g, err := c.gateArgs(ctx, sa.app, ch, target, m)
	if err != nil {
		return MoveResult{}, err
	}
	now := c.now().UTC()
	res, err := moveScript.Run(ctx, c.rdb, moveKeys(app, name, ch.From, target, m.FromChannel),
		m.Action, expectedGeneration(m.IfGeneration), target, m.Actor, m.Reason, now.Format(time.RFC3339Nano), ch.From,
		events.NewID(now), name, sa.app.Name, m.ActorID, moveEvents[m.Action], sa.stamp, source,
		g.check, g.soakMs, now.UnixMilli(), g.approvals, g.until, g.generation, g.auto, g.override, g.since,
		c.moveSummary(ctx, app, name, target, m)).StringSlice()
	if err != nil {
		return MoveResult{}, fmt.Errorf("moving channel %s: %w", name, err)
	}
	out, err := moveResult(app, ch, target, res)
	out.Gates = g.report
	return out, err
}

// moveTarget checks m and returns the version it moves the channel to: the one it names,
// the one its source channel holds, or "" (the release before, for a rollback); and, for
// a promotion from a channel, the release that channel held when read (the script checks
// it still does).
func (c *Channels) moveTarget(ctx context.Context, a App, name string, m Move) (target, source string, err error) {
	if len(m.Reason) > 1024 {
		return "", "", &ValidationError{Fields: []FieldError{{Field: "reason", Detail: "at most 1024 bytes"}}}
	}
	switch m.Action {
	case ActionPromote:
		if (m.Version == "") == (m.FromChannel == "") {
			return "", "", &ValidationError{Fields: []FieldError{{Field: "version", Detail: "give either version or from"}}}
		}
		if m.FromChannel == "" {
			v, _ := invalid.NormalizeVersion(m.Version) // v1.4.2 names release 1.4.2
			return v, "", nil
		}
		if m.FromChannel == name {
			return "", "", &ValidationError{Fields: []FieldError{{Field: "from", Detail: "a channel cannot be promoted from itself"}}}
		}
		if _, err := a.channel(m.FromChannel); err != nil {
			return "", "", err
		}
		src, err := c.rdb.HGet(ctx, store.ChannelKey(a.Name, m.FromChannel), "release").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return "", "", fmt.Errorf("reading channel %s: %w", m.FromChannel, err)
		}
		if src == "" {
			return "", "", fmt.Errorf("%w: channel %s holds no release yet", ErrConflict, m.FromChannel)
		}
		return src, src, nil
	case ActionRollback, ActionLock, ActionUnlock, ActionUnpin:
		v, _ := invalid.NormalizeVersion(m.Version)
		return v, "", nil
	}
	return "", "", fmt.Errorf("unknown channel action %q", m.Action)
}

// moveKeys are the keys of moveScript: the channel, its history, the releases it has
// held, its rollback stack, the channel its policy names (itself when it has none), the
// target release (the channel itself when there is none), the app's event stream, the
// app, and the channel a promotion takes its release from (itself when none).
func moveKeys(app, name, from, target, sourceChannel string) []string {
	policySet := store.ChannelSeenKey(app, name)
	if from != "" {
		policySet = store.ChannelSeenKey(app, from)
	}
	sourceKey := store.ChannelKey(app, name)
	if sourceChannel != "" {
		sourceKey = store.ChannelKey(app, sourceChannel)
	}
	releaseKey := store.ChannelKey(app, name)
	if target != "" {
		releaseKey = store.ReleaseKey(app, target)
	}
	policyKey := store.ChannelKey(app, name)
	if from != "" {
		policyKey = store.ChannelKey(app, from)
	}
	approvalsKey := store.ChannelKey(app, name)
	if target != "" {
		approvalsKey = store.ChannelApprovalsKey(app, name, target)
	}
	return []string{
		store.ChannelKey(app, name), store.ChannelHistoryKey(app, name), store.ChannelSeenKey(app, name),
		store.ChannelStackKey(app, name), policySet, releaseKey, store.EventsKey(app),
		store.AppKey(app), sourceKey, policyKey, approvalsKey,
	}
}

// expectedGeneration is moveScript's condition: the generation If-Match names, "0" for a
// channel never moved, or "" for none.
func expectedGeneration(ifGeneration int64) string {
	switch {
	case ifGeneration > 0:
		return strconv.FormatInt(ifGeneration, 10)
	case ifGeneration < 0:
		return "0"
	}
	return ""
}

// moveResult reads moveScript's answer: an outcome, the event it wrote (if any), then
// the channel's fields as they are now.
func moveResult(app string, ch Channel, target string, res []string) (MoveResult, error) {
	h := map[string]string{}
	for i := 2; i+1 < len(res); i += 2 {
		h[res[i]] = res[i+1]
	}
	if len(res) == 1 && (res[0] == "app_changed" || res[0] == "source_moved") {
		return MoveResult{}, errReadAgain
	}
	if len(res) == 1 && res[0] == "regate" {
		return MoveResult{}, errRegate
	}
	state := decodeChannel(ch, h)
	name := ch.Name
	switch res[0] {
	case "ok":
		var ev Event
		if err := json.Unmarshal([]byte(res[1]), &ev); err != nil {
			return MoveResult{}, fmt.Errorf("decoding channel event: %w", err)
		}
		return MoveResult{Channel: state, Changed: true, Event: &ev}, nil
	case "unchanged":
		return MoveResult{Channel: state}, nil
	case "stale":
		return MoveResult{}, &ChannelStaleError{Current: state}
	case "locked":
		return MoveResult{}, fmt.Errorf("%w: %s is locked (%s); unlock it first, or roll back", ErrLocked, name, state.LockReason)
	case "policy":
		return MoveResult{}, fmt.Errorf("%w: %s accepts only releases that have been in %s, and %s has not been there; promote it to %s first",
			ErrPolicy, name, ch.From, target, ch.From)
	case "nothing":
		return MoveResult{}, fmt.Errorf("%w: %s has no earlier release to roll back to", ErrConflict, name)
	case "missing_release":
		return MoveResult{}, fmt.Errorf("%w: %s has no release %q", ErrNotFound, app, target)
	case "not_in_channel":
		return MoveResult{}, fmt.Errorf("%w: release %s has never been in %s; roll back only to a release the channel has had", ErrConflict, target, name)
	}
	return MoveResult{}, fmt.Errorf("moving channel %s: unexpected outcome %q", name, res[0])
}

// History returns up to limit events of a channel, newest first, before event seq
// before (0 for the newest), and the seq to pass as before for the next page (0 on the
// last).
func (c *Channels) History(ctx context.Context, app, name string, before int64, limit int) ([]Event, int64, error) {
	if _, _, err := c.channelOf(ctx, app, name); err != nil {
		return nil, 0, err
	}
	key := store.ChannelHistoryKey(app, name)
	n, err := c.rdb.LLen(ctx, key).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("reading history of %s: %w", name, err)
	}
	last := n // the newest seq on this page
	if before > 0 && before-1 < last {
		last = before - 1
	}
	first := max(1, last-int64(limit)+1)
	if last < 1 {
		return []Event{}, 0, nil
	}
	vals, err := c.rdb.LRange(ctx, key, first-1, last-1).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("reading history of %s: %w", name, err)
	}
	out := make([]Event, 0, len(vals))
	for i := len(vals) - 1; i >= 0; i-- {
		var ev Event
		if err := json.Unmarshal([]byte(vals[i]), &ev); err != nil {
			return nil, 0, fmt.Errorf("decoding an event of %s: %w", name, err)
		}
		out = append(out, ev)
	}
	var next int64
	if first > 1 {
		next = first
	}
	return out, next, nil
}

// ChannelsOf returns, for each version, the channels that point at it now.
func (c *Channels) ChannelsOf(ctx context.Context, app string) (map[string][]string, error) {
	states, err := c.List(ctx, app)
	if err != nil {
		return nil, err
	}
	m := map[string][]string{}
	for _, s := range states {
		if s.Release != "" {
			m[s.Release] = append(m[s.Release], s.Name)
		}
	}
	return m, nil
}

// gateArgs are the gates' arguments of moveScript, and the report they came from.
type gateArgs struct {
	check, soakMs, approvals, until, generation, auto, override, since string
	report                                                             *GateReport
}

// gateArgs evaluates the gates of a promotion into ch (every promotion by automation,
// which a pin refuses, and every promotion into a channel with gates), and returns what
// moveScript checks again; a promotion that does not pass is refused with a *GatesError
// unless it overrides.
func (c *Channels) gateArgs(ctx context.Context, a App, ch Channel, target string, m Move) (gateArgs, error) {
	g := gateArgs{soakMs: "0", approvals: "0"}
	if m.Action != ActionPromote {
		return g, nil
	}
	if m.Override && strings.TrimSpace(m.Reason) == "" {
		return g, &ValidationError{Fields: []FieldError{{Field: "reason", Detail: "an override needs a reason; it is recorded in the channel's history"}}}
	}
	if m.Auto {
		g.auto = "1"
	}
	if !hasGates(ch) && !m.Auto {
		return g, nil
	}
	rel, err := c.release(ctx, a.Name, target)
	if err != nil {
		return g, err
	}
	rep, err := c.evaluate(ctx, a, ch, rel, m.Auto, c.now().UTC())
	if err != nil {
		return g, err
	}
	g.report = &rep
	if !rep.Allowed {
		if !m.Override {
			return g, &GatesError{Channel: ch.Name, Version: rel.Version, States: rep.States}
		}
		doc, err := json.Marshal(Override{Gates: rep.Failed()})
		if err != nil {
			return g, err
		}
		g.override = string(doc)
		return g, nil
	}
	g.check = "1"
	g.soakMs = strconv.FormatInt(rep.soak.Milliseconds(), 10)
	g.since = strconv.FormatInt(rep.sourceSince, 10)
	g.approvals = strconv.Itoa(rep.approvals)
	g.until = msArg(rep.allowedUntil)
	g.generation = strconv.FormatInt(rep.generation, 10)
	return g, nil
}
