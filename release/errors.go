package release

import (
	"errors"
	"fmt"
	"strings"

	"github.com/slipway/slipway/invalid"
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
	// ErrGates means a channel's gates refuse the promotion; the error is a *GatesError.
	ErrGates = errors.New("gates failed")
)

// GatesError is a promotion its channel's gates refused, with every gate's state.
type GatesError struct {
	Channel string
	Version string
	States  []GateState
}

func (e *GatesError) Error() string {
	var parts []string
	for _, s := range e.States {
		if s.Status != GatePassed {
			parts = append(parts, s.Gate+" "+s.Status+": "+s.Detail)
		}
	}
	return fmt.Sprintf("%s cannot enter %s yet: %s", e.Version, e.Channel, strings.Join(parts, "; "))
}

func (e *GatesError) Unwrap() error { return ErrGates }

// Failed returns the gates that did not pass.
func (e *GatesError) Failed() []GateState { return GateReport{States: e.States}.Failed() }

// FieldError is one problem with one field of a request.
type FieldError = invalid.Field

// ValidationError lists every problem found in a request; nothing was written. It is
// invalid.Error, which webhook returns too.
type ValidationError = invalid.Error

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
