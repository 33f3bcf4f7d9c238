package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/store"
)

// Dispatcher turns events into deliveries and sends them. Any number may run, in any
// number of processes, against one Redis:
//
//   - It reads every app's events stream in the consumer group store.EventsGroup,
//     schedules one delivery per (subscription, event) (idempotently: a delivery's id
//     derives from both), and only then acknowledges the entry. Entries a dispatcher
//     read but never acknowledged (it died) are claimed by another after the visibility
//     timeout and fanned out again, finding the deliveries already made.
//   - It claims due deliveries from the schedule one by one with a script that moves
//     each to the end of a lease and raises its fencing token, sends it, and records
//     the attempt only if it still holds the lease. A dispatcher that dies mid-attempt
//     leaves the delivery due again when the lease ends.
type Dispatcher struct {
	rdb   redis.UniversalClient
	store *Store
	send  *sender
	opts  options
	wake  chan struct{}
	freed chan struct{}
}

// NewDispatcher returns a dispatcher on rdb; see the With options for its settings.
func NewDispatcher(rdb redis.UniversalClient, opts ...Option) (*Dispatcher, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	st, err := NewStore(rdb, opts...)
	if err != nil {
		return nil, err
	}
	return &Dispatcher{rdb: rdb, store: st, send: newSender(o), opts: o,
		wake: make(chan struct{}, 1), freed: make(chan struct{}, 1)}, nil
}

// appsRefresh is how often the dispatcher looks for new apps' streams.
const appsRefresh = time.Second

// Run dispatches until ctx is done, then waits for the attempts in flight: each is
// cut short and put back on the schedule, due at once, for whoever runs next.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.opts.log.Info("webhook dispatcher started", "consumer", d.opts.consumer, "concurrency", d.opts.concurrency)
	var wg sync.WaitGroup
	wg.Go(func() { d.ingest(ctx) })
	wg.Go(func() { d.deliver(ctx) })
	wg.Wait()
	return nil
}

// pause waits for d or the end of ctx.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// ingest fans the events streams out into deliveries.
func (d *Dispatcher) ingest(ctx context.Context) {
	ensured := map[string]bool{}
	var apps []string
	var refreshed, reclaimed time.Time
	for ctx.Err() == nil {
		if time.Since(refreshed) >= appsRefresh {
			list, err := d.ensureGroups(ctx, ensured)
			if err != nil {
				d.trouble(ctx, "listing apps", err)
				continue
			}
			apps, refreshed = list, time.Now()
		}
		if time.Since(reclaimed) >= d.opts.visibility/2 {
			for _, app := range apps {
				if err := d.reclaim(ctx, app); err != nil {
					d.trouble(ctx, "reclaiming events of "+app, err)
				}
			}
			reclaimed = time.Now()
		}
		if len(apps) == 0 {
			pause(ctx, appsRefresh)
			continue
		}
		if !d.readNew(ctx, apps) {
			clear(ensured) // a stream was deleted; make the groups again
			refreshed = time.Time{}
		}
	}
}

// ensureGroups returns every app, and makes the dispatchers' consumer group on each
// app's stream not yet in ensured; a stream whose group fails is tried again on the
// next call.
func (d *Dispatcher) ensureGroups(ctx context.Context, ensured map[string]bool) ([]string, error) {
	list, err := d.rdb.ZRange(ctx, store.AppsIndexKey, 0, -1).Result()
	if err != nil {
		return nil, err
	}
	for _, app := range list {
		if ensured[app] {
			continue
		}
		err := d.rdb.XGroupCreateMkStream(ctx, store.EventsKey(app), store.EventsGroup, "0").Err()
		if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
			d.trouble(ctx, "creating the webhooks group of "+app, err)
			continue
		}
		ensured[app] = true
	}
	return list, nil
}

// readNew fans out the entries of apps' streams that no dispatcher has read, waiting up
// to a second for some. It returns false when a stream has no group (it was deleted).
//
// One XREADGROUP reads several streams only on one Redis: on Redis Cluster each app's
// stream lies in the slot of its app, and a command over keys of several slots is refused
// (CROSSSLOT). There each stream is read with a command of its own, all in one pipeline
// (one round trip per node) and without blocking, and a read that finds nothing waits
// idlePoll before the next.
func (d *Dispatcher) readNew(ctx context.Context, apps []string) bool {
	var cmds []*redis.XStreamSliceCmd
	if len(apps) == 1 || !store.IsCluster(d.rdb) {
		cmds = append(cmds, d.rdb.XReadGroup(ctx, d.readArgs(apps, time.Second)))
	} else {
		// Each command's own error is looked at below.
		_, _ = d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, app := range apps {
				cmds = append(cmds, p.XReadGroup(ctx, d.readArgs([]string{app}, -1)))
			}
			return nil
		})
	}
	appOf := make(map[string]string, len(apps))
	for _, app := range apps {
		appOf[store.EventsKey(app)] = app
	}
	ok, read := true, 0
	var failed error
	for _, c := range cmds {
		res, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil && redis.HasErrorPrefix(err, "NOGROUP"):
			ok = false
			continue
		case err != nil:
			failed = err
			continue
		}
		for _, s := range res {
			read += len(s.Messages)
			if err := d.fanOut(ctx, appOf[s.Stream], s.Stream, s.Messages); err != nil {
				d.trouble(ctx, "scheduling deliveries of "+appOf[s.Stream], err)
			}
		}
	}
	if failed != nil {
		d.trouble(ctx, "reading events", failed)
	} else if len(cmds) > 1 && read == 0 && ok {
		pause(ctx, idlePoll)
	}
	return ok
}

// idlePoll is how long a dispatcher on Redis Cluster waits after a read of every events
// stream found nothing new.
const idlePoll = 250 * time.Millisecond

// readArgs are the arguments of an XREADGROUP of the dispatchers' group over the new
// entries of apps' streams, blocking up to block (not at all when negative).
func (d *Dispatcher) readArgs(apps []string, block time.Duration) *redis.XReadGroupArgs {
	streams := make([]string, 0, 2*len(apps))
	for _, app := range apps {
		streams = append(streams, store.EventsKey(app))
	}
	for range apps {
		streams = append(streams, ">")
	}
	return &redis.XReadGroupArgs{
		Group: store.EventsGroup, Consumer: d.opts.consumer, Streams: streams, Count: 100, Block: block,
	}
}

// reclaim takes over the entries of app's stream that a dispatcher read but did not
// acknowledge within the visibility timeout, and fans them out.
func (d *Dispatcher) reclaim(ctx context.Context, app string) error {
	key := store.EventsKey(app)
	start := "0-0"
	for range 100 {
		msgs, next, err := d.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: key, Group: store.EventsGroup, Consumer: d.opts.consumer,
			MinIdle: d.opts.visibility, Start: start, Count: 100,
		}).Result()
		if err != nil {
			return err
		}
		if len(msgs) > 0 {
			if err := d.fanOut(ctx, app, key, msgs); err != nil {
				return err
			}
		}
		if next == "0-0" || next == "" {
			break
		}
		start = next
	}
	// Consumers of processes long gone, with nothing pending, are forgotten.
	consumers, err := d.rdb.XInfoConsumers(ctx, key, store.EventsGroup).Result()
	if err != nil {
		return err
	}
	for _, c := range consumers {
		if c.Pending == 0 && c.Idle > staleConsumer && c.Name != d.opts.consumer {
			if err := d.rdb.XGroupDelConsumer(ctx, key, store.EventsGroup, c.Name).Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// staleConsumer is how long a consumer with nothing pending stays in an events stream's
// group after its last read.
const staleConsumer = time.Hour

// fanOut schedules the deliveries of one stream's entries, then acknowledges them.
func (d *Dispatcher) fanOut(ctx context.Context, app, key string, msgs []redis.XMessage) error {
	subs, _, err := d.store.List(ctx, "", 0)
	if err != nil {
		return err
	}
	evs := make([]events.Event, 0, len(msgs))
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
		evs = append(evs, events.Decode(app, m))
	}
	n, err := d.store.fanOut(ctx, subs, evs)
	if err != nil {
		return err
	}
	if err := d.rdb.XAck(ctx, key, store.EventsGroup, ids...).Err(); err != nil {
		return fmt.Errorf("acknowledging events: %w", err)
	}
	if n > 0 {
		signal(d.wake)
	}
	return nil
}

// trouble logs a Redis (or other) failure of the dispatcher's own and waits a moment.
func (d *Dispatcher) trouble(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	d.opts.log.WarnContext(ctx, "webhook dispatcher: "+what, "err", err)
	pause(ctx, time.Second)
}

// claimed is a delivery this dispatcher holds the lease of.
type claimed struct {
	id       string
	lease    string
	sub      string
	body     []byte
	ctype    string
	typ      string
	attempts int
	deadline time.Time
}

// deliver sends due deliveries, up to the concurrency at once.
func (d *Dispatcher) deliver(ctx context.Context) {
	slots := make(chan struct{}, d.opts.concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		free := cap(slots) - len(slots)
		if free == 0 {
			select {
			case <-ctx.Done():
			case <-d.freed:
			}
			continue
		}
		now := time.Now()
		ids, err := d.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
			Key: store.DeliveriesDueKey, Start: "-inf", Stop: formatMS(now), ByScore: true, Count: int64(free),
		}).Result()
		if err != nil {
			d.trouble(ctx, "reading the schedule", err)
			continue
		}
		for _, id := range ids {
			c, ok, err := d.claim(ctx, id, now)
			if err != nil {
				d.trouble(ctx, "claiming a delivery", err)
				break
			}
			if !ok {
				continue // another dispatcher took it
			}
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots; signal(d.freed) }()
				d.attempt(ctx, c)
			})
		}
		if len(ids) == free {
			continue // there may be more due now
		}
		wait := time.Second
		if first, err := d.rdb.ZRangeWithScores(ctx, store.DeliveriesDueKey, 0, 0).Result(); err == nil && len(first) > 0 {
			wait = min(wait, time.Until(time.UnixMilli(int64(first[0].Score))))
		}
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-d.freed:
		case <-t.C:
		}
		t.Stop()
	}
}

func (d *Dispatcher) claim(ctx context.Context, id string, now time.Time) (claimed, bool, error) {
	res, err := claimScript.Run(ctx, d.rdb, []string{store.DeliveriesDueKey, store.DeliveryKey(id)},
		id, now.UnixMilli(), now.Add(d.opts.visibility).UnixMilli()).StringSlice()
	if errors.Is(err, redis.Nil) {
		return claimed{}, false, nil
	}
	if err != nil {
		return claimed{}, false, err
	}
	attempts, _ := strconv.Atoi(res[5])
	deadline, _ := strconv.ParseInt(res[6], 10, 64)
	return claimed{id: id, lease: res[0], sub: res[1], body: []byte(res[2]), ctype: res[3], typ: res[4],
		attempts: attempts, deadline: time.UnixMilli(deadline)}, true, nil
}

// attempt sends a claimed delivery once and records the outcome.
func (d *Dispatcher) attempt(ctx context.Context, c claimed) {
	start := time.Now()
	sub, err := d.store.Get(ctx, c.sub)
	var secrets []string
	if err == nil {
		secrets, err = d.store.secrets(ctx, c.sub, start)
	}
	if errors.Is(err, ErrNotFound) {
		d.finish(ctx, c, "drop", start, time.Time{}, result{}, 0) // the subscription is gone
		return
	}
	if err != nil {
		d.trouble(ctx, "reading webhook "+c.sub, err) // the lease runs out; it is tried again
		return
	}
	h := http.Header{}
	h.Set("Content-Type", c.ctype)
	h.Set(HeaderEvent, c.typ)
	h.Set(HeaderDelivery, c.id)
	h.Set(HeaderSignature, Sign(secrets, start, c.body))
	res := d.send.send(ctx, sub.URL, h, c.body)
	if ctx.Err() != nil {
		// Shutting down mid-attempt: not the receiver's fault; due again at once.
		d.finish(ctx, c, "release", time.Now(), time.Time{}, result{}, 0)
		return
	}
	took := time.Since(start)
	host := ""
	if u, err := url.Parse(sub.URL); err == nil {
		host = u.Host
	}
	if res.ok() {
		d.finish(ctx, c, StateSucceeded, start, time.Time{}, res, took)
		d.opts.log.DebugContext(ctx, "webhook delivered", "webhook", c.sub, "delivery", c.id, "host", host,
			"attempt", c.attempts+1, "status", res.status)
		return
	}
	// The schedule keeps milliseconds: the next attempt's time is rounded up, so a wait the
	// receiver asked for (Retry-After) is never cut short by the rounding.
	next := time.Now().Add(d.send.backoff(c.attempts+1, res.resp)).Truncate(time.Millisecond).Add(time.Millisecond)
	outcome := "retry"
	if next.After(c.deadline) {
		outcome = StateFailed
	}
	d.finish(ctx, c, outcome, start, next, res, took)
	attrs := []any{"webhook", c.sub, "delivery", c.id, "host", host, "attempt", c.attempts + 1, "status", res.status, "error", res.err}
	if outcome == StateFailed {
		d.opts.log.WarnContext(ctx, "webhook delivery failed for good", attrs...)
	} else {
		d.opts.log.InfoContext(ctx, "webhook delivery attempt failed", append(attrs, "next_attempt", next.UTC().Format(time.RFC3339))...)
	}
}

// finish records an attempt (or releases or drops the delivery) under the lease; a
// dispatcher that lost its lease records nothing.
func (d *Dispatcher) finish(ctx context.Context, c claimed, outcome string, at, next time.Time, res result, took time.Duration) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	n, err := finishScript.Run(fctx, d.rdb, []string{store.DeliveriesDueKey, store.DeliveryKey(c.id)},
		c.id, c.lease, outcome, at.UnixMilli(), next.UnixMilli(), res.status, res.err, took.Milliseconds(),
		recentAttempts, int64(d.opts.retention/time.Second)).Int()
	if err != nil {
		d.opts.log.WarnContext(fctx, "webhook dispatcher: recording an attempt", "delivery", c.id, "err", err)
		return
	}
	if n == 0 {
		d.opts.log.InfoContext(fctx, "webhook delivery was taken over before its attempt ended; its outcome is dropped", "delivery", c.id)
	}
}
