package builder

import (
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// ErrBaseImage means a base image reference does not parse.
var ErrBaseImage = errors.New("invalid base image reference")

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

// CheckLdflags checks an ldflags template; see the package function CheckLdflags.
func (tc *Toolchain) CheckLdflags(tmpl string) error { return CheckLdflags(tmpl) }

// CheckBaseImage checks a base image reference; see the package function CheckBaseImage.
func (tc *Toolchain) CheckBaseImage(ref string) error { return CheckBaseImage(ref) }
