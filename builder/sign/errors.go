package sign

import "errors"

// Errors of signing and verification.
var (
	// ErrNoKeys means no signing key is configured.
	ErrNoKeys = errors.New("no signing key configured")
	// ErrBadSignature means a signature does not verify with any of the keys.
	ErrBadSignature = errors.New("signature does not verify with any trusted key")
	// ErrMismatch means a signed document verifies but says something else than
	// expected (another digest, another predicate type).
	ErrMismatch = errors.New("signed document does not match")
)
