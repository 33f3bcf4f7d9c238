package gocache

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

// checkNamespace returns ErrNamespace unless ns may name a namespace.
func checkNamespace(ns string) error {
	if !namespaceRE.MatchString(ns) {
		return fmt.Errorf("%w: %q", ErrNamespace, ns)
	}
	return nil
}

// entry is what the cache keeps of one action: the output it produced. It is stored as
// one line of JSON, locally and in the blob store alike.
type entry struct {
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

// maxEntry bounds an entry's encoding.
const maxEntry = 4 << 10

// parseEntry reads an entry, checking its fields; a bad one wraps ErrCorrupt.
func parseEntry(b []byte) (entry, error) {
	var e entry
	if len(b) > maxEntry {
		return entry{}, fmt.Errorf("%w: entry of %d bytes", ErrCorrupt, len(b))
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return entry{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if !isHashHex(e.Output) || e.Size < 0 || e.BuildMS < 0 {
		return entry{}, fmt.Errorf("%w: entry %q", ErrCorrupt, b)
	}
	return e, nil
}

func (e entry) encode() []byte {
	b, _ := json.Marshal(e)
	return append(b, '\n')
}

// isHashHex reports whether s is 64 lowercase hex digits.
func isHashHex(s string) bool {
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

// hashHex returns the hex of id when it is a SHA-256-sized ID.
func hashHex(id []byte) (string, error) {
	if len(id) != sha256.Size {
		return "", fmt.Errorf("an ID of %d bytes, want %d", len(id), sha256.Size)
	}
	return hex.EncodeToString(id), nil
}
