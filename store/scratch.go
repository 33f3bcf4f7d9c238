package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Scratch is one process's directory of temporary files inside a directory that several
// processes may share (the intake's spool, the filesystem store's .tmp, the workers' work
// directory). The directory is <dir>/<pid>-<random>, and the process holds an exclusive
// flock on its .lock file for as long as the Scratch is open. The kernel drops the lock
// when the process dies, however it dies, so the next ClaimScratch on the same directory,
// in any process, removes the scratch directories whose lock it can take and leaves the
// ones of live processes alone.
type Scratch struct {
	path  string
	lock  *os.File
	swept []string
	err   error
}

// scratchLock is the name of the lock file in each scratch directory.
const scratchLock = ".lock"

// errLostClaim means a new scratch directory was swept before its lock was taken.
var errLostClaim = errors.New("scratch directory swept while it was being claimed")

// ClaimScratch creates dir when it is missing, removes the scratch directories in it
// whose owner is gone, and creates and locks a new one for the caller, who closes it when
// done. Failing to remove a dead process's directory does not fail the claim: Swept
// reports it.
func ClaimScratch(dir string) (*Scratch, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating scratch directory %s: %w", dir, err)
	}
	swept, sweepErr := sweepScratch(dir)
	for range 8 {
		s, err := claimScratch(dir)
		if errors.Is(err, errLostClaim) {
			continue // another process swept it in the instant between mkdir and flock
		}
		if err != nil {
			return nil, err
		}
		s.swept, s.err = swept, sweepErr
		return s, nil
	}
	return nil, fmt.Errorf("claiming a scratch directory in %s: %w", dir, errLostClaim)
}

func claimScratch(dir string) (*Scratch, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	path := filepath.Join(dir, strconv.Itoa(os.Getpid())+"-"+hex.EncodeToString(b))
	if err := os.Mkdir(path, 0o750); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, errLostClaim
		}
		return nil, fmt.Errorf("creating scratch directory: %w", err)
	}
	lockPath := filepath.Join(path, scratchLock)
	// os.OpenFile sets O_CLOEXEC: the compilers a worker starts do not inherit the lock,
	// so none of them can keep it alive after this process dies. Read-only is enough for
	// flock, and keeps the filesystem free to be remounted read-only.
	f, err := os.OpenFile(lockPath, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errLostClaim
		}
		return nil, fmt.Errorf("creating scratch lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLostClaim // a sweeper holds it and is removing the directory
		}
		return nil, fmt.Errorf("locking %s: %w", lockPath, err)
	}
	// A sweeper may have taken the lock, removed the directory and let go before the
	// flock above: then the lock held is on a file no longer in place.
	held, herr := f.Stat()
	now, nerr := os.Stat(lockPath)
	if herr != nil || nerr != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, errLostClaim
	}
	return &Scratch{path: path, lock: f}, nil
}

// Path returns the process's own scratch directory.
func (s *Scratch) Path() string { return s.path }

// Swept returns the scratch directories of dead processes the claim removed, and the
// first error met removing others.
func (s *Scratch) Swept() ([]string, error) { return s.swept, s.err }

// Close removes the scratch directory with everything in it and lets go of the lock.
// Closing twice is not an error.
func (s *Scratch) Close() error {
	if s.lock == nil {
		return nil
	}
	// Removed while the lock is held, so no sweeper removes it at the same time.
	err := os.RemoveAll(s.path)
	s.lock.Close()
	s.lock = nil
	if err != nil {
		return fmt.Errorf("removing scratch directory: %w", err)
	}
	return nil
}

// sweepScratch removes every scratch directory in dir whose lock can be taken: its owner
// is gone. Other entries of dir are left alone.
func sweepScratch(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing scratch directory %s: %w", dir, err)
	}
	var swept []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !isScratchName(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		removed, err := sweepOne(path)
		if err != nil {
			errs = append(errs, err)
		}
		if removed {
			swept = append(swept, path)
		}
	}
	return swept, errors.Join(errs...)
}

// sweepOne removes the scratch directory at path when no process holds its lock.
func sweepOne(path string) (bool, error) {
	f, err := os.Open(filepath.Join(path, scratchLock))
	if err != nil {
		// No lock file: a process is claiming it this instant (or died in that instant,
		// leaving an empty directory). Either way it is not ours to remove.
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("opening scratch lock in %s: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil // its owner is alive
		}
		return false, fmt.Errorf("locking scratch lock in %s: %w", path, err)
	}
	if err := os.RemoveAll(path); err != nil {
		return false, fmt.Errorf("removing scratch directory of a dead process: %w", err)
	}
	return true, nil
}

// isScratchName reports whether name is <pid>-<hex>, as claimScratch makes them.
func isScratchName(name string) bool {
	pid, random, ok := strings.Cut(name, "-")
	if !ok || pid == "" || random == "" {
		return false
	}
	if _, err := strconv.Atoi(pid); err != nil {
		return false
	}
	_, err := hex.DecodeString(random)
	return err == nil
}
