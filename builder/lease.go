package builder

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/slipway/slipway/store"
)

// heartbeat keeps the queue entry's idle time low, so no other worker takes the build,
// and watches for a cancel request or a newer attempt (every CancelPoll), which end ctx
// through cancel with errCanceled or ErrStale. The returned function stops it.
func (w *Worker) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, e Entry, attempt int, log *slog.Logger) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(min(w.opts.CancelPoll, w.opts.Visibility/4))
		defer t.Stop()
		lastClaim := time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if time.Since(lastClaim) >= w.opts.Visibility/4 {
				if err := w.queue.Heartbeat(ctx, w.opts.ID, e.ID); err != nil && ctx.Err() == nil {
					log.Warn("heartbeat", "err", err)
				} else {
					lastClaim = time.Now()
				}
			}
			if why := w.builds.leaseEnded(ctx, e.App, e.Build, attempt); why != nil {
				cancel(why)
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// leaseEnded reports why a running build's attempt must stop: ErrStale when a newer
// attempt owns the build, errCanceled when a cancel was asked for; nil otherwise, or
// when the build cannot be read (the next heartbeat looks again).
func (s *Builds) leaseEnded(ctx context.Context, app, id string, attempt int) error {
	vals, err := s.rdb.HMGet(ctx, store.BuildKey(app, id), "attempt", "cancel").Result()
	if err != nil {
		return nil
	}
	if a, _ := vals[0].(string); a != strconv.Itoa(attempt) {
		return ErrStale
	}
	if vals[1] == "1" {
		return errCanceled
	}
	return nil
}
