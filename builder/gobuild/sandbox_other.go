//go:build unix && !linux

package gobuild

import "errors"

// landlockABI returns 0: Landlock is Linux's.
func landlockABI() int { return 0 }

// restrictThread is never called where there is no Landlock.
func restrictThread(int, []string) error { return errors.New("landlock is not available") }

// diskFree does not know free space outside Linux.
func diskFree(string) (bytes, inodes uint64, ok bool) { return 0, 0, false }
