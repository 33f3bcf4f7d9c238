package gocache

import "github.com/slipway/slipway/builder/gocache/cacheprog"

// Errors of the cache.
var (
	// ErrNamespace means a namespace is not "shared" or an app's name.
	ErrNamespace = cacheprog.ErrNamespace
	// ErrCorrupt means an entry or output does not match what it claims: an output whose
	// bytes do not hash to its output ID, or an entry that does not parse. A corrupt
	// entry is a miss, never used.
	ErrCorrupt = cacheprog.ErrCorrupt
)
