package store

import "errors"

// Sentinel errors callers branch on with errors.Is. Backends translate their own
// errors (os.ErrNotExist, S3 NoSuchKey, 412 Precondition Failed) into these.
var (
	// ErrNotFound means no object is stored under the key.
	ErrNotFound = errors.New("blob not found")
	// ErrExists means an object is already stored under the key; blobs are immutable.
	ErrExists = errors.New("blob already exists")
	// ErrDigestMismatch means the content did not hash to the digest the caller expected;
	// nothing was stored.
	ErrDigestMismatch = errors.New("blob digest mismatch")
	// ErrInvalidKey means the key is not a relative slash-separated path of safe segments.
	ErrInvalidKey = errors.New("invalid blob key")
	// ErrInvalidDigest means a string is not a "sha256:<64 lowercase hex>" digest.
	ErrInvalidDigest = errors.New("invalid digest")
)
