package builder

import (
	"context"
	"io"

	"github.com/slipway/slipway/builder/gobuild"
)

// Compiler is what a worker needs of the Go toolchain. *gobuild.Toolchain is the real
// one; tests of the worker's pipeline use fakes.
type Compiler interface {
	// Compile builds one platform's binary at spec.Out, writing the compiler's output
	// to log. Its errors are those of gobuild.Toolchain.Compile: a *gobuild.CompileError
	// for the source's fault, gobuild.ErrTimeout, gobuild.ErrNoSpace for a full disk.
	Compile(ctx context.Context, spec gobuild.CompileSpec, env gobuild.Env, log io.Writer) error
	// Version names the toolchain, such as "go1.26.8": go.mod files are checked against
	// it and every build records it.
	Version() string
	// ZoneinfoZip is the time zone database the built-in base image carries.
	ZoneinfoZip() string
}

var _ Compiler = (*gobuild.Toolchain)(nil)

// A Compiler may also say how it confines compiles (gobuild.Toolchain.Sandbox), which a
// worker logs at start, and where its GOROOT is, which a worker keeps out of what builds
// report.
type (
	sandboxer interface{ Sandbox() string }
	gorooter  interface{ GOROOT() string }
)
