//go:build unix && !linux

package builder

import "errors"

// landlockABI returns 0: Landlock is Linux's.
func landlockABI() int { return 0 }

// restrictThread is never called where there is no Landlock.
func restrictThread(int, []string) error { return errors.New("landlock is not available") }
