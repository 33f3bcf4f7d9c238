package gobuild

import "errors"

var (
	// ErrPlatform means a platform string is malformed or not one the toolchain builds.
	ErrPlatform = errors.New("unsupported platform")
	// ErrLdflags means an ldflags template is malformed or asks for a linker flag slipway
	// does not pass.
	ErrLdflags = errors.New("invalid ldflags")
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
