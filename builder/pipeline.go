package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/builder/licenses"
	"github.com/slipway/slipway/builder/source"
	"github.com/slipway/slipway/store"
)

// run builds b in a scratch directory: fetch and extract the source, compile every
// platform and assemble the image, each platform's as soon as its own compile ends. It
// fills in b's artifacts, image and timings and returns why the build failed, or nil.
func (w *Worker) run(ctx context.Context, b *Build, blog *buildLog) *BuildError {
	work, err := os.MkdirTemp(w.opts.WorkDir, b.ID+"-")
	if err != nil {
		return internalError(blog, "creating a work directory", err)
	}
	// Removing a work directory (the source, the binaries, the compiles' temporary
	// files) takes a while; it goes on while the result is recorded, not before.
	defer w.removing.Go(func() { os.RemoveAll(work) })

	start := time.Now()
	src := filepath.Join(work, "src")
	if berr := w.fetchSource(ctx, b, work, src, blog); berr != nil {
		if ctx.Err() != nil {
			return errBuildCanceled()
		}
		return berr
	}
	b.Timings.SourceMS = ms(time.Since(start))

	start = time.Now()
	pub, berr := w.startImage(ctx, b, src, work, blog)
	if berr != nil {
		return berr
	}
	berr = w.compile(ctx, b, src, work, blog, pub.add)
	if berr != nil {
		pub.stop()
		return berr
	}
	b.Timings.CompileMS = ms(time.Since(start))
	return pub.finish(ctx, b, blog)
}

var _ image.Licenses = (*licenses.Finder)(nil)

// errBuildCanceled is the failure of a build canceled before it ran again, or of a run
// whose context ended.
func errBuildCanceled() *BuildError { return &BuildError{Reason: ReasonCanceled, Detail: "canceled"} }

// imaging is a build's image being made while its platforms compile: the base is
// resolved meanwhile, and each platform's image (its layer holding the binary, which is
// also the build's artifact) is made and stored as soon as its compile ends.
type imaging struct {
	w      *Worker
	blog   *buildLog
	ctx    context.Context
	cancel context.CancelFunc
	// resolved is closed once asm or err is set.
	resolved chan struct{}
	asm      *image.Assembly
	err      error

	wg     sync.WaitGroup
	mu     sync.Mutex
	start  time.Time // when the first platform's image began
	images []image.PlatformImage
	bins   []string // each platform's binary, for its build info
	errs   []error
}

// startImage begins b's image, whose source tree is src: it resolves the base in the
// background, while the platforms compile.
func (w *Worker) startImage(ctx context.Context, b *Build, src, work string, blog *buildLog) (*imaging, *BuildError) {
	platforms := make([]image.Platform, len(b.Platforms))
	for i, ps := range b.Platforms {
		p, err := gobuild.ParsePlatform(ps)
		if err != nil {
			return nil, &BuildError{Reason: ReasonCompileFailed, Platform: ps, Detail: err.Error()}
		}
		platforms[i] = p
	}
	base := image.Builtin(w.compiler.ZoneinfoZip())
	baseName := "the built-in base"
	if b.BaseImage != "" {
		base = image.GuardedRemote(b.BaseImage, w.fetcher.control, w.opts.BaseImageOptions...)
		baseName = b.BaseImage
	}
	blog.Printf("image: %d platforms on %s, each as soon as its compile ends", len(platforms), baseName)
	ictx, cancel := context.WithCancel(ctx)
	im := &imaging{w: w, blog: blog, ctx: ictx, cancel: cancel, resolved: make(chan struct{}),
		images: make([]image.PlatformImage, len(platforms)), bins: make([]string, len(platforms)),
		errs: make([]error, len(platforms))}
	// The SBOMs declare each module's license as its license files say: the main module's
	// in the source tree, a dependency's in the module cache the compiles use (or the
	// tree's vendor directory, or the directory of the tree a replace names). Each image
	// is made after its compile, when the module cache holds every module it linked.
	opts := image.Options{
		App: b.App, Version: b.Version, Revision: b.Commit,
		Created: time.Unix(b.SourceDateEpoch, 0).UTC(), Base: base, TempDir: work,
		Licenses: licenses.New(src, w.goEnv(b.App, work).ModCache),
	}
	im.wg.Go(func() {
		defer close(im.resolved)
		im.asm, im.err = image.NewAssembly(ictx, w.blobs, platforms, opts)
	})
	im.wg.Go(licenses.Warm) // once per process, while the platforms compile
	return im, nil
}

// add makes and stores the image of platform i, whose binary is at out, in the
// background.
func (im *imaging) add(i int, spec gobuild.CompileSpec) {
	im.mu.Lock()
	if im.start.IsZero() {
		im.start = time.Now()
	}
	im.mu.Unlock()
	im.wg.Go(func() {
		<-im.resolved
		if im.err != nil {
			return
		}
		start := time.Now()
		img, err := im.asm.Add(im.ctx, image.Binary{Platform: spec.Platform, Path: spec.Out})
		im.mu.Lock()
		im.images[i], im.bins[i], im.errs[i] = img, spec.Out, err
		im.mu.Unlock()
		if err == nil {
			im.blog.Printf("image %s: %s, its layer compressed and stored in %s", spec.Platform, img.Manifest,
				time.Since(start).Round(time.Millisecond))
		}
	})
}

// stop abandons the image and waits for what is under way to end.
func (im *imaging) stop() {
	im.cancel()
	im.wg.Wait()
}

// finish waits for every platform's image, stores the index, records the SBOM referrers
// and the links the registry serves, and fills in b's artifacts and image.
func (im *imaging) finish(ctx context.Context, b *Build, blog *buildLog) *BuildError {
	defer im.cancel()
	im.wg.Wait()
	w := im.w
	err := im.err
	if err == nil {
		err = errors.Join(im.errs...)
	}
	var res *image.Result
	if err == nil {
		res, err = im.asm.Finish(ctx)
	}
	b.Timings.ImageMS = ms(time.Since(im.start))
	if err != nil {
		if ctx.Err() != nil {
			return errBuildCanceled()
		}
		if infraFault(err) && !errors.Is(err, image.ErrRegistry) {
			return internalError(blog, "storing the image", err)
		}
		blog.Printf("image failed: %v", err)
		return &BuildError{Reason: ReasonImageFailed, Detail: err.Error()}
	}
	// The binaries are stored once, in their layers: storing them is part of the
	// image's time.
	b.Timings.UploadMS = b.Timings.ImageMS
	img := &Image{Digest: res.Index.String(), SBOM: res.SBOM.String(), SBOMReferrer: res.SBOMReferrer.String()}
	refs := []referrer{{subject: res.Index, digest: res.SBOMReferrer, size: res.SBOMReferrerSize}}
	arts := make([]Artifact, len(b.Platforms))
	for i, ps := range b.Platforms {
		pi := im.images[i]
		arts[i] = Artifact{Platform: ps, Digest: pi.Binary.String(), Size: pi.BinarySize, Layer: pi.Layer.String()}
	}
	for _, pi := range res.Images {
		img.Manifests = append(img.Manifests, ImageManifest{
			Platform: pi.Platform, Digest: pi.Manifest.String(), SBOM: pi.SBOM.String(), SBOMReferrer: pi.SBOMReferrer.String(),
		})
		refs = append(refs, referrer{subject: pi.Manifest, digest: pi.SBOMReferrer, size: pi.SBOMReferrerSize})
	}
	blobs := res.Blobs
	var signing *Signing
	var tags map[string]string
	if w.opts.Signer != nil {
		s, err := w.sign(ctx, b, arts, res, im.bins)
		if err != nil {
			return internalError(blog, "signing the image", err)
		}
		refs, blobs = append(refs, s.refs...), append(slices.Clone(blobs), s.blobs...)
		signing, tags = &s.rec, s.tags
		blog.Printf("signed with key %s: signature %s, provenance %s", s.rec.KeyID, s.rec.Signature, s.rec.Attestation)
	}
	// The registry serves these under the app, and only these.
	if err := w.builds.recordImage(ctx, b.App, refs, image.SBOMMediaType, blobs, tags); err != nil {
		return internalError(blog, "recording the image's referrers and links", err)
	}
	// The last lines of a successful run go in one write: one round trip, not one each.
	lines := logLine("image index " + res.Index.String())
	for _, a := range arts {
		lines += logLine(fmt.Sprintf("%s: %s, %d bytes", a.Platform, a.Digest, a.Size))
	}
	_, _ = blog.Write([]byte(lines))
	b.Artifacts, b.Image, b.Signing = arts, img, signing
	return nil
}

// fetchSource puts the build's source archive in work (the stored copy, or the URL's)
// and extracts it into src, refusing what intake would refuse.
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
			return errBuildCanceled()
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

// compile renders the build's ldflags and compiles every platform with them, calling
// done with each platform's index and compile as soon as that compile has succeeded.
func (w *Worker) compile(ctx context.Context, b *Build, src, work string, blog *buildLog, done func(int, gobuild.CompileSpec)) *BuildError {
	ld, err := gobuild.RenderLdflags(b.Ldflags, gobuild.LdflagsVars{
		Version: b.Version, Commit: b.Commit, App: b.App,
		Date: time.Unix(b.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
	})
	if err != nil {
		return &BuildError{Reason: ReasonCompileFailed, Detail: err.Error()}
	}
	specs, berr := w.compileSpecs(b, src, work, ld)
	if berr != nil {
		return berr
	}
	return w.compileAll(ctx, b, specs, w.goEnv(b.App, work), blog, done)
}

// goEnv is the Go environment of the compiles of a build of app whose work directory is
// work: the worker's, with the build cache its options choose (WorkerOptions.CacheProg,
// CachePerBuild); with BuildCache, each compile chooses its own (compileOne).
func (w *Worker) goEnv(app, work string) gobuild.Env {
	env := w.opts.Go
	switch {
	case w.opts.BuildCache != nil:
	case w.opts.CacheProg != nil:
		env.CacheProg = w.opts.CacheProg(app)
	case w.opts.CachePerBuild:
		env.Cache = filepath.Join(work, "gocache")
	}
	return env
}

// compileSpecs returns the compile of each of b's platforms, in platform order.
func (w *Worker) compileSpecs(b *Build, src, work string, ldflags []string) ([]gobuild.CompileSpec, *BuildError) {
	specs := make([]gobuild.CompileSpec, len(b.Platforms))
	for i, ps := range b.Platforms {
		p, err := gobuild.ParsePlatform(ps)
		if err != nil {
			return nil, &BuildError{Reason: ReasonCompileFailed, Platform: ps, Detail: err.Error()}
		}
		dir := strings.ReplaceAll(ps, "/", "_")
		specs[i] = gobuild.CompileSpec{
			Dir: src, Main: b.Main, Platform: p, Ldflags: ldflags, Out: filepath.Join(work, "out", dir, b.App),
			Temp: filepath.Join(work, "tmp", dir), Timeout: w.opts.Timeout, MaxSize: w.opts.MaxBinary,
		}
	}
	return specs, nil
}

// compileAll runs the compiles, up to Concurrency at once, calling done as each one
// succeeds; the first failure stops the others, and the failure reported is the one that
// caused the others.
func (w *Worker) compileAll(ctx context.Context, b *Build, specs []gobuild.CompileSpec, env gobuild.Env, blog *buildLog, done func(int, gobuild.CompileSpec)) *BuildError {
	errs := make([]error, len(specs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.opts.Concurrency)
	for i, spec := range specs {
		g.Go(func() error {
			errs[i] = w.compileOne(gctx, b.App, spec, env, blog)
			if errs[i] == nil {
				done(i, spec)
			}
			return errs[i]
		})
	}
	_ = g.Wait() // errs has every platform's error
	return compileFailure(errs, b.Platforms, blog)
}

// compileOne runs one compile, unless the others were stopped before its turn came.
func (w *Worker) compileOne(ctx context.Context, app string, spec gobuild.CompileSpec, env gobuild.Env, blog *buildLog) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(spec.Temp, 0o750); err != nil {
		return err
	}
	ps := spec.Platform.String()
	done := func(bool) {}
	if w.opts.BuildCache != nil {
		var goCache string
		goCache, env.CacheProg, done = w.opts.BuildCache(app, spec.Dir, ps)
		if goCache != "" {
			env.Cache = goCache
		}
	}
	blog.Printf("%s: go build %s", ps, spec.Main)
	err := w.compiler.Compile(ctx, spec, env, blog.Prefixed(ps+": "))
	done(err == nil)
	return err
}

// compileFailure returns why the compiles failed, or nil when none did: the failure that
// caused the others (a compile error, a timeout or a fault of the infrastructure) comes
// before the cancellations it set off.
func compileFailure(errs []error, platforms []string, blog *buildLog) *BuildError {
	i := slices.IndexFunc(errs, func(err error) bool {
		var ce *gobuild.CompileError
		return errors.As(err, &ce) || errors.Is(err, gobuild.ErrTimeout) || infraFault(err)
	})
	if i < 0 {
		i = slices.IndexFunc(errs, func(err error) bool { return err != nil })
	}
	if i < 0 {
		return nil
	}
	err, platform := errs[i], platforms[i]
	var ce *gobuild.CompileError
	switch {
	case infraFault(err):
		return internalError(blog, "compiling "+platform, err)
	case errors.As(err, &ce):
		return &BuildError{Reason: ReasonCompileFailed, Platform: ce.Platform, Detail: ce.Output}
	case errors.Is(err, gobuild.ErrTimeout):
		blog.Printf("%s: %v", platform, err)
		return &BuildError{Reason: ReasonTimeout, Platform: platform, Detail: err.Error()}
	case errors.Is(err, context.Canceled):
		return errBuildCanceled()
	default:
		return internalError(blog, "compiling "+platform, err)
	}
}

// storeLog copies a finished build's log into the blob store and lets the Redis copy
// expire.
func (w *Worker) storeLog(ctx context.Context, b Build, blog *buildLog, log *slog.Logger) {
	if err := blog.Store(ctx, w.blobs); err != nil {
		log.Warn("storing the build log; it stays in Redis", "err", err)
	}
}
