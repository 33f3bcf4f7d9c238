package builder

import (
	"context"
	"errors"
	"log/slog"
	"syscall"
	"time"

	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/store"
)

// finish records the build's end, retrying while Redis cannot be reached (within the
// retry horizon): the result of a whole build is not dropped for a moment's outage.
func (w *Worker) finish(ctx context.Context, attempt int, b Build, log *slog.Logger) error {
	start := time.Now()
	wait := w.opts.RetryMin
	for {
		err := w.builds.transition(ctx, attempt, StatusRunning, b, "")
		if err == nil || !store.IsUnavailable(err) || time.Since(start) > w.opts.RetryHorizon {
			return err
		}
		log.Warn("recording the result; trying again", "err", err, "wait", wait.String())
		sleep(ctx, wait)
		wait = min(2*wait, w.opts.RetryMax)
	}
}

// runWithRetries runs the build, and runs it again after a backoff for as long as it
// fails for a fault of the infrastructure, within the retry horizon: an unreachable
// Redis or blob store or a full disk is never the source's fault.
func (w *Worker) runWithRetries(ctx context.Context, b *Build, blog *buildLog, log *slog.Logger) *BuildError {
	var first time.Time
	wait := w.opts.RetryMin
	for {
		result := w.run(ctx, b, blog)
		if result == nil || !result.retry || ctx.Err() != nil {
			return result
		}
		if first.IsZero() {
			first = time.Now()
		}
		if time.Since(first)+wait > w.opts.RetryHorizon {
			blog.Printf("giving up after faults of the infrastructure for %s", time.Since(first).Round(time.Second))
			return result
		}
		blog.Printf("%s; trying again in %s", result.Detail, wait)
		log.Warn("infrastructure fault; the build runs again", "detail", result.Detail, "wait", wait.String())
		sleep(ctx, wait)
		if ctx.Err() != nil {
			return result
		}
		wait = min(2*wait, w.opts.RetryMax)
		*b = resetRun(*b)
	}
}

// resetRun clears what a run of b filled in, for the next run.
func resetRun(b Build) Build {
	b.Artifacts, b.Image = []Artifact{}, nil
	b.Timings = Timings{QueuedMS: b.Timings.QueuedMS}
	return b
}

// internalError records a failure that is slipway's, not the source's: a fault of the
// infrastructure, so the build runs again after a backoff. The build's log says what
// failed and what kind of fault it was; the cause itself (with the server's paths and
// addresses) goes to the server's log only.
func internalError(blog *buildLog, what string, err error) *BuildError {
	kind := "an unexpected error; the server log has the cause"
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, gobuild.ErrNoSpace):
		kind = "the worker's disk is full"
	case store.IsUnavailable(err):
		kind = "Redis or the blob store did not answer"
	}
	blog.srv.Warn("build: internal error", "app", blog.app, "build", blog.id, "what", what, "err", err)
	blog.Printf("internal error %s: %s", what, kind)
	return &BuildError{Reason: ReasonInternal, Detail: what + " failed: " + kind, retry: true}
}

// infraFault reports whether err is the infrastructure's fault: a backend that could
// not be reached, or a full disk.
func infraFault(err error) bool {
	return store.IsUnavailable(err) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, gobuild.ErrNoSpace)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
