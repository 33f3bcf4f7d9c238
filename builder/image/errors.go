package image

import (
	"errors"
	"strings"
)

// ErrPlatformMissing means the base image has no manifest for a platform that was asked
// for. Assemble and ResolveBase return it wrapped in a *MissingPlatformError that names
// the platforms.
var ErrPlatformMissing = errors.New("base image lacks platform")

// ErrRegistry means the base image's registry refused a request or did not answer (after
// retries): a problem of the app's base image, not of slipway's own storage.
var ErrRegistry = errors.New("base image registry")

// MissingPlatformError is a base image that does not provide every requested platform.
type MissingPlatformError struct {
	// Base is the base image's name as configured.
	Base string
	// Missing lists the requested platforms the base lacks, as "os/arch[/variant]".
	Missing []string
	// Offered lists the platforms the base provides.
	Offered []string
}

// Error names the base, the platforms it lacks and those it offers.
func (e *MissingPlatformError) Error() string {
	offered := "nothing"
	if len(e.Offered) > 0 {
		offered = strings.Join(e.Offered, ", ")
	}
	return "base image " + e.Base + " lacks platform " + strings.Join(e.Missing, ", ") +
		" (it offers " + offered + ")"
}

// Unwrap returns ErrPlatformMissing, so errors.Is(err, ErrPlatformMissing) holds.
func (e *MissingPlatformError) Unwrap() error { return ErrPlatformMissing }
