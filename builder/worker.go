package builder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slipway/slipway/store"
)

// Worker takes builds off the queue and runs them, one at a time.
type Worker struct {
	builds   *Builds
	queue    *Queue
	blobs    store.Blobs
	compiler Compiler
	fetcher  *Fetcher
	opts     WorkerOptions
	// scrub replaces the worker's own paths in what a build reports (its log, its
	// error), so no server path reaches a user.
	scrub *strings.Replacer
	// removing are the removals of finished runs' work directories, which go on while
	// the build's result is recorded; Run waits for them before it returns.
	removing sync.WaitGroup
	// draining is closed by Drain: Run takes no new build and returns after the one
	// it runs, if any.
	draining  chan struct{}
	drainOnce sync.Once
}

// NewWorker returns a worker that compiles with c; call Run to start it.
func NewWorker(builds *Builds, blobs store.Blobs, c Compiler, opts WorkerOptions) (*Worker, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{opts.Go.Cache, opts.Go.ModCache, opts.WorkDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	return &Worker{builds: builds, queue: NewQueue(builds.rdb), blobs: blobs, compiler: c, opts: opts,
		fetcher:  NewFetcher(opts.SourceAllowNets, opts.FetchTimeout),
		scrub:    pathScrubber(opts, c, blobs),
		draining: make(chan struct{})}, nil
}

// pathScrubber replaces the worker's directories (longest first) with names that say
// what they are.
func pathScrubber(opts WorkerOptions, c Compiler, blobs store.Blobs) *strings.Replacer {
	type sub struct{ path, name string }
	var subs []sub
	add := func(p, name string) {
		if p == "" {
			return
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if p != "/" {
			subs = append(subs, sub{p, name})
		}
	}
	add(opts.WorkDir, "$WORK")
	add(opts.Go.Cache, "$GOCACHE")
	add(opts.Go.ModCache, "$GOMODCACHE")
	add(opts.DataDir, "$DATA")
	if fs, ok := blobs.(interface{ Root() string }); ok {
		add(fs.Root(), "$BLOBS")
	}
	if g, ok := c.(gorooter); ok {
		add(g.GOROOT(), "$GOROOT")
	}
	slices.SortStableFunc(subs, func(a, b sub) int { return len(b.path) - len(a.path) })
	var pairs []string
	for _, s := range subs {
		pairs = append(pairs, s.path, s.name)
	}
	return strings.NewReplacer(pairs...)
}

// sandboxOf says how c confines its compiles, if it knows.
func sandboxOf(c Compiler) string {
	if s, ok := c.(sandboxer); ok {
		return s.Sandbox()
	}
	return "unknown"
}

// ID returns the worker's name.
func (w *Worker) ID() string { return w.opts.ID }

// Run takes builds off the queue until ctx is done, Drain is called, or (with the
// options Once and IdleExit) the worker has run its one build or has been idle long
// enough. A build in progress when ctx ends is put back on the queue at once, without
// using up an attempt, for another worker; after Drain, the build in progress runs to its
// end first.
func (w *Worker) Run(ctx context.Context) error {
	if err := EnsureQueue(ctx, w.queue.rdb); err != nil {
		return err
	}
	w.opts.Log.Info("worker started", "worker", w.opts.ID, "sandbox", sandboxOf(w.compiler))
	why := "stopped"
	idleSince := time.Now()
	for {
		if ctx.Err() != nil {
			break
		}
		if w.isDraining() {
			why = "drained"
			break
		}
		if w.opts.IdleExit > 0 && time.Since(idleSince) >= w.opts.IdleExit {
			why = "idle for " + w.opts.IdleExit.String()
			break
		}
		e, ok, err := w.queue.Claim(ctx, w.opts.ID, w.opts.Visibility, w.block())
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.opts.Log.Warn("reading the build queue", "worker", w.opts.ID, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		if !ok {
			continue
		}
		if w.isDraining() {
			// The claim was under way when the drain began: the entry goes back to the
			// queue at once rather than wait out the visibility timeout.
			w.handBack(e)
			why = "drained"
			break
		}
		if w.handle(ctx, e) {
			idleSince = time.Now()
			if w.opts.Once {
				why = "ran its one build"
				break
			}
		}
	}
	w.removing.Wait()
	w.opts.Log.Info("worker stopped", "worker", w.opts.ID, "why", why)
	return nil
}

// Drain makes Run take no new build: it returns once the build in progress, if any, has
// ended. To hand that build back instead, end Run's context.
func (w *Worker) Drain() { w.drainOnce.Do(func() { close(w.draining) }) }

func (w *Worker) isDraining() bool {
	select {
	case <-w.draining:
		return true
	default:
		return false
	}
}

// handBack returns an entry this worker took but will not run to the queue.
func (w *Worker) handBack(e Entry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.queue.Requeue(ctx, e); err != nil {
		w.opts.Log.Warn("handing a queue entry back", "entry", e.ID, "err", err) // it is reclaimed after the visibility timeout
	}
}

// block is how long to wait for a new entry before looking for abandoned ones again.
func (w *Worker) block() time.Duration {
	return min(2*time.Second, w.opts.Visibility/2)
}

// ack acknowledges a handled entry, even after ctx ended; a failure is only logged (the
// entry is then handled again once its lease runs out).
func (w *Worker) ack(ctx context.Context, entry string) {
	if err := w.queue.Ack(context.WithoutCancel(ctx), entry); err != nil {
		w.opts.Log.Warn("acknowledging a queue entry", "entry", entry, "err", err)
	}
}

// handle takes the entry's build through its states: read it, end it at once if it was
// canceled or is out of attempts, else claim it, run it while the lease holds, and record
// how it ended (or put it back on the queue, when this worker is stopping). It reports
// whether this worker ran the build.
func (w *Worker) handle(ctx context.Context, e Entry) (ran bool) {
	log := w.opts.Log.With("worker", w.opts.ID, "app", e.App, "build", e.Build)
	rec, ok := w.readEntry(ctx, e, log)
	if !ok {
		return false
	}
	blog := newBuildLog(w.builds.rdb, e.App, e.Build, w.opts.MaxLog, w.scrub, w.opts.Log)
	if rec.cancel || rec.attempt >= w.opts.MaxAttempts {
		w.endUnstarted(ctx, e, rec, blog, log)
		return false
	}
	b, ok := w.claim(ctx, rec, log)
	if !ok {
		return false
	}
	log = log.With("attempt", b.Attempts)
	log.Info("build started")
	cause, result := w.runLeased(ctx, e, &b, blog, log)
	switch {
	case errors.Is(cause, ErrStale):
		log.Warn(lostBuild)
	case ctx.Err() != nil && !errors.Is(cause, errCanceled):
		w.requeue(b, e, blog, log)
	default:
		w.conclude(ctx, e, b, cause, result, blog, log)
	}
	return true
}

// lostBuild is logged when another worker took a build over.
const lostBuild = "lost the build to another worker; dropping this attempt's result"

// readEntry reads the entry's build; ok is false when there is nothing to run. An entry
// whose build was never recorded, or has ended, is acknowledged; one whose build cannot
// be read stays pending and is retried after the visibility timeout.
func (w *Worker) readEntry(ctx context.Context, e Entry, log *slog.Logger) (rec record, ok bool) {
	rec, err := w.readForClaim(ctx, e.App, e.Build, e.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		log.Warn("dropping a queue entry whose build was never recorded", "entry", e.ID)
		w.ack(ctx, e.ID)
	case err != nil:
		log.Warn("reading build", "err", err)
	case rec.status.Done():
		w.ack(ctx, e.ID)
	default:
		return rec, true
	}
	return record{}, false
}

// endUnstarted ends a build without running it again: one canceled while it waited for
// another attempt, or one that used up its attempts.
func (w *Worker) endUnstarted(ctx context.Context, e Entry, rec record, blog *buildLog, log *slog.Logger) {
	now := time.Now().UTC()
	b := rec.build
	b.FinishedAt = &now
	if rec.cancel {
		b.Status = StatusCanceled
		b.Error = errBuildCanceled()
	} else {
		blog.Printf("giving up: %d workers started this build and none finished it (each stopped or lost its lease)", rec.attempt)
		b.Status = StatusFailed
		b.Error = &BuildError{Reason: ReasonInternal,
			Detail: fmt.Sprintf("%d attempts did not finish; the log lists them", rec.attempt)}
		b.Timings.TotalMS = ms(now.Sub(b.CreatedAt))
	}
	if err := w.builds.transition(ctx, rec.attempt, rec.status, b, ""); err == nil {
		w.storeLog(ctx, b, blog, log)
		w.ack(ctx, e.ID)
	}
}

// claim makes the build running as this worker's attempt, the next one; ok is false when
// another worker took it first.
func (w *Worker) claim(ctx context.Context, rec record, log *slog.Logger) (b Build, ok bool) {
	now := time.Now().UTC()
	b = rec.build
	b.Status, b.Attempts, b.Worker = StatusRunning, rec.attempt+1, w.opts.ID
	if b.StartedAt == nil {
		b.StartedAt = &now
		b.Timings.QueuedMS = ms(now.Sub(b.CreatedAt))
	}
	// The claim and its log line are one step: a worker that dies right after claiming
	// has already said which attempt it was.
	claimLine := logLine(fmt.Sprintf("attempt %d of %d on worker %s (%s)", b.Attempts, w.opts.MaxAttempts, w.opts.ID, w.compiler.Version()))
	if err := w.builds.transition(ctx, rec.attempt, rec.status, b, claimLine); err != nil {
		log.Info("another worker took the build first", "err", err)
		return Build{}, false
	}
	return b, true
}

// runLeased runs the claimed build while heartbeats keep its lease and watch for a
// cancel or a newer attempt. It returns why the run's context ended (nil when it did
// not) and why the build failed (nil when it did not).
func (w *Worker) runLeased(ctx context.Context, e Entry, b *Build, blog *buildLog, log *slog.Logger) (cause error, result *BuildError) {
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopBeat := w.heartbeat(bctx, cancel, e, b.Attempts, log)
	result = w.runWithRetries(bctx, b, blog, log)
	stopBeat()
	return context.Cause(bctx), result
}

// conclude records how the run ended, then keeps its log and acknowledges the entry.
// When the result cannot be recorded (another worker owns the build now) the entry is
// left to the owner of the newer attempt.
func (w *Worker) conclude(ctx context.Context, e Entry, b Build, cause error, result *BuildError, blog *buildLog, log *slog.Logger) {
	w.settle(&b, cause, result, blog)
	ctx = context.WithoutCancel(ctx)
	err := w.finish(ctx, b.Attempts, b, log)
	if errors.Is(err, errCancelFirst) {
		// A cancel was accepted before the result could be recorded: the build ends
		// canceled, never succeeded.
		w.markCanceled(&b, blog)
		err = w.finish(ctx, b.Attempts, b, log)
	}
	switch {
	case errors.Is(err, ErrStale):
		log.Warn(lostBuild)
	case err != nil:
		log.Warn("recording the result", "err", err)
	default:
		log.Info("build finished", "status", b.Status)
		w.storeLog(ctx, b, blog, log)
		w.ack(ctx, e.ID)
	}
}

// settle fills in the end of b's run: canceled, failed for result, or succeeded.
func (w *Worker) settle(b *Build, cause error, result *BuildError, blog *buildLog) {
	end := time.Now().UTC()
	b.FinishedAt = &end
	b.Timings.TotalMS = ms(end.Sub(b.CreatedAt))
	b.GoVersion = w.compiler.Version()
	switch {
	case errors.Is(cause, errCanceled):
		w.markCanceled(b, blog)
	case result != nil:
		b.Status, b.Error = StatusFailed, result
		b.Error.Detail = w.scrub.Replace(b.Error.Detail)
		blog.Printf("failed: %s", result.Reason)
	default:
		b.Status = StatusSucceeded
		blog.Printf("succeeded in %s", end.Sub(*b.StartedAt).Round(time.Millisecond))
	}
}

// markCanceled makes b a build canceled while it ran.
func (w *Worker) markCanceled(b *Build, blog *buildLog) {
	b.Status = StatusCanceled
	b.Error = &BuildError{Reason: ReasonCanceled, Detail: "canceled while running"}
	b.Artifacts, b.Image = []Artifact{}, nil
	blog.Printf("canceled")
}

// requeue puts a build this worker is abandoning (it is stopping) back on the queue at
// once, without using up an attempt.
func (w *Worker) requeue(b Build, entry Entry, blog *buildLog, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	attempt := b.Attempts
	b.Status, b.Attempts, b.Worker = StatusQueued, attempt-1, ""
	blog.Printf("worker %s is stopping; the build goes back to the queue", w.opts.ID)
	if err := w.builds.transition(ctx, attempt, StatusRunning, b, ""); err != nil {
		log.Warn("requeueing", "err", err)
		return
	}
	if err := w.queue.Requeue(ctx, entry); err != nil {
		log.Warn("requeueing", "err", err) // the old entry is still pending and will be reclaimed
		return
	}
	log.Info("build requeued")
}

// readForClaim reads the entry's build, waiting a moment for one that is being
// recorded right now (the queue entry is written first, and a worker blocked on the
// queue usually wakes before the record lands). It looks again after 1 ms, backing off
// to 100 ms, so a build is not held up by the race it nearly always wins.
func (w *Worker) readForClaim(ctx context.Context, app, id, entry string) (record, error) {
	wait := time.Millisecond
	for {
		rec, err := w.builds.read(ctx, app, id)
		if !errors.Is(err, ErrNotFound) || entryAge(entry) > 10*time.Second || ctx.Err() != nil {
			return rec, err
		}
		sleep(ctx, wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// entryAge is how long ago a stream entry was added (its id starts with Unix ms).
func entryAge(entry string) time.Duration {
	msPart, _, _ := strings.Cut(entry, "-")
	t, err := strconv.ParseInt(msPart, 10, 64)
	if err != nil {
		return time.Hour
	}
	return time.Since(time.UnixMilli(t))
}
