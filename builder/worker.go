package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway/slipway/builder/source"
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
}

// NewWorker returns a worker; call Run to start it.
func NewWorker(builds *Builds, blobs store.Blobs, c Compiler, opts WorkerOptions) (*Worker, error) {
	if opts.DataDir == "" {
		return nil, errors.New("worker needs a data directory")
	}
	if opts.ID == "" {
		host, _ := os.Hostname()
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		opts.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = runtime.NumCPU()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.Visibility <= 0 {
		opts.Visibility = time.Minute
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 3
	}
	if opts.MaxBinary <= 0 {
		opts.MaxBinary = 512 << 20
	}
	if opts.MaxLog <= 0 {
		opts.MaxLog = 16 << 20
	}
	if opts.Limits == (source.Limits{}) {
		opts.Limits = source.DefaultLimits()
	}
	if opts.WorkDir == "" {
		opts.WorkDir = filepath.Join(opts.DataDir, "work")
	}
	if opts.Go.Cache == "" {
		opts.Go.Cache = filepath.Join(opts.DataDir, "cache", "go-build")
	}
	if opts.Go.ModCache == "" {
		opts.Go.ModCache = filepath.Join(opts.DataDir, "cache", "gomod")
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 5 * time.Minute
	}
	if opts.CancelPoll <= 0 {
		opts.CancelPoll = 500 * time.Millisecond
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 30 * time.Second
	}
	opts.RetryMax = max(opts.RetryMax, opts.RetryMin)
	if opts.RetryHorizon <= 0 {
		opts.RetryHorizon = 5 * time.Minute
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{opts.Go.Cache, opts.Go.ModCache, opts.WorkDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	return &Worker{builds: builds, queue: NewQueue(builds.rdb), blobs: blobs, compiler: c, opts: opts,
		fetcher: NewFetcher(opts.SourceAllowNets, opts.FetchTimeout),
		scrub:   pathScrubber(opts, c, blobs)}, nil
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

// Run takes builds off the queue until ctx is done. A build in progress when ctx ends
// is put back on the queue for another worker.
func (w *Worker) Run(ctx context.Context) error {
	if err := EnsureQueue(ctx, w.queue.rdb); err != nil {
		return err
	}
	w.opts.Log.Info("worker started", "worker", w.opts.ID, "sandbox", sandboxOf(w.compiler))
	for ctx.Err() == nil {
		e, ok, err := w.queue.Claim(ctx, w.opts.ID, w.opts.Visibility, w.block())
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.opts.Log.Warn("reading the build queue", "worker", w.opts.ID, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		if ok {
			w.handle(ctx, e)
		}
	}
	w.opts.Log.Info("worker stopped", "worker", w.opts.ID)
	return nil
}

// block is how long to wait for a new entry before looking for abandoned ones again.
func (w *Worker) block() time.Duration {
	return min(2*time.Second, w.opts.Visibility/2)
}

func (w *Worker) ack(ctx context.Context, entry string) {
	if err := w.queue.Ack(context.WithoutCancel(ctx), entry); err != nil {
		w.opts.Log.Warn("acknowledging a queue entry", "entry", entry, "err", err)
	}
}

// handle claims the entry's build, runs it and records the result.
func (w *Worker) handle(ctx context.Context, m Entry) {
	app, id := m.App, m.Build
	log := w.opts.Log.With("worker", w.opts.ID, "app", app, "build", id)

	rec, err := w.readForClaim(ctx, app, id, m.ID)
	if errors.Is(err, ErrNotFound) {
		log.Warn("dropping a queue entry whose build was never recorded", "entry", m.ID)
		w.ack(ctx, m.ID)
		return
	}
	if err != nil {
		log.Warn("reading build", "err", err)
		return // the entry stays pending and is retried after the visibility timeout
	}
	if rec.status.Done() {
		w.ack(ctx, m.ID)
		return
	}
	blog := newBuildLog(w.builds.rdb, app, id, w.opts.MaxLog, w.scrub, w.opts.Log)
	now := time.Now().UTC()
	b := rec.build
	if rec.cancel {
		b.Status, b.FinishedAt = StatusCanceled, &now
		b.Error = &BuildError{Reason: ReasonCanceled, Detail: "canceled"}
		if err := w.builds.transition(ctx, rec.attempt, rec.status, b, ""); err == nil {
			w.storeLog(ctx, b, blog, log)
			w.ack(ctx, m.ID)
		}
		return
	}
	attempt := rec.attempt + 1
	if attempt > w.opts.MaxAttempts {
		blog.Printf("giving up: %d workers started this build and none finished it (each stopped or lost its lease)", rec.attempt)
		b.Status, b.FinishedAt = StatusFailed, &now
		b.Error = &BuildError{Reason: ReasonInternal,
			Detail: fmt.Sprintf("%d attempts did not finish; the log lists them", rec.attempt)}
		b.Timings.TotalMS = ms(now.Sub(b.CreatedAt))
		if err := w.builds.transition(ctx, rec.attempt, rec.status, b, ""); err == nil {
			w.storeLog(ctx, b, blog, log)
			w.ack(ctx, m.ID)
		}
		return
	}
	b.Status, b.Attempts, b.Worker = StatusRunning, attempt, w.opts.ID
	if b.StartedAt == nil {
		b.StartedAt = &now
		b.Timings.QueuedMS = ms(now.Sub(b.CreatedAt))
	}
	// The claim and its log line are one step: a worker that dies right after claiming
	// has already said which attempt it was.
	claimLine := logLine(fmt.Sprintf("attempt %d of %d on worker %s (%s)", attempt, w.opts.MaxAttempts, w.opts.ID, w.compiler.Version()))
	if err := w.builds.transition(ctx, rec.attempt, rec.status, b, claimLine); err != nil {
		log.Info("another worker took the build first", "err", err)
		return
	}
	log = log.With("attempt", attempt)
	log.Info("build started")

	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopBeat := w.heartbeat(bctx, cancel, app, id, m.ID, attempt, log)
	result := w.runWithRetries(bctx, &b, blog, log)
	stopBeat()

	cause := context.Cause(bctx)
	switch {
	case errors.Is(cause, ErrStale):
		log.Warn("lost the build to another worker; dropping this attempt's result")
		return
	case ctx.Err() != nil && !errors.Is(cause, errCanceled):
		w.requeue(b, attempt, m, blog, log)
		return
	}
	end := time.Now().UTC()
	b.FinishedAt = &end
	b.Timings.TotalMS = ms(end.Sub(b.CreatedAt))
	b.GoVersion = w.compiler.Version()
	switch {
	case errors.Is(cause, errCanceled):
		w.markCanceled(&b, blog)
	case result != nil:
		b.Status, b.Error = StatusFailed, result
		b.Error.Detail = w.scrub.Replace(b.Error.Detail)
		blog.Printf("failed: %s", result.Reason)
	default:
		b.Status = StatusSucceeded
		blog.Printf("succeeded in %s", end.Sub(*b.StartedAt).Round(time.Millisecond))
	}
	fctx := context.WithoutCancel(ctx)
	err = w.finish(fctx, attempt, b, log)
	if errors.Is(err, errCancelFirst) {
		// A cancel was accepted before the result could be recorded: the build ends
		// canceled, never succeeded.
		w.markCanceled(&b, blog)
		err = w.finish(fctx, attempt, b, log)
	}
	if err != nil {
		if errors.Is(err, ErrStale) {
			log.Warn("lost the build to another worker; dropping this attempt's result")
		} else {
			log.Warn("recording the result", "err", err)
		}
		return // the owner of the newer attempt acknowledges the entry
	}
	log.Info("build finished", "status", b.Status)
	w.storeLog(fctx, b, blog, log)
	w.ack(fctx, m.ID)
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
func (w *Worker) requeue(b Build, attempt int, entry Entry, blog *buildLog, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
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
