package gocache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/store"
)

// hotModule is the tiny module in a directory of its own, whose main.go and go.mod the
// test changes between builds.
type hotModule struct {
	t   *testing.T
	dir string
}

func newHotModule(t *testing.T) hotModule {
	m := hotModule{t, t.TempDir()}
	m.write("go.mod", "module example.com/tiny\n\ngo 1.22\n")
	m.write("main.go", tinyMain)
	return m
}

func (m hotModule) write(name, content string) {
	if err := os.WriteFile(filepath.Join(m.dir, name), []byte(content), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

// build compiles the module for linux/amd64 as a worker does (Server.Compile, done when
// the compile ends), waits for the server's work after it (Flush), and reports which
// cache it used.
func (m hotModule) build(s *Server) (hot bool) {
	m.t.Helper()
	hot = m.buildNoFlush(s)
	flush(m.t, s)
	return hot
}

// buildNoFlush is build without the wait for the server's work after the compile.
func (m hotModule) buildNoFlush(s *Server) (hot bool) {
	m.t.Helper()
	goCache, prog, done := s.Compile("tiny", m.dir, "linux/amd64")
	if (goCache == "") == (prog == "") {
		m.t.Fatalf("Compile = (%q, %q): want a GOCACHE or a program, not both or neither", goCache, prog)
	}
	out, err := compileTiny(m.t, m.dir, goCache, prog)
	done(err == nil)
	if err != nil {
		m.t.Fatalf("go build: %v\n%s", err, out)
	}
	return goCache != ""
}

// entries counts the go command's entries in a GOCACHE.
func entries(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, "-a") {
			n++
		}
		return nil
	})
	return n
}

// TestHotTier builds the tiny module on a worker with a hot tier, with the real go
// command: the first compile of a key goes through the cache program; once it succeeded,
// the next compiles of the key use the hot GOCACHE, which then holds everything they
// need (they build nothing but the changed package and the link); the entries they write
// reach the local tier and the blob store, checked; a change of go.mod is a new key, and
// so is a failed compile's key still cold; a trim of the hot tier, never while a compile
// uses it, makes its keys cold.
func TestHotTier(t *testing.T) {
	stores(t, func(t *testing.T, newBlobs func(t *testing.T) store.Blobs) {
		blobs := newBlobs(t)
		s := newServer(t, blobs, WithHotDir(filepath.Join(t.TempDir(), "hot")))
		m := newHotModule(t)
		if m.build(s) {
			t.Fatal("the first compile used the hot tier: want the cache program")
		}
		cold := countsOf(s)
		if cold.miss == 0 || cold.puts == 0 {
			t.Fatalf("first build: %+v; want misses and puts", cold)
		}
		gc := s.GoCacheDir(SharedNamespace)
		exported := entries(t, gc)
		if exported < int(cold.puts)-1 {
			t.Fatalf("the hot GOCACHE holds %d entries after the first build; want its %d puts", exported, cold.puts)
		}

		// Warm: the go command's own cache, with every entry it needs. The link's output
		// text is the only new entry.
		if !m.build(s) {
			t.Fatal("the second compile of the key went through the cache program: want the hot tier")
		}
		if n := entries(t, gc); n > exported+1 {
			t.Errorf("the warm build on the hot tier wrote %d entries; want at most the link's 1: it rebuilt what the first build had", n-exported)
		}
		if s.Stats().HotCompiles.Load() != 1 {
			t.Errorf("HotCompiles = %d, want 1", s.Stats().HotCompiles.Load())
		}

		// A change of the app's own code: still warm; the new package's entry goes to the
		// local tier and to the blob store, where a fresh worker finds it.
		m.write("main.go", strings.Replace(tinyMain, `"dev"`, `"changed"`, 1))
		before := s.Stats().Uploads.Load()
		if !m.build(s) {
			t.Fatal("a change of main.go made the key cold: want the hot tier")
		}
		if s.Stats().Uploads.Load() <= before {
			t.Error("the hot compile's new entries were not uploaded")
		}
		fresh := newServer(t, blobs, WithHotDir(filepath.Join(t.TempDir(), "hot")))
		if m.build(fresh) {
			t.Fatal("a fresh worker's first compile used the hot tier")
		}
		if got := countsOf(fresh); got.remote == 0 || got.miss > 1 {
			t.Errorf("fresh worker after the hot compile: %+v; want everything but the link from the blob store", got)
		}

		// go.mod changes: a new key, through the program. The compile right after it
		// (no Flush between) waits for the hot tier to be filled, and runs on it.
		m.write("go.mod", "module example.com/tiny\n\ngo 1.23\n")
		if m.buildNoFlush(s) {
			t.Error("a change of go.mod kept the key warm: want the cache program")
		}
		if !m.buildNoFlush(s) {
			t.Error("the compile right after the new key's first went through the program: want the hot tier")
		}
		flush(t, s)

		// A compile that failed leaves its key cold.
		m.write("go.mod", "module example.com/tiny\n\ngo 1.24\n")
		_, prog, done := s.Compile("tiny", m.dir, "linux/amd64")
		done(false)
		flush(t, s)
		if goCache, _, done := s.Compile("tiny", m.dir, "linux/amd64"); goCache != "" || prog == "" {
			t.Error("a failed compile's key became warm")
		} else {
			done(false)
		}

		// Another platform is another key.
		if goCache, _, done := s.Compile("tiny", m.dir, "linux/arm64"); goCache != "" {
			t.Error("linux/arm64 is warm after linux/amd64 builds only")
		} else {
			done(false)
		}

		// No trim touches the hot tier while a compile uses it; once none does, a trim
		// that removes files of the hot tier makes every key cold.
		m.write("go.mod", "module example.com/tiny\n\ngo 1.23\n")
		goCache, _, done := s.Compile("tiny", m.dir, "linux/amd64")
		if goCache == "" {
			t.Fatal("the warm key went through the program")
		}
		s.local.max, s.local.grace = 1, 0
		if _, _, err := s.local.trim(); err != nil {
			t.Fatal(err)
		}
		if n := entries(t, gc); n == 0 {
			t.Error("a trim emptied the hot tier while a compile used it")
		}
		done(true)
		flush(t, s)
		if _, _, err := s.local.trim(); err != nil {
			t.Fatal(err)
		}
		if n := entries(t, gc); n != 0 {
			t.Errorf("%d entries of the hot GOCACHE survived a trim to 1 byte", n)
		}
		if goCache, _, done := s.Compile("tiny", m.dir, "linux/amd64"); goCache != "" {
			t.Error("a key stayed warm after a trim emptied the hot tier")
		} else {
			done(false)
		}
	})
}

// TestHotTierRefusesOverlap: compiles write the hot tier, so it may not be the local
// tier or hold it, nor be inside it.
func TestHotTierRefusesOverlap(t *testing.T) {
	dir := t.TempDir()
	for _, hot := range []string{dir, filepath.Join(dir, "hot"), filepath.Dir(dir)} {
		if s, err := New(dir, nil, WithHotDir(hot)); err == nil {
			s.Close(context.Background())
			t.Errorf("New(%s, WithHotDir(%s)) = nil error; want the overlap refused", dir, hot)
		}
	}
}

// TestNativeEntry checks the go command's own entry format, both ways.
func TestNativeEntry(t *testing.T) {
	a, o := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	tm := time.Unix(1700000000, 123456789)
	b := nativeEntry(a, o, 4242, tm)
	if len(b) != 175 {
		t.Fatalf("entry of %d bytes, want the go command's 175: %q", len(b), b)
	}
	out, size, got, err := parseNativeEntry(b, a)
	if err != nil || out != o || size != 4242 || !got.Equal(tm) {
		t.Errorf("parseNativeEntry = %s %d %v %v", out, size, got, err)
	}
	for _, bad := range [][]byte{b[:174], nativeEntry(o, o, 1, tm), []byte(strings.Replace(string(b), "v1", "v2", 1))} {
		if _, _, _, err := parseNativeEntry(bad, a); err == nil {
			t.Errorf("parseNativeEntry(%q) = nil error", bad)
		}
	}
}

// TestHotTierUntrusted: compiles write the hot tier, so what the server reads there and
// writes there stays inside it. A FIFO where an entry should be does not hang the
// server; an entry whose output is a link out of the tier (to a file whose hash it names)
// is not taken; a directory replaced by a link out of the tier is not written through.
func TestHotTierUntrusted(t *testing.T) {
	s := newServer(t, nil, WithHotDir(filepath.Join(t.TempDir(), "hot")))
	gc := s.GoCacheDir(SharedNamespace)
	outside := t.TempDir()
	secret := []byte("not the build cache's\n")
	os.WriteFile(filepath.Join(outside, "secret"), secret, 0o600)
	sum := sha256.Sum256(secret)
	out := hex.EncodeToString(sum[:])
	fifoAction, linkAction, dirAction := "ab"+strings.Repeat("1", 62), "cd"+strings.Repeat("2", 62), "ef"+strings.Repeat("3", 62)
	for _, d := range []string{"ab", "cd", out[:2]} {
		os.MkdirAll(filepath.Join(gc, d), 0o755)
	}
	if err := syscall.Mkfifo(filepath.Join(gc, "ab", fifoAction+"-a"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(gc, "cd", linkAction+"-a"), nativeEntry(linkAction, out, int64(len(secret)), time.Now()), 0o644)
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(gc, out[:2], out+"-d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(gc, "ef")); err != nil {
		t.Fatal(err)
	}

	collected := make(chan struct{})
	go func() {
		s.collect(SharedNamespace, time.Now().Add(-time.Minute))
		close(collected)
	}()
	select {
	case <-collected:
	case <-time.After(time.Minute):
		t.Fatal("collect hung on what a compile left in the hot tier")
	}
	if _, _, ok := s.local.get(SharedNamespace, linkAction); ok || s.Stats().Puts.Load() != 0 {
		t.Errorf("collect took an entry whose output links out of the hot tier (%d puts)", s.Stats().Puts.Load())
	}

	body := []byte("an output")
	bsum := sha256.Sum256(body)
	if _, err := s.put(SharedNamespace, dirAction, bsum[:], body, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.export(SharedNamespace, []string{dirAction}); err == nil {
		t.Error("export wrote through a directory that links out of the hot tier")
	}
	files, _ := os.ReadDir(outside)
	if len(files) != 1 {
		t.Errorf("the directory outside the hot tier holds %d files, want only its own", len(files))
	}
}

// TestHotTierSandboxUser runs the go command as a user of its own, as slipway's "uid
// 65534" sandbox does on machines without Landlock, where the server, running as root,
// hands that user the socket and the hot tier: the first compile goes through the
// program, the next one reads and writes the hot tier as that user, and the server then
// takes what it wrote. It needs root, and a toolchain that user can run.
func TestHotTierSandboxUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the go command as another user")
	}
	const uid, gid = 65534, 65534
	tc, _ := buildertest.Toolchain(t)
	base := t.TempDir()
	// t.TempDir's directories are private to root: the user must reach inside.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	probe := exec.Command(tc.Path(), "version")
	probe.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("uid %d cannot run %s: %v %s", uid, tc.Path(), err, out)
	}
	// The cache program is this test binary (TestMain), copied where the user can run it.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(base, "prog")
	if err := os.WriteFile(prog, self, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := New(filepath.Join(base, "tier"), nil, WithHotDir(filepath.Join(base, "hot")), WithSandboxUser(uid, gid),
		WithProgram(prog, "gocacheprog"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	src, user := filepath.Join(base, "src"), filepath.Join(base, "user")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/tiny\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(tinyMain), 0o644)
	os.MkdirAll(user, 0o700)
	if err := os.Chown(user, uid, gid); err != nil {
		t.Fatal(err)
	}
	build := func() (hot bool) {
		t.Helper()
		goCache, prog, done := s.Compile("tiny", src, "linux/amd64")
		if goCache == "" {
			goCache = filepath.Join(user, "gocache")
		}
		cmd := exec.Command(tc.Path(), "build", "-trimpath", "-o", filepath.Join(user, "tiny"), ".")
		cmd.Dir = src
		cmd.Env = []string{"PATH=" + filepath.Dir(tc.Path()) + ":/usr/bin:/bin", "HOME=" + user, "TMPDIR=" + user,
			"GOCACHE=" + goCache, "GOCACHEPROG=" + prog, "GOMODCACHE=" + filepath.Join(user, "mod"),
			"GOPATH=" + filepath.Join(user, "gopath"), "GOENV=off", "GOTOOLCHAIN=local", "GOWORK=off",
			"GOPROXY=off", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
		out, err := cmd.CombinedOutput()
		done(err == nil)
		if err != nil {
			t.Fatalf("go build as uid %d (GOCACHE %s, GOCACHEPROG %q): %v\n%s", uid, goCache, prog, err, out)
		}
		flush(t, s)
		return prog == ""
	}
	if build() {
		t.Fatal("the first compile used the hot tier")
	}
	gc := s.GoCacheDir(SharedNamespace)
	fi, err := os.Stat(gc)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid {
		t.Errorf("the hot GOCACHE of the namespace belongs to uid %d, want the sandbox user's %d", st.Uid, uid)
	}
	exported := entries(t, gc)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(strings.Replace(tinyMain, `"dev"`, `"changed"`, 1)), 0o644)
	puts := s.Stats().Puts.Load()
	if !build() {
		t.Fatal("the second compile went through the program")
	}
	// The changed package's entries and the link's: a handful, where a compile that
	// found nothing would write the runtime's 60 and more.
	if n := entries(t, gc); n <= exported || n > exported+8 {
		t.Errorf("the hot compile as uid %d wrote %d entries; want the changed package's and the link's", uid, n-exported)
	}
	if s.Stats().Puts.Load() <= puts {
		t.Error("the server took nothing of what the hot compile wrote")
	}
}
