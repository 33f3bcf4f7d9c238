package cacheprog

import (
	"path/filepath"
	"time"
)

// Layout is the local tier's directory (see store/paths.go): outputs under
// o/<xx>/<output hex>, entries under a/<ns>/<xx>/<action hex>, <xx> the hex's first byte.
type Layout string

// OutputPath is where output out is kept.
func (l Layout) OutputPath(out string) string { return filepath.Join(string(l), "o", out[:2], out) }

// EntryPath is where the entry of action in namespace ns is kept.
func (l Layout) EntryPath(ns, action string) string {
	return filepath.Join(string(l), "a", ns, action[:2], action)
}

// TouchEvery is how stale a file's modification time may be before a use sets it again:
// the trim's notion of "recently used" is that coarse, and no finer, so that a warm build
// does not rewrite every file's time.
const TouchEvery = time.Minute
