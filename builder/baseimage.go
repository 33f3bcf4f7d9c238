package builder

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway/slipway/builder/gobuild"
)

// CheckBaseImage checks that ref is a registry reference ("registry/repo:tag",
// "repo@sha256:..."); empty means the built-in base and is valid.
func CheckBaseImage(ref string) error {
	if ref == "" {
		return nil
	}
	if _, err := name.ParseReference(ref); err != nil {
		return fmt.Errorf("%w: %v", ErrBaseImage, err)
	}
	return nil
}

// AppChecker checks an app's build settings against what the builder can do: the
// toolchain's platforms, an ldflags template, a base image reference. It is the
// release package's BuildChecker.
type AppChecker struct {
	Toolchain *gobuild.Toolchain
}

// CheckPlatform returns the platform in normal form, or why the toolchain cannot build it.
func (c AppChecker) CheckPlatform(p string) (string, error) { return c.Toolchain.CheckPlatform(p) }

// CheckLdflags checks an ldflags template; see gobuild.CheckLdflags.
func (AppChecker) CheckLdflags(tmpl string) error { return gobuild.CheckLdflags(tmpl) }

// CheckBaseImage checks a base image reference; see the package function CheckBaseImage.
func (AppChecker) CheckBaseImage(ref string) error { return CheckBaseImage(ref) }
