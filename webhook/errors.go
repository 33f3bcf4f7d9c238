package webhook

import (
	"errors"
	"fmt"
	"net/netip"
)

// Errors callers branch on.
var (
	// ErrNotFound means the subscription or delivery does not exist.
	ErrNotFound = errors.New("not found")

	// ErrSignatureHeader means the Slipway-Signature header is missing or malformed.
	ErrSignatureHeader = errors.New("malformed Slipway-Signature header")
	// ErrSignatureExpired means the signature's timestamp is more than Tolerance away
	// from now: a replay, or a clock that is wrong.
	ErrSignatureExpired = errors.New("signature timestamp outside the tolerance")
	// ErrSignatureMismatch means no v1 entry matches the body under any of the secrets.
	ErrSignatureMismatch = errors.New("signature does not match")
)

// RefusedError is a target that resolves to an address webhooks may not reach:
// loopback, private, link-local (cloud metadata) and other special ranges, unless the
// server allows them.
type RefusedError struct {
	Host   string // the host of the URL; "" when the error comes from a dial
	Addr   netip.Addr
	Reason string // "loopback", "private", "link-local (cloud metadata)", ...
}

func (e *RefusedError) Error() string {
	if e.Host != "" && e.Host != e.Addr.String() {
		return fmt.Sprintf("%s resolves to %s, a %s address, which webhooks may not reach", e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("%s is a %s address, which webhooks may not reach", e.Addr, e.Reason)
}
