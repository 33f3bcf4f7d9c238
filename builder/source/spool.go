package source

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/slipway/slipway/store"
)

// Spooled is an archive copied to a temporary file.
type Spooled struct {
	Path   string // the temporary file; Remove deletes it
	Size   int64  // bytes in the file
	Digest string // "sha256:" and 64 lowercase hex digits
}

// Spool copies r into a new temporary file in dir while hashing it with SHA-256. It stops
// with an error wrapping ErrTooLarge as soon as more than max bytes arrive, and with the
// context's error when ctx is done; either way the partial file is removed. An empty body
// is an *Error. A max of zero or less means the default MaxCompressed, as in Limits.
//
// A process that is killed leaves its spool file behind, so dir should be the process's
// own scratch directory (slipway serve gives the intake one from store.ClaimScratch), whose
// files the next start removes.
func Spool(ctx context.Context, r io.Reader, dir string, max int64) (*Spooled, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if max <= 0 {
		max = DefaultLimits().MaxCompressed
	}
	f, err := os.CreateTemp(dir, "source-*.spool")
	if err != nil {
		return nil, fmt.Errorf("creating spool file: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
			os.Remove(f.Name())
		}
	}()

	h := sha256.New()
	// The limit lets one byte more through, so that a body of exactly max bytes passes
	// and a longer one is noticed without reading it all.
	n, err := io.Copy(io.MultiWriter(f, h), store.ContextReader(ctx, io.LimitReader(r, max+1)))
	if err != nil {
		return nil, fmt.Errorf("spooling archive: %w", err)
	}
	if n > max {
		return nil, fmt.Errorf("%w: larger than the limit of %s", ErrTooLarge, sizeString(max))
	}
	if n == 0 {
		return nil, &Error{Reason: "the archive is empty"}
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("closing spool file: %w", err)
	}
	keep = true
	return &Spooled{Path: f.Name(), Size: n, Digest: store.DigestOf(h).String()}, nil
}

// Remove deletes the temporary file; removing it twice is not an error.
func (s *Spooled) Remove() error {
	if err := os.Remove(s.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing spooled archive: %w", err)
	}
	return nil
}
