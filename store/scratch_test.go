package store_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/slipway/slipway/store"
)

const (
	envHelperMode = "SLIPWAY_TEST_SCRATCH_HELPER" // claim or put
	envHelperDir  = "SLIPWAY_TEST_SCRATCH_DIR"
)

// TestScratchHelperProcess is not a test: it is the other process of the tests below.
// Mode "claim" claims a scratch directory and writes a file in it; mode "put" opens a
// filesystem store and starts a put that never finishes. Either prints one line when its
// file is on disk and then holds on until its stdin closes or it is killed.
func TestScratchHelperProcess(t *testing.T) {
	mode, dir := os.Getenv(envHelperMode), os.Getenv(envHelperDir)
	if mode == "" {
		return
	}
	switch mode {
	case "claim":
		s, err := store.ClaimScratch(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(s.Path(), "upload.spool"), []byte("partial upload"), 0o600); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(s.Path())
		_, _ = io.Copy(io.Discard, os.Stdin)
		s.Close()
	case "put":
		s, err := store.NewFS(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		started := make(chan struct{})
		go s.Put(context.Background(), "blobs/never", &stallingReader{started: started}, "")
		<-started
		fmt.Println(os.Getpid())
		_, _ = io.Copy(io.Discard, os.Stdin)
	}
	os.Exit(0)
}

// stallingReader yields one chunk, then blocks forever on its second read, by when the
// first chunk has been written out.
type stallingReader struct {
	started chan struct{}
	reads   int
}

func (r *stallingReader) Read(p []byte) (int, error) {
	r.reads++
	if r.reads == 1 {
		return copy(p, "the first part of a blob"), nil
	}
	close(r.started)
	select {}
}

// helper is a running TestScratchHelperProcess.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	line  string // what it printed once ready
}

func startHelper(t *testing.T, mode, dir string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestScratchHelperProcess$")
	cmd.Env = append(os.Environ(), envHelperMode+"="+mode, envHelperDir+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, stdin: stdin}
	t.Cleanup(h.kill)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	h.line = strings.TrimSpace(line)
	if err != nil || strings.HasPrefix(h.line, "error:") {
		t.Fatalf("helper process (%s): %q, %v", mode, h.line, err)
	}
	return h
}

// kill stops the helper with SIGKILL, as the OOM killer or a node failure would.
func (h *helper) kill() {
	if h.cmd.ProcessState != nil {
		return
	}
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

// TestClaimScratchSweepsDeadProcesses kills one process holding a scratch directory and
// leaves another alive: a new claim removes the dead one's files and none of the live
// one's, nor of claims in its own process, nor anything else in the directory.
func TestClaimScratchSweepsDeadProcesses(t *testing.T) {
	dir := t.TempDir()
	dead := startHelper(t, "claim", dir)
	live := startHelper(t, "claim", dir)
	other := filepath.Join(dir, "source-123.spool") // not a scratch directory
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*helper{dead, live} {
		if !exists(t, filepath.Join(h.line, "upload.spool")) {
			t.Fatalf("helper's file %s/upload.spool is missing", h.line)
		}
	}
	dead.kill()

	s, err := store.ClaimScratch(dir)
	if err != nil {
		t.Fatal(err)
	}
	if exists(t, dead.line) {
		t.Errorf("scratch directory of the killed process %s is still there", dead.line)
	}
	if swept, err := s.Swept(); err != nil || !slices.Equal(swept, []string{dead.line}) {
		t.Errorf("Swept() = %v, %v; want [%s]", swept, err, dead.line)
	}
	if !exists(t, filepath.Join(live.line, "upload.spool")) {
		t.Errorf("file of the live process was removed")
	}
	if !exists(t, other) {
		t.Errorf("%s, not a scratch directory, was removed", other)
	}
	if got := filepath.Base(s.Path()); !strings.HasPrefix(got, strconv.Itoa(os.Getpid())+"-") || filepath.Dir(s.Path()) != dir {
		t.Errorf("Path() = %s, want %s/<pid>-<random>", s.Path(), dir)
	}

	// A second claim in this process leaves the first alone: the lock is per open file.
	s2, err := store.ClaimScratch(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !exists(t, s.Path()) || s2.Path() == s.Path() {
		t.Errorf("second claim %s disturbed the first %s", s2.Path(), s.Path())
	}
	for _, sc := range []*store.Scratch{s, s2} {
		if err := sc.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		if exists(t, sc.Path()) {
			t.Errorf("Close() left %s", sc.Path())
		}
		if err := sc.Close(); err != nil {
			t.Errorf("second Close() = %v, want nil", err)
		}
	}
	if !exists(t, filepath.Join(live.line, "upload.spool")) {
		t.Errorf("file of the live process was removed")
	}
}

// TestFSSweepsTempFilesOfDeadProcess kills a process in the middle of a put to a
// filesystem store; the next NewFS on the same root removes its temporary file and
// leaves the one of a put still running in another process.
func TestFSSweepsTempFilesOfDeadProcess(t *testing.T) {
	root := t.TempDir()
	dead := startHelper(t, "put", root)
	live := startHelper(t, "put", root)
	if got := tempFiles(t, root); len(got) != 2 {
		t.Fatalf("temporary files while two puts run = %v, want 2", got)
	}
	dead.kill()

	s, err := store.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := tempFiles(t, root)
	if len(got) != 1 || !strings.Contains(got[0], "/"+live.line+"-") {
		t.Errorf("temporary files after a restart = %v, want only the live process's (pid %s)", got, live.line)
	}
}

// tempFiles lists the files named put-* under root/.tmp.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(root, ".tmp"), func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.HasPrefix(e.Name(), "put-") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
