package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/store"
)

// Facts are what a release diff compares of a succeeded build, read out of the build's
// binaries (their build info), its image index and its SBOM. The JSON is
// release.Facts's, which the API converts them to.
type Facts struct {
	BuildID         string            `json:"build_id"`
	Commit          string            `json:"commit,omitempty"`
	GoVersion       string            `json:"go_version"`
	Main            FactModule        `json:"main"`
	Modules         []FactModule      `json:"modules"`
	Ldflags         string            `json:"ldflags"`
	BaseImage       string            `json:"base_image,omitempty"`
	BaseDigest      string            `json:"base_digest,omitempty"`
	Platforms       []PlatformFacts   `json:"platforms"`
	Licenses        map[string]string `json:"licenses,omitempty"`
	LicensesUnknown string            `json:"licenses_unknown,omitempty"`
}

// FactModule is a module a binary was built with; Replace is its replacement ("path
// version", or a directory), if any.
type FactModule struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Replace string `json:"replace,omitempty"`
}

// PlatformFacts are one platform's binary: its size and its build info's settings.
type PlatformFacts struct {
	Platform string            `json:"platform"`
	Size     int64             `json:"size"`
	Settings map[string]string `json:"settings,omitempty"`
}

// factsVersion is the shape of the cached facts; a cache entry of another is read again.
const factsVersion = 1

type cachedFacts struct {
	V     int   `json:"v"`
	Facts Facts `json:"facts"`
}

// Facts returns the facts of a succeeded build of app: from the cache in Redis
// (store.BuildFactsKey), or read from its binaries, index and SBOM in blobs, each
// checked against its digest, and cached. A build that did not succeed, or has no
// image, is ErrConflict.
func (s *Builds) Facts(ctx context.Context, blobs store.Blobs, app, id string) (Facts, error) {
	key := store.BuildFactsKey(app, id)
	raw, err := s.rdb.Get(ctx, key).Bytes()
	switch {
	case err == nil:
		var c cachedFacts
		if json.Unmarshal(raw, &c) == nil && c.V == factsVersion {
			return c.Facts, nil
		}
	case !errors.Is(err, redis.Nil):
		return Facts{}, fmt.Errorf("reading the facts of build %s: %w", id, err)
	}
	b, err := s.Get(ctx, app, id)
	if err != nil {
		return Facts{}, err
	}
	if b.Status != StatusSucceeded || b.Image == nil {
		return Facts{}, fmt.Errorf("%w: build %s is %s; only a succeeded build with an image has facts", ErrConflict, id, b.Status)
	}
	f, err := readFacts(ctx, blobs, b)
	if err != nil {
		return Facts{}, err
	}
	raw, err = json.Marshal(cachedFacts{V: factsVersion, Facts: f})
	if err != nil {
		return Facts{}, fmt.Errorf("encoding the facts of build %s: %w", id, err)
	}
	// Every writer writes the same bytes: the build does not change.
	if err := s.rdb.Set(ctx, key, raw, 0).Err(); err != nil {
		return Facts{}, fmt.Errorf("caching the facts of build %s: %w", id, err)
	}
	return f, nil
}

// readFacts reads the facts of the succeeded build b.
func readFacts(ctx context.Context, blobs store.Blobs, b Build) (Facts, error) {
	f := Facts{BuildID: b.ID, Commit: b.Commit, GoVersion: b.GoVersion, BaseImage: b.BaseImage,
		Modules: []FactModule{}, Platforms: []PlatformFacts{}}
	ld, err := gobuild.RenderLdflags(b.Ldflags, gobuild.LdflagsVars{
		Version: b.Version, Commit: b.Commit, App: b.App,
		Date: time.Unix(b.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
	})
	if err != nil {
		return Facts{}, fmt.Errorf("rendering the ldflags of build %s: %w", b.ID, err)
	}
	f.Ldflags = strings.Join(ld, " ")

	arts := slices.Clone(b.Artifacts)
	slices.SortFunc(arts, func(x, y Artifact) int { return strings.Compare(x.Platform, y.Platform) })
	mods := map[string]FactModule{}
	for i, a := range arts {
		bi, err := artifactBuildInfo(ctx, blobs, b.App, a)
		if err != nil {
			return Facts{}, err
		}
		if i == 0 {
			f.GoVersion = bi.GoVersion
			f.Main = factModule(&bi.Main)
		}
		for _, d := range bi.Deps {
			mods[d.Path] = factModule(d)
		}
		p := PlatformFacts{Platform: a.Platform, Size: a.Size, Settings: map[string]string{}}
		for _, s := range bi.Settings {
			p.Settings[s.Key] = s.Value
		}
		f.Platforms = append(f.Platforms, p)
	}
	for _, m := range mods {
		f.Modules = append(f.Modules, m)
	}
	slices.SortFunc(f.Modules, func(x, y FactModule) int { return strings.Compare(x.Path, y.Path) })

	if f.BaseDigest, err = baseDigest(ctx, blobs, b.Image.Digest); err != nil {
		return Facts{}, err
	}
	if f.Licenses, f.LicensesUnknown, err = sbomLicenses(ctx, blobs, b); err != nil {
		return Facts{}, err
	}
	return f, nil
}

func factModule(m *debug.Module) FactModule {
	out := FactModule{Path: m.Path, Version: m.Version}
	if r := m.Replace; r != nil {
		out.Replace = r.Path
		if r.Version != "" && r.Version != "(devel)" { // a directory's is (devel)
			out.Replace += " " + r.Version
		}
	}
	return out
}

// artifactBuildInfo reads the build info of a build's binary, which it copies to a
// temporary file (build info is read at offsets) and checks against its digest.
func artifactBuildInfo(ctx context.Context, blobs store.Blobs, app string, a Artifact) (*debug.BuildInfo, error) {
	rc, err := OpenArtifact(ctx, blobs, app, a)
	if err != nil {
		return nil, fmt.Errorf("opening the %s binary: %w", a.Platform, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp("", "slipway-facts-*")
	if err != nil {
		return nil, fmt.Errorf("reading the %s binary: %w", a.Platform, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), rc); err != nil {
		return nil, fmt.Errorf("reading the %s binary: %w", a.Platform, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != a.Digest {
		return nil, fmt.Errorf("%w: the %s binary is %s, not %s", store.ErrDigestMismatch, a.Platform, got, a.Digest)
	}
	bi, err := buildinfo.Read(tmp)
	if err != nil {
		return nil, fmt.Errorf("reading the build info of the %s binary: %w", a.Platform, err)
	}
	return bi, nil
}

// readBlob reads a small blob (a manifest, an SBOM) whole and checks its digest.
func readBlob(ctx context.Context, blobs store.Blobs, digest string) ([]byte, error) {
	d, err := store.ParseDigest(digest)
	if err != nil {
		return nil, err
	}
	rc, _, err := blobs.Get(ctx, store.BlobKey(d), 0, -1)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", d, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", d, err)
	}
	if store.DigestBytes(raw) != d {
		return nil, fmt.Errorf("%w: blob %s", store.ErrDigestMismatch, d)
	}
	return raw, nil
}

// baseDigest is the digest of the base image that the index's annotations name.
func baseDigest(ctx context.Context, blobs store.Blobs, index string) (string, error) {
	raw, err := readBlob(ctx, blobs, index)
	if err != nil {
		return "", fmt.Errorf("the image index: %w", err)
	}
	var idx struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return "", fmt.Errorf("decoding the image index %s: %w", index, err)
	}
	return idx.Annotations[image.AnnotationBaseDigest], nil
}

// sbomLicenses reads the licenses of the packages of b's SBOM (concluded, else
// declared), by module ("go" for the standard library); a package whose license is
// NOASSERTION is left out. None (nil, and why) when the build has no SBOM or the SBOM
// asserts no license at all: slipway's SBOMs declare each module's license from its
// license files, and the standard library's always, so only those of builds made before
// they did have none.
func sbomLicenses(ctx context.Context, blobs store.Blobs, b Build) (map[string]string, string, error) {
	if b.Image.SBOM == "" {
		return nil, "build " + b.ID + " has no SBOM", nil
	}
	raw, err := readBlob(ctx, blobs, b.Image.SBOM)
	if err != nil {
		return nil, "", fmt.Errorf("the SBOM: %w", err)
	}
	var doc struct {
		Packages []struct {
			Name             string `json:"name"`
			LicenseConcluded string `json:"licenseConcluded"`
			LicenseDeclared  string `json:"licenseDeclared"`
		} `json:"packages"`
	}
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&doc); err != nil {
		return nil, "", fmt.Errorf("decoding the SBOM %s: %w", b.Image.SBOM, err)
	}
	out := map[string]string{}
	for _, p := range doc.Packages {
		for _, l := range []string{p.LicenseConcluded, p.LicenseDeclared} {
			if l != "" && l != "NOASSERTION" && l != "NONE" {
				out[p.Name] = l
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, "the SBOM of build " + b.ID + " records no licenses", nil
	}
	return out, "", nil
}
