package image

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/store"
)

// Annotation and label keys slipway sets on every image.
const (
	AnnotationTitle      = "org.opencontainers.image.title"
	AnnotationVersion    = "org.opencontainers.image.version"
	AnnotationRevision   = "org.opencontainers.image.revision"
	AnnotationCreated    = "org.opencontainers.image.created"
	AnnotationSource     = "org.opencontainers.image.source"
	AnnotationBaseName   = "org.opencontainers.image.base.name"
	AnnotationBaseDigest = "org.opencontainers.image.base.digest"
)

// emptyJSON is the OCI empty descriptor's content, the config of artifact manifests.
var emptyJSON = []byte("{}")

// Binary is a compiled binary on disk and the platform it was built for.
type Binary struct {
	Platform
	Path string
}

// Options are the settings of one image index.
type Options struct {
	// App names the binary (/app/<App>) and is the image's title. Required: 1 to 63
	// letters, digits, '.', '_' and '-', not starting with '.'.
	App string
	// Version, Revision and Source go into the org.opencontainers.image.* labels and
	// annotations; empty ones are left out.
	Version, Revision, Source string
	// Created is the time of the image and of every file in its layer (the build's
	// SOURCE_DATE_EPOCH); the zero value means the Unix epoch. Whole seconds are kept.
	Created time.Time
	// Base is the image the binary is laid on: Builtin(...) or Remote(...). Required.
	Base Base
	// TempDir holds the binary layers while they are compressed; "" means os.TempDir().
	TempDir string
	// Licenses tells the license of each module for the SBOMs' licenseDeclared; nil
	// means none is known (NOASSERTION), but the Go standard library's.
	Licenses Licenses
}

// PlatformImage is one platform's image in an index.
type PlatformImage struct {
	// Platform is "os/arch" or "os/arch/variant".
	Platform string
	// Manifest, Config and Layer are the digests of the image manifest, its config and the
	// layer holding the binary.
	Manifest, Config, Layer store.Digest
	// SBOM is the SPDX 2.3 JSON document; SBOMReferrer the OCI 1.1 artifact manifest that
	// attaches it to Manifest (its subject), SBOMReferrerSize that manifest's size.
	SBOM, SBOMReferrer store.Digest
	SBOMReferrerSize   int64
	// Binary and BinarySize are the sha256 and the size of the binary the layer holds at
	// /app/<app>.
	Binary     store.Digest
	BinarySize int64
	// Size is the image's size in a registry: manifest, config and compressed layers.
	Size int64
}

// Result is an assembled image index, with everything it references in the blob store.
type Result struct {
	// Index is the digest of the OCI image index, one manifest per platform.
	Index store.Digest
	// Images are the platform images, in platform order.
	Images []PlatformImage
	// BaseName and BaseDigest are the base as configured and the digest it resolved to.
	BaseName   string
	BaseDigest store.Digest
	// SBOM is one SPDX 2.3 JSON document covering every platform's binary; SBOMReferrer
	// the OCI 1.1 artifact manifest that attaches it to Index (its subject), so that a
	// client asking for the referrers of the index (oras discover <app>:<tag>) finds it.
	SBOM, SBOMReferrer store.Digest
	// SBOMReferrerSize is the size of the index's SBOM referrer manifest.
	SBOMReferrerSize int64
	// Blobs is every digest the index and its SBOM referrers reference, the index and
	// the referrers included, sorted: what a registry serves for this image.
	Blobs []store.Digest
}

var appName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,62}$`)

// Assemble builds an OCI image index of bins on opts.Base, one image per binary, and
// stores it with every blob it references: per platform, the base's layers plus one layer
// with the binary at /app/<app> (0755, root-owned), entrypoint /app/<app>, user
// 65532:65532, working directory /, PATH and SSL_CERT_FILE set, org.opencontainers.image.*
// labels and annotations, and an SPDX SBOM attached as an OCI 1.1 referrer.
//
// The result is reproducible: the same binaries, platforms and options (and the same base
// digest) give the same index digest in any process, store or time. Blobs the store holds
// already are not replaced. A platform the base lacks fails the whole call with a
// *MissingPlatformError (errors.Is ErrPlatformMissing).
//
// Assemble is NewAssembly, Add of every binary (up to GOMAXPROCS at once) and Finish.
func Assemble(ctx context.Context, blobs store.Blobs, bins []Binary, opts Options) (*Result, error) {
	platforms := make([]Platform, len(bins))
	for i, b := range bins {
		platforms[i] = b.Platform
	}
	a, err := NewAssembly(ctx, blobs, platforms, opts)
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, bin := range bins {
		g.Go(func() error {
			_, err := a.Add(gctx, bin)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return a.Finish(ctx)
}

// Assembly is an image index being assembled one platform at a time, so that each
// platform's image is made as soon as its binary is ready, while others still compile.
// Its methods may be called from several goroutines; Add for different platforms runs at
// once.
type Assembly struct {
	blobs     store.Blobs
	opts      Options
	created   time.Time
	rb        *resolvedBase
	platforms []Platform

	mu     sync.Mutex
	images []PlatformImage // in the order of platforms; Platform "" until added
	descs  []v1.Descriptor
	sboms  []platformSBOM
}

// NewAssembly checks opts, resolves the base for platforms and stores what the base
// provides, and returns the assembly the platforms' binaries are added to. A platform the
// base lacks is a *MissingPlatformError (errors.Is ErrPlatformMissing).
func NewAssembly(ctx context.Context, blobs store.Blobs, platforms []Platform, opts Options) (*Assembly, error) {
	created, err := opts.check(platforms)
	if err != nil {
		return nil, err
	}
	rb, err := opts.Base.resolve(ctx, blobs, platforms)
	if err != nil {
		return nil, err
	}
	n := len(platforms)
	return &Assembly{blobs: blobs, opts: opts, created: created, rb: rb, platforms: slices.Clone(platforms),
		images: make([]PlatformImage, n), descs: make([]v1.Descriptor, n), sboms: make([]platformSBOM, n)}, nil
}

// Add builds the image of bin, one of the assembly's platforms, and stores it with its
// SBOM referrer.
func (a *Assembly) Add(ctx context.Context, bin Binary) (PlatformImage, error) {
	i := slices.Index(a.platforms, bin.Platform)
	if i < 0 {
		return PlatformImage{}, fmt.Errorf("image for %s: not a platform of this image", bin.Platform)
	}
	if bin.Path == "" {
		return PlatformImage{}, fmt.Errorf("binary for %s: no path", bin.Platform)
	}
	img, desc, sbom, err := assembleOne(ctx, a.blobs, bin, a.rb, a.opts, a.created)
	if err != nil {
		return PlatformImage{}, fmt.Errorf("image for %s: %w", bin.Platform, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.images[i], a.descs[i], a.sboms[i] = img, desc, sbom
	return img, nil
}

// Finish stores the index of the platforms' images, with one SBOM covering them all and
// its referrer, and returns the result. Every platform must have been added.
func (a *Assembly) Finish(ctx context.Context) (*Result, error) {
	a.mu.Lock()
	images, descs, sboms := slices.Clone(a.images), slices.Clone(a.descs), slices.Clone(a.sboms)
	a.mu.Unlock()
	for i, img := range images {
		if img.Platform == "" {
			return nil, fmt.Errorf("image for %s: not added", a.platforms[i])
		}
	}
	slices.SortFunc(descs, func(a, b v1.Descriptor) int {
		return strings.Compare(platformString(*a.Platform), platformString(*b.Platform))
	})
	slices.SortFunc(images, func(a, b PlatformImage) int { return strings.Compare(a.Platform, b.Platform) })
	slices.SortFunc(sboms, func(a, b platformSBOM) int { return strings.Compare(a.in.platform.String(), b.in.platform.String()) })

	// The index, its SBOM and the referrer are known before any is stored: all are
	// put at once.
	index, err := encodeJSON("index", v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     descs,
		Annotations:   a.opts.annotations(a.created, a.rb.name, a.rb.digest),
	})
	if err != nil {
		return nil, err
	}
	d := store.DigestBytes(index)
	res := &Result{Index: d, Images: images, BaseName: a.rb.name, BaseDigest: a.rb.digest}
	doc, err := makeIndexSBOM(sboms, d)
	if err != nil {
		return nil, fmt.Errorf("index SBOM: %w", err)
	}
	docs := newDocs()
	docs.add(index)
	res.SBOM, res.SBOMReferrer, res.SBOMReferrerSize, err = sbomDocs(docs, descriptor(types.OCIImageIndex, d, int64(len(index))), doc, a.opts.App, a.created)
	if err != nil {
		return nil, fmt.Errorf("index SBOM: %w", err)
	}
	if err := docs.store(ctx, a.blobs); err != nil {
		return nil, err
	}
	if res.Blobs, err = indexBlobs(res, a.rb); err != nil {
		return nil, err
	}
	return res, nil
}

// indexBlobs returns, sorted, every blob of the index: the index itself and its SBOM and
// referrer, each image's manifest, config, layer, SBOM and referrer, the empty config,
// and the base's layers.
func indexBlobs(res *Result, rb *resolvedBase) ([]store.Digest, error) {
	ds := []store.Digest{res.Index, res.SBOM, res.SBOMReferrer, store.DigestBytes(emptyJSON)}
	for _, img := range res.Images {
		ds = append(ds, img.Manifest, img.Config, img.Layer, img.SBOM, img.SBOMReferrer)
	}
	for _, b := range rb.images {
		for _, l := range b.layers {
			ld, err := fromHash(l.Digest)
			if err != nil {
				return nil, fmt.Errorf("base layer %s: %w", l.Digest, err)
			}
			ds = append(ds, ld)
		}
	}
	slices.Sort(ds)
	return slices.Compact(ds), nil
}

// check validates the options and the platforms, and returns the creation time to use.
func (o Options) check(platforms []Platform) (time.Time, error) {
	if !appName.MatchString(o.App) {
		return time.Time{}, fmt.Errorf("app name %q: want 1 to 63 letters, digits, '.', '_' or '-', not starting with '.'", o.App)
	}
	if o.Base == nil {
		return time.Time{}, errors.New("no base image: set Options.Base to Builtin(...) or Remote(...)")
	}
	if err := checkPlatforms(platforms); err != nil {
		return time.Time{}, err
	}
	created := time.Unix(0, 0).UTC()
	if !o.Created.IsZero() {
		created = o.Created.UTC().Truncate(time.Second)
	}
	// A ustar header holds 11 octal digits of seconds since the epoch.
	if created.Unix() < 0 || created.Unix() >= 1<<33 {
		return time.Time{}, fmt.Errorf("created time %s: outside 1970 to 2242", created.Format(time.RFC3339))
	}
	return created, nil
}

// annotations are the org.opencontainers.image.* labels and annotations of the index
// and, with the platform base's digest, of each image.
func (o Options) annotations(created time.Time, baseName string, baseDigest store.Digest) map[string]string {
	a := map[string]string{
		AnnotationTitle:      o.App,
		AnnotationCreated:    created.Format(time.RFC3339),
		AnnotationBaseName:   baseName,
		AnnotationBaseDigest: baseDigest.String(),
	}
	for k, v := range map[string]string{AnnotationVersion: o.Version, AnnotationRevision: o.Revision, AnnotationSource: o.Source} {
		if v != "" {
			a[k] = v
		}
	}
	return a
}

// assembleOne builds and stores the image of one binary and its SBOM referrer, and
// returns the descriptor of its manifest for the index and what its SBOM is made of. The
// layer is compressed first; the config, the manifest, the SBOM and its referrer follow
// from it in memory, and then the layer and the documents are all stored at once.
func assembleOne(ctx context.Context, blobs store.Blobs, bin Binary, rb *resolvedBase, opts Options, created time.Time) (PlatformImage, v1.Descriptor, platformSBOM, error) {
	base := rb.images[bin.Platform]
	img := PlatformImage{Platform: bin.Platform.String()}
	appPath := "/app/" + opts.App
	app, err := writeAppLayer(ctx, bin, appPath, opts.TempDir, created)
	if err != nil {
		return img, v1.Descriptor{}, platformSBOM{}, err
	}
	defer app.remove()
	img.Layer = app.sums.digest
	img.Binary, img.BinarySize = store.Digest("sha256:"+hex.EncodeToString(app.sha256)), app.binarySize

	// The config and the manifest.
	docs := newDocs()
	annotations := opts.annotations(created, rb.name, store.Digest(base.manifest.Digest.String()))
	cfg, err := encodeJSON("config", appConfig(base, bin.Platform, toHash(app.sums.diffID), appPath, annotations, created))
	if err != nil {
		return img, v1.Descriptor{}, platformSBOM{}, err
	}
	img.Config = docs.add(cfg)
	man := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        descriptor(types.OCIConfigJSON, img.Config, int64(len(cfg))),
		Layers:        append(slices.Clone(base.layers), descriptor(types.OCILayer, app.sums.digest, app.sums.size)),
		Annotations:   annotations,
	}
	manBytes, err := encodeJSON("manifest", man)
	if err != nil {
		return img, v1.Descriptor{}, platformSBOM{}, err
	}
	img.Manifest = docs.add(manBytes)
	img.Size = int64(len(manBytes)) + man.Config.Size
	for _, l := range man.Layers {
		img.Size += l.Size
	}
	desc := descriptor(types.OCIManifestSchema1, img.Manifest, int64(len(manBytes)))

	// The SBOM and the referrer that attaches it to the manifest.
	sbom := platformSBOM{bi: app.buildInfo, in: sbomInput{
		app:        opts.App,
		version:    opts.Version,
		platform:   bin.Platform,
		binaryPath: appPath,
		sha256:     app.sha256,
		sha1:       app.sha1,
		created:    created,
		licenses:   opts.Licenses,
	}}
	doc, err := makeSBOM(sbom.bi, sbom.in)
	if err != nil {
		return img, v1.Descriptor{}, sbom, fmt.Errorf("SBOM: %w", err)
	}
	if img.SBOM, img.SBOMReferrer, img.SBOMReferrerSize, err = sbomDocs(docs, desc, doc, opts.App, created); err != nil {
		return img, v1.Descriptor{}, sbom, err
	}

	// The layer and the documents, at once.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return app.store(gctx, blobs) })
	g.Go(func() error { return docs.store(gctx, blobs) })
	if err := g.Wait(); err != nil {
		return img, v1.Descriptor{}, sbom, err
	}
	desc.Platform = ociPlatform(bin.Platform)
	return img, desc, sbom, nil
}

// appLayer is a layer holding a binary, compressed into a temporary file, with what the
// SBOM says of the binary.
type appLayer struct {
	file         *os.File
	sums         layerSums
	buildInfo    *debug.BuildInfo
	sha256, sha1 []byte // of the binary
	binarySize   int64
}

// writeAppLayer writes the layer with bin at appPath: compressed once into a temporary
// file in tempDir while hashing the binary, the tar stream and the gzip stream. The
// caller removes it.
func writeAppLayer(ctx context.Context, bin Binary, appPath, tempDir string, created time.Time) (*appLayer, error) {
	bi, err := buildinfo.ReadFile(bin.Path)
	if err != nil {
		return nil, fmt.Errorf("reading build info of %s: %w", bin.Path, err)
	}
	if err := checkTarget(bi, bin.Platform); err != nil {
		return nil, err
	}
	f, size, err := openBinary(bin.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tmp, err := os.CreateTemp(tempDir, "slipway-layer-*.tar.gz")
	if err != nil {
		return nil, fmt.Errorf("creating layer file: %w", err)
	}
	l := &appLayer{file: tmp, buildInfo: bi, binarySize: size}
	binSHA256, binSHA1 := sha256.New(), sha1.New()
	l.sums, err = writeLayer(tmp, []entry{
		dir("app", 0o755, rootID, rootID),
		{name: appPath[1:], mode: 0o755, size: size, body: hashingReader(store.ContextReader(ctx, f), binSHA256, binSHA1)},
	}, created)
	if err != nil {
		l.remove()
		return nil, err
	}
	l.sha256, l.sha1 = binSHA256.Sum(nil), binSHA1.Sum(nil)
	return l, nil
}

// store puts the layer into blobs, unless it is there already.
func (l *appLayer) store(ctx context.Context, blobs store.Blobs) error {
	if _, err := l.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewinding layer file: %w", err)
	}
	if _, err := blobs.Put(ctx, store.BlobKey(l.sums.digest), l.file, l.sums.digest); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("storing layer %s: %w", l.sums.digest, err)
	}
	return nil
}

// remove closes and removes the layer's file.
func (l *appLayer) remove() {
	l.file.Close()
	os.Remove(l.file.Name())
}

// openBinary opens the regular file at path and returns its size.
func openBinary(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("opening binary: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("opening binary: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("binary %s is not a regular file", path)
	}
	return f, fi.Size(), nil
}

// sbomDocs adds to docs the SPDX SBOM doc of the app and the OCI 1.1 referrer manifest
// that attaches it to subject (a manifest or an index), and returns their digests and the
// referrer's size.
func sbomDocs(docs *docs, subject v1.Descriptor, doc []byte, app string, created time.Time) (sbom, referrer store.Digest, referrerSize int64, err error) {
	sbom = docs.add(doc)
	emptyDigest := docs.add(emptyJSON)
	emptyConfig := descriptor(types.OCIEmptyJSON, emptyDigest, int64(len(emptyJSON)))
	emptyConfig.Data = emptyJSON
	sbomLayer := descriptor(SBOMMediaType, sbom, int64(len(doc)))
	sbomLayer.Annotations = map[string]string{AnnotationTitle: app + ".spdx.json"}
	ref, err := encodeJSON("SBOM referrer", v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  SBOMMediaType,
		Config:        emptyConfig,
		Layers:        []v1.Descriptor{sbomLayer},
		Subject:       &subject,
		Annotations:   map[string]string{AnnotationCreated: created.Format(time.RFC3339)},
	})
	if err != nil {
		return "", "", 0, err
	}
	return sbom, docs.add(ref), int64(len(ref)), nil
}

// appConfig is the base's config with the binary's layer, entrypoint, user, environment
// and labels, for the platform.
func appConfig(base *baseImage, p Platform, diffID v1.Hash, appPath string, labels map[string]string, created time.Time) *v1.ConfigFile {
	cfg := base.config.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Arch, p.Variant
	cfg.Created = v1.Time{Time: created}
	cfg.Container, cfg.DockerVersion = "", ""
	cfg.RootFS = v1.RootFS{Type: "layers", DiffIDs: append(slices.Clone(base.diffIDs), diffID)}

	// One history entry per base layer if the base's history does not have that already.
	nonEmpty := 0
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != len(base.diffIDs) {
		cfg.History = nil
		for range base.diffIDs {
			cfg.History = append(cfg.History, v1.History{Created: base.config.Created, CreatedBy: "base layer of " + labels[AnnotationBaseName]})
		}
	}
	cfg.History = append(cfg.History, v1.History{
		Created:   v1.Time{Time: created},
		CreatedBy: "slipway: " + appPath + " for " + p.String(),
		Comment:   strings.TrimSpace(labels[AnnotationTitle] + " " + labels[AnnotationVersion]),
	})

	c := &cfg.Config
	c.Entrypoint = []string{appPath}
	c.Cmd = nil
	c.User = imageUser
	c.WorkingDir = "/"
	c.Image, c.Hostname, c.Domainname, c.ArgsEscaped = "", "", "", false
	c.Env = setEnv(c.Env, envPath, envCerts)
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range labels {
		c.Labels[k] = v
	}
	return cfg
}

// checkTarget refuses a binary whose build info names another GOOS or GOARCH than the
// platform it is given for.
func checkTarget(bi *debug.BuildInfo, p Platform) error {
	for _, s := range bi.Settings {
		if (s.Key == "GOOS" && s.Value != p.OS) || (s.Key == "GOARCH" && s.Value != p.Arch) {
			return fmt.Errorf("binary for %s was built with %s=%s", p, s.Key, s.Value)
		}
	}
	return nil
}

// setEnv sets each "KEY=value" of vars in env, in place where KEY is set already and at
// the end otherwise.
func setEnv(env []string, vars ...string) []string {
	env = slices.Clone(env)
	for _, v := range vars {
		key, _, _ := strings.Cut(v, "=")
		i := slices.IndexFunc(env, func(e string) bool { return strings.HasPrefix(e, key+"=") })
		if i >= 0 {
			env[i] = v
		} else {
			env = append(env, v)
		}
	}
	return env
}
