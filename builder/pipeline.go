package builder

import (
	"context"
	"crypto/sha256"
	"errors"
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
	"github.com/slipway/slipway/builder/source"
	"github.com/slipway/slipway/store"
)

// run builds b in a scratch directory: fetch and extract the source, compile every
// platform, store the binaries and assemble the image. It fills in b's artifacts, image
// and timings and returns why the build failed, or nil.
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
			return errBuildCanceled()
		}
		return berr
	}
	b.Timings.SourceMS = ms(time.Since(start))

	start = time.Now()
	outs, berr := w.compile(ctx, b, src, work, blog)
	if berr != nil {
		return berr
	}
	b.Timings.CompileMS = ms(time.Since(start))
	return w.publish(ctx, b, outs, work, blog)
}

// errBuildCanceled is the failure of a build canceled before it ran again, or of a run
// whose context ended.
func errBuildCanceled() *BuildError { return &BuildError{Reason: ReasonCanceled, Detail: "canceled"} }

// publish stores the binaries (each platform at once) while it assembles the image: the
// two only read the compiled files, so upload_ms and image_ms overlap.
func (w *Worker) publish(ctx context.Context, b *Build, outs []string, work string, blog *buildLog) *BuildError {
	start := time.Now()
	up := w.storeBinaries(ctx, b.Platforms, outs)
	img, berr := w.assembleImage(ctx, b, outs, work, blog)
	b.Timings.ImageMS = ms(time.Since(start))
	b.Timings.UploadMS = ms(up.wait())
	for i, err := range up.errs {
		if err != nil {
			return internalError(blog, "storing the "+b.Platforms[i]+" binary", err)
		}
	}
	for _, a := range up.arts {
		blog.Printf("%s: %s, %d bytes", a.Platform, a.Digest, a.Size)
	}
	b.Artifacts = up.arts
	if berr != nil {
		return berr
	}
	b.Image = img
	return nil
}

// uploads are binaries being stored, one per platform.
type uploads struct {
	wg    sync.WaitGroup
	start time.Time
	arts  []Artifact
	errs  []error
	took  []time.Duration
}

// storeBinaries starts storing the binaries outs, one per platform, all at once.
func (w *Worker) storeBinaries(ctx context.Context, platforms, outs []string) *uploads {
	up := &uploads{start: time.Now(), arts: make([]Artifact, len(outs)),
		errs: make([]error, len(outs)), took: make([]time.Duration, len(outs))}
	for i, out := range outs {
		up.wg.Go(func() {
			up.arts[i], up.errs[i] = w.storeBinary(ctx, platforms[i], out)
			up.took[i] = time.Since(up.start)
		})
	}
	return up
}

// wait waits for every upload and returns how long the slowest took.
func (up *uploads) wait() time.Duration {
	up.wg.Wait()
	var took time.Duration
	for _, d := range up.took {
		took = max(took, d)
	}
	return took
}

// assembleImage makes the build's OCI image from its binaries and records the SBOM
// referrers (of the index and of each platform's manifest) for the registry.
func (w *Worker) assembleImage(ctx context.Context, b *Build, outs []string, work string, blog *buildLog) (*Image, *BuildError) {
	bins := make([]image.Binary, len(outs))
	for i, ps := range b.Platforms {
		p, err := gobuild.ParsePlatform(ps)
		if err != nil {
			return nil, internalError(blog, "reading platform "+ps, err)
		}
		bins[i] = image.Binary{Platform: p, Path: outs[i]}
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
			return nil, errBuildCanceled()
		}
		if infraFault(err) && !errors.Is(err, image.ErrRegistry) {
			return nil, internalError(blog, "storing the image", err)
		}
		blog.Printf("image failed: %v", err)
		return nil, &BuildError{Reason: ReasonImageFailed, Detail: err.Error()}
	}
	img := &Image{Digest: res.Index.String(), SBOM: res.SBOM.String(), SBOMReferrer: res.SBOMReferrer.String()}
	if err := w.builds.recordReferrer(ctx, w.blobs, b.App, res.Index, res.SBOMReferrer, image.SBOMMediaType); err != nil {
		return nil, internalError(blog, "recording the index's SBOM referrer", err)
	}
	for _, pi := range res.Images {
		img.Manifests = append(img.Manifests, ImageManifest{
			Platform: pi.Platform, Digest: pi.Manifest.String(), SBOM: pi.SBOM.String(), SBOMReferrer: pi.SBOMReferrer.String(),
		})
		if err := w.builds.recordReferrer(ctx, w.blobs, b.App, pi.Manifest, pi.SBOMReferrer, image.SBOMMediaType); err != nil {
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

// compile renders the build's ldflags and compiles every platform with them. It returns
// the binaries' paths in platform order.
func (w *Worker) compile(ctx context.Context, b *Build, src, work string, blog *buildLog) ([]string, *BuildError) {
	ld, err := gobuild.RenderLdflags(b.Ldflags, gobuild.LdflagsVars{
		Version: b.Version, Commit: b.Commit, App: b.App,
		Date: time.Unix(b.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
	})
	if err != nil {
		return nil, &BuildError{Reason: ReasonCompileFailed, Detail: err.Error()}
	}
	specs, berr := w.compileSpecs(b, src, work, ld)
	if berr != nil {
		return nil, berr
	}
	return w.compileAll(ctx, b, specs, blog)
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

// compileAll runs the compiles, up to Concurrency at once; the first failure stops the
// others, and the failure reported is the one that caused the others. It returns the
// binaries' paths in platform order.
func (w *Worker) compileAll(ctx context.Context, b *Build, specs []gobuild.CompileSpec, blog *buildLog) ([]string, *BuildError) {
	errs := make([]error, len(specs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.opts.Concurrency)
	for i, spec := range specs {
		g.Go(func() error {
			errs[i] = w.compileOne(gctx, spec, blog)
			return errs[i]
		})
	}
	_ = g.Wait() // errs has every platform's error
	if berr := compileFailure(errs, b.Platforms, blog); berr != nil {
		return nil, berr
	}
	outs := make([]string, len(specs))
	for i, spec := range specs {
		outs[i] = spec.Out
	}
	return outs, nil
}

// compileOne runs one compile, unless the others were stopped before its turn came.
func (w *Worker) compileOne(ctx context.Context, spec gobuild.CompileSpec, blog *buildLog) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(spec.Temp, 0o750); err != nil {
		return err
	}
	ps := spec.Platform.String()
	blog.Printf("%s: go build %s", ps, spec.Main)
	return w.compiler.Compile(ctx, spec, w.opts.Go, blog.Prefixed(ps+": "))
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
