package gobuild

import (
	"fmt"
	"slices"
	"strings"
)

// Platform is a build target: GOOS, GOARCH and an optional variant (the OCI platform
// variant, such as "v7" for arm, which also selects GOARM, GOAMD64, ...).
type Platform struct {
	OS, Arch, Variant string
}

// String returns "os/arch" or "os/arch/variant".
func (p Platform) String() string {
	if p.Variant == "" {
		return p.OS + "/" + p.Arch
	}
	return p.OS + "/" + p.Arch + "/" + p.Variant
}

// variants lists, per GOARCH, the variants slipway accepts and the environment variable
// each sets for the compiler.
var variants = map[string]struct {
	env    string
	values []string
	// implied is the variant that is the same as none (normalized away).
	implied string
}{
	"arm":      {"GOARM", []string{"v5", "v6", "v7"}, ""},
	"arm64":    {"GOARM64", arm64Variants(), "v8"},
	"amd64":    {"GOAMD64", []string{"v1", "v2", "v3", "v4"}, "v1"},
	"386":      {"GO386", []string{"sse2", "softfloat"}, ""},
	"mips":     {"GOMIPS", []string{"hardfloat", "softfloat"}, ""},
	"mipsle":   {"GOMIPS", []string{"hardfloat", "softfloat"}, ""},
	"mips64":   {"GOMIPS64", []string{"hardfloat", "softfloat"}, ""},
	"mips64le": {"GOMIPS64", []string{"hardfloat", "softfloat"}, ""},
	"ppc64":    {"GOPPC64", []string{"power8", "power9", "power10"}, ""},
	"ppc64le":  {"GOPPC64", []string{"power8", "power9", "power10"}, ""},
	"riscv64":  {"GORISCV64", []string{"rva20u64", "rva22u64", "rva23u64"}, ""},
}

func arm64Variants() []string {
	vs := []string{"v8"}
	for i := range 10 {
		vs = append(vs, fmt.Sprintf("v8.%d", i))
	}
	for i := range 6 {
		vs = append(vs, fmt.Sprintf("v9.%d", i))
	}
	return vs
}

// ParsePlatform parses "os/arch" or "os/arch/variant" and checks the variant against the
// architecture. It normalizes variants that mean the default (arm64/v8, amd64/v1) away,
// as OCI tooling does. It does not check that a toolchain supports the platform; see
// Toolchain.CheckPlatform.
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Platform{}, fmt.Errorf("%w: %q is not GOOS/GOARCH or GOOS/GOARCH/variant", ErrPlatform, s)
	}
	p := Platform{OS: parts[0], Arch: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
		v, ok := variants[p.Arch]
		if !ok {
			return Platform{}, fmt.Errorf("%w: %q: %s has no variants", ErrPlatform, s, p.Arch)
		}
		if !slices.Contains(v.values, p.Variant) {
			return Platform{}, fmt.Errorf("%w: %q: variant %q is not one of %s for %s",
				ErrPlatform, s, p.Variant, strings.Join(v.values, ", "), p.Arch)
		}
		if p.Variant == v.implied {
			p.Variant = ""
		}
	}
	return p, nil
}

// Env returns the compiler environment for the platform: GOOS, GOARCH and the variable
// its variant sets.
func (p Platform) Env() []string {
	env := []string{"GOOS=" + p.OS, "GOARCH=" + p.Arch}
	if p.Variant == "" {
		return env
	}
	v := variants[p.Arch]
	val := p.Variant
	switch p.Arch {
	case "arm":
		val = strings.TrimPrefix(val, "v")
	case "arm64":
		if val == "v8" {
			val = "v8.0"
		}
	}
	return append(env, v.env+"="+val)
}
