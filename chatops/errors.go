package chatops

import (
	"errors"
	"fmt"
)

// Errors callers branch on with errors.Is.
var (
	// ErrNotConfigured means no secret is set for the platform, so none of its commands
	// can be verified.
	ErrNotConfigured = errors.New("chat platform not configured")
	// ErrUnverified means a command's signature or token is missing, malformed or wrong.
	ErrUnverified = errors.New("chat command not verified")
	// ErrExpired means a Slack signature's timestamp is more than Tolerance from now: a
	// replay, or a clock that is wrong.
	ErrExpired = errors.New("chat command timestamp outside the tolerance")
	// ErrRequest means a verified command's form is not one a chat service sends.
	ErrRequest = errors.New("malformed chat command")
	// ErrNotFound means no chat user has the id given.
	ErrNotFound = errors.New("not found")
	// ErrRefusedURL means a response_url is not under one of the URLs the poster allows.
	ErrRefusedURL = errors.New("response_url not allowed")
)

// AuthError is a command refused before it was read: ErrNotConfigured, ErrUnverified or
// ErrExpired, with the platform whose check refused it.
type AuthError struct {
	Platform Platform
	Err      error // one of the three sentinels
	Detail   string
}

func (e *AuthError) Error() string { return fmt.Sprintf("%s: %s", e.Err, e.Detail) }
func (e *AuthError) Unwrap() error { return e.Err }

// UsageError is a command that does not parse: what is wrong, and the command whose
// usage to show ("" when there is no such command).
type UsageError struct {
	Problem string
	Verb    Verb
}

func (e *UsageError) Error() string {
	if e.Verb == "" {
		return e.Problem
	}
	return e.Problem + "; usage: " + Usage("/slipway", e.Verb)
}
