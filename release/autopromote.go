package release

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/store"
)

// AutoActor is the actor of the promotions auto_promote makes.
const AutoActor = "slipway"

// AutoPass is one evaluation of an auto_promote channel: what its From held, the gates'
// report, and whether the scheduler moved the channel.
type AutoPass struct {
	App, Channel, Version string
	Report                GateReport
	Moved                 bool
}

// AutoPromoter promotes into every channel with auto_promote the release its From holds,
// as soon as every gate passes. Any number may run against one Redis (one per worker):
// a short lease per app keeps them from evaluating the same app at once, and the move
// script, conditional on the generation the gates were evaluated at, makes a second
// promotion of the same release a no-op, so each release is promoted once.
//
// It wakes on the events of the apps that have such channels (a release entering a From
// channel, an approval, an unpin), at the earliest time a pending gate may pass by
// itself (a soak's end, a window's opening), and once every rescan period to find new
// apps and configurations.
type AutoPromoter struct {
	channels *Channels
	events   *events.Log
	id       string
	lease    time.Duration
	rescan   time.Duration
	log      *slog.Logger
	observe  func(AutoPass)
}

// AutoPromoterOption configures an AutoPromoter.
type AutoPromoterOption func(*AutoPromoter)

// WithLease sets how long one scheduler holds an app while it evaluates it; 5s by default.
func WithLease(d time.Duration) AutoPromoterOption { return func(p *AutoPromoter) { p.lease = d } }

// WithRescan sets how often the list of apps and their configurations is read again;
// one minute by default.
func WithRescan(d time.Duration) AutoPromoterOption { return func(p *AutoPromoter) { p.rescan = d } }

// WithAutoLogger sets the logger; slog.Default by default.
func WithAutoLogger(l *slog.Logger) AutoPromoterOption { return func(p *AutoPromoter) { p.log = l } }

// WithObserver calls fn after each evaluation of a channel; for tests and metrics.
func WithObserver(fn func(AutoPass)) AutoPromoterOption {
	return func(p *AutoPromoter) { p.observe = fn }
}

// NewAutoPromoter returns a scheduler named id (unique in the fleet: a worker's id).
func NewAutoPromoter(c *Channels, id string, opts ...AutoPromoterOption) *AutoPromoter {
	p := &AutoPromoter{channels: c, events: events.NewLog(c.rdb), id: id, lease: 5 * time.Second, rescan: time.Minute, log: slog.Default()}
	for _, o := range opts {
		o(p)
	}
	return p
}

// releaseLeaseScript deletes the lease only while it is still the caller's.
var releaseLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Pass evaluates the auto_promote channels of app once and promotes those whose gates all
// pass. It returns when to evaluate again without an event: the earliest time a pending
// gate may pass by itself, or, when another scheduler holds the app, the end of its
// lease; zero for none.
func (p *AutoPromoter) Pass(ctx context.Context, app string) (time.Time, error) {
	key := store.AutoPromoteLeaseKey(app)
	ok, err := p.channels.rdb.SetNX(ctx, key, p.id, p.lease).Result()
	if err != nil {
		return time.Time{}, fmt.Errorf("taking the auto_promote lease of %s: %w", app, err)
	}
	if !ok {
		ttl, err := p.channels.rdb.PTTL(ctx, key).Result()
		if err != nil || ttl <= 0 {
			ttl = p.lease
		}
		return p.channels.now().Add(ttl), nil
	}
	defer releaseLeaseScript.Run(context.WithoutCancel(ctx), p.channels.rdb, []string{key}, p.id)
	// Events that arrive while this scheduler holds the app find the others locked out, so
	// it evaluates again until the app's stream stands still (its own promotions too, which
	// may open the gates of channels that come from the one it moved).
	last, err := p.lastEvent(ctx, app)
	if err != nil {
		return time.Time{}, err
	}
	for range 4 {
		next, err := p.passOnce(ctx, app)
		if err != nil {
			return next, err
		}
		now, err := p.lastEvent(ctx, app)
		if err != nil || now == last {
			return next, err
		}
		last = now
	}
	return p.channels.now(), nil
}

// lastEvent is the id of the newest entry of app's event stream.
func (p *AutoPromoter) lastEvent(ctx context.Context, app string) (string, error) {
	msgs, err := p.channels.rdb.XRevRangeN(ctx, store.EventsKey(app), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("reading the events of %s: %w", app, err)
	}
	if len(msgs) == 0 {
		return "", nil
	}
	return msgs[0].ID, nil
}

// passOnce evaluates every auto_promote channel of app once.
func (p *AutoPromoter) passOnce(ctx context.Context, app string) (time.Time, error) {
	a, err := p.channels.apps.Get(ctx, app)
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	var next time.Time
	for _, ch := range a.Channels {
		if !ch.AutoPromote || ch.From == "" {
			continue
		}
		at, err := p.promote(ctx, a, ch)
		if err != nil {
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err()
			}
			p.log.WarnContext(ctx, "auto_promote", "app", app, "channel", ch.Name, "err", err)
			continue
		}
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next, nil
}

// promote evaluates one auto_promote channel and promotes into it when every gate passes.
func (p *AutoPromoter) promote(ctx context.Context, a App, ch Channel) (time.Time, error) {
	var src, own *redis.StringCmd
	if _, err := p.channels.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		src = pl.HGet(ctx, store.ChannelKey(a.Name, ch.From), "release")
		own = pl.HGet(ctx, store.ChannelKey(a.Name, ch.Name), "release")
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return time.Time{}, fmt.Errorf("reading channels: %w", err)
	}
	version := src.Val()
	if version == "" || version == own.Val() {
		return time.Time{}, nil
	}
	rel, err := p.channels.release(ctx, a.Name, version)
	if err != nil {
		return time.Time{}, err
	}
	rep, err := p.channels.evaluate(ctx, a, ch, rel, true, p.channels.now().UTC())
	if err != nil {
		return time.Time{}, err
	}
	pass := AutoPass{App: a.Name, Channel: ch.Name, Version: version, Report: rep}
	defer func() {
		if p.observe != nil {
			p.observe(pass)
		}
	}()
	if !rep.Allowed {
		return retryAt(rep.States), nil
	}
	ifGen := rep.generation
	if ifGen == 0 {
		ifGen = -1
	}
	res, err := p.channels.Move(ctx, a.Name, ch.Name, Move{
		Action: ActionPromote, Version: version, Actor: AutoActor, ActorID: AutoActor, Auto: true, IfGeneration: ifGen,
		Reason: fmt.Sprintf("auto_promote: %s passed every gate of %s in %s", version, ch.Name, ch.From),
	})
	var gerr *GatesError
	switch {
	case errors.As(err, &gerr):
		pass.Report.States, pass.Report.Allowed = gerr.States, false
		return retryAt(gerr.States), nil
	case errors.Is(err, ErrStale), errors.Is(err, ErrLocked), errors.Is(err, ErrPolicy):
		return time.Time{}, nil // someone moved it first, or it may not move now: the next event says when
	case err != nil:
		return time.Time{}, err
	}
	pass.Moved = res.Changed
	if res.Changed {
		p.log.InfoContext(ctx, "auto_promote", "app", a.Name, "channel", ch.Name, "version", version)
	}
	return time.Time{}, nil
}

// autoBlock bounds one wait for the apps' events.
const autoBlock = 2 * time.Second

// retryAt is the earliest time a pending gate may pass by itself; zero for none.
func retryAt(states []GateState) time.Time {
	var at time.Time
	for _, s := range states {
		if s.Status == GatePending && s.RetryAt != nil && (at.IsZero() || s.RetryAt.Before(at)) {
			at = *s.RetryAt
		}
	}
	return at
}

// Run evaluates the apps with auto_promote channels until ctx ends: at start, on every
// event of those apps, when a pending gate may pass, and every rescan period.
func (p *AutoPromoter) Run(ctx context.Context) error {
	due := map[string]time.Time{}
	var watched []string
	var cursor string
	var rescanAt time.Time
	for ctx.Err() == nil {
		now := p.channels.now()
		if !now.Before(rescanAt) {
			apps, err := p.autoApps(ctx)
			if err != nil {
				p.log.WarnContext(ctx, "auto_promote: listing apps", "err", err)
				sleepCtx(ctx, p.rescan)
				continue
			}
			if cursor, err = p.events.Start(ctx, apps); err != nil {
				p.log.WarnContext(ctx, "auto_promote: reading events", "err", err)
				sleepCtx(ctx, p.rescan)
				continue
			}
			watched, rescanAt = apps, now.Add(p.rescan)
			clear(due)
			for _, a := range apps {
				due[a] = now
			}
		}
		for app, at := range due {
			if at.After(now) {
				continue
			}
			delete(due, app)
			next, err := p.Pass(ctx, app)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				p.log.WarnContext(ctx, "auto_promote", "app", app, "err", err)
				next = now.Add(p.lease)
			}
			if !next.IsZero() {
				due[app] = next
			}
		}
		wake := rescanAt
		for _, at := range due {
			if at.Before(wake) {
				wake = at
			}
		}
		wait := wake.Sub(p.channels.now())
		if wait <= 0 {
			continue
		}
		// A blocked read does not end with ctx, so it waits at most autoBlock at a time (as
		// the build workers' claims do), and the scheduler stops within that.
		evs, next, err := p.events.Read(ctx, watched, cursor, min(max(wait, time.Millisecond), autoBlock), 100)
		if err != nil {
			if ctx.Err() == nil {
				p.log.WarnContext(ctx, "auto_promote: reading events", "err", err)
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		cursor = next
		for _, ev := range evs {
			// Any change of the app may open a gate; its own promotions wake the channels
			// that come from the one it moved.
			due[ev.App] = p.channels.now()
		}
	}
	return nil
}

// autoApps lists the apps that have a channel with auto_promote.
func (p *AutoPromoter) autoApps(ctx context.Context) ([]string, error) {
	names, err := p.events.Apps(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		a, err := p.channels.apps.Get(ctx, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, ch := range a.Channels {
			if ch.AutoPromote {
				out = append(out, name)
				break
			}
		}
	}
	return out, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
