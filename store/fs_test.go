package store_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

func TestFSConformance(t *testing.T) {
	storetest.RunBlobs(t, func(t *testing.T) store.Blobs {
		s, err := store.NewFS(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}, storetest.BlobsOptions{
		Tamper: func(t *testing.T, s store.Blobs, key string, content []byte) {
			t.Helper()
			path := filepath.Join(s.(*store.FS).Root(), filepath.FromSlash(key))
			// Stored files are read-only; whoever tampers makes them writable first.
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestFSBlobsAreReadOnly checks that stored files are 0444, so a process of the same user
// (not root) cannot open one for writing and change a blob in place.
func TestFSBlobsAreReadOnly(t *testing.T) {
	ctx := context.Background()
	s, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	content := []byte("immutable bytes")
	d := store.DigestBytes(content)
	for _, key := range []string{store.BlobKey(d), "logs/app/01.log"} {
		if _, err := s.Put(ctx, key, strings.NewReader(string(content)), ""); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(s.Root(), filepath.FromSlash(key))
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o444 {
			t.Errorf("mode of stored %s = %v, want -r--r--r--", key, fi.Mode())
		}
		if os.Geteuid() != 0 {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("opening stored %s for writing = %v, want a permission error", key, err)
			}
		}
	}
	// Read-only files can still be deleted through the store.
	if err := s.Delete(ctx, "logs/app/01.log"); err != nil {
		t.Errorf("Delete(read-only log) = %v", err)
	}
}

// tmpfs mounts a tmpfs of the given size on a new directory, or skips when this is not
// root or mounting is not allowed.
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until the filesystem has no byte left.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{64 << 10, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling %s: %v", dir, err)
				}
				break
			}
		}
	}
}

// TestFSPingFullDisk checks that /readyz notices a full disk: creating an empty file
// still works there, writing bytes does not.
func TestFSPingFullDisk(t *testing.T) {
	dir := tmpfs(t, "2m")
	s, err := store.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping(empty tmpfs) = %v, want nil", err)
	}
	fill(t, dir)
	if err := s.Ping(context.Background()); err == nil {
		t.Errorf("Ping(full disk) = nil, want an error")
	} else {
		t.Log(err)
	}
}

// TestFSPingReadOnly checks that Ping fails once the blob directory takes no writes: a
// read-only remount as root, read-only modes otherwise.
func TestFSPingReadOnly(t *testing.T) {
	var dir string
	if os.Geteuid() == 0 {
		dir = tmpfs(t, "2m")
	} else {
		dir = t.TempDir()
	}
	s, err := store.NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping(writable) = %v, want nil", err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
			t.Fatalf("remounting %s read-only: %v: %s", dir, err, out)
		}
	} else {
		var dirs []string
		_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for _, d := range dirs {
			if err := os.Chmod(d, 0o555); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(d, 0o755) })
		}
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Errorf("Ping(read-only directory) = nil, want an error")
	} else {
		t.Log(err)
	}
}
