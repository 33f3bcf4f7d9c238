package image

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
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
}

// PlatformImage is one platform's image in an index.
type PlatformImage struct {
	// Platform is "os/arch" or "os/arch/variant".
	Platform string
	// Manifest, Config and Layer are the digests of the image manifest, its config and the
	// layer holding the binary.
	Manifest, Config, Layer store.Digest
	// SBOM is the SPDX 2.3 JSON document; SBOMReferrer the OCI 1.1 artifact manifest that
	// attaches it to Manifest (its subject).
	SBOM, SBOMReferrer store.Digest
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
// already are not uploaded again. A platform the base lacks fails the whole call with a
// *MissingPlatformError (errors.Is ErrPlatformMissing).
func Assemble(ctx context.Context, blobs store.Blobs, bins []Binary, opts Options) (*Result, error) {
	created, err := opts.check(bins)
	if err != nil {
		return nil, err
	}
	platforms := make([]Platform, len(bins))
	for i, b := range bins {
		platforms[i] = b.Platform
	}
	rb, err := opts.Base.resolve(ctx, blobs, platforms)
	if err != nil {
		return nil, err
	}
	images, descs, sboms, err := assembleAll(ctx, blobs, bins, rb, opts, created)
	if err != nil {
		return nil, err
	}
	d, size, err := ensureJSON(ctx, blobs, "index", v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     descs,
		Annotations:   opts.annotations(created, rb.name, rb.digest),
	})
	if err != nil {
		return nil, err
	}
	res := &Result{Index: d, Images: images, BaseName: rb.name, BaseDigest: rb.digest}
	doc, err := makeIndexSBOM(sboms, d)
	if err != nil {
		return nil, fmt.Errorf("index SBOM: %w", err)
	}
	res.SBOM, res.SBOMReferrer, err = storeSBOM(ctx, blobs, descriptor(types.OCIImageIndex, d, size), doc, opts.App, created)
	if err != nil {
		return nil, fmt.Errorf("index SBOM: %w", err)
	}
	if res.Blobs, err = indexBlobs(res, rb); err != nil {
		return nil, err
	}
	return res, nil
}

// assembleAll builds and stores the image of each binary, up to GOMAXPROCS at once. It
// returns the images, their manifests' descriptors and what their SBOMs were made of,
// all in platform order.
func assembleAll(ctx context.Context, blobs store.Blobs, bins []Binary, rb *resolvedBase, opts Options, created time.Time) ([]PlatformImage, []v1.Descriptor, []platformSBOM, error) {
	images := make([]PlatformImage, len(bins))
	descs := make([]v1.Descriptor, len(bins))
	sboms := make([]platformSBOM, len(bins))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, bin := range bins {
		g.Go(func() error {
			img, desc, sbom, err := assembleOne(gctx, blobs, bin, rb, opts, created)
			if err != nil {
				return fmt.Errorf("image for %s: %w", bin.Platform, err)
			}
			images[i], descs[i], sboms[i] = img, desc, sbom
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, nil, err
	}
	slices.SortFunc(descs, func(a, b v1.Descriptor) int {
		return strings.Compare(platformString(*a.Platform), platformString(*b.Platform))
	})
	slices.SortFunc(images, func(a, b PlatformImage) int { return strings.Compare(a.Platform, b.Platform) })
	slices.SortFunc(sboms, func(a, b platformSBOM) int { return strings.Compare(a.in.platform.String(), b.in.platform.String()) })
	return images, descs, sboms, nil
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

// check validates the options and returns the creation time to use.
func (o Options) check(bins []Binary) (time.Time, error) {
	if !appName.MatchString(o.App) {
		return time.Time{}, fmt.Errorf("app name %q: want 1 to 63 letters, digits, '.', '_' or '-', not starting with '.'", o.App)
	}
	if o.Base == nil {
		return time.Time{}, errors.New("no base image: set Options.Base to Builtin(...) or Remote(...)")
	}
	platforms := make([]Platform, len(bins))
	for i, b := range bins {
		if b.Path == "" {
			return time.Time{}, fmt.Errorf("binary for %s: no path", b.Platform)
		}
		platforms[i] = b.Platform
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
// returns the descriptor of its manifest for the index and what its SBOM is made of.
func assembleOne(ctx context.Context, blobs store.Blobs, bin Binary, rb *resolvedBase, opts Options, created time.Time) (PlatformImage, v1.Descriptor, platformSBOM, error) {
	base := rb.images[bin.Platform]
	img := PlatformImage{Platform: bin.Platform.String()}
	appPath := "/app/" + opts.App
	app, err := storeAppLayer(ctx, blobs, bin, appPath, opts.TempDir, created)
	if err != nil {
		return img, v1.Descriptor{}, platformSBOM{}, err
	}
	img.Layer = app.sums.digest

	// The config and the manifest.
	annotations := opts.annotations(created, rb.name, store.Digest(base.manifest.Digest.String()))
	cfg := appConfig(base, bin.Platform, toHash(app.sums.diffID), appPath, annotations, created)
	var cfgSize, manSize int64
	if img.Config, cfgSize, err = ensureJSON(ctx, blobs, "config", cfg); err != nil {
		return img, v1.Descriptor{}, platformSBOM{}, err
	}
	man := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        descriptor(types.OCIConfigJSON, img.Config, cfgSize),
		Layers:        append(slices.Clone(base.layers), descriptor(types.OCILayer, app.sums.digest, app.sums.size)),
		Annotations:   annotations,
	}
	if img.Manifest, manSize, err = ensureJSON(ctx, blobs, "manifest", man); err != nil {
		return img, v1.Descriptor{}, platformSBOM{}, err
	}
	img.Size = manSize + man.Config.Size
	for _, l := range man.Layers {
		img.Size += l.Size
	}
	desc := descriptor(types.OCIManifestSchema1, img.Manifest, manSize)

	// The SBOM and the referrer that attaches it to the manifest.
	sbom := platformSBOM{bi: app.buildInfo, in: sbomInput{
		app:        opts.App,
		version:    opts.Version,
		platform:   bin.Platform,
		binaryPath: appPath,
		sha256:     app.sha256,
		sha1:       app.sha1,
		created:    created,
	}}
	doc, err := makeSBOM(sbom.bi, sbom.in)
	if err != nil {
		return img, v1.Descriptor{}, sbom, fmt.Errorf("SBOM: %w", err)
	}
	if img.SBOM, img.SBOMReferrer, err = storeSBOM(ctx, blobs, desc, doc, opts.App, created); err != nil {
		return img, v1.Descriptor{}, sbom, err
	}
	desc.Platform = ociPlatform(bin.Platform)
	return img, desc, sbom, nil
}

// appLayer is a stored layer holding a binary, with what the SBOM says of the binary.
type appLayer struct {
	sums         layerSums
	buildInfo    *debug.BuildInfo
	sha256, sha1 []byte // of the binary
}

// storeAppLayer stores the layer with bin at appPath: compressed once into a temporary
// file in tempDir while hashing the binary, the tar stream and the gzip stream; then
// stored unless the store has it.
func storeAppLayer(ctx context.Context, blobs store.Blobs, bin Binary, appPath, tempDir string, created time.Time) (appLayer, error) {
	bi, err := buildinfo.ReadFile(bin.Path)
	if err != nil {
		return appLayer{}, fmt.Errorf("reading build info of %s: %w", bin.Path, err)
	}
	if err := checkTarget(bi, bin.Platform); err != nil {
		return appLayer{}, err
	}
	f, size, err := openBinary(bin.Path)
	if err != nil {
		return appLayer{}, err
	}
	defer f.Close()
	tmp, err := os.CreateTemp(tempDir, "slipway-layer-*.tar.gz")
	if err != nil {
		return appLayer{}, fmt.Errorf("creating layer file: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	binSHA256, binSHA1 := sha256.New(), sha1.New()
	sums, err := writeLayer(tmp, []entry{
		dir("app", 0o755, rootID, rootID),
		{name: appPath[1:], mode: 0o755, size: size, body: hashingReader(store.ContextReader(ctx, f), binSHA256, binSHA1)},
	}, created)
	if err != nil {
		return appLayer{}, err
	}
	if err := ensure(ctx, blobs, sums.digest, func() (io.ReadCloser, error) {
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("rewinding layer file: %w", err)
		}
		return io.NopCloser(tmp), nil
	}); err != nil {
		return appLayer{}, fmt.Errorf("storing layer: %w", err)
	}
	return appLayer{sums: sums, buildInfo: bi, sha256: binSHA256.Sum(nil), sha1: binSHA1.Sum(nil)}, nil
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

// storeSBOM stores the SPDX SBOM doc of the app and the OCI 1.1 referrer manifest that
// attaches it to subject (a manifest or an index), and returns their digests.
func storeSBOM(ctx context.Context, blobs store.Blobs, subject v1.Descriptor, doc []byte, app string, created time.Time) (sbom, referrer store.Digest, err error) {
	if sbom, err = ensureBytes(ctx, blobs, doc); err != nil {
		return "", "", fmt.Errorf("storing SBOM: %w", err)
	}
	emptyDigest, err := ensureBytes(ctx, blobs, emptyJSON)
	if err != nil {
		return "", "", fmt.Errorf("storing empty config: %w", err)
	}
	emptyConfig := descriptor(types.OCIEmptyJSON, emptyDigest, int64(len(emptyJSON)))
	emptyConfig.Data = emptyJSON
	sbomLayer := descriptor(SBOMMediaType, sbom, int64(len(doc)))
	sbomLayer.Annotations = map[string]string{AnnotationTitle: app + ".spdx.json"}
	ref := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  SBOMMediaType,
		Config:        emptyConfig,
		Layers:        []v1.Descriptor{sbomLayer},
		Subject:       &subject,
		Annotations:   map[string]string{AnnotationCreated: created.Format(time.RFC3339)},
	}
	referrer, _, err = ensureJSON(ctx, blobs, "SBOM referrer", ref)
	return sbom, referrer, err
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
