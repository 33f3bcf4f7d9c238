package builder

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/builder/source"
	"github.com/slipway/slipway/store"
)

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
