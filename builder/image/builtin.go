package image

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/slipway/slipway/store"
)

// BuiltinName is the name of the built-in base in org.opencontainers.image.base.name.
const BuiltinName = "slipway.dev/base/static"

// Users and groups of the built-in base.
const (
	rootID    = 0
	nonrootID = 65532
	nobodyID  = 65534
)

// Paths and environment every image gets.
const (
	caBundlePath = "/etc/ssl/certs/ca-certificates.crt"
	envPath      = "PATH=/usr/local/bin:/usr/bin:/bin:/app"
	envCerts     = "SSL_CERT_FILE=" + caBundlePath
	imageUser    = "65532:65532"
)

// The fixed files of the built-in base.
const (
	passwdFile = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	groupFile = "root:x:0:\n" +
		"nonroot:x:65532:\n" +
		"nobody:x:65534:\n"
	nsswitchFile = "passwd:         files\n" +
		"group:          files\n" +
		"shadow:         files\n" +
		"hosts:          files dns\n" +
		"networks:       files\n" +
		"protocols:      files\n" +
		"services:       files\n" +
		"ethers:         files\n" +
		"rpc:            files\n"
	osReleaseFile = "PRETTY_NAME=\"slipway static\"\n" +
		"NAME=\"slipway static\"\n" +
		"ID=slipway-static\n" +
		"VERSION_ID=1\n" +
		"HOME_URL=\"https://slipway.dev/\"\n"
)

// Builtin returns slipway's own base, the equivalent of distroless static:nonroot, made
// without a registry: /etc/passwd and /etc/group (root 0, nonroot 65532, nobody 65534),
// /etc/nsswitch.conf, /etc/os-release, Mozilla's CA bundle at
// /etc/ssl/certs/ca-certificates.crt, the time zone database as a /usr/share/zoneinfo
// tree, /tmp (1777), /root (0700) and /home/nonroot (0700, owned by 65532). It offers
// every linux platform.
//
// zoneinfoZip is the path of the Go toolchain's zone database, $(go env
// GOROOT)/lib/time/zoneinfo.zip; the caller finds it, this package reads no environment.
//
// The base is one layer, and its bytes are a pure function of pinned inputs, never of the
// machine it is made on (nothing is read from its /etc or clock): the fixed files above;
// the CA certificates of golang.org/x/crypto/x509roots/fallback at the version pinned in
// go.mod; the content of zoneinfoZip (so, the Go toolchain's version); the layer format
// (sorted entries, time 0, fixed modes and owners); and the gzip of klauspost/compress at
// its pinned version and gzipLevel. Its per-platform config and manifest add only the
// platform. It is stored once and shared by every app.
func Builtin(zoneinfoZip string) Base { return builtin{zoneinfoZip: zoneinfoZip} }

type builtin struct {
	zoneinfoZip string
}

var _ Base = builtin{}

// builtinLayer is the built-in base layer, compressed.
type builtinLayer struct {
	gz   []byte
	sums layerSums
}

// builtinLayers memoizes the built-in layer by the digest of the zone database it was made
// from; the layer is a pure function of it.
var builtinLayers sync.Map // [sha256 of zoneinfo.zip]*builtinLayer

func (b builtin) layer() (*builtinLayer, error) {
	if b.zoneinfoZip == "" {
		return nil, errors.New("built-in base: no zoneinfo.zip path (pass $(go env GOROOT)/lib/time/zoneinfo.zip)")
	}
	zipBytes, err := os.ReadFile(b.zoneinfoZip)
	if err != nil {
		return nil, fmt.Errorf("built-in base: %w", err)
	}
	key := sha256.Sum256(zipBytes)
	if l, ok := builtinLayers.Load(key); ok {
		return l.(*builtinLayer), nil
	}
	entries, err := builtinEntries(zipBytes)
	if err != nil {
		return nil, fmt.Errorf("built-in base: %w", err)
	}
	var buf bytes.Buffer
	sums, err := writeLayer(&buf, entries, time.Unix(0, 0).UTC())
	if err != nil {
		return nil, fmt.Errorf("built-in base: %w", err)
	}
	l, _ := builtinLayers.LoadOrStore(key, &builtinLayer{gz: buf.Bytes(), sums: sums})
	return l.(*builtinLayer), nil
}

// builtinEntries lists the files of the built-in base.
func builtinEntries(zoneinfoZip []byte) ([]entry, error) {
	entries := []entry{
		dir("etc", 0o755, rootID, rootID),
		file("etc/passwd", 0o644, []byte(passwdFile)),
		file("etc/group", 0o644, []byte(groupFile)),
		file("etc/nsswitch.conf", 0o644, []byte(nsswitchFile)),
		file("etc/os-release", 0o644, []byte(osReleaseFile)),
		dir("etc/ssl", 0o755, rootID, rootID),
		dir("etc/ssl/certs", 0o755, rootID, rootID),
		file(strings.TrimPrefix(caBundlePath, "/"), 0o644, caBundle()),
		dir("home", 0o755, rootID, rootID),
		dir("home/nonroot", 0o700, nonrootID, nonrootID),
		dir("root", 0o700, rootID, rootID),
		dir("tmp", 0o1777, rootID, rootID),
		dir("usr", 0o755, rootID, rootID),
		dir("usr/share", 0o755, rootID, rootID),
	}
	zones, err := zoneinfoEntries(zoneinfoZip, "usr/share/zoneinfo")
	if err != nil {
		return nil, err
	}
	return append(entries, zones...), nil
}

// caBundle is the PEM bundle of the Mozilla (NSS) roots that the pinned
// golang.org/x/crypto/x509roots/fallback module ships, in its order. Roots that NSS
// distrusts for certificates issued after a date are included, as Debian's
// ca-certificates does: a PEM file cannot carry the date.
func caBundle() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}

// zoneinfoEntries unpacks the Go toolchain's zone database (a zip of files named
// "Area/City") into entries under root, with the directories they need.
func zoneinfoEntries(zipBytes []byte, root string) ([]entry, error) {
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		return nil, fmt.Errorf("reading zoneinfo.zip: %w", err)
	}
	dirs := map[string]bool{root: true}
	var entries []entry
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		if !fs.ValidPath(f.Name) || !f.Mode().IsRegular() {
			return nil, fmt.Errorf("reading zoneinfo.zip: unexpected entry %q", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("reading zoneinfo.zip: %s: %w", f.Name, err)
		}
		content, err := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading zoneinfo.zip: %s: %w", f.Name, err)
		}
		name := root + "/" + f.Name
		entries = append(entries, file(name, 0o644, content))
		for d := path.Dir(name); d != root && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	if len(entries) == 0 {
		return nil, errors.New("reading zoneinfo.zip: no zones")
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		entries = append(entries, dir(d, 0o755, rootID, rootID))
	}
	return entries, nil
}

func (b builtin) resolve(ctx context.Context, blobs store.Blobs, platforms []Platform) (*resolvedBase, error) {
	if err := checkBuiltinPlatforms(platforms); err != nil {
		return nil, err
	}
	layer, diffID, err := b.storeLayer(ctx, blobs)
	if err != nil {
		return nil, err
	}
	rb := &resolvedBase{name: BuiltinName, images: map[Platform]*baseImage{}}
	sorted := slices.SortedFunc(slices.Values(platforms), func(a, b Platform) int {
		return strings.Compare(a.String(), b.String())
	})
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, p := range sorted {
		img, desc, err := storeBuiltinImage(ctx, blobs, p, layer, diffID)
		if err != nil {
			return nil, fmt.Errorf("built-in base: %w", err)
		}
		rb.images[p] = img
		index.Manifests = append(index.Manifests, desc)
	}
	if rb.digest, _, err = ensureBaseJSON(ctx, blobs, index); err != nil {
		return nil, fmt.Errorf("built-in base: %w", err)
	}
	return rb, nil
}

// checkBuiltinPlatforms checks that the built-in base has every platform: any linux one.
func checkBuiltinPlatforms(platforms []Platform) error {
	if err := checkPlatforms(platforms); err != nil {
		return fmt.Errorf("built-in base: %w", err)
	}
	var missing []Platform
	for _, p := range platforms {
		if p.OS != "linux" {
			missing = append(missing, p)
		}
	}
	return missingError(BuiltinName, missing, []string{"linux/* (any linux platform)"})
}

// storeLayer stores the built-in base's one layer, unless this process did already, and
// returns its descriptor and diffID.
func (b builtin) storeLayer(ctx context.Context, blobs store.Blobs) (v1.Descriptor, v1.Hash, error) {
	l, err := b.layer()
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	if !baseStored(blobs, l.sums.digest) {
		if err := ensure(ctx, blobs, l.sums.digest, func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(l.gz)), nil
		}); err != nil {
			return v1.Descriptor{}, v1.Hash{}, fmt.Errorf("built-in base: %w", err)
		}
		rememberBase(blobs, l.sums.digest)
	}
	return descriptor(types.OCILayer, l.sums.digest, l.sums.size), toHash(l.sums.diffID), nil
}

// storeBuiltinImage stores the built-in base's config and manifest for p, and returns
// the image and the descriptor of its manifest for the base's index.
func storeBuiltinImage(ctx context.Context, blobs store.Blobs, p Platform, layer v1.Descriptor, diffID v1.Hash) (*baseImage, v1.Descriptor, error) {
	cfg := builtinConfig(p, diffID)
	cfgDigest, cfgSize, err := ensureBaseJSON(ctx, blobs, cfg)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	manDigest, manSize, err := ensureBaseJSON(ctx, blobs, v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        descriptor(types.OCIConfigJSON, cfgDigest, cfgSize),
		Layers:        []v1.Descriptor{layer},
	})
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	desc := descriptor(types.OCIManifestSchema1, manDigest, manSize)
	img := &baseImage{
		manifest: desc,
		layers:   []v1.Descriptor{layer},
		diffIDs:  cfg.RootFS.DiffIDs,
		config:   cfg,
	}
	desc.Platform = ociPlatform(p)
	return img, desc, nil
}

// builtinConfig is the built-in base's config for p.
func builtinConfig(p Platform, diffID v1.Hash) *v1.ConfigFile {
	epoch := v1.Time{Time: time.Unix(0, 0).UTC()}
	return &v1.ConfigFile{
		Architecture: p.Arch,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      epoch,
		History: []v1.History{{
			Created:   epoch,
			CreatedBy: "slipway built-in base: passwd, group, nsswitch.conf, os-release, CA certificates, zoneinfo, /tmp, /home/nonroot",
		}},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		Config: v1.Config{
			Env:        []string{envPath, envCerts},
			User:       imageUser,
			WorkingDir: "/",
		},
	}
}

// storedBase remembers which of the built-in base's blobs this process has stored (or
// found) in which blob store. Blobs are content-addressed and never deleted, so each is
// written or checked once per process rather than on every build.
var storedBase sync.Map // baseKey → struct{}

type baseKey struct {
	blobs store.Blobs
	d     store.Digest
}

func baseStored(blobs store.Blobs, d store.Digest) bool {
	if !reflect.TypeOf(blobs).Comparable() {
		return false
	}
	_, ok := storedBase.Load(baseKey{blobs, d})
	return ok
}

func rememberBase(blobs store.Blobs, d store.Digest) {
	if reflect.TypeOf(blobs).Comparable() {
		storedBase.Store(baseKey{blobs, d}, struct{}{})
	}
}

// ensureBaseBytes is ensureBytes for the built-in base's documents, remembered.
func ensureBaseBytes(ctx context.Context, blobs store.Blobs, b []byte) (store.Digest, error) {
	d := store.DigestBytes(b)
	if baseStored(blobs, d) {
		return d, nil
	}
	if _, err := ensureBytes(ctx, blobs, b); err != nil {
		return d, err
	}
	rememberBase(blobs, d)
	return d, nil
}

// ensureBaseJSON encodes v and stores it as ensureBaseBytes does; it returns the digest
// and the size of the encoding.
func ensureBaseJSON(ctx context.Context, blobs store.Blobs, v any) (store.Digest, int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", 0, err
	}
	d, err := ensureBaseBytes(ctx, blobs, b)
	return d, int64(len(b)), err
}
