package image

import (
	"context"
	"errors"
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/store"
)

// Platform is an image platform: the build target (GOOS, GOARCH and the OCI platform
// variant, such as "v7" for arm) the binary was compiled for.
type Platform = gobuild.Platform

// ociPlatform is p as an OCI platform.
func ociPlatform(p Platform) *v1.Platform {
	return &v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}
}

// Base is the image the binary is laid on: Builtin or Remote. Resolving it makes sure its
// layers, configs and manifests are in the blob store.
type Base interface {
	// resolve returns the base for each of platforms, in the store, or a
	// *MissingPlatformError listing every platform the base lacks.
	resolve(ctx context.Context, blobs store.Blobs, platforms []Platform) (*resolvedBase, error)
}

// resolvedBase is a base with everything it provides for the requested platforms stored.
type resolvedBase struct {
	// name and digest go into the index's org.opencontainers.image.base.* annotations:
	// the base as configured and the digest of the index (or single manifest) it named.
	name   string
	digest store.Digest
	images map[Platform]*baseImage
}

// baseImage is one platform of a base.
type baseImage struct {
	// manifest is the base's own manifest for the platform; its digest goes into the
	// platform image's org.opencontainers.image.base.digest.
	manifest v1.Descriptor
	// layers are stored blobs with OCI media types, in order; diffIDs their diffIDs.
	layers  []v1.Descriptor
	diffIDs []v1.Hash
	config  *v1.ConfigFile
}

// BaseInfo is a resolved base: what its annotations name.
type BaseInfo struct {
	// Name is the base as configured: BuiltinName, or the registry reference as given.
	Name string
	// Digest is the digest the base resolved to: the built-in base's index for the
	// platforms, or the registry index (or manifest) the reference named.
	Digest store.Digest
}

// ResolveBase resolves base for platforms and stores what it needs, without building an
// image. A build can call it before compiling, to fail early on a missing platform
// (ErrPlatformMissing) and to learn the base digest that identifies its inputs. For a
// Remote base with a tag, Assemble resolves the tag again; pass Remote the reference
// pinned to BaseInfo.Digest to build on exactly what was resolved.
func ResolveBase(ctx context.Context, blobs store.Blobs, base Base, platforms []Platform) (BaseInfo, error) {
	if base == nil {
		return BaseInfo{}, errors.New("resolving base: no base")
	}
	rb, err := base.resolve(ctx, blobs, platforms)
	if err != nil {
		return BaseInfo{}, err
	}
	return BaseInfo{Name: rb.name, Digest: rb.digest}, nil
}

// normalVariant maps the variants that mean an architecture's default to "", as
// containerd does: arm64/v8, amd64/v1 and arm/v7.
func normalVariant(arch, variant string) string {
	switch {
	case arch == "arm64" && variant == "v8",
		arch == "amd64" && variant == "v1",
		arch == "arm" && variant == "v7":
		return ""
	}
	return variant
}

// pickPlatform returns the index of the entry of offered that serves want: same OS and
// architecture and the same variant (after normalVariant), or else one with no variant.
func pickPlatform(offered []v1.Platform, want Platform) (int, bool) {
	wv := normalVariant(want.Arch, want.Variant)
	fallback := -1
	for i, p := range offered {
		if p.OS != want.OS || p.Architecture != want.Arch {
			continue
		}
		pv := normalVariant(p.Architecture, p.Variant)
		if pv == wv {
			return i, true
		}
		if p.Variant == "" && fallback < 0 {
			fallback = i
		}
	}
	return fallback, fallback >= 0
}

// platformString is "os/arch[/variant]" for a ggcr platform.
func platformString(p v1.Platform) string {
	return Platform{OS: p.OS, Arch: p.Architecture, Variant: p.Variant}.String()
}

// missingError builds the error for the platforms base lacks, or returns nil.
func missingError(base string, missing []Platform, offered []string) error {
	if len(missing) == 0 {
		return nil
	}
	e := &MissingPlatformError{Base: base, Offered: slices.Compact(slices.Sorted(slices.Values(offered)))}
	for _, p := range missing {
		e.Missing = append(e.Missing, p.String())
	}
	slices.Sort(e.Missing)
	return e
}

// checkPlatforms refuses an empty or malformed platform list and duplicates.
func checkPlatforms(platforms []Platform) error {
	if len(platforms) == 0 {
		return errors.New("no platforms")
	}
	seen := map[Platform]bool{}
	for _, p := range platforms {
		if p.OS == "" || p.Arch == "" {
			return fmt.Errorf("platform %q: GOOS and GOARCH are required", p)
		}
		n := Platform{OS: p.OS, Arch: p.Arch, Variant: normalVariant(p.Arch, p.Variant)}
		if seen[n] {
			return fmt.Errorf("platform %s given twice", p)
		}
		seen[n] = true
	}
	return nil
}
