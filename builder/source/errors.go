package source

import (
	"errors"
	"fmt"
)

// ErrInvalid means an archive breaks one of the rules of this package; every *Error
// unwraps to it.
var ErrInvalid = errors.New("invalid source archive")

// ErrTooLarge means Spool received more bytes than it was allowed to keep.
var ErrTooLarge = errors.New("source archive too large")

// Error is an archive slipway refuses. Entry is the offending entry's name as it appears in
// the archive (a longer name than 1024 bytes is cut there and ends in "..."), or "" when
// the problem is the archive as a whole; Reason says what is wrong in words a user can
// act on.
type Error struct {
	Entry  string
	Reason string
}

// Error returns, for example, `entry "../x": path leaves the module root`.
func (e *Error) Error() string {
	if e.Entry == "" {
		return e.Reason
	}
	return fmt.Sprintf("entry %q: %s", e.Entry, e.Reason)
}

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// maxEntryInError is how much of an entry's name an Error keeps.
const maxEntryInError = 1024

// invalid returns an *Error about the entry called raw in the archive.
func invalid(raw, format string, args ...any) *Error {
	if len(raw) > maxEntryInError {
		raw = raw[:maxEntryInError] + "..."
	}
	return &Error{Entry: raw, Reason: fmt.Sprintf(format, args...)}
}

// sizeString formats a byte count the way limits are usually written ("100 MiB").
func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
