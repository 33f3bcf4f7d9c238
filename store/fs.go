package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// FS is a Blobs backend on a local directory: each object is a file at <root>/<key>.
// Puts write to a temporary file in the process's own scratch directory under
// <root>/.tmp (see ClaimScratch), verify the digest, sync, make the file read-only, and
// then hard-link it into place, so an object appears whole or not at all, an existing one
// is never replaced, and no process of the same (non-root) user can rewrite it in place.
// Temporary files of a process that died are removed by the next NewFS on the same root.
type FS struct {
	root    string
	scratch *Scratch
}

var (
	_ Blobs  = (*FS)(nil)
	_ Pinger = (*FS)(nil)
)

const fsTempDir = ".tmp"

// blobMode is the mode of every stored object: read-only for everyone.
const blobMode = 0o444

// NewFS returns a store rooted at dir, creating the directory when it is missing. It
// claims a scratch directory for its temporary files, removing those of dead processes;
// Close releases it.
func NewFS(dir string) (*FS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, fsTempDir), 0o750); err != nil {
		return nil, fmt.Errorf("creating blob directory: %w", err)
	}
	scratch, err := ClaimScratch(filepath.Join(abs, fsTempDir))
	if err != nil {
		return nil, err
	}
	return &FS{root: abs, scratch: scratch}, nil
}

// Root returns the directory the store keeps its files in.
func (s *FS) Root() string { return s.root }

// Close removes the store's temporary files and releases its scratch directory. The
// stored objects stay.
func (s *FS) Close() error { return s.scratch.Close() }

func (s *FS) path(key string) string { return filepath.Join(s.root, filepath.FromSlash(key)) }

// Put implements Blobs.
func (s *FS) Put(ctx context.Context, key string, r io.Reader, want Digest) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	dst := s.path(key)
	if _, err := os.Lstat(dst); err == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrExists, key)
	}
	tmp, err := os.CreateTemp(s.scratch.Path(), "put-*")
	if err != nil {
		return Info{}, fmt.Errorf("creating temporary file: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if err != nil {
		return Info{}, fmt.Errorf("writing %s: %w", key, err)
	}
	got := DigestOf(h)
	if want != "" && got != want {
		return Info{}, fmt.Errorf("%w: %s: content is %s, expected %s", ErrDigestMismatch, key, got, want)
	}
	if err := tmp.Chmod(blobMode); err != nil {
		return Info{}, fmt.Errorf("making %s read-only: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("syncing %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("closing %s: %w", key, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return Info{}, fmt.Errorf("creating directory for %s: %w", key, err)
	}
	// A hard link is atomic and fails when the name is taken: the immutable put.
	if err := os.Link(tmp.Name(), dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Info{}, fmt.Errorf("%w: %s", ErrExists, key)
		}
		return Info{}, fmt.Errorf("publishing %s: %w", key, err)
	}
	syncDir(filepath.Dir(dst))
	fi, err := os.Stat(dst)
	if err != nil {
		return Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return Info{Key: key, Size: n, ModTime: fi.ModTime(), Digest: got}, nil
}

// syncDir makes a new directory entry durable; failure only weakens crash safety.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Get implements Blobs.
func (s *FS) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Info, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(s.path(key))
	if err != nil {
		return nil, Info{}, translateFSError(key, err)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	info := Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}
	if offset < 0 || offset > info.Size {
		f.Close()
		return nil, Info{}, fmt.Errorf("offset %d outside %s (%d bytes)", offset, key, info.Size)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("seeking %s: %w", key, err)
	}
	var rd io.Reader = f
	if length >= 0 {
		rd = io.LimitReader(f, length)
	}
	return readCloser{Reader: ctxReader{ctx, rd}, Closer: f}, info, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// Stat implements Blobs.
func (s *FS) Stat(_ context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(s.path(key))
	if err != nil {
		return Info{}, translateFSError(key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements Blobs.
func (s *FS) Delete(_ context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// List implements Blobs. It walks the directory holding the prefix, ordering each
// directory's entries as their keys sort (a directory "a" sorts as "a/"), so keys come out
// in byte order, as S3 lists them, without collecting them first.
func (s *FS) List(ctx context.Context, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		if err := validatePrefix(prefix); err != nil {
			yield(Info{}, err)
			return
		}
		// Start at the deepest directory that every matching key lies in.
		dir := ""
		if i := strings.LastIndex(prefix, "/"); i >= 0 {
			dir = prefix[:i]
		}
		_, err := s.walk(ctx, dir, prefix, yield)
		if err != nil {
			yield(Info{}, err)
		}
	}
}

// walk lists the directory of key prefix dir ("" for the root) and returns false
// when yield asked to stop.
func (s *FS) walk(ctx context.Context, dir, prefix string, yield func(Info, error) bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(dir)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		return false, fmt.Errorf("listing %s: %w", dir, err)
	}
	sortKey := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(sortKey(a), sortKey(b)) })
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue // .tmp and anything else that cannot be a key
		}
		key := name
		if dir != "" {
			key = dir + "/" + name
		}
		if e.IsDir() {
			// Descend only when keys below could match the prefix.
			if !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				continue
			}
			more, err := s.walk(ctx, key, prefix, yield)
			if err != nil || !more {
				return more, err
			}
			continue
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listing
			}
			return false, fmt.Errorf("stat %s: %w", key, err)
		}
		if !yield(Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil) {
			return false, nil
		}
	}
	return true, nil
}

// Ping implements Pinger: the store's directory must take a new file and its bytes down to
// the disk, so a full or read-only filesystem fails it as a missing directory does.
func (s *FS) Ping(_ context.Context) error {
	f, err := os.CreateTemp(s.scratch.Path(), "ping-*")
	if err != nil {
		return fmt.Errorf("blob directory %s is not writable: %w", s.root, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write([]byte("slipway readiness probe\n"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blob directory %s is not writable: %w", s.root, err)
	}
	return nil
}

func translateFSError(key string, err error) error {
	// ENOTDIR: a segment of the key is a file, so nothing can be stored below it.
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("opening %s: %w", key, err)
}
