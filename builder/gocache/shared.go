package gocache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"

	"github.com/slipway/slipway/store"
)

// fetch gets the entry of action in ns and its output from the blob store into the
// local tier; ok is false when the store has none, or has one that is not whole and
// true (Stats.RemoteRefused), or cannot be read now. Concurrent fetches of one entry are
// one fetch, counted and logged once.
func (s *Server) fetch(ns, action string) (entry, string, bool) {
	type found struct {
		e    entry
		path string
	}
	v, err, _ := s.flight.Do(ns+"/"+action, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.remoteWait)
		defer cancel()
		e, path, err := s.fetchOnce(ctx, ns, action)
		if err != nil {
			s.fetchFailed(ns, action, err)
		}
		return found{e, path}, err
	})
	if err != nil {
		return entry{}, "", false
	}
	f := v.(found)
	return f.e, f.path, true
}

// fetchFailed counts, logs and cleans up after a fetch that found no usable entry.
func (s *Server) fetchFailed(ns, action string, err error) {
	switch {
	case errors.As(err, new(*danglingError)):
		s.dropRemote(ns, action, err)
	case errors.Is(err, store.ErrNotFound):
	case errors.Is(err, ErrCorrupt):
		s.stats.RemoteRefused.Add(1)
		s.opts.log.Warn("build cache: refused an entry of the blob store", "namespace", ns, "action", action, "err", err)
		s.dropRemote(ns, action, err)
	default:
		s.stats.RemoteErrors.Add(1)
		s.opts.log.Warn("build cache: fetching from the blob store", "namespace", ns, "action", action, "err", err)
	}
}

// danglingError is an entry of the blob store whose output is not there (pruned, or
// expired by a lifecycle rule, before the entry): a miss.
type danglingError struct{ output string }

func (e *danglingError) Error() string {
	return "the entry names output " + e.output + ", which is not stored"
}

// dropRemote deletes the blob store's entry of action in ns, and with a corrupt output
// that output too, so that the next put of the action stores it again: the store never
// replaces an object, and a put finds the old one in its way.
func (s *Server) dropRemote(ns, action string, why error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.remoteWait)
	defer cancel()
	var corrupt *corruptOutput
	if errors.As(why, &corrupt) {
		if err := s.blobs.Delete(ctx, store.GoCacheOutputKey(ns, corrupt.output)); err != nil {
			s.opts.log.Warn("build cache: deleting a corrupt output of the blob store", "namespace", ns, "output", corrupt.output, "err", err)
		}
	}
	if err := s.blobs.Delete(ctx, store.GoCacheActionKey(ns, action)); err != nil {
		s.opts.log.Warn("build cache: deleting an entry of the blob store", "namespace", ns, "action", action, "err", err)
	}
}

// corruptOutput is an output of the blob store whose bytes are not what its name says.
type corruptOutput struct {
	output string
	err    error
}

func (e *corruptOutput) Error() string { return e.err.Error() }
func (e *corruptOutput) Unwrap() error { return e.err }

func (s *Server) fetchOnce(ctx context.Context, ns, action string) (entry, string, error) {
	rc, _, err := s.blobs.Get(ctx, store.GoCacheActionKey(ns, action), 0, -1)
	if err != nil {
		return entry{}, "", err
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxEntry+1))
	rc.Close()
	if err != nil {
		return entry{}, "", err
	}
	e, err := parseEntry(b)
	if err != nil {
		return entry{}, "", err
	}
	path, ok := s.local.hasOutput(e.Output, e.Size)
	if !ok {
		rc, _, err := s.blobs.Get(ctx, store.GoCacheOutputKey(ns, e.Output), 0, -1)
		if errors.Is(err, store.ErrNotFound) {
			return entry{}, "", &danglingError{output: e.Output}
		}
		if err != nil {
			return entry{}, "", err
		}
		cr := &countReader{r: store.ContextReader(ctx, rc)}
		path, err = s.local.putOutput(e.Output, e.Size, cr)
		rc.Close()
		s.stats.BytesFetched.Add(cr.n)
		if errors.Is(err, ErrCorrupt) {
			return entry{}, "", &corruptOutput{output: e.Output, err: err}
		}
		if err != nil {
			return entry{}, "", err
		}
	}
	if err := s.local.putEntry(ns, action, e); err != nil {
		return entry{}, "", err
	}
	return e, path, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// upload is one put on its way to the blob store.
type upload struct {
	ns, action string
	entry      entry
	path       string // the output in the local tier
}

// enqueue queues u for upload, or counts it dropped when the queue is full.
func (s *Server) enqueue(u upload) {
	if s.blobs == nil {
		return
	}
	s.pending.Add(1)
	select {
	case s.uploads <- u:
	default:
		s.pending.Add(-1)
		s.stats.UploadsDropped.Add(1)
	}
}

// upload stores queued puts in the blob store until the queue is closed.
func (s *Server) upload(ctx context.Context) {
	for u := range s.uploads {
		if err := s.uploadOne(ctx, u); err != nil {
			s.stats.UploadErrors.Add(1)
			s.opts.log.Warn("build cache: uploading to the blob store", "namespace", u.ns, "action", u.action, "err", err)
		}
		s.pending.Add(-1)
	}
}

// uploadOne stores u's output, unless the store has it, then its entry: an entry in the
// store always names an output that is there.
func (s *Server) uploadOne(ctx context.Context, u upload) error {
	ctx, cancel := context.WithTimeout(ctx, 5*s.opts.remoteWait)
	defer cancel()
	okey := store.GoCacheOutputKey(u.ns, u.entry.Output)
	if _, err := s.blobs.Stat(ctx, okey); errors.Is(err, store.ErrNotFound) {
		f, err := os.Open(u.path)
		if err != nil {
			return err // trimmed meanwhile
		}
		info, err := s.blobs.Put(ctx, okey, f, store.Digest("sha256:"+u.entry.Output))
		f.Close()
		switch {
		case err == nil:
			s.stats.BytesUploaded.Add(info.Size)
		case !errors.Is(err, store.ErrExists):
			return err
		}
	} else if err != nil {
		return err
	}
	_, err := s.blobs.Put(ctx, store.GoCacheActionKey(u.ns, u.action), bytes.NewReader(u.entry.Encode()), "")
	if err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	s.stats.Uploads.Add(1)
	return nil
}
