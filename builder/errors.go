package builder

import "errors"

// ErrPlatform means a platform string is malformed or not one the toolchain builds.
var ErrPlatform = errors.New("unsupported platform")

// Errors of the build store.
var (
	// ErrNotFound means there is no such build.
	ErrNotFound = errors.New("build not found")
	// ErrConflict means the build is not in a state that allows the change, such as
	// canceling a build that already succeeded.
	ErrConflict = errors.New("build state conflict")
	// ErrStale means another worker owns the build now; the caller's result is dropped.
	ErrStale = errors.New("build attempt is stale")
	// ErrTimeout means a compile ran past its time limit and was killed.
	ErrTimeout = errors.New("build timed out")
	// ErrNoSpace means a compile failed because a filesystem it writes (the work dir,
	// the caches) is full: the worker's fault, not the source's.
	ErrNoSpace = errors.New("no space left on the worker's disk")
)

// CompileError is a compile that failed: the platform and what the compiler said.
type CompileError struct {
	Platform string
	Output   string
}

func (e *CompileError) Error() string {
	return "compiling " + e.Platform + ": " + firstLine(e.Output)
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// InputError is a build request that slipway refuses: Field names the parameter.
type InputError struct {
	Field, Detail string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Detail }
