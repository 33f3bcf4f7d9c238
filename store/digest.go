package store

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Digest is a content digest in OCI form, "sha256:<64 lowercase hex digits>".
// The zero value means "no digest".
type Digest string

const sha256Prefix = "sha256:"

// ParseDigest checks that s is a sha256 digest in canonical form.
func ParseDigest(s string) (Digest, error) {
	hexPart, ok := strings.CutPrefix(s, sha256Prefix)
	if !ok || len(hexPart) != sha256.Size*2 {
		return "", fmt.Errorf("%w: %q is not sha256:<64 hex digits>", ErrInvalidDigest, s)
	}
	for _, r := range hexPart {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return "", fmt.Errorf("%w: %q is not sha256:<64 lowercase hex digits>", ErrInvalidDigest, s)
		}
	}
	return Digest(s), nil
}

// Hex returns the hex part of d.
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), sha256Prefix) }

// String returns d in "sha256:<hex>" form.
func (d Digest) String() string { return string(d) }

// ReprDigest is d as the value of a Repr-Digest field (RFC 9530): sha-256=:<base64>:.
func (d Digest) ReprDigest() string {
	sum, _ := hex.DecodeString(d.Hex())
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum) + ":"
}

// DigestOf returns the digest of everything written to h, which must be a sha256 hash.
func DigestOf(h hash.Hash) Digest { return digestOfSum(h.Sum(nil)) }

// DigestBytes returns the digest of b.
func DigestBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return digestOfSum(sum[:])
}

// digestOfSum is the digest whose sha256 sum is sum.
func digestOfSum(sum []byte) Digest { return Digest(sha256Prefix + hex.EncodeToString(sum)) }
