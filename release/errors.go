package release

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound means the app (or release, channel) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a create-only write found the resource already there.
	ErrExists = errors.New("already exists")
	// ErrStale means the caller's expected generation is not the current one.
	ErrStale = errors.New("generation is stale")
	// ErrConflict means the request contradicts what exists: a version taken by another
	// build, a build that cannot be released, nothing to roll back to.
	ErrConflict = errors.New("conflict")
	// ErrPolicy means a channel's policy refuses the promotion.
	ErrPolicy = errors.New("policy violation")
	// ErrLocked means the channel is locked against promotion.
	ErrLocked = errors.New("channel locked")
)

// FieldError is one problem with one field of a request.
type FieldError struct {
	// Field is the field's path, such as "platforms[1]" or "channels[2].from".
	Field  string
	Detail string
}

// ValidationError lists every problem found in a request; nothing was written.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Detail
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

func (e *ValidationError) add(field, detail string) {
	e.Fields = append(e.Fields, FieldError{Field: field, Detail: detail})
}

// err returns e, or nil when it holds no problems.
func (e *ValidationError) err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// StaleError is ErrStale with the generation that is current.
type StaleError struct {
	Current int64
}

func (e *StaleError) Error() string { return "generation is stale" }
func (e *StaleError) Unwrap() error { return ErrStale }

// ChannelStaleError is ErrStale with the channel as it is now.
type ChannelStaleError struct {
	Current ChannelState
}

func (e *ChannelStaleError) Error() string {
	return fmt.Sprintf("channel %s is at generation %d", e.Current.Name, e.Current.Generation)
}

func (e *ChannelStaleError) Unwrap() error { return ErrStale }
