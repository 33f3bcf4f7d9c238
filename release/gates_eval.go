package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// ChannelsOption configures Channels.
type ChannelsOption func(*Channels)

// WithVerifier sets the Verifier of the checks and require gates. Without one (the
// default), a channel that declares them refuses every promotion, saying why.
func WithVerifier(v Verifier) ChannelsOption { return func(c *Channels) { c.verifier = v } }

// WithBuilds lets approvals find who made a release's build, whose approval does not
// count. Without it (the default), only the release's own creator is excluded.
func WithBuilds(b BuildLookup) ChannelsOption { return func(c *Channels) { c.builds = b } }

// WithClock sets the clock of soaks, windows and the times recorded; time.Now by default.
func WithClock(now func() time.Time) ChannelsOption { return func(c *Channels) { c.now = now } }

// GateQuery names the release a promotion would move: a version, or what a channel
// holds now.
type GateQuery struct {
	Version     string
	FromChannel string
	// Auto asks as automation does: a pinned channel refuses it.
	Auto bool
}

// GateReport is what a promotion of Version into Channel would meet and miss now.
type GateReport struct {
	Channel string
	Version string
	// States are every gate's state, in a fixed order: pinned (for automation), soak,
	// approvals, windows, then the Verifier's.
	States []GateState
	// Allowed is true when every gate passed.
	Allowed bool

	// What the move script checks again.
	generation   int64
	soak         time.Duration
	sourceSince  int64 // the since the soak was measured from, unix ms
	approvals    int
	allowedUntil time.Time
}

// Failed returns the states that did not pass.
func (r GateReport) Failed() []GateState {
	var out []GateState
	for _, s := range r.States {
		if s.Status != GatePassed {
			out = append(out, s)
		}
	}
	return out
}

// Gates evaluates the gates of channel for the release q names, as a promotion would,
// without moving anything: the dry run.
func (c *Channels) Gates(ctx context.Context, app, channel string, q GateQuery) (GateReport, error) {
	a, err := c.apps.Get(ctx, app)
	if err != nil {
		return GateReport{}, err
	}
	i, err := a.channel(channel)
	if err != nil {
		return GateReport{}, err
	}
	target, _, err := c.moveTarget(ctx, a, channel, Move{Action: ActionPromote, Version: q.Version, FromChannel: q.FromChannel})
	if err != nil {
		return GateReport{}, err
	}
	rel, err := c.release(ctx, app, target)
	if err != nil {
		return GateReport{}, err
	}
	rep, err := c.evaluate(ctx, a, a.Channels[i], rel, q.Auto, c.now().UTC())
	if err != nil {
		return GateReport{}, err
	}
	// What refuses a promotion besides the gates, so that the dry run says all of it: the
	// channel's policy and its lock.
	ch := a.Channels[i]
	var lock *redis.SliceCmd
	var seen *redis.FloatCmd
	if _, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		lock = p.HMGet(ctx, store.ChannelKey(app, ch.Name), "locked", "lock_reason")
		if ch.From != "" {
			seen = p.ZScore(ctx, store.ChannelSeenKey(app, ch.From), rel.Version)
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return GateReport{}, fmt.Errorf("reading channel %s: %w", ch.Name, err)
	}
	var extra []GateState
	if seen != nil && errors.Is(seen.Err(), redis.Nil) {
		extra = append(extra, GateState{Gate: "policy", Status: GateFailed,
			Detail: fmt.Sprintf("%s takes only releases that have been in %s, and %s has not been there; promote it to %s first", ch.Name, ch.From, rel.Version, ch.From)})
	}
	if v := lock.Val(); len(v) == 2 && v[0] == "1" {
		reason, _ := v[1].(string)
		extra = append(extra, GateState{Gate: "locked", Status: GateFailed, Detail: fmt.Sprintf("%s is locked (%s); unlock it first", ch.Name, reason)})
	}
	if len(extra) > 0 {
		rep.States = append(extra, rep.States...)
		rep.Allowed = false
	}
	return rep, nil
}

// release reads one release, or ErrNotFound.
func (c *Channels) release(ctx context.Context, app, version string) (Release, error) {
	doc, err := c.rdb.Get(ctx, store.ReleaseKey(app, version)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Release{}, fmt.Errorf("%w: %s has no release %q", ErrNotFound, app, version)
	}
	if err != nil {
		return Release{}, fmt.Errorf("reading release %s: %w", version, err)
	}
	var rel Release
	if err := json.Unmarshal(doc, &rel); err != nil {
		return Release{}, fmt.Errorf("decoding release %s: %w", version, err)
	}
	return rel, nil
}

// hasGates reports whether promotions into ch are gated at all.
func hasGates(ch Channel) bool {
	g := ch.Gates
	return g != nil && (g.Soak != "" || g.Approvals > 0 || len(g.Checks) > 0 || len(g.Windows) > 0 ||
		(g.Require != nil && (g.Require.Signed || g.Require.Provenance || g.Require.Vulns != "")))
}

// evaluate reads what the gates of ch need and evaluates each for rel at now.
func (c *Channels) evaluate(ctx context.Context, a App, ch Channel, rel Release, auto bool, now time.Time) (GateReport, error) {
	rep := GateReport{Channel: ch.Name, Version: rel.Version}
	g := ch.Gates
	if g == nil {
		g = &Gates{}
	}
	var own, src *redis.MapStringStringCmd
	var approvals *redis.MapStringStringCmd
	if _, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		own = p.HGetAll(ctx, store.ChannelKey(a.Name, ch.Name))
		if ch.From != "" {
			src = p.HGetAll(ctx, store.ChannelKey(a.Name, ch.From))
		}
		approvals = p.HGetAll(ctx, store.ChannelApprovalsKey(a.Name, ch.Name, rel.Version))
		return nil
	}); err != nil {
		return GateReport{}, fmt.Errorf("reading the gates of %s: %w", ch.Name, err)
	}
	state := decodeChannel(ch, own.Val())
	rep.generation = state.Generation

	if auto {
		if state.Pinned {
			rep.States = append(rep.States, GateState{Gate: "pinned", Status: GateFailed, Detail: fmt.Sprintf(
				"%s is pinned since %s by %s (%s); automation does not move it until someone unpins it or promotes by hand",
				ch.Name, describeTime(deref(state.PinnedAt), time.UTC), state.PinnedBy, state.PinReason)})
		} else {
			rep.States = append(rep.States, GateState{Gate: "pinned", Status: GatePassed, Detail: ch.Name + " is not pinned"})
		}
	}
	if g.Soak != "" {
		soak, _ := time.ParseDuration(g.Soak)
		rep.soak = soak
		rep.States = append(rep.States, soakState(ch, rel.Version, decodeChannel(Channel{Name: ch.From}, src.Val()), soak, now, &rep.sourceSince))
	}
	if g.Approvals > 0 {
		rep.approvals = g.Approvals
		rep.States = append(rep.States, approvalsState(ch, rel, g.Approvals, decodeApprovals(approvals.Val())))
	}
	if len(g.Windows) > 0 {
		st, until := windowsState(ch, g.Windows, now)
		rep.allowedUntil = until
		rep.States = append(rep.States, st)
	}
	if needsVerifier(g) {
		if c.verifier == nil {
			for _, name := range verifierGates(g) {
				rep.States = append(rep.States, GateState{Gate: name, Status: GateFailed,
					Detail: "this server has no verifier configured, so it cannot evaluate this gate"})
			}
		} else {
			rep.States = append(rep.States, c.verifier.Verify(ctx, Candidate{App: a, Channel: ch, Release: rel})...)
		}
	}
	rep.Allowed = true
	for _, s := range rep.States {
		if s.Status != GatePassed {
			rep.Allowed = false
		}
	}
	if rep.States == nil {
		rep.States = []GateState{}
	}
	return rep, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func needsVerifier(g *Gates) bool { return len(verifierGates(g)) > 0 }

// verifierGates names the gates of g the Verifier evaluates.
func verifierGates(g *Gates) []string {
	var out []string
	for _, ck := range g.Checks {
		out = append(out, "check:"+ck.Name)
	}
	if r := g.Require; r != nil {
		if r.Signed {
			out = append(out, "signed")
		}
		if r.Provenance {
			out = append(out, "provenance")
		}
		if r.Vulns != "" {
			out = append(out, "vulns")
		}
	}
	return out
}

// soakState is the soak gate: version must be current in ch.From, and have been for soak.
func soakState(ch Channel, version string, src ChannelState, soak time.Duration, now time.Time, since *int64) GateState {
	st := GateState{Gate: "soak"}
	if src.Release != version {
		st.Status = GateFailed
		holds := "no release"
		if src.Release != "" {
			holds = src.Release
		}
		st.Detail = fmt.Sprintf("%s is not current in %s (%s holds %s); the soak of %s counts time as %s's current release",
			version, ch.From, ch.From, holds, fmtDuration(soak), ch.From)
		return st
	}
	start := src.Since
	if start == nil {
		start = src.UpdatedAt
	}
	if start == nil {
		start = &now
	}
	*since = start.UnixMilli()
	elapsed := now.Sub(*start)
	if elapsed >= soak {
		st.Status = GatePassed
		st.Detail = fmt.Sprintf("%s has been current in %s for %s; the soak is %s", version, ch.From, fmtDuration(elapsed), fmtDuration(soak))
		return st
	}
	at := start.Add(soak).UTC()
	st.Status, st.RetryAt = GatePending, &at
	st.Detail = fmt.Sprintf("%s has been current in %s for %s of the %s soak; it passes at %s", version, ch.From,
		fmtDuration(elapsed), fmtDuration(soak), describeTime(at, time.UTC))
	return st
}

// approvalsState is the approvals gate: need approvals that count.
func approvalsState(ch Channel, rel Release, need int, aps []Approval) GateState {
	var counted, not []string
	for _, ap := range aps {
		if ap.Counts {
			counted = append(counted, ap.Actor)
		} else {
			not = append(not, fmt.Sprintf("%s's does not count (%s)", ap.Actor, ap.Note))
		}
	}
	st := GateState{Gate: "approvals", Status: GatePassed}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d approvals", len(counted), need)
	if len(counted) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(counted, ", "))
	}
	if len(not) > 0 {
		fmt.Fprintf(&b, "; %s", strings.Join(not, "; "))
	}
	if len(counted) < need {
		st.Status = GateFailed
		fmt.Fprintf(&b, "; %d more needed from someone with the scope approve:%s or approve (slipway approve %s %s %s)",
			need-len(counted), ch.Name, rel.App, ch.Name, rel.Version)
	}
	st.Detail = b.String()
	return st
}

// windowsState is the windows gate at now, and until when a move is allowed (zero for
// no limit).
func windowsState(ch Channel, ws []Window, now time.Time) (GateState, time.Time) {
	compiled := make([]window, 0, len(ws))
	for _, w := range ws {
		cw, errs := compileWindow(w)
		if len(errs) > 0 {
			return GateState{Gate: "windows", Status: GateFailed,
				Detail: fmt.Sprintf("a window of %s is not valid (%s: %s); fix the app's configuration", ch.Name, errs[0].Field, errs[0].Detail)}, time.Time{}
		}
		compiled = append(compiled, cw)
	}
	open, until, opens, by := windowsAt(compiled, now)
	st := GateState{Gate: "windows"}
	if open {
		st.Status = GatePassed
		if until.IsZero() {
			st.Detail = fmt.Sprintf("%s may change now", ch.Name)
		} else {
			st.Detail = fmt.Sprintf("%s may change now, until %s", ch.Name, describeTime(until, compiled[0].loc))
		}
		return st, until
	}
	st.Status = GatePending
	name := by.Reason
	if name == "" {
		name = by.RRule + by.Cron
	}
	when := "no window opens again"
	if !opens.IsZero() {
		at := opens.UTC()
		st.RetryAt = &at
		when = "it opens at " + describeTime(opens, by.loc)
	}
	if by.Kind == WindowDeny {
		st.Detail = fmt.Sprintf("%s is frozen by the deny window %q (%s for %s, %s); %s", ch.Name, name, by.RRule+by.Cron, by.Duration, by.loc, when)
	} else {
		st.Detail = fmt.Sprintf("%s may change only inside its allow windows, such as %q (%s for %s, %s); %s", ch.Name, name, by.RRule+by.Cron, by.Duration, by.loc, when)
	}
	return st, time.Time{}
}

// fmtDuration says d to the minute (to the second under a minute).
func fmtDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	s := strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// decodeApprovals reads an approvals hash, oldest first.
func decodeApprovals(h map[string]string) []Approval {
	out := make([]Approval, 0, len(h))
	for _, v := range h {
		var ap Approval
		if json.Unmarshal([]byte(v), &ap) == nil {
			out = append(out, ap)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].ActorID < out[j].ActorID
	})
	return out
}

// msArg is t as unix milliseconds for a script, "" for the zero time.
func msArg(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}
