package gobuild

import (
	"fmt"
	"go/version"
	"path"
	"strings"

	"golang.org/x/mod/modfile"
)

// CheckGoMod checks a module's go.mod before anything is built: it must parse, ask for no
// Go newer than goVersion (the server's, such as "go1.26.8"; slipway never downloads a
// toolchain), and replace modules only with module versions or directories inside the
// module's own tree. Versions compare as the go command compares them (go/version), so
// go 1.99rc1 is newer than go1.26.8; a go or toolchain line the go command could not read
// as a version is refused.
func CheckGoMod(data []byte, goVersion string) error {
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		return fmt.Errorf("go.mod does not parse: %v", err)
	}
	if f.Module == nil {
		return fmt.Errorf("go.mod has no module line")
	}
	have := serverGoVersion(goVersion)
	if f.Go != nil {
		want := "go" + f.Go.Version
		if !version.IsValid(want) {
			return fmt.Errorf("go.mod has go %s, which is not a Go version such as 1.26 or 1.26.1", f.Go.Version)
		}
		if version.Compare(want, have) > 0 {
			return fmt.Errorf("go.mod needs go %s, and this server has %s and never downloads toolchains", f.Go.Version, goVersion)
		}
	}
	if f.Toolchain != nil && f.Toolchain.Name != "default" {
		want := f.Toolchain.Name
		if !version.IsValid(want) {
			return fmt.Errorf("go.mod has toolchain %s, which is not a Go toolchain such as go1.26.1", want)
		}
		if version.Compare(want, have) > 0 {
			return fmt.Errorf("go.mod asks for toolchain %s, and this server has %s and never downloads toolchains", want, goVersion)
		}
	}
	for _, r := range f.Replace {
		if r.New.Version != "" {
			continue // a module version
		}
		dir := r.New.Path
		if path.IsAbs(dir) || strings.HasPrefix(dir, `\`) || (len(dir) > 1 && dir[1] == ':') {
			return fmt.Errorf("go.mod replaces %s with %s, a directory outside the module", r.Old.Path, dir)
		}
		if clean := path.Clean(dir); clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("go.mod replaces %s with %s, a directory outside the module", r.Old.Path, dir)
		}
	}
	return nil
}

// serverGoVersion returns the toolchain version in goVersion, as `go env GOVERSION`
// prints it: "go1.26.8", "go1.26.8 X:boringcrypto", "devel go1.27-abcdef".
func serverGoVersion(goVersion string) string {
	for _, f := range strings.Fields(goVersion) {
		if strings.HasPrefix(f, "go1") {
			return f
		}
	}
	return goVersion
}
