package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/slipway/slipway/store"
)

// Remote returns a base pulled from a registry: ref is any reference ("registry/repo:tag",
// "repo@sha256:..."), to an image index or a single image. Its manifests, configs and
// layers are cached in the blob store by digest: a reference by digest whose blobs are all
// stored needs no registry at all, and a tag costs one manifest request.
//
// Requests go through an http.RoundTripper made from go-retryablehttp (up to 4 retries
// with exponential backoff from 250ms to 4s, on connection errors, 429 and 5xx) instead of
// go-containerregistry's own retries. opts come after slipway's own options, so a caller
// can set authentication (remote.WithAuth, remote.WithAuthFromKeychain) or replace the
// transport (remote.WithTransport).
func Remote(ref string, opts ...remote.Option) Base {
	return GuardedRemote(ref, nil, opts...)
}

// GuardedRemote is Remote whose every connection (redirects included) is first shown,
// after DNS, to control, which may refuse it: a build service must not let an app's
// base image reference reach the cloud metadata service or other addresses its operator
// forbids. A nil control allows every address.
func GuardedRemote(ref string, control func(network, address string, c syscall.RawConn) error, opts ...remote.Option) Base {
	c := retryablehttp.NewClient()
	if control != nil {
		if t, ok := c.HTTPClient.Transport.(*http.Transport); ok {
			t = t.Clone()
			t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: control}).DialContext
			t.Proxy = nil
			c.HTTPClient.Transport = t
		}
	}
	c.Logger = nil
	c.RetryMax = 4
	c.RetryWaitMin = 250 * time.Millisecond
	c.RetryWaitMax = 4 * time.Second
	// Hand the registry's last answer to go-containerregistry, which turns it into a
	// typed *transport.Error, rather than a bare "giving up".
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c.CheckRetry = checkRetry
	base := []remote.Option{
		remote.WithTransport(&retryablehttp.RoundTripper{Client: c}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithUserAgent("slipway"),
	}
	return remoteBase{ref: ref, opts: append(base, opts...)}
}

// checkRetry is go-retryablehttp's default policy, except that an https request answered
// in plain HTTP is final: go-containerregistry tries https before http for a registry on
// localhost or a private address, and that try must fail at once, not after the backoff.
// net/http reports it with an untyped error, so it is known by its text, as
// go-retryablehttp knows its own final errors.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return false, err
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

type remoteBase struct {
	ref  string
	opts []remote.Option
}

var _ Base = remoteBase{}

// manifestBlob is a stored manifest or index.
type manifestBlob struct {
	digest    store.Digest
	mediaType types.MediaType
	raw       []byte
}

func (m manifestBlob) descriptor() v1.Descriptor {
	return descriptor(m.mediaType, m.digest, int64(len(m.raw)))
}

func (r remoteBase) resolve(ctx context.Context, blobs store.Blobs, platforms []Platform) (*resolvedBase, error) {
	if err := checkPlatforms(platforms); err != nil {
		return nil, fmt.Errorf("base %s: %w", r.ref, err)
	}
	ref, err := name.ParseReference(r.ref)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", r.ref, err)
	}
	// One puller for the whole resolve, so the registry is pinged (and authenticated
	// with) once, not once per blob.
	puller, err := remote.NewPuller(r.opts...)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", r.ref, err)
	}
	top, err := fetchManifest(ctx, blobs, ref, "", puller)
	if err != nil {
		return nil, fmt.Errorf("base %s: %w", r.ref, err)
	}
	rb := &resolvedBase{name: r.ref, digest: top.digest, images: map[Platform]*baseImage{}}
	switch {
	case top.mediaType.IsIndex():
		err = r.resolveIndex(ctx, blobs, rb, ref.Context(), top, platforms, puller)
	case top.mediaType.IsImage():
		err = r.resolveImage(ctx, blobs, rb, ref.Context(), top, platforms, puller)
	default:
		err = fmt.Errorf("base %s: unsupported manifest media type %q", r.ref, top.mediaType)
	}
	if err != nil {
		return nil, err
	}
	return rb, nil
}

// resolveIndex fills in rb's image of each platform from the base's index top.
func (r remoteBase) resolveIndex(ctx context.Context, blobs store.Blobs, rb *resolvedBase, repo name.Repository, top manifestBlob, platforms []Platform, puller *remote.Puller) error {
	idx, err := v1.ParseIndexManifest(bytes.NewReader(top.raw))
	if err != nil {
		return fmt.Errorf("base %s: parsing index: %w", r.ref, err)
	}
	offered, descs := indexImages(idx)
	var missing []Platform
	chosen := map[Platform]v1.Descriptor{}
	for _, p := range platforms {
		i, ok := pickPlatform(offered, p)
		if !ok {
			missing = append(missing, p)
			continue
		}
		chosen[p] = descs[i]
	}
	if err := missingError(r.ref, missing, platformStrings(offered)); err != nil {
		return err
	}
	for _, p := range platforms {
		d := chosen[p]
		m, err := fetchManifest(ctx, blobs, repo.Digest(d.Digest.String()), d.MediaType, puller)
		if err != nil {
			return fmt.Errorf("base %s (%s): %w", r.ref, p, err)
		}
		if rb.images[p], err = loadBaseImage(ctx, blobs, repo, m, puller); err != nil {
			return fmt.Errorf("base %s (%s): %w", r.ref, p, err)
		}
	}
	return nil
}

// indexImages returns the platforms an index offers images for and the images'
// descriptors, in the index's order.
func indexImages(idx *v1.IndexManifest) ([]v1.Platform, []v1.Descriptor) {
	var offered []v1.Platform
	var descs []v1.Descriptor
	for _, d := range idx.Manifests {
		if d.MediaType.IsImage() && d.Platform != nil && d.Platform.OS != "unknown" {
			offered = append(offered, *d.Platform)
			descs = append(descs, d)
		}
	}
	return offered, descs
}

// resolveImage makes the base's single image top rb's image of every platform, if its
// config says it is for each.
func (r remoteBase) resolveImage(ctx context.Context, blobs store.Blobs, rb *resolvedBase, repo name.Repository, top manifestBlob, platforms []Platform, puller *remote.Puller) error {
	bi, err := loadBaseImage(ctx, blobs, repo, top, puller)
	if err != nil {
		return fmt.Errorf("base %s: %w", r.ref, err)
	}
	offered := []v1.Platform{{}}
	if p := bi.config.Platform(); p != nil {
		offered[0] = *p
	}
	var missing []Platform
	for _, p := range platforms {
		if _, ok := pickPlatform(offered, p); !ok {
			missing = append(missing, p)
		}
		rb.images[p] = bi
	}
	return missingError(r.ref, missing, platformStrings(offered))
}

func platformStrings(ps []v1.Platform) []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = platformString(p)
	}
	return s
}

// fetchManifest returns the manifest or index ref names, from the store when ref is a
// digest the store holds, else from the registry (and stores it). mt is the media type a
// parent index gave, or "".
func fetchManifest(ctx context.Context, blobs store.Blobs, ref name.Reference, mt types.MediaType, puller *remote.Puller) (manifestBlob, error) {
	if dr, ok := ref.(name.Digest); ok {
		d, err := store.ParseDigest(dr.DigestStr())
		if err != nil {
			return manifestBlob{}, err
		}
		ok, err := has(ctx, blobs, d)
		if err != nil {
			return manifestBlob{}, err
		}
		if ok {
			raw, err := readBlob(ctx, blobs, d)
			if err != nil {
				return manifestBlob{}, err
			}
			if mt == "" {
				mt = sniffMediaType(raw)
			}
			return manifestBlob{digest: d, mediaType: mt, raw: raw}, nil
		}
	}
	desc, err := puller.Get(ctx, ref)
	if err != nil {
		return manifestBlob{}, fmt.Errorf("fetching manifest %s: %w: %w", ref, ErrRegistry, err)
	}
	switch desc.MediaType {
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return manifestBlob{}, fmt.Errorf("manifest %s: unsupported schema 1 manifest", ref)
	}
	d := store.DigestBytes(desc.Manifest)
	if d.String() != desc.Digest.String() {
		return manifestBlob{}, fmt.Errorf("manifest %s: %w: content is %s, registry says %s", ref, store.ErrDigestMismatch, d, desc.Digest)
	}
	if _, err := ensureBytes(ctx, blobs, desc.Manifest); err != nil {
		return manifestBlob{}, err
	}
	return manifestBlob{digest: d, mediaType: desc.MediaType, raw: desc.Manifest}, nil
}

// sniffMediaType returns a stored manifest's media type: its mediaType field, or for an
// OCI document without one, an index when it lists manifests and an image otherwise.
func sniffMediaType(raw []byte) types.MediaType {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &probe); err == nil && probe.MediaType != "" {
		return probe.MediaType
	}
	if probe.Manifests != nil {
		return types.OCIImageIndex
	}
	return types.OCIManifestSchema1
}

// loadBaseImage makes sure the config and layers of the image manifest m are stored,
// and reads its config.
func loadBaseImage(ctx context.Context, blobs store.Blobs, repo name.Repository, m manifestBlob, puller *remote.Puller) (*baseImage, error) {
	man, err := v1.ParseManifest(bytes.NewReader(m.raw))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest %s: %w", m.digest, err)
	}
	if !man.Config.MediaType.IsConfig() {
		return nil, fmt.Errorf("manifest %s: config media type %q is not an image config", m.digest, man.Config.MediaType)
	}
	cfgDigest, err := fetchBlob(ctx, blobs, repo, man.Config, puller)
	if err != nil {
		return nil, err
	}
	raw, err := readBlob(ctx, blobs, cfgDigest)
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing config %s: %w", cfgDigest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return nil, fmt.Errorf("manifest %s: %d layers but %d diff_ids in its config", m.digest, len(man.Layers), len(cfg.RootFS.DiffIDs))
	}
	bi := &baseImage{manifest: m.descriptor(), diffIDs: cfg.RootFS.DiffIDs, config: cfg}
	for _, l := range man.Layers {
		mt, err := ociLayerType(l.MediaType)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: layer %s: %w", m.digest, l.Digest, err)
		}
		if _, err := fetchBlob(ctx, blobs, repo, l, puller); err != nil {
			return nil, err
		}
		bi.layers = append(bi.layers, v1.Descriptor{MediaType: mt, Size: l.Size, Digest: l.Digest})
	}
	return bi, nil
}

// ociLayerType maps a distributable layer media type to its OCI name; the bytes are the
// same. Non-distributable (foreign) layers, which registries do not serve, are refused.
func ociLayerType(mt types.MediaType) (types.MediaType, error) {
	switch mt {
	case types.OCILayer, types.DockerLayer:
		return types.OCILayer, nil
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer, nil
	case types.OCILayerZStd:
		return types.OCILayerZStd, nil
	}
	return "", fmt.Errorf("unsupported layer media type %q", mt)
}

// fetchBlob copies the blob desc names from the registry into the store unless it is
// there, and returns its digest.
func fetchBlob(ctx context.Context, blobs store.Blobs, repo name.Repository, desc v1.Descriptor, puller *remote.Puller) (store.Digest, error) {
	d, err := fromHash(desc.Digest)
	if err != nil {
		return "", err
	}
	err = ensure(ctx, blobs, d, func() (io.ReadCloser, error) {
		l, err := puller.Layer(ctx, repo.Digest(d.String()))
		if err != nil {
			return nil, fmt.Errorf("fetching blob %s: %w: %w", d, ErrRegistry, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, fmt.Errorf("fetching blob %s: %w: %w", d, ErrRegistry, err)
		}
		return rc, nil
	})
	return d, err
}
