package api

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

type options struct {
	maxBodyBytes int64
	readyTimeout time.Duration
}

func defaultOptions() options {
	return options{maxBodyBytes: 1 << 20, readyTimeout: 2 * time.Second}
}

// Option configures the API server.
type Option func(*options) error

// WithMaxBodyBytes caps JSON request bodies; larger ones get 413. Default 1 MiB.
func WithMaxBodyBytes(n int64) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("max body bytes %d must be positive", n)
		}
		o.maxBodyBytes = n
		return nil
	}
}

// WithReadyTimeout bounds how long /readyz waits for each dependency. Default 2s.
func WithReadyTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("ready timeout %s must be positive", d)
		}
		o.readyTimeout = d
		return nil
	}
}

func joinSorted(s []string) string {
	s = slices.Clone(s)
	slices.Sort(s)
	return strings.Join(s, ", ")
}
