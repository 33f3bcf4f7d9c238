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
// and watches for a cancel request or a newer attempt (every CancelPoll). The returned
// function stops it.
func (w *Worker) heartbeat(ctx context.Context, cancel context.CancelCauseFunc, app, id, entry string, attempt int, log *slog.Logger) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		poll := min(w.opts.CancelPoll, w.opts.Visibility/4)
		t := time.NewTicker(poll)
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
				if err := w.queue.Heartbeat(ctx, w.opts.ID, entry); err != nil && ctx.Err() == nil {
					log.Warn("heartbeat", "err", err)
				} else {
					lastClaim = time.Now()
				}
			}
			vals, err := w.builds.rdb.HMGet(ctx, store.BuildKey(app, id), "attempt", "cancel").Result()
			if err != nil {
				continue
			}
			if a, _ := vals[0].(string); a != strconv.Itoa(attempt) {
				cancel(ErrStale)
				return
			}
			if vals[1] == "1" {
				cancel(errCanceled)
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
