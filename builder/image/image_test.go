package image_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/builder/licenses"
	"github.com/slipway/slipway/store"
)

var testCreated = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func builtinOptions(f *fixture) image.Options {
	return image.Options{
		App:      "hello",
		Version:  "1.2.3",
		Revision: "0123abcd",
		Source:   "https://example.com/hello",
		Created:  testCreated,
		Base:     image.Builtin(f.zoneinfo),
	}
}

// validateAll runs go-containerregistry's full validation on the index and each image.
func validateAll(t *testing.T, blobs store.Blobs, d store.Digest) v1.ImageIndex {
	t.Helper()
	ctx := context.Background()
	idx, err := image.OpenIndex(ctx, blobs, d)
	if err != nil {
		t.Fatalf("OpenIndex(%s) = %v", d, err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("validate.Index(%s) = %v, want nil", d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("validate.Image(%s) = %v, want nil", desc.Digest, err)
		}
	}
	return idx
}

// platformImage returns the image of platform p in idx.
func platformImage(t *testing.T, idx v1.ImageIndex, p string) v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.String() == p {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("index has no %s image", p)
	return nil
}

func TestAssembleBuiltin(t *testing.T) {
	f := hello(t)
	ctx := context.Background()
	blobs := newStore(t)
	opts := builtinOptions(f)
	res, err := image.Assemble(ctx, blobs, f.bins, opts)
	if err != nil {
		t.Fatalf("Assemble() = %v", err)
	}
	idx := validateAll(t, blobs, res.Index)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	amd64 := platformImage(t, idx, "linux/amd64")
	manifest, err := amd64.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := amd64.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("index", func(t *testing.T) {
		if im.MediaType != types.OCIImageIndex {
			t.Errorf("index mediaType = %s, want %s", im.MediaType, types.OCIImageIndex)
		}
		var got []string
		for _, d := range im.Manifests {
			got = append(got, d.Platform.String())
			if d.MediaType != types.OCIManifestSchema1 {
				t.Errorf("index entry %s mediaType = %s, want %s", d.Platform, d.MediaType, types.OCIManifestSchema1)
			}
		}
		if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(got, want) {
			t.Errorf("index platforms = %v, want %v", got, want)
		}
		if len(res.Images) != 2 || res.Images[0].Platform != "linux/amd64" || res.Images[1].Platform != "linux/arm64" {
			t.Errorf("Assemble().Images = %+v, want linux/amd64 then linux/arm64", res.Images)
		}
		if res.BaseName != image.BuiltinName {
			t.Errorf("Assemble().BaseName = %q, want %q", res.BaseName, image.BuiltinName)
		}
		want := map[string]string{
			image.AnnotationTitle:      "hello",
			image.AnnotationVersion:    "1.2.3",
			image.AnnotationRevision:   "0123abcd",
			image.AnnotationCreated:    "2024-05-01T12:00:00Z",
			image.AnnotationSource:     "https://example.com/hello",
			image.AnnotationBaseName:   image.BuiltinName,
			image.AnnotationBaseDigest: res.BaseDigest.String(),
		}
		if !reflect.DeepEqual(im.Annotations, want) {
			t.Errorf("index annotations = %v, want %v", im.Annotations, want)
		}
		// The base digest names a stored index of the built-in base.
		base, err := image.OpenIndex(ctx, blobs, res.BaseDigest)
		if err != nil {
			t.Fatalf("OpenIndex(base %s) = %v", res.BaseDigest, err)
		}
		if err := validate.Index(base); err != nil {
			t.Errorf("validate.Index(base) = %v, want nil", err)
		}
	})

	t.Run("manifest", func(t *testing.T) {
		if manifest.MediaType != types.OCIManifestSchema1 || manifest.Config.MediaType != types.OCIConfigJSON {
			t.Errorf("manifest mediaType, config mediaType = %s, %s, want OCI", manifest.MediaType, manifest.Config.MediaType)
		}
		if len(manifest.Layers) != 2 {
			t.Fatalf("len(manifest.Layers) = %d, want 2 (base, binary)", len(manifest.Layers))
		}
		for i, l := range manifest.Layers {
			if l.MediaType != types.OCILayer {
				t.Errorf("manifest.Layers[%d].MediaType = %s, want %s", i, l.MediaType, types.OCILayer)
			}
		}
		if got, want := manifest.Layers[1].Digest.String(), res.Images[0].Layer.String(); got != want {
			t.Errorf("binary layer = %s, want %s", got, want)
		}
		// The manifest's base digest is the built-in base's manifest for the platform.
		baseDigest := manifest.Annotations[image.AnnotationBaseDigest]
		base, err := image.OpenImage(ctx, blobs, store.Digest(baseDigest))
		if err != nil {
			t.Fatalf("OpenImage(base %s) = %v", baseDigest, err)
		}
		baseLayers, err := base.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if len(baseLayers) != 1 {
			t.Fatalf("built-in base has %d layers, want 1", len(baseLayers))
		}
		if d, _ := baseLayers[0].Digest(); d != manifest.Layers[0].Digest {
			t.Errorf("built-in base layer = %s, image's first layer = %s", d, manifest.Layers[0].Digest)
		}
		if !reflect.DeepEqual(manifest.Annotations, cfg.Config.Labels) {
			t.Errorf("manifest annotations = %v, want the config labels %v", manifest.Annotations, cfg.Config.Labels)
		}
	})

	t.Run("config", func(t *testing.T) {
		tests := []struct {
			name      string
			got, want any
		}{
			{"os", cfg.OS, "linux"},
			{"architecture", cfg.Architecture, "amd64"},
			{"user", cfg.Config.User, "65532:65532"},
			{"entrypoint", cfg.Config.Entrypoint, []string{"/app/hello"}},
			{"cmd", cfg.Config.Cmd, []string(nil)},
			{"workingDir", cfg.Config.WorkingDir, "/"},
			{"env", cfg.Config.Env, []string{"PATH=/usr/local/bin:/usr/bin:/bin:/app", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}},
			{"created", cfg.Created.UTC(), testCreated},
			{"title label", cfg.Config.Labels[image.AnnotationTitle], "hello"},
			{"version label", cfg.Config.Labels[image.AnnotationVersion], "1.2.3"},
			{"revision label", cfg.Config.Labels[image.AnnotationRevision], "0123abcd"},
			{"source label", cfg.Config.Labels[image.AnnotationSource], "https://example.com/hello"},
			{"created label", cfg.Config.Labels[image.AnnotationCreated], "2024-05-01T12:00:00Z"},
			{"base name label", cfg.Config.Labels[image.AnnotationBaseName], image.BuiltinName},
			{"history entries", len(cfg.History), 2},
			{"last history created", cfg.History[len(cfg.History)-1].Created.UTC(), testCreated},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if !reflect.DeepEqual(tc.got, tc.want) {
					t.Errorf("config %s = %#v, want %#v", tc.name, tc.got, tc.want)
				}
			})
		}
	})

	fs := unpack(t, amd64)

	t.Run("files", func(t *testing.T) {
		tests := []struct {
			path     string
			mode     int64
			uid, gid int
			mtime    time.Time
			contains string
		}{
			{"/app", 0o755, 0, 0, testCreated, ""},
			{"/app/hello", 0o755, 0, 0, testCreated, ""},
			{"/etc/passwd", 0o644, 0, 0, time.Unix(0, 0), "nonroot:x:65532:65532:nonroot:/home/nonroot:"},
			{"/etc/group", 0o644, 0, 0, time.Unix(0, 0), "nonroot:x:65532:"},
			{"/etc/nsswitch.conf", 0o644, 0, 0, time.Unix(0, 0), "hosts:          files dns"},
			{"/etc/os-release", 0o644, 0, 0, time.Unix(0, 0), "ID="},
			{"/etc/ssl/certs/ca-certificates.crt", 0o644, 0, 0, time.Unix(0, 0), "-----BEGIN CERTIFICATE-----"},
			{"/usr/share/zoneinfo/Europe/Berlin", 0o644, 0, 0, time.Unix(0, 0), "TZif"},
			{"/tmp", 0o1777, 0, 0, time.Unix(0, 0), ""},
			{"/home/nonroot", 0o700, 65532, 65532, time.Unix(0, 0), ""},
			{"/root", 0o700, 0, 0, time.Unix(0, 0), ""},
		}
		for _, tc := range tests {
			t.Run(tc.path, func(t *testing.T) {
				hdr, ok := fs.headers[tc.path]
				if !ok {
					t.Fatalf("image has no %s", tc.path)
				}
				if hdr.Mode != tc.mode || hdr.Uid != tc.uid || hdr.Gid != tc.gid {
					t.Errorf("%s mode, uid, gid = %#o, %d, %d, want %#o, %d, %d", tc.path, hdr.Mode, hdr.Uid, hdr.Gid, tc.mode, tc.uid, tc.gid)
				}
				if !hdr.ModTime.Equal(tc.mtime) {
					t.Errorf("%s mtime = %s, want %s", tc.path, hdr.ModTime.UTC(), tc.mtime.UTC())
				}
				if hdr.Uname != "" || hdr.Gname != "" || len(hdr.PAXRecords) != 0 {
					t.Errorf("%s uname, gname, pax = %q, %q, %v, want none", tc.path, hdr.Uname, hdr.Gname, hdr.PAXRecords)
				}
				if tc.contains != "" && !bytes.Contains(fs.read(t, tc.path), []byte(tc.contains)) {
					t.Errorf("%s does not contain %q", tc.path, tc.contains)
				}
			})
		}
		for name, hdr := range fs.headers {
			if hdr.Uname != "" || hdr.Gname != "" || len(hdr.PAXRecords) != 0 || !hdr.AccessTime.IsZero() {
				t.Errorf("%s uname, gname, pax, atime = %q, %q, %v, %s, want none", name, hdr.Uname, hdr.Gname, hdr.PAXRecords, hdr.AccessTime)
			}
		}
	})

	t.Run("zoneinfo", func(t *testing.T) {
		loc, err := time.LoadLocationFromTZData("Europe/Berlin", fs.read(t, "/usr/share/zoneinfo/Europe/Berlin"))
		if err != nil {
			t.Fatalf("LoadLocationFromTZData(Europe/Berlin) = %v", err)
		}
		if _, off := time.Date(2024, 7, 1, 0, 0, 0, 0, loc).Zone(); off != 2*3600 {
			t.Errorf("Europe/Berlin offset in July = %d, want 7200", off)
		}
	})

	t.Run("ca bundle", func(t *testing.T) {
		rest := fs.read(t, "/etc/ssl/certs/ca-certificates.crt")
		n := 0
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				t.Fatalf("certificate %d: %v", n, err)
			}
			n++
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			t.Errorf("ca-certificates.crt has %d bytes that are not PEM", len(rest))
		}
		if n <= 100 {
			t.Errorf("ca-certificates.crt has %d certificates, want > 100", n)
		}
		t.Logf("%d certificates", n)
	})

	t.Run("run", func(t *testing.T) {
		if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
			t.Skipf("cannot run a linux/amd64 binary on %s/%s", runtime.GOOS, runtime.GOARCH)
		}
		bin := filepath.Join(fs.dir, filepath.FromSlash(cfg.Config.Entrypoint[0]))
		out, err := exec.Command(bin).Output()
		if err != nil {
			t.Fatalf("running %s: %v", cfg.Config.Entrypoint[0], err)
		}
		if got := strings.TrimSpace(string(out)); got != helloVersion {
			t.Errorf("%s printed %q, want %q", cfg.Config.Entrypoint[0], got, helloVersion)
		}
	})

	t.Run("size", func(t *testing.T) {
		for i, img := range res.Images {
			fi, err := os.Stat(f.bins[i].Path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := platformImage(t, idx, img.Platform).Manifest()
			if err != nil {
				t.Fatal(err)
			}
			baseLayer := m.Layers[0].Size
			over := img.Size - fi.Size()
			limit := baseLayer + fi.Size()/100
			t.Logf("%s: binary %d bytes, image %d bytes (binary layer %d), image over binary %+d bytes; limit: base layer %d + 1%% of binary = %d",
				img.Platform, fi.Size(), img.Size, m.Layers[1].Size, over, baseLayer, limit)
			if over > limit {
				t.Errorf("%s: image size - binary size = %d, want <= %d", img.Platform, over, limit)
			}
		}
	})
}

func TestReproducible(t *testing.T) {
	f := hello(t)
	ctx := context.Background()
	opts := builtinOptions(f)
	tests := []struct {
		name string
		bins []image.Binary
	}{
		{"same order", f.bins},
		{"reversed order", []image.Binary{f.bins[1], f.bins[0]}},
	}
	blobs1 := newStore(t)
	first, err := image.Assemble(ctx, blobs1, f.bins, opts)
	if err != nil {
		t.Fatalf("Assemble() = %v", err)
	}
	raw1 := keys(t, blobs1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			time.Sleep(time.Second)
			blobs2 := newStore(t)
			second, err := image.Assemble(ctx, blobs2, tc.bins, opts)
			if err != nil {
				t.Fatalf("Assemble() = %v", err)
			}
			if second.Index != first.Index {
				t.Errorf("Assemble() index = %s, first time %s", second.Index, first.Index)
			}
			if !reflect.DeepEqual(second, first) {
				t.Errorf("Assemble() = %+v, first time %+v", second, first)
			}
			if got := keys(t, blobs2); !slices.Equal(got, raw1) {
				t.Errorf("stored keys = %v, first time %v", got, raw1)
			}
		})
	}

	// A different creation time changes the index, and nothing of the base.
	later := opts
	later.Created = testCreated.Add(time.Hour)
	other, err := image.Assemble(ctx, newStore(t), f.bins, later)
	if err != nil {
		t.Fatalf("Assemble() = %v", err)
	}
	if other.Index == first.Index {
		t.Errorf("Assemble(Created+1h) index = %s, the same as with Created", other.Index)
	}
	if other.BaseDigest != first.BaseDigest {
		t.Errorf("Assemble(Created+1h) base = %s, want %s", other.BaseDigest, first.BaseDigest)
	}
}

func TestBuiltinBase(t *testing.T) {
	f := hello(t)
	ctx := context.Background()
	linux := []image.Platform{{OS: "linux", Arch: "amd64"}, {OS: "linux", Arch: "arm64"}}

	first, err := image.ResolveBase(ctx, newStore(t), image.Builtin(f.zoneinfo), linux)
	if err != nil {
		t.Fatalf("ResolveBase() = %v", err)
	}
	tests := []struct {
		name      string
		base      image.Base
		platforms []image.Platform
		want      error // nil: same digest as the first call
		wantText  string
	}{
		{"again", image.Builtin(f.zoneinfo), linux, nil, ""},
		{"arm/v7", image.Builtin(f.zoneinfo), []image.Platform{{OS: "linux", Arch: "arm", Variant: "v7"}}, nil, ""},
		{"windows", image.Builtin(f.zoneinfo), []image.Platform{{OS: "windows", Arch: "amd64"}}, image.ErrPlatformMissing, "windows/amd64"},
		{"darwin among linux", image.Builtin(f.zoneinfo), append(slices.Clone(linux), image.Platform{OS: "darwin", Arch: "arm64"}), image.ErrPlatformMissing, "darwin/arm64"},
		{"no zoneinfo", image.Builtin(""), linux, errAny, "zoneinfo"},
		{"missing zoneinfo", image.Builtin(filepath.Join(t.TempDir(), "zoneinfo.zip")), linux, errAny, "zoneinfo.zip"},
		{"no platforms", image.Builtin(f.zoneinfo), nil, errAny, "no platforms"},
		{"duplicate", image.Builtin(f.zoneinfo), []image.Platform{{OS: "linux", Arch: "arm64"}, {OS: "linux", Arch: "arm64", Variant: "v8"}}, errAny, "twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := image.ResolveBase(ctx, newStore(t), tc.base, tc.platforms)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("ResolveBase(%v) = %v, want nil", tc.platforms, err)
			case tc.want == nil:
				if got.Name != image.BuiltinName {
					t.Errorf("ResolveBase(%v).Name = %q, want %q", tc.platforms, got.Name, image.BuiltinName)
				}
				if slices.Equal(tc.platforms, linux) && got != first {
					t.Errorf("ResolveBase(%v) = %+v, first call %+v", tc.platforms, got, first)
				}
			case err == nil:
				t.Fatalf("ResolveBase(%v) = %+v, want an error", tc.platforms, got)
			case tc.want != errAny && !errors.Is(err, tc.want):
				t.Errorf("ResolveBase(%v) = %v, want %v", tc.platforms, err, tc.want)
			case !strings.Contains(err.Error(), tc.wantText):
				t.Errorf("ResolveBase(%v) = %q, want it to name %q", tc.platforms, err, tc.wantText)
			}
		})
	}

	// The CA bundle is the pinned module's, not the machine's.
	blobs := newStore(t)
	res, err := image.Assemble(ctx, blobs, f.bins[:1], builtinOptions(f))
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.OpenImage(ctx, blobs, res.Images[0].Manifest)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for r := range bundle.Roots() {
		pem.Encode(&want, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	fs := unpack(t, img)
	if got := fs.read(t, "/etc/ssl/certs/ca-certificates.crt"); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("ca-certificates.crt (%d bytes) is not the x509roots/fallback bundle (%d bytes)", len(got), want.Len())
	}
	// The users are slipway's, whatever the machine's /etc has.
	for file, want := range map[string]string{
		"/etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
		"/etc/group": "root:x:0:\nnonroot:x:65532:\nnobody:x:65534:\n",
	} {
		if got := string(fs.read(t, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
}

// errAny stands for any error in tables.
var errAny = errors.New("any error")

// spdxDoc is what the tests read of an SPDX document.
type spdxDoc struct {
	SPDXVersion       string `json:"spdxVersion"`
	DocumentNamespace string `json:"documentNamespace"`
	CreationInfo      struct {
		Created string `json:"created"`
	} `json:"creationInfo"`
	Packages []struct {
		Name        string         `json:"name"`
		SPDXID      string         `json:"SPDXID"`
		VersionInfo string         `json:"versionInfo"`
		Checksums   []spdxChecksum `json:"checksums"`
		Concluded   string         `json:"licenseConcluded"`
		Declared    string         `json:"licenseDeclared"`
	} `json:"packages"`
	Files []struct {
		FileName  string         `json:"fileName"`
		SPDXID    string         `json:"SPDXID"`
		Checksums []spdxChecksum `json:"checksums"`
		Comment   string         `json:"comment"`
	} `json:"files"`
	Relationships []spdxRelationship `json:"relationships"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

// sbomOptions are builtinOptions with the licenses read from the fixture's source tree
// (Apache-2.0) and the module cache (golang.org/x/sync's BSD-3-Clause).
func sbomOptions(f *fixture) image.Options {
	opts := builtinOptions(f)
	opts.Licenses = licenses.New(f.src, f.modCache)
	return opts
}

// TestSBOM reads each platform's SBOM and the index's, which covers every platform, and
// the referrers that attach them to the manifest and the index.
func TestSBOM(t *testing.T) {
	f := hello(t)
	ctx := context.Background()
	blobs := newStore(t)
	res, err := image.Assemble(ctx, blobs, f.bins, sbomOptions(f))
	if err != nil {
		t.Fatalf("Assemble() = %v", err)
	}
	type sbomCase struct {
		name                    string
		sbom, referrer, subject store.Digest
		subjectType             types.MediaType
	}
	var cases []sbomCase
	for _, pi := range res.Images {
		cases = append(cases, sbomCase{pi.Platform, pi.SBOM, pi.SBOMReferrer, pi.Manifest, types.OCIManifestSchema1})
	}
	cases = append(cases, sbomCase{"index", res.SBOM, res.SBOMReferrer, res.Index, types.OCIImageIndex})
	binaries := map[string]string{} // the SHA256 of each platform's binary, from its own SBOM
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := readSPDX(t, blobs, tc.sbom, f)
			if tc.name != "index" {
				if len(doc.Files) != 1 {
					t.Fatalf("SBOM files = %+v, want the binary", doc.Files)
				}
				binaries[tc.name] = doc.Files[0].Checksums[1].ChecksumValue
			} else {
				checkIndexSBOM(t, doc, res, binaries)
			}
			checkSBOMReferrer(t, blobs, tc.referrer, tc.subject, tc.subjectType, tc.sbom)
		})
	}
}

// readSPDX reads the stored SBOM d and checks what every SBOM of the fixture says.
func readSPDX(t *testing.T, blobs *store.FS, d store.Digest, f *fixture) spdxDoc {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(blobs.Root(), filepath.FromSlash(store.BlobKey(d))))
	if err != nil {
		t.Fatal(err)
	}
	var doc spdxDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("SBOM is not JSON: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" {
		t.Errorf("spdxVersion = %q, want SPDX-2.3", doc.SPDXVersion)
	}
	if doc.CreationInfo.Created != "2024-05-01T12:00:00Z" {
		t.Errorf("creationInfo.created = %q, want 2024-05-01T12:00:00Z", doc.CreationInfo.Created)
	}
	if !strings.HasPrefix(doc.DocumentNamespace, "https://") {
		t.Errorf("documentNamespace = %q, want a URI", doc.DocumentNamespace)
	}
	versions := map[string]string{}
	sums := map[string]int{}
	for _, p := range doc.Packages {
		versions[p.Name] = p.VersionInfo
		sums[p.Name] = len(p.Checksums)
		want := map[string]string{"example.com/hello": "Apache-2.0", "go": "BSD-3-Clause", "golang.org/x/sync": "BSD-3-Clause"}[p.Name]
		if p.Declared != want || p.Concluded != "NOASSERTION" {
			t.Errorf("SBOM package %s licenses declared %q, concluded %q; want %q, NOASSERTION", p.Name, p.Declared, p.Concluded, want)
		}
	}
	for name, want := range map[string]string{
		"example.com/hello": "1.2.3",
		"go":                f.goVersion,
		"golang.org/x/sync": f.syncVersion,
	} {
		if got, ok := versions[name]; !ok || got != want {
			t.Errorf("SBOM package %s version = %q (listed: %t), want %q", name, got, ok, want)
		}
	}
	if sums["golang.org/x/sync"] != 1 {
		t.Errorf("SBOM package golang.org/x/sync has %d checksums, want 1", sums["golang.org/x/sync"])
	}
	return doc
}

// checkIndexSBOM checks that the index's SBOM names each platform's binary, as its own
// SBOM does (binaries), and the dependency each binary contains.
func checkIndexSBOM(t *testing.T, doc spdxDoc, res *image.Result, binaries map[string]string) {
	t.Helper()
	if !strings.HasSuffix(doc.DocumentNamespace, res.Index.Hex()) {
		t.Errorf("documentNamespace = %q, want it to end with the index's digest", doc.DocumentNamespace)
	}
	syncID := ""
	for _, p := range doc.Packages {
		if p.Name == "golang.org/x/sync" {
			syncID = p.SPDXID
		}
	}
	if len(doc.Files) != len(res.Images) {
		t.Fatalf("index SBOM files = %+v, want one per platform", doc.Files)
	}
	for i, file := range doc.Files {
		platform := res.Images[i].Platform
		if !strings.Contains(file.Comment, platform) || file.Checksums[1].ChecksumValue != binaries[platform] {
			t.Errorf("index SBOM file %d = %+v, want the %s binary, SHA256 %s", i, file, platform, binaries[platform])
		}
		if !slices.Contains(doc.Relationships, spdxRelationship{file.SPDXID, "CONTAINS", syncID}) {
			t.Errorf("index SBOM: no %s CONTAINS %s (golang.org/x/sync)", file.SPDXID, syncID)
		}
	}
}

// checkSBOMReferrer fails the test unless referrer is a valid OCI 1.1 artifact manifest
// attaching the SBOM to subject, a stored document of type subjectType.
func checkSBOMReferrer(t *testing.T, blobs store.Blobs, referrer, subject store.Digest, subjectType types.MediaType, sbom store.Digest) {
	t.Helper()
	ctx := context.Background()
	ref, err := image.OpenImage(ctx, blobs, referrer)
	if err != nil {
		t.Fatalf("OpenImage(referrer) = %v", err)
	}
	if err := validate.Image(ref); err != nil {
		t.Errorf("validate.Image(referrer) = %v, want nil", err)
	}
	m, err := ref.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != image.SBOMMediaType {
		t.Errorf("referrer artifactType = %q, want %q", m.ArtifactType, image.SBOMMediaType)
	}
	if m.Subject == nil || m.Subject.Digest.String() != subject.String() || m.Subject.MediaType != subjectType {
		t.Errorf("referrer subject = %+v, want the %s %s", m.Subject, subjectType, subject)
	}
	if m.Config.MediaType != types.OCIEmptyJSON || m.Config.Size != 2 ||
		m.Config.Digest.String() != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" {
		t.Errorf("referrer config = %+v, want the OCI empty descriptor", m.Config)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != image.SBOMMediaType || m.Layers[0].Digest.String() != sbom.String() {
		t.Errorf("referrer layers = %+v, want the SBOM %s", m.Layers, sbom)
	}
	if _, err := blobs.Stat(ctx, store.BlobKey(store.Digest(m.Config.Digest.String()))); err != nil {
		t.Errorf("empty config blob: %v", err)
	}
}

func TestNoUploadAgain(t *testing.T) {
	f := hello(t)
	ctx := context.Background()
	fs := newStore(t)
	blobs := &countingStore{Blobs: fs}
	first, err := image.Assemble(ctx, blobs, f.bins, builtinOptions(f))
	if err != nil {
		t.Fatalf("Assemble() = %v", err)
	}
	before, puts := keys(t, fs), blobs.puts.Load()
	blobs.largest.Store(0)
	second, err := image.Assemble(ctx, blobs, f.bins, builtinOptions(f))
	if err != nil {
		t.Fatalf("Assemble() again = %v", err)
	}
	if second.Index != first.Index {
		t.Errorf("Assemble() again = %s, want %s", second.Index, first.Index)
	}
	if after := keys(t, fs); !slices.Equal(after, before) {
		t.Errorf("keys after the second Assemble = %d, want %d", len(after), len(before))
	}
	// Small documents (configs, manifests) are put without asking first, and the store
	// refuses them as existing; no layer is sent again.
	if l := blobs.largest.Load(); l > 16<<10 {
		t.Errorf("the second Assemble sent a %d-byte body, want only small documents (no layer)", l)
	}
	t.Logf("%d blobs, %d Puts the first time, %d the second (refused as existing)", len(before), puts, blobs.puts.Load()-puts)
}

func TestAssembleErrors(t *testing.T) {
	f := hello(t)
	ctx := context.Background()
	good := builtinOptions(f)
	with := func(change func(*image.Options)) image.Options {
		o := good
		change(&o)
		return o
	}
	tests := []struct {
		name string
		bins []image.Binary
		opts image.Options
		want string
	}{
		{"no app", f.bins, with(func(o *image.Options) { o.App = "" }), "app name"},
		{"app with slash", f.bins, with(func(o *image.Options) { o.App = "a/b" }), "app name"},
		{"dot app", f.bins, with(func(o *image.Options) { o.App = ".." }), "app name"},
		{"no base", f.bins, with(func(o *image.Options) { o.Base = nil }), "no base"},
		{"no binaries", nil, good, "no platforms"},
		{"same platform twice", []image.Binary{f.bins[0], f.bins[0]}, good, "twice"},
		{"no path", []image.Binary{{Platform: f.bins[0].Platform}}, good, "no path"},
		{"missing binary", []image.Binary{{Platform: f.bins[0].Platform, Path: filepath.Join(t.TempDir(), "nope")}}, good, "no such file"},
		{"not a Go binary", []image.Binary{{Platform: f.bins[0].Platform, Path: writeFile(t, "#!/bin/sh\n")}}, good, "build info"},
		{"binary of another platform", []image.Binary{{Platform: f.bins[1].Platform, Path: f.bins[0].Path}}, good, "GOARCH=amd64"},
		{"app name too long", f.bins, with(func(o *image.Options) { o.App = strings.Repeat("a", 64) }), "app name"},
		{"before 1970", f.bins, with(func(o *image.Options) { o.Created = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) }), "created"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := image.Assemble(ctx, newStore(t), tc.bins, tc.opts)
			if err == nil {
				t.Fatalf("Assemble() = %+v, want an error", res)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Assemble() = %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpen(t *testing.T) {
	f := hello(t)
	ctx := context.Background()
	blobs := newStore(t)
	res, err := image.Assemble(ctx, blobs, f.bins, builtinOptions(f))
	if err != nil {
		t.Fatalf("Assemble() = %v", err)
	}
	missing := store.DigestBytes([]byte("not stored"))
	tests := []struct {
		name  string
		open  func(context.Context, store.Blobs, store.Digest) error
		d     store.Digest
		want  error // nil: opens
		wantS string
	}{
		{"index", openIndex, res.Index, nil, ""},
		{"image", openImage, res.Images[0].Manifest, nil, ""},
		{"referrer", openImage, res.Images[0].SBOMReferrer, nil, ""},
		{"missing index", openIndex, missing, store.ErrNotFound, ""},
		{"missing image", openImage, missing, store.ErrNotFound, ""},
		{"image as index", openIndex, res.Images[0].Manifest, errAny, "not an image index"},
		{"index as image", openImage, res.Index, errAny, "not an image manifest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.open(ctx, blobs, tc.d)
			switch {
			case tc.want == nil && err != nil:
				t.Errorf("open(%s) = %v, want nil", tc.d, err)
			case tc.want == nil:
			case err == nil:
				t.Errorf("open(%s) = nil, want an error", tc.d)
			case tc.want != errAny && !errors.Is(err, tc.want):
				t.Errorf("open(%s) = %v, want %v", tc.d, err, tc.want)
			case !strings.Contains(err.Error(), tc.wantS):
				t.Errorf("open(%s) = %q, want it to say %q", tc.d, err, tc.wantS)
			}
		})
	}

	// Layers read back as stored: the same bytes, never recompressed.
	img, err := image.OpenImage(ctx, blobs, res.Images[0].Manifest)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := img.LayerByDigest(toHash(t, res.Images[0].Layer))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h, _, err := v1.SHA256(rc)
	if err != nil {
		t.Fatal(err)
	}
	if h.String() != res.Images[0].Layer.String() {
		t.Errorf("sha256(Compressed()) = %s, want %s", h, res.Images[0].Layer)
	}
}

func openIndex(ctx context.Context, blobs store.Blobs, d store.Digest) error {
	_, err := image.OpenIndex(ctx, blobs, d)
	return err
}

func openImage(ctx context.Context, blobs store.Blobs, d store.Digest) error {
	_, err := image.OpenImage(ctx, blobs, d)
	return err
}

func toHash(t *testing.T, d store.Digest) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(d.String())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSBOMLicenses: a module whose license files are not found is NOASSERTION (the Go
// standard library is BSD-3-Clause all the same), and the licenses keep the SBOM a
// function of its inputs: two assemblies, each with its own finder, store the same SBOMs.
func TestSBOMLicenses(t *testing.T) {
	f := hello(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		licenses image.Licenses
		want     map[string]string
	}{
		{"no licenses", nil, map[string]string{"example.com/hello": "NOASSERTION", "go": "BSD-3-Clause", "golang.org/x/sync": "NOASSERTION"}},
		{"no module cache", licenses.New(f.src, ""), map[string]string{"example.com/hello": "Apache-2.0", "go": "BSD-3-Clause", "golang.org/x/sync": "NOASSERTION"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blobs := newStore(t)
			opts := builtinOptions(f)
			opts.Licenses = tc.licenses
			res, err := image.Assemble(ctx, blobs, f.bins[:1], opts)
			if err != nil {
				t.Fatalf("Assemble() = %v", err)
			}
			for _, d := range []store.Digest{res.SBOM, res.Images[0].SBOM} {
				var doc spdxDoc
				raw, err := os.ReadFile(filepath.Join(blobs.Root(), filepath.FromSlash(store.BlobKey(d))))
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(raw, &doc); err != nil {
					t.Fatal(err)
				}
				for _, p := range doc.Packages {
					if p.Declared != tc.want[p.Name] || p.Concluded != "NOASSERTION" {
						t.Errorf("SBOM package %s licenses declared %q, concluded %q; want %q, NOASSERTION", p.Name, p.Declared, p.Concluded, tc.want[p.Name])
					}
				}
			}
		})
	}

	t.Run("reproducible", func(t *testing.T) {
		var sboms [][]store.Digest
		for range 2 {
			res, err := image.Assemble(ctx, newStore(t), f.bins, sbomOptions(f))
			if err != nil {
				t.Fatalf("Assemble() = %v", err)
			}
			sboms = append(sboms, []store.Digest{res.SBOM, res.Images[0].SBOM, res.Images[1].SBOM, res.Index})
		}
		if !slices.Equal(sboms[0], sboms[1]) {
			t.Errorf("SBOMs and index of two assemblies = %v and %v, want the same", sboms[0], sboms[1])
		}
	})
}
