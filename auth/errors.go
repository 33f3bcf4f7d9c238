package auth

import "errors"

// Token errors callers branch on with errors.Is.
var (
	// ErrTokenExists means a live token already has the name asked for.
	ErrTokenExists = errors.New("token name taken")
	// ErrTokenUnknown means no live token has the secret, name or id given.
	ErrTokenUnknown = errors.New("unknown token")
	// ErrSessionUnknown means no live session has the id given: it never was, expired or
	// was ended.
	ErrSessionUnknown = errors.New("unknown session")
)
