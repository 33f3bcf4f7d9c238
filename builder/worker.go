package builder

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/builder/source"
	"github.com/slipway/slipway/store"
)

// WorkerOptions configure a worker; the zero value of each field means its default.
type WorkerOptions struct {
	// ID names the worker in the queue's consumer group and in build records. Default:
	// host name, process id and a random suffix.
	ID string
	// DataDir holds the worker's scratch space (<DataDir>/work, unless WorkDir is set)
	// and the Go caches (<DataDir>/cache). Required.
	DataDir string
	// WorkDir is where each build gets its own work directory. Default <DataDir>/work.
	WorkDir string
	// Concurrency is how many platforms of one build compile at once. Default: the
	// number of CPUs.
	Concurrency int
	// Timeout bounds each compile. Default 10 minutes.
	Timeout time.Duration
	// Visibility is how long a build's queue entry may go without a heartbeat before
	// another worker takes the build over. Default 1 minute; heartbeats come every quarter.
	Visibility time.Duration
	// MaxAttempts is how many workers may start a build before it fails. Default 3.
	MaxAttempts int
	// MaxBinary is the largest binary accepted. Default 512 MiB.
	MaxBinary int64
	// MaxLog is the most log kept per build; more is cut. Default 16 MiB.
	MaxLog int64
	// Go is the environment of every compile.
	Go gobuild.Env
	// Limits are the source archive limits, applied again as the source is extracted.
	Limits source.Limits
	// BaseImageOptions configure pulls of apps' base images (credentials, transport).
	// Default: anonymous pulls.
	BaseImageOptions []remote.Option
	// SourceAllowNets are address ranges source URLs may reach although link-local or
	// metadata addresses. Default none.
	SourceAllowNets []netip.Prefix
	// FetchTimeout bounds each attempt to fetch a source URL. Default 5 minutes.
	FetchTimeout time.Duration
	// CancelPoll is how often a running build looks for a cancel request. Default
	// 500ms, so a cancel stops the compile within a second.
	CancelPoll time.Duration
	// RetryMin and RetryMax bound the wait before a build that hit a fault of the
	// infrastructure (Redis or the blob store unreachable, a full disk) runs again;
	// the wait doubles from RetryMin up to RetryMax. Defaults 1s and 30s.
	RetryMin, RetryMax time.Duration
	// RetryHorizon is how long after its first fault a build keeps being retried before
	// it fails with reason internal. Default 5 minutes.
	RetryHorizon time.Duration
	// Log receives the worker's own log.
	Log *slog.Logger
}

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

var errCanceled = errors.New("build canceled")

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

// run builds b in a scratch directory: fetch and extract the source, compile every
// platform, store the binaries. It fills in b's artifacts and timings and returns why
// the build failed, or nil.
func (w *Worker) run(ctx context.Context, b *Build, blog *buildLog) *BuildError {
	work, err := os.MkdirTemp(w.opts.WorkDir, b.ID+"-")
	if err != nil {
		return internalError(blog, "creating a work directory", err)
	}
	defer os.RemoveAll(work)

	start := time.Now()
	src := filepath.Join(work, "src")
	if berr := w.fetchSource(ctx, b, work, src, blog); berr != nil {
		if ctx.Err() != nil {
			return &BuildError{Reason: ReasonCanceled, Detail: "canceled"}
		}
		return berr
	}
	b.Timings.SourceMS = ms(time.Since(start))

	start = time.Now()
	ld, err := gobuild.RenderLdflags(b.Ldflags, gobuild.LdflagsVars{
		Version: b.Version, Commit: b.Commit, App: b.App,
		Date: time.Unix(b.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
	})
	if err != nil {
		return &BuildError{Reason: ReasonCompileFailed, Detail: err.Error()}
	}
	outs, berr := w.compileAll(ctx, b, src, work, ld, blog)
	if berr != nil {
		return berr
	}
	b.Timings.CompileMS = ms(time.Since(start))

	// The binaries are stored (each platform at once) while the image is assembled: the
	// two only read the compiled files. upload_ms and image_ms overlap.
	start = time.Now()
	arts := make([]Artifact, len(outs))
	upErrs := make([]error, len(outs))
	upTook := make([]time.Duration, len(outs))
	var uploads sync.WaitGroup
	for i, out := range outs {
		uploads.Go(func() {
			arts[i], upErrs[i] = w.storeBinary(ctx, b.Platforms[i], out)
			upTook[i] = time.Since(start)
		})
	}
	img, berr := w.assembleImage(ctx, b, outs, work, blog)
	b.Timings.ImageMS = ms(time.Since(start))
	uploads.Wait()
	var took time.Duration
	for _, d := range upTook {
		took = max(took, d)
	}
	b.Timings.UploadMS = ms(took)
	for i, err := range upErrs {
		if err != nil {
			return internalError(blog, "storing the "+b.Platforms[i]+" binary", err)
		}
	}
	for _, a := range arts {
		blog.Printf("%s: %s, %d bytes", a.Platform, a.Digest, a.Size)
	}
	b.Artifacts = arts
	if berr != nil {
		return berr
	}
	b.Image = img
	return nil
}

// assembleImage makes the build's OCI image from its binaries and records the SBOM
// referrers for the registry.
func (w *Worker) assembleImage(ctx context.Context, b *Build, outs []string, work string, blog *buildLog) (*Image, *BuildError) {
	bins := make([]image.Binary, len(outs))
	for i, ps := range b.Platforms {
		p, err := gobuild.ParsePlatform(ps)
		if err != nil {
			return nil, internalError(blog, "reading platform "+ps, err)
		}
		bins[i] = image.Binary{Platform: image.Platform{OS: p.OS, Arch: p.Arch, Variant: p.Variant}, Path: outs[i]}
	}
	base := image.Builtin(w.compiler.ZoneinfoZip())
	baseName := "the built-in base"
	if b.BaseImage != "" {
		base = image.GuardedRemote(b.BaseImage, w.fetcher.control, w.opts.BaseImageOptions...)
		baseName = b.BaseImage
	}
	blog.Printf("image: assembling %d platforms on %s", len(bins), baseName)
	res, err := image.Assemble(ctx, w.blobs, bins, image.Options{
		App: b.App, Version: b.Version, Revision: b.Commit,
		Created: time.Unix(b.SourceDateEpoch, 0).UTC(), Base: base, TempDir: work,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, &BuildError{Reason: ReasonCanceled, Detail: "canceled"}
		}
		if infraFault(err) && !errors.Is(err, image.ErrRegistry) {
			return nil, internalError(blog, "storing the image", err)
		}
		blog.Printf("image failed: %v", err)
		return nil, &BuildError{Reason: ReasonImageFailed, Detail: err.Error()}
	}
	img := &Image{Digest: res.Index.String()}
	for _, pi := range res.Images {
		img.Manifests = append(img.Manifests, ImageManifest{
			Platform: pi.Platform, Digest: pi.Manifest.String(), SBOM: pi.SBOM.String(), SBOMReferrer: pi.SBOMReferrer.String(),
		})
		if err := w.builds.recordReferrer(ctx, w.blobs, b.App, pi.Manifest, pi.SBOMReferrer, sbomArtifactType); err != nil {
			return nil, internalError(blog, "recording the SBOM referrer", err)
		}
		blog.Printf("image %s: %s", pi.Platform, pi.Manifest)
	}
	// The registry serves these under the app, and only these.
	if err := w.builds.link(ctx, b.App, res.Blobs); err != nil {
		return nil, internalError(blog, "linking the image to the app", err)
	}
	blog.Printf("image index %s", res.Index)
	return img, nil
}

const sbomArtifactType = "application/spdx+json"

func (w *Worker) fetchSource(ctx context.Context, b *Build, work, src string, blog *buildLog) *BuildError {
	archive := filepath.Join(work, "source")
	if b.SourceDigest == "" {
		if berr := w.download(ctx, b, work, archive, blog); berr != nil {
			return berr
		}
	} else if berr := w.copySource(ctx, b, archive, blog); berr != nil {
		return berr
	}
	if err := os.Mkdir(src, 0o750); err != nil {
		return internalError(blog, "creating the source directory", err)
	}
	format := source.TarGz
	if b.SourceFormat == "zip" {
		format = source.Zip
	}
	info, err := source.Extract(ctx, archive, format, src, w.opts.Limits)
	if err != nil {
		var serr *source.Error
		if errors.As(err, &serr) {
			blog.Printf("source refused: %v", err)
			return &BuildError{Reason: ReasonSourceInvalid, Detail: err.Error()}
		}
		return internalError(blog, "extracting the source", err)
	}
	if err := gobuild.CheckGoMod(info.GoMod, w.compiler.Version()); err != nil {
		blog.Printf("source refused: %v", err)
		return &BuildError{Reason: ReasonSourceInvalid, Detail: err.Error()}
	}
	blog.Printf("source %s: %d files, %d bytes", b.SourceDigest, info.Files, info.Size)
	return nil
}

// copySource copies the build's stored source archive to path.
func (w *Worker) copySource(ctx context.Context, b *Build, path string, blog *buildLog) *BuildError {
	digest, err := store.ParseDigest(b.SourceDigest)
	if err != nil {
		return &BuildError{Reason: ReasonInternal, Detail: "the build's source digest is not a digest"}
	}
	rc, _, err := w.blobs.Get(ctx, store.SourceKey(digest), 0, -1)
	if err != nil {
		return internalError(blog, "fetching the source", err)
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err == nil {
		_, err = io.Copy(f, rc)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return internalError(blog, "copying the source", err)
	}
	return nil
}

// download fetches a source URL build's archive to path, checks it as intake checks an
// upload, stores it, and fills in the build's source digest: a retry or a rebuild uses the
// stored copy, not the URL again.
func (w *Worker) download(ctx context.Context, b *Build, work, path string, blog *buildLog) *BuildError {
	raw, err := w.builds.sourceURL(ctx, b.App, b.ID)
	if err != nil {
		return internalError(blog, "reading the source URL", err)
	}
	blog.Printf("source: fetching %s", b.SourceURL)
	sp, err := w.fetcher.Fetch(ctx, raw, work, w.opts.Limits.MaxCompressed)
	if err != nil {
		var ferr *FetchError
		switch {
		case ctx.Err() != nil:
			return &BuildError{Reason: ReasonCanceled, Detail: "canceled"}
		case errors.As(err, &ferr):
			blog.Printf("source unreachable: %v", ferr)
			return &BuildError{Reason: ReasonSourceUnreachable, Detail: ferr.Error()}
		case errors.Is(err, source.ErrTooLarge):
			blog.Printf("source refused: %v", err)
			return &BuildError{Reason: ReasonSourceInvalid, Detail: err.Error()}
		default:
			var serr *source.Error
			if errors.As(err, &serr) {
				return &BuildError{Reason: ReasonSourceInvalid, Detail: err.Error()}
			}
			return internalError(blog, "fetching the source URL", err)
		}
	}
	if err := os.Rename(sp.Path, path); err != nil {
		sp.Remove()
		return internalError(blog, "keeping the fetched source", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return internalError(blog, "opening the fetched source", err)
	}
	d := store.Digest(sp.Digest)
	_, err = w.blobs.Put(ctx, store.SourceKey(d), f, d)
	f.Close()
	if err != nil && !errors.Is(err, store.ErrExists) {
		return internalError(blog, "storing the fetched source", err)
	}
	b.SourceDigest = sp.Digest
	return nil
}

// compileAll compiles every platform, up to Concurrency at once; the first failure
// stops the others. It returns the binaries' paths in platform order.
func (w *Worker) compileAll(ctx context.Context, b *Build, src, work string, ldflags []string, blog *buildLog) ([]string, *BuildError) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	outs := make([]string, len(b.Platforms))
	errs := make([]error, len(b.Platforms))
	sem := make(chan struct{}, w.opts.Concurrency)
	var wg sync.WaitGroup
	for i, ps := range b.Platforms {
		p, err := gobuild.ParsePlatform(ps)
		if err != nil {
			return nil, &BuildError{Reason: ReasonCompileFailed, Platform: ps, Detail: err.Error()}
		}
		outs[i] = filepath.Join(work, "out", strings.ReplaceAll(ps, "/", "_"), b.App)
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			temp := filepath.Join(work, "tmp", strings.ReplaceAll(ps, "/", "_"))
			if err := os.MkdirAll(temp, 0o750); err != nil {
				errs[i] = err
				cancel()
				return
			}
			blog.Printf("%s: go build %s", ps, b.Main)
			errs[i] = w.compiler.Compile(ctx, gobuild.CompileSpec{
				Dir: src, Main: b.Main, Platform: p, Ldflags: ldflags, Out: outs[i],
				Temp: temp, Timeout: w.opts.Timeout, MaxSize: w.opts.MaxBinary,
			}, w.opts.Go, blog.Prefixed(ps+": "))
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	// Report the failure that caused the others: a compile error or timeout before the
	// cancellations it set off.
	for _, pass := range []func(error) bool{
		func(err error) bool {
			var ce *gobuild.CompileError
			return errors.As(err, &ce) || errors.Is(err, gobuild.ErrTimeout) || infraFault(err)
		},
		func(err error) bool { return err != nil },
	} {
		for i, err := range errs {
			if !pass(err) {
				continue
			}
			var ce *gobuild.CompileError
			switch {
			case infraFault(err):
				return nil, internalError(blog, "compiling "+b.Platforms[i], err)
			case errors.As(err, &ce):
				return nil, &BuildError{Reason: ReasonCompileFailed, Platform: ce.Platform, Detail: ce.Output}
			case errors.Is(err, gobuild.ErrTimeout):
				blog.Printf("%s: %v", b.Platforms[i], err)
				return nil, &BuildError{Reason: ReasonTimeout, Platform: b.Platforms[i], Detail: err.Error()}
			case errors.Is(err, context.Canceled):
				return nil, &BuildError{Reason: ReasonCanceled, Detail: "canceled"}
			default:
				return nil, internalError(blog, "compiling "+b.Platforms[i], err)
			}
		}
	}
	return outs, nil
}

// storeBinary puts a binary into the blob store under its digest.
func (w *Worker) storeBinary(ctx context.Context, platform, path string) (Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return Artifact{}, err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return Artifact{}, err
	}
	d := store.DigestOf(h)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Artifact{}, err
	}
	if _, err := w.blobs.Put(ctx, store.BlobKey(d), f, d); err != nil && !errors.Is(err, store.ErrExists) {
		return Artifact{}, err
	}
	return Artifact{Platform: platform, Digest: d.String(), Size: size}, nil
}

// storeLog copies a finished build's log into the blob store and lets the Redis copy
// expire.
func (w *Worker) storeLog(ctx context.Context, b Build, blog *buildLog, log *slog.Logger) {
	if err := blog.Store(ctx, w.blobs); err != nil {
		log.Warn("storing the build log; it stays in Redis", "err", err)
	}
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
