package webhook

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"
)

type options struct {
	allow       []netip.Prefix
	grace       time.Duration
	horizon     time.Duration
	minBackoff  time.Duration
	maxBackoff  time.Duration
	timeout     time.Duration
	visibility  time.Duration
	concurrency int
	retention   time.Duration
	consumer    string
	log         *slog.Logger

	// The check gates' (Checker) settings.
	checkTimeout  time.Duration
	checkDeadline time.Duration
	checkFresh    time.Duration
}

func defaultOptions() options {
	host, _ := os.Hostname()
	return options{
		grace:       24 * time.Hour,
		horizon:     24 * time.Hour,
		minBackoff:  2 * time.Second,
		maxBackoff:  time.Hour,
		timeout:     10 * time.Second,
		visibility:  time.Minute,
		concurrency: 8,
		retention:   7 * 24 * time.Hour,
		consumer:    fmt.Sprintf("%s-%d", host, os.Getpid()),
		log:         slog.New(slog.DiscardHandler),

		checkTimeout:  10 * time.Second,
		checkDeadline: time.Minute,
		checkFresh:    30 * time.Second,
	}
}

// Option configures a Store or a Dispatcher.
type Option func(*options)

// WithAllowNets lets webhooks reach these ranges although they are loopback, private,
// link-local or otherwise special. Default: none.
func WithAllowNets(nets []netip.Prefix) Option {
	return func(o *options) { o.allow = nets }
}

// WithSecretGrace is how long a rotated-out secret keeps signing next to the new one.
// Default 24h.
func WithSecretGrace(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithHorizon is how long a delivery is retried before it is marked failed. Default 24h.
func WithHorizon(d time.Duration) Option { return func(o *options) { o.horizon = d } }

// WithBackoff bounds the wait between attempts: the first retry comes after about min,
// each later one after twice as long (with jitter), never more than max. Default 2s, 1h.
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.minBackoff, o.maxBackoff = min, max }
}

// WithTimeout bounds one attempt, from dialing to the end of the response. Default 10s.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithVisibility is how long a dispatcher may hold a delivery or an event it is fanning
// out before another takes it over; it must exceed the timeout. Default 1m.
func WithVisibility(d time.Duration) Option { return func(o *options) { o.visibility = d } }

// WithConcurrency is how many deliveries one dispatcher sends at once. Default 8.
func WithConcurrency(n int) Option { return func(o *options) { o.concurrency = n } }

// WithRetention is how long a delivery is kept after it succeeds or fails. Default 7 days.
func WithRetention(d time.Duration) Option { return func(o *options) { o.retention = d } }

// WithConsumer names the dispatcher in the events streams' consumer group; every
// dispatcher needs its own name. Default: host name and process id.
func WithConsumer(name string) Option { return func(o *options) { o.consumer = name } }

// WithLogger is where a dispatcher logs attempts that fail and its own trouble (never a
// secret, nor a target's path or query). Default: nowhere.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithCheckTimeouts are the bounds of a check gate that sets none: timeout bounds one
// attempt, deadline all of them. Default 10s, 1m.
func WithCheckTimeouts(timeout, deadline time.Duration) Option {
	return func(o *options) { o.checkTimeout, o.checkDeadline = timeout, deadline }
}

// WithCheckFreshness is how long a check gate's result for a release stands before the
// hook is called again, so that a dry run and the promotion right after it call the hook
// once. Default 30s; 0 calls the hook every time.
func WithCheckFreshness(d time.Duration) Option { return func(o *options) { o.checkFresh = d } }

func buildOptions(opts []Option) (options, error) {
	return buildOptionsFrom(defaultOptions(), opts)
}

// buildOptionsFrom applies opts to o and validates the result.
func buildOptionsFrom(o options, opts []Option) (options, error) {
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.grace < 0:
		return o, fmt.Errorf("webhook secret grace %s is negative", o.grace)
	case o.horizon <= 0:
		return o, fmt.Errorf("webhook horizon %s must be positive", o.horizon)
	case o.minBackoff <= 0 || o.maxBackoff < o.minBackoff:
		return o, fmt.Errorf("webhook backoff %s to %s: the minimum must be positive and at most the maximum", o.minBackoff, o.maxBackoff)
	case o.timeout <= 0:
		return o, fmt.Errorf("webhook timeout %s must be positive", o.timeout)
	case o.visibility <= o.timeout:
		return o, fmt.Errorf("webhook visibility %s must exceed the timeout %s", o.visibility, o.timeout)
	case o.concurrency < 1:
		return o, fmt.Errorf("webhook concurrency %d must be at least 1", o.concurrency)
	case o.retention <= 0:
		return o, fmt.Errorf("webhook retention %s must be positive", o.retention)
	case o.consumer == "":
		return o, fmt.Errorf("webhook consumer name is empty")
	case o.checkTimeout <= 0 || o.checkDeadline < o.checkTimeout:
		return o, fmt.Errorf("check timeout %s and deadline %s: the timeout must be positive and at most the deadline", o.checkTimeout, o.checkDeadline)
	case o.checkFresh < 0:
		return o, fmt.Errorf("check freshness %s is negative", o.checkFresh)
	case o.log == nil:
		o.log = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
