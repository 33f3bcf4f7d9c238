package release

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/invalid"
	"github.com/slipway/slipway/store"
)

// Approval is one person's approval of a release for a channel.
type Approval struct {
	Channel string    `json:"channel"`
	Version string    `json:"version"`
	Actor   string    `json:"actor"`
	ActorID string    `json:"actor_id"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
	// Counts is false for the release's or its build's own creator, whose approval is
	// recorded but does not open the gate; Note says why.
	Counts bool   `json:"counts"`
	Note   string `json:"note,omitempty"`
}

// ApprovalSpec asks to approve a release for a channel, or to revoke one's approval.
type ApprovalSpec struct {
	Version string
	Reason  string
	Actor   string
	ActorID string
}

// The actions of approvals in a channel's history.
const (
	ActionApprove = "approve"
	ActionRevoke  = "revoke"
)

// approveScript records or removes an approval while the release has not entered the
// channel; one that counts is written in the channel's history and the app's events.
//
//	KEYS  1 approvals hash, 2 the channel's seen set, 3 history, 4 the app's events
//	ARGV  1 approve or revoke, 2 actor id, 3 approval JSON (approve), 4 version, 5 event id,
//	      6 event type, 7 app, 8 actor, 9 now, 10 channel, 11 reason
//	returns {outcome, approval JSON}; outcome is ok, exists (approve: already approved),
//	        missing (revoke: no approval) or moved (the release has been in the channel)
var approveScript = events.Script(`
if redis.call('ZSCORE', KEYS[2], ARGV[4]) then return {'moved', ''} end
local existing = redis.call('HGET', KEYS[1], ARGV[2])
local doc
if ARGV[1] == 'approve' then
  if existing then return {'exists', existing} end
  doc = ARGV[3]
  redis.call('HSET', KEYS[1], ARGV[2], doc)
else
  if not existing then return {'missing', ''} end
  doc = existing
  redis.call('HDEL', KEYS[1], ARGV[2])
end
local ap = cjson.decode(doc)
if ap.counts then
  local n = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
    if cjson.decode(v).counts then n = n + 1 end
  end
  local seq = redis.call('LLEN', KEYS[3]) + 1
  local ev = {seq = seq, action = ARGV[1], to_version = ARGV[4], actor = ARGV[8], actor_id = ARGV[2], reason = ARGV[11], at = ARGV[9]}
  redis.call('RPUSH', KEYS[3], cjson.encode(ev))
  append_event(KEYS[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[2], ARGV[9],
    cjson.encode({channel = ARGV[10], version = ARGV[4], approval = ap, approvals = n, event = ev}))
end
return {'ok', doc}
`)

// Approve records spec.Actor's approval of a release for a channel. It reports whether
// the approval is new; approving again answers the first approval. The release's and
// its build's creator may approve, but their approval does not count (Note says so).
func (c *Channels) Approve(ctx context.Context, app, channel string, spec ApprovalSpec) (Approval, bool, error) {
	a, ch, rel, err := c.approvalTarget(ctx, app, channel, spec)
	if err != nil {
		return Approval{}, false, err
	}
	if ch.Gates == nil || ch.Gates.Approvals == 0 {
		return Approval{}, false, fmt.Errorf("%w: %s needs no approvals; its configuration declares none", ErrConflict, ch.Name)
	}
	now := c.now().UTC()
	ap := Approval{Channel: ch.Name, Version: rel.Version, Actor: spec.Actor, ActorID: spec.ActorID, Reason: spec.Reason, At: now, Counts: true}
	switch {
	case spec.ActorID == "":
		ap.Counts, ap.Note = false, "the approver has no identity"
	case spec.ActorID == rel.CreatedByID:
		ap.Counts, ap.Note = false, "the approver created the release"
	case c.builds != nil:
		b, err := c.builds.BuildRef(ctx, app, rel.BuildID)
		if err == nil && b.CreatedByID != "" && b.CreatedByID == spec.ActorID {
			ap.Counts, ap.Note = false, "the approver created the release's build"
		}
	}
	doc, err := json.Marshal(ap)
	if err != nil {
		return Approval{}, false, err
	}
	res, err := c.runApproval(ctx, a.Name, ch.Name, ActionApprove, spec, doc, events.ApprovalGranted, now)
	if err != nil {
		return Approval{}, false, err
	}
	var got Approval
	if err := json.Unmarshal([]byte(res[1]), &got); err != nil {
		return Approval{}, false, fmt.Errorf("decoding approval: %w", err)
	}
	return got, res[0] == "ok", nil
}

// Revoke removes spec.ActorID's approval of a release for a channel, while the release
// has not entered it.
func (c *Channels) Revoke(ctx context.Context, app, channel string, spec ApprovalSpec) (Approval, error) {
	a, ch, _, err := c.approvalTarget(ctx, app, channel, spec)
	if err != nil {
		return Approval{}, err
	}
	res, err := c.runApproval(ctx, a.Name, ch.Name, ActionRevoke, spec, nil, events.ApprovalRevoked, c.now().UTC())
	if err != nil {
		return Approval{}, err
	}
	var got Approval
	if err := json.Unmarshal([]byte(res[1]), &got); err != nil {
		return Approval{}, fmt.Errorf("decoding approval: %w", err)
	}
	return got, nil
}

// Approvals lists the approvals of a release for a channel, oldest first.
func (c *Channels) Approvals(ctx context.Context, app, channel, version string) ([]Approval, error) {
	_, ch, rel, err := c.approvalTarget(ctx, app, channel, ApprovalSpec{Version: version})
	if err != nil {
		return nil, err
	}
	h, err := c.rdb.HGetAll(ctx, store.ChannelApprovalsKey(app, ch.Name, rel.Version)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading approvals: %w", err)
	}
	return decodeApprovals(h), nil
}

func (c *Channels) approvalTarget(ctx context.Context, app, channel string, spec ApprovalSpec) (App, Channel, Release, error) {
	if len(spec.Reason) > 1024 {
		return App{}, Channel{}, Release{}, &ValidationError{Fields: []FieldError{{Field: "reason", Detail: "at most 1024 bytes"}}}
	}
	if spec.Version == "" {
		return App{}, Channel{}, Release{}, &ValidationError{Fields: []FieldError{{Field: "version", Detail: "name the release to approve, such as 1.4.2"}}}
	}
	a, ch, err := c.channelOf(ctx, app, channel)
	if err != nil {
		return App{}, Channel{}, Release{}, err
	}
	v, _ := invalid.NormalizeVersion(spec.Version)
	rel, err := c.release(ctx, app, v)
	if err != nil {
		return App{}, Channel{}, Release{}, err
	}
	return a, ch, rel, nil
}

func (c *Channels) runApproval(ctx context.Context, app, channel, action string, spec ApprovalSpec, doc []byte, evType string, now time.Time) ([]string, error) {
	v, _ := invalid.NormalizeVersion(spec.Version)
	res, err := approveScript.Run(ctx, c.rdb, []string{
		store.ChannelApprovalsKey(app, channel, v), store.ChannelSeenKey(app, channel),
		store.ChannelHistoryKey(app, channel), store.EventsKey(app),
	}, action, spec.ActorID, string(doc), v, events.NewID(now), evType, app, spec.Actor,
		now.Format(time.RFC3339Nano), channel, spec.Reason).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("recording approval: %w", err)
	}
	switch res[0] {
	case "moved":
		return nil, fmt.Errorf("%w: %s has already been in %s; approvals count only before a release enters the channel", ErrConflict, v, channel)
	case "missing":
		return nil, fmt.Errorf("%w: %s has no approval of %s for %s by %s", ErrNotFound, app, v, channel, spec.Actor)
	}
	return res, nil
}
