package builder

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/slipway/slipway/invalid"
)

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

// errCancelFirst means a build could not become succeeded because a cancel was accepted
// first.
var errCancelFirst = errors.New("a cancel was accepted first")

// ErrBaseImage means a base image reference does not parse.
var ErrBaseImage = errors.New("invalid base image reference")

// invalidField is a build request refused for one parameter, field.
func invalidField(field, detail string) error {
	return &invalid.Error{Fields: []invalid.Field{{Field: field, Detail: detail}}}
}

// SourceError is a source intake refuses to build: an archive the source package refused
// (its *source.Error, translated), or a go.mod the toolchain cannot build. A body
// refused before it is an archive (source.Spool's errors) stays a *source.Error.
type SourceError struct {
	Entry  string // the archive entry at fault, if one is
	Detail string
}

func (e *SourceError) Error() string {
	if e.Entry != "" {
		return fmt.Sprintf("source archive entry %q: %s", e.Entry, e.Detail)
	}
	return "source: " + e.Detail
}

// FetchError is a source URL slipway could not use: refused, unreachable, or answered
// with an error.
type FetchError struct {
	URL    string // redacted
	Detail string
}

func (e *FetchError) Error() string { return "fetching " + e.URL + ": " + e.Detail }

// BuildError says why a build did not succeed: it is the build's recorded failure, and
// the error the worker's steps return.
type BuildError struct {
	Reason   Reason `json:"reason"`
	Detail   string `json:"detail"`
	Platform string `json:"platform,omitempty"`
	// retry marks a fault of the infrastructure: the build runs again after a backoff.
	retry bool
}

// Error returns, for example, "compile_failed (linux/arm64): undefined: x".
func (e *BuildError) Error() string {
	s := string(e.Reason)
	if e.Platform != "" {
		s += " (" + e.Platform + ")"
	}
	return s + ": " + e.Detail
}

// refusedError is a source URL's address in a range the fetcher may not reach.
type refusedError struct{ addr netip.Addr }

func (e *refusedError) Error() string {
	return fmt.Sprintf("address %s is link-local or a metadata service, which source URLs may not reach", e.addr)
}
