package builder

import "errors"

// Errors of the build store.
var (
	// ErrNotFound means there is no such build.
	ErrNotFound = errors.New("build not found")
	// ErrConflict means the build is not in a state that allows the change, such as
	// canceling a build that already succeeded.
	ErrConflict = errors.New("build state conflict")
	// ErrStale means another worker owns the build now; the caller's result is dropped.
	ErrStale = errors.New("build attempt is stale")
)

// errCanceled is why a running build's context ends when its cancel was asked for.
var errCanceled = errors.New("build canceled")

// ErrBaseImage means a base image reference does not parse.
var ErrBaseImage = errors.New("invalid base image reference")

// InputError is a build request that slipway refuses: Field names the parameter.
type InputError struct {
	Field, Detail string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Detail }
