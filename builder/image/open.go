package image

import (
	"bytes"
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway/slipway/store"
)

// OpenIndex opens the image index d from the blob store as a go-containerregistry
// v1.ImageIndex, for validate.Index, a registry endpoint or remote.WriteIndex. Its images
// and nested indexes open the same way. go-containerregistry's interfaces take no context:
// ctx is the one every later read of the index's blobs runs under, so it must outlive
// their use.
func OpenIndex(ctx context.Context, blobs store.Blobs, d store.Digest) (v1.ImageIndex, error) {
	return openIndex(newReader(ctx, blobs), d, "")
}

// OpenImage opens the image manifest d (a platform image, or an artifact manifest such as
// an SBOM referrer) from the blob store as a v1.Image; ctx is as for OpenIndex.
func OpenImage(ctx context.Context, blobs store.Blobs, d store.Digest) (v1.Image, error) {
	return openImage(newReader(ctx, blobs), d, "")
}

// reader reads blobs of one store for go-containerregistry's context-free interfaces.
// It is the one place that keeps a context: the one OpenIndex or OpenImage was given.
type reader struct {
	json func(store.Digest) ([]byte, error)
	open func(store.Digest) (io.ReadCloser, error)
}

func newReader(ctx context.Context, blobs store.Blobs) reader {
	return reader{
		json: func(d store.Digest) ([]byte, error) { return readBlob(ctx, blobs, d) },
		open: func(d store.Digest) (io.ReadCloser, error) {
			rc, _, err := blobs.Get(ctx, store.BlobKey(d), 0, -1)
			if err != nil {
				return nil, fmt.Errorf("reading blob %s: %w", d, err)
			}
			return rc, nil
		},
	}
}

// storeIndex is a v1.ImageIndex in the blob store.
type storeIndex struct {
	r         reader
	digest    store.Digest
	mediaType types.MediaType
	raw       []byte
	manifest  *v1.IndexManifest
}

var _ v1.ImageIndex = (*storeIndex)(nil)

func openIndex(r reader, d store.Digest, mt types.MediaType) (*storeIndex, error) {
	raw, err := r.json(d)
	if err != nil {
		return nil, err
	}
	if mt == "" {
		mt = sniffMediaType(raw)
	}
	if !mt.IsIndex() {
		return nil, fmt.Errorf("blob %s is a %s, not an image index", d, mt)
	}
	m, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing index %s: %w", d, err)
	}
	return &storeIndex{r: r, digest: d, mediaType: mt, raw: raw, manifest: m}, nil
}

// MediaType implements v1.ImageIndex.
func (i *storeIndex) MediaType() (types.MediaType, error) { return i.mediaType, nil }

// Digest implements v1.ImageIndex.
func (i *storeIndex) Digest() (v1.Hash, error) { return toHash(i.digest), nil }

// Size implements v1.ImageIndex.
func (i *storeIndex) Size() (int64, error) { return int64(len(i.raw)), nil }

// IndexManifest implements v1.ImageIndex; each call returns a fresh copy.
func (i *storeIndex) IndexManifest() (*v1.IndexManifest, error) { return i.manifest.DeepCopy(), nil }

// RawManifest implements v1.ImageIndex.
func (i *storeIndex) RawManifest() ([]byte, error) { return bytes.Clone(i.raw), nil }

// Image implements v1.ImageIndex. Digests the index does not list (referrers) open too.
func (i *storeIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := fromHash(h)
	if err != nil {
		return nil, err
	}
	return openImage(i.r, d, i.childType(h))
}

// ImageIndex implements v1.ImageIndex.
func (i *storeIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	d, err := fromHash(h)
	if err != nil {
		return nil, err
	}
	return openIndex(i.r, d, i.childType(h))
}

func (i *storeIndex) childType(h v1.Hash) types.MediaType {
	for _, desc := range i.manifest.Manifests {
		if desc.Digest == h {
			return desc.MediaType
		}
	}
	return ""
}

// storeImage is the core of a v1.Image in the blob store; partial.CompressedToImage
// completes it.
type storeImage struct {
	r         reader
	mediaType types.MediaType
	raw       []byte
	manifest  *v1.Manifest
	rawConfig []byte
	// diffIDs maps layer digests to diffIDs, from the config.
	diffIDs map[v1.Hash]v1.Hash
}

var _ partial.CompressedImageCore = (*storeImage)(nil)

func openImage(r reader, d store.Digest, mt types.MediaType) (v1.Image, error) {
	raw, err := r.json(d)
	if err != nil {
		return nil, err
	}
	if mt == "" {
		mt = sniffMediaType(raw)
	}
	if !mt.IsImage() {
		return nil, fmt.Errorf("blob %s is a %s, not an image manifest", d, mt)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest %s: %w", d, err)
	}
	cd, err := fromHash(m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: config: %w", d, err)
	}
	rawConfig, err := r.json(cd)
	if err != nil {
		return nil, err
	}
	img := &storeImage{r: r, mediaType: mt, raw: raw, manifest: m, rawConfig: rawConfig, diffIDs: map[v1.Hash]v1.Hash{}}
	if m.Config.MediaType.IsConfig() {
		cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
		if err != nil {
			return nil, fmt.Errorf("parsing config %s: %w", cd, err)
		}
		j := 0
		for _, l := range m.Layers {
			if !l.MediaType.IsLayer() {
				continue
			}
			if j < len(cfg.RootFS.DiffIDs) {
				img.diffIDs[l.Digest] = cfg.RootFS.DiffIDs[j]
			}
			j++
		}
	}
	return partial.CompressedToImage(img)
}

// MediaType implements partial.CompressedImageCore.
func (i *storeImage) MediaType() (types.MediaType, error) { return i.mediaType, nil }

// RawManifest implements partial.CompressedImageCore.
func (i *storeImage) RawManifest() ([]byte, error) { return bytes.Clone(i.raw), nil }

// RawConfigFile implements partial.CompressedImageCore.
func (i *storeImage) RawConfigFile() ([]byte, error) { return bytes.Clone(i.rawConfig), nil }

// LayerByDigest implements partial.CompressedImageCore: the config or a layer of the
// manifest, read from the store as it is, never recompressed.
func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	desc, ok := v1.Descriptor{}, false
	if i.manifest.Config.Digest == h {
		desc, ok = i.manifest.Config, true
	}
	for _, l := range i.manifest.Layers {
		if !ok && l.Digest == h {
			desc, ok = l, true
		}
	}
	if !ok {
		return nil, fmt.Errorf("blob %s is not part of the image", h)
	}
	d, err := fromHash(h)
	if err != nil {
		return nil, err
	}
	b := storeBlob{r: i.r, digest: d, desc: desc}
	if diffID, ok := i.diffIDs[h]; ok {
		return storeLayer{storeBlob: b, diffID: diffID}, nil
	}
	return b, nil
}

// storeBlob is a stored blob as a partial.CompressedLayer: its bytes are what the store
// holds.
type storeBlob struct {
	r      reader
	digest store.Digest
	desc   v1.Descriptor
}

var _ partial.CompressedLayer = storeBlob{}

// Digest implements partial.CompressedLayer.
func (b storeBlob) Digest() (v1.Hash, error) { return b.desc.Digest, nil }

// Compressed implements partial.CompressedLayer.
func (b storeBlob) Compressed() (io.ReadCloser, error) { return b.r.open(b.digest) }

// Size implements partial.CompressedLayer.
func (b storeBlob) Size() (int64, error) { return b.desc.Size, nil }

// MediaType implements partial.CompressedLayer.
func (b storeBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }

// storeLayer is a stored image layer whose diffID the config gives.
type storeLayer struct {
	storeBlob
	diffID v1.Hash
}

var _ partial.WithDiffID = storeLayer{}

// DiffID implements partial.WithDiffID.
func (l storeLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
