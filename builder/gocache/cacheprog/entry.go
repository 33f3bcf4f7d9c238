package cacheprog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// SharedNamespace is the namespace every app's builds share (SLIPWAY_BUILD_CACHE_SCOPE=shared).
const SharedNamespace = "shared"

// namespaceRE is what a namespace may be: "shared" or an app's name (a DNS label).
var namespaceRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckNamespace returns ErrNamespace unless ns may name a namespace.
func CheckNamespace(ns string) error {
	if !namespaceRE.MatchString(ns) {
		return fmt.Errorf("%w: %q", ErrNamespace, ns)
	}
	return nil
}

// Entry is what the cache keeps of one action: the output it produced. It is stored as
// one line of JSON, locally and in the blob store alike.
type Entry struct {
	// Output is the hex SHA-256 of the output's bytes: the go command's output ID.
	Output string `json:"output"`
	Size   int64  `json:"size"`
	// Time is when the entry was put.
	Time time.Time `json:"time"`
	// BuildMS is how long the go command took to produce the output, as the cache saw
	// it: from its get that missed to its put of the same action, on the worker that
	// built it; 0 when the put came without such a get.
	BuildMS int64 `json:"build_ms,omitempty"`
}

// MaxEntry bounds an entry's encoding.
const MaxEntry = 4 << 10

// ParseEntry reads an entry, checking its fields; a bad one wraps ErrCorrupt.
func ParseEntry(b []byte) (Entry, error) {
	var e Entry
	if len(b) > MaxEntry {
		return Entry{}, fmt.Errorf("%w: entry of %d bytes", ErrCorrupt, len(b))
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if !IsHashHex(e.Output) || e.Size < 0 || e.BuildMS < 0 {
		return Entry{}, fmt.Errorf("%w: entry %q", ErrCorrupt, b)
	}
	return e, nil
}

// Encode is e as stored: one line of JSON.
func (e Entry) Encode() []byte {
	b, _ := json.Marshal(e)
	return append(b, '\n')
}

// IsHashHex reports whether s is 64 lowercase hex digits.
func IsHashHex(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// HashHex returns the hex of id when it is a SHA-256-sized ID.
func HashHex(id []byte) (string, error) {
	if len(id) != sha256.Size {
		return "", fmt.Errorf("an ID of %d bytes, want %d", len(id), sha256.Size)
	}
	return hex.EncodeToString(id), nil
}
