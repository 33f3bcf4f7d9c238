package gobuild

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Toolchain is an installed Go toolchain: its version and the platforms it builds with
// cgo off.
type Toolchain struct {
	goBin     string
	version   string
	goroot    string
	platforms map[string]bool // "os/arch"
}

// LoadToolchain asks the go command at goBin (a path, or a name looked up in PATH) for
// its version and target list.
func LoadToolchain(ctx context.Context, goBin string) (*Toolchain, error) {
	path, err := exec.LookPath(goBin)
	if err != nil {
		return nil, fmt.Errorf("finding the Go toolchain %q: %w", goBin, err)
	}
	tc := &Toolchain{goBin: path, platforms: map[string]bool{}}
	out, err := tc.run(ctx, "env", "GOVERSION", "GOROOT")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return nil, fmt.Errorf("go env GOVERSION GOROOT printed %q", out)
	}
	tc.version, tc.goroot = lines[0], lines[1]
	out, err = tc.run(ctx, "tool", "dist", "list", "-json")
	if err != nil {
		return nil, err
	}
	var list []struct{ GOOS, GOARCH string }
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("reading go tool dist list: %w", err)
	}
	for _, p := range list {
		if mustLinkExternal(p.GOOS, p.GOARCH) {
			continue
		}
		tc.platforms[p.GOOS+"/"+p.GOARCH] = true
	}
	return tc, nil
}

// mustLinkExternal reports the targets whose binaries need cgo's external linker, which
// slipway never uses (CGO_ENABLED=0).
func mustLinkExternal(goos, goarch string) bool {
	return goos == "ios" || goos == "android" && goarch != "arm64"
}

// run runs the go command with an environment built from nothing.
func (tc *Toolchain) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tc.goBin, args...)
	cmd.Env = []string{"GOTOOLCHAIN=local", "GOENV=off", "GOFLAGS=", "CGO_ENABLED=0"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Version returns the toolchain's version, such as "go1.26.8".
func (tc *Toolchain) Version() string { return tc.version }

// GOROOT returns the toolchain's root directory.
func (tc *Toolchain) GOROOT() string { return tc.goroot }

// ZoneinfoZip returns the toolchain's time zone database, $GOROOT/lib/time/zoneinfo.zip.
func (tc *Toolchain) ZoneinfoZip() string {
	return filepath.Join(tc.goroot, "lib", "time", "zoneinfo.zip")
}

// Path returns the go command's path.
func (tc *Toolchain) Path() string { return tc.goBin }

// Platforms returns the "os/arch" targets the toolchain builds with cgo off, sorted.
func (tc *Toolchain) Platforms() []string {
	ps := make([]string, 0, len(tc.platforms))
	for p := range tc.platforms {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// CheckPlatform parses s and checks that the toolchain builds it with cgo off. It returns
// the platform in normal form.
func (tc *Toolchain) CheckPlatform(s string) (string, error) {
	p, err := ParsePlatform(s)
	if err != nil {
		return "", err
	}
	if !tc.platforms[p.OS+"/"+p.Arch] {
		return "", fmt.Errorf("%w: %s/%s is not a target of %s with cgo off (go tool dist list)", ErrPlatform, p.OS, p.Arch, tc.version)
	}
	return p.String(), nil
}
