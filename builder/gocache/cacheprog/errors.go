package cacheprog

import "errors"

// Errors of the cache.
var (
	// ErrNamespace means a namespace is not "shared" or an app's name.
	ErrNamespace = errors.New("invalid build cache namespace")
	// ErrCorrupt means an entry or output does not match what it claims: an output whose
	// bytes do not hash to its output ID, or an entry that does not parse. A corrupt
	// entry is a miss, never used.
	ErrCorrupt = errors.New("corrupt build cache entry")
)
