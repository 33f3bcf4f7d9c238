package gocache

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slipway/slipway/builder/gocache/cacheprog"
)

// local is the cache's local tier: a directory only slipway writes (see store/paths.go),
// of outputs named by their output ID and entries named by their action ID, each written
// whole and renamed into place, trimmed to a size, least recently used first.
type local struct {
	dir   string
	max   int64         // bytes
	grace time.Duration // a file used more recently than this is never trimmed
	size  atomic.Int64  // bytes, as of the last trim plus what was added since
	trimC chan struct{}
	// trimMu makes one trim at a time.
	trimMu sync.Mutex
	stats  *Stats
	// dirMode and fileMode are private to slipway's user and group, unless compiles run
	// as a user of their own (WithSandboxUser), who must read the outputs.
	dirMode, fileMode os.FileMode
	// hotDir is the hot tier's directory (WithHotDir), trimmed with the local tier
	// between hotTrimBegin, when it says so, and hotTrimEnd (Server.hotTrimBegin).
	hotDir       string
	hotTrimBegin func() bool
	hotTrimEnd   func(removed bool)
}

func newLocal(dir string, max int64, grace time.Duration, stats *Stats, othersRead bool) (*local, error) {
	dirMode, fileMode := os.FileMode(0o750), os.FileMode(0o640)
	if othersRead {
		dirMode, fileMode = 0o711, 0o644
	}
	for _, d := range []string{dir, filepath.Join(dir, "o"), filepath.Join(dir, "a"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return nil, err
		}
	}
	// Files left half-written by a process that died (not those another process on this
	// machine, sharing the directory, is writing now).
	tmps, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	for _, t := range tmps {
		if fi, err := t.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			_ = os.RemoveAll(filepath.Join(dir, "tmp", t.Name()))
		}
	}
	return &local{dir: dir, max: max, grace: grace, trimC: make(chan struct{}, 1), stats: stats,
		dirMode: dirMode, fileMode: fileMode}, nil
}

func (l *local) outputPath(out string) string { return cacheprog.Layout(l.dir).OutputPath(out) }

func (l *local) entryPath(ns, action string) string {
	return cacheprog.Layout(l.dir).EntryPath(ns, action)
}

// get returns the entry of action in ns and the path of its output, if both are here
// and whole; ok is false otherwise.
func (l *local) get(ns, action string) (e entry, path string, ok bool) {
	ep := l.entryPath(ns, action)
	b, err := os.ReadFile(ep)
	if err != nil {
		return entry{}, "", false
	}
	e, err = parseEntry(b)
	if err != nil {
		_ = os.Remove(ep)
		return entry{}, "", false
	}
	path = l.outputPath(e.Output)
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != e.Size {
		return entry{}, "", false
	}
	l.touch(ep, path, fi.ModTime())
	return e, path, true
}

// touch marks an entry and its output as used now, when the output's time is stale.
func (l *local) touch(entryPath, outPath string, mtime time.Time) {
	now := time.Now()
	if now.Sub(mtime) < touchEvery {
		return
	}
	_ = os.Chtimes(outPath, now, now)
	_ = os.Chtimes(entryPath, now, now)
}

// used marks the entry of action in ns, and its output, as used now: the cache program
// answered a get with them.
func (l *local) used(ns, action string) {
	ep := l.entryPath(ns, action)
	b, err := os.ReadFile(ep)
	if err != nil {
		return
	}
	e, err := parseEntry(b)
	if err != nil {
		return
	}
	l.touch(ep, l.outputPath(e.Output), time.Time{})
}

// hasOutput returns the path of output out when it is here with size bytes.
func (l *local) hasOutput(out string, size int64) (string, bool) {
	path := l.outputPath(out)
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != size {
		return "", false
	}
	if time.Since(fi.ModTime()) >= touchEvery {
		now := time.Now()
		_ = os.Chtimes(path, now, now)
	}
	return path, true
}

// putOutput stores the bytes of r as output out, checking that they hash to it and are
// size bytes long; a mismatch wraps ErrCorrupt and stores nothing. It returns the
// output's path.
func (l *local) putOutput(out string, size int64, r io.Reader) (string, error) {
	if path, ok := l.hasOutput(out, size); ok {
		return path, nil
	}
	path := l.outputPath(out)
	f, err := os.CreateTemp(filepath.Join(l.dir, "tmp"), "o-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, size+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != out {
		return "", fmt.Errorf("%w: output %s: %d bytes hashing to %s, want %d bytes", ErrCorrupt, out, n, got, size)
	}
	if err := l.place(f.Name(), path); err != nil {
		return "", err
	}
	l.added(size)
	return path, nil
}

// putEntry stores e as the entry of action in ns.
func (l *local) putEntry(ns, action string, e entry) error {
	f, err := os.CreateTemp(filepath.Join(l.dir, "tmp"), "a-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	b := e.Encode()
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := l.place(f.Name(), l.entryPath(ns, action)); err != nil {
		return err
	}
	l.added(int64(len(b)))
	return nil
}

// place renames the whole file tmp to path.
func (l *local) place(tmp, path string) error {
	if err := os.Chmod(tmp, l.fileMode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), l.dirMode); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	}
	return nil
}

// added counts n more bytes and asks for a trim when the tier is over its size.
func (l *local) added(n int64) {
	if l.size.Add(n) > l.max {
		select {
		case l.trimC <- struct{}{}:
		default:
		}
	}
}

// trimEvery is how often the tier is measured again (and trimmed if it must be), besides
// the trims that puts over the limit ask for.
const trimEvery = 10 * time.Minute

// run trims the tier when asked and every trimEvery, until ctx is done.
func (l *local) run(ctx context.Context, onErr func(error)) {
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		if _, _, err := l.trim(); err != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-l.trimC:
		case <-t.C:
		}
	}
}

// trim measures the tier and, when it is over its size, removes the least recently used
// files (outputs and entries alike; an entry whose output is gone is a miss) until it is
// at 90 % of its size, except files used within the grace period, which a build in
// progress may still read. It returns what it removed.
func (l *local) trim() (files int, bytes int64, err error) {
	l.trimMu.Lock()
	defer l.trimMu.Unlock()
	type file struct {
		path  string
		size  int64
		mtime time.Time
		hot   bool // of the hot tier
	}
	var all []file
	var total int64
	tops := []string{filepath.Join(l.dir, "o"), filepath.Join(l.dir, "a")}
	hotRemoved := false
	if l.hotDir != "" && l.hotTrimBegin() {
		tops = append(tops, l.hotDir)
		defer func() { l.hotTrimEnd(hotRemoved) }()
	}
	for _, top := range tops {
		hot := top == l.hotDir
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			// Of a hot GOCACHE, only the go command's entries and outputs.
			if hot && !strings.HasSuffix(p, "-a") && !strings.HasSuffix(p, "-d") {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil // removed meanwhile
			}
			all = append(all, file{p, fi.Size(), fi.ModTime(), hot})
			total += fi.Size()
			return nil
		})
		if err != nil {
			return 0, 0, fmt.Errorf("measuring the local build cache: %w", err)
		}
	}
	l.size.Store(total)
	if total <= l.max {
		return 0, 0, nil
	}
	slices.SortFunc(all, func(a, b file) int { return cmp.Compare(a.mtime.UnixNano(), b.mtime.UnixNano()) })
	target := l.max / 10 * 9
	cutoff := time.Now().Add(-l.grace)
	for _, f := range all {
		if total <= target || !f.mtime.Before(cutoff) {
			break
		}
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return files, bytes, fmt.Errorf("trimming the local build cache: %w", err)
		}
		hotRemoved = hotRemoved || f.hot
		total -= f.size
		files++
		bytes += f.size
	}
	l.size.Store(total)
	l.stats.Evicted.Add(int64(files))
	l.stats.EvictedBytes.Add(bytes)
	return files, bytes, nil
}
