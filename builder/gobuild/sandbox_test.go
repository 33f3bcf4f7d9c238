package gobuild

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests in this file are internal, to choose the sandbox; buildertest imports
// gobuild, so the toolchain is loaded here.

var (
	testTCOnce sync.Once
	testTC     *Toolchain
	testGoEnv  Env
	testTCErr  error
)

// testToolchain returns the installed toolchain and the test machine's caches, with the
// network off.
func testToolchain(t *testing.T) (*Toolchain, Env) {
	t.Helper()
	testTCOnce.Do(func() {
		testTC, testTCErr = LoadToolchain(context.Background(), "go")
		if testTCErr != nil {
			return
		}
		var out []byte
		out, testTCErr = exec.Command("go", "env", "GOCACHE", "GOMODCACHE").Output()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if testTCErr == nil && len(lines) == 2 {
			testGoEnv = Env{Cache: lines[0], ModCache: lines[1], Proxy: "off", SumDB: "off"}
		}
	})
	if testTCErr != nil {
		t.Fatal(testTCErr)
	}
	return testTC, testGoEnv
}

// printVersion is a main package that needs only the runtime (quick to build cold).
const printVersion = "package main\n\nvar version = \"dev\"\n\nfunc main() { println(version) }\n"

// testModule writes a module with main.go into dir.
func testModule(t *testing.T, dir, main string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/sandboxed\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testSandboxes returns the sandboxes this machine can test: the host's, and, as root,
// the separate user too.
func testSandboxes(t *testing.T) []sandbox {
	var sbs []sandbox
	if host := hostSandbox(); host.kind != sandboxNone {
		sbs = append(sbs, host)
	}
	if os.Geteuid() == 0 && hostSandbox().kind != sandboxUID {
		sbs = append(sbs, sandbox{kind: sandboxUID, uid: nobody, gid: nobody})
	}
	if len(sbs) == 0 {
		t.Skip("no sandbox to test: Landlock is not available and the test does not run as root")
	}
	return sbs
}

// TestCompileSandbox compiles in each sandbox the machine has: a compile into its own
// work dir succeeds; one whose linker is told to write another file (standing for a
// binary in the blob store, as the ldflags of issue #11 did) fails and leaves that file as
// it was; and a go command that tries to write outside its directories is refused each
// time, while its compile still succeeds.
func TestCompileSandbox(t *testing.T) {
	tc, env := testToolchain(t)
	p, _ := ParsePlatform("linux/amd64")
	for _, sb := range testSandboxes(t) {
		t.Run(sb.String(), func(t *testing.T) {
			env := env
			if sb.kind == sandboxUID {
				// The user gets the caches it writes: not the test machine's.
				env.Cache, env.ModCache = filepath.Join(t.TempDir(), "cache"), filepath.Join(t.TempDir(), "modcache")
			}
			blobs := t.TempDir()
			victim := filepath.Join(blobs, "sha256-binary")
			if err := os.WriteFile(victim, []byte("another app's binary"), 0o644); err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			src := filepath.Join(work, "src")
			testModule(t, src, printVersion)
			spec := func(platform string, ldflags ...string) CompileSpec {
				return CompileSpec{Dir: src, Main: ".", Platform: p, Ldflags: ldflags,
					Out: filepath.Join(work, "out", platform, "app"), Temp: filepath.Join(work, "tmp", platform), Timeout: 2 * time.Minute}
			}
			unchanged := func() {
				t.Helper()
				if got, err := os.ReadFile(victim); err != nil || string(got) != "another app's binary" {
					t.Errorf("the file outside the sandbox changed: now %d bytes (%v)", len(got), err)
				}
				if ents, _ := os.ReadDir(blobs); len(ents) != 1 {
					t.Errorf("the directory outside the sandbox now holds %d entries", len(ents))
				}
			}

			start := time.Now()
			var log bytes.Buffer
			s := spec("ok", "-X", "main.version=1.2.3")
			if err := tc.compile(context.Background(), s, env, &log, sb); err != nil {
				t.Fatalf("compile into the work dir = %v\n%s", err, log.String())
			}
			if out, err := exec.Command(s.Out).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "1.2.3" {
				t.Errorf("the binary printed %q, %v; want 1.2.3", out, err)
			}
			t.Logf("compile in %s: %s", sb, time.Since(start).Round(time.Millisecond))

			log.Reset()
			err := tc.compile(context.Background(), spec("escape", "-X", "main.version=x", "-o", victim), env, &log, sb)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Errorf("compile with the linker's -o outside = %v, want a CompileError\n%s", err, log.String())
			}
			unchanged()

			// A go command that tries to write outside, then builds.
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			fake := filepath.Join(dir, "go")
			script := "#!/bin/sh\n" +
				"try() { if \"$@\" 2>/dev/null; then echo \"allowed: $*\"; fi; }\n" +
				"if [ \"$1\" = build ]; then\n" +
				"try sh -c 'echo pwned > " + victim + "'\n" +
				"try sh -c 'echo pwned >> " + victim + "'\n" +
				"try truncate -s 0 " + victim + "\n" +
				"try rm -f " + victim + "\n" +
				"try mv " + victim + " " + victim + ".moved\n" +
				"try touch " + filepath.Join(blobs, "new") + "\n" +
				"try mkdir " + filepath.Join(blobs, "dir") + "\n" +
				"try ln -s /etc/passwd " + filepath.Join(blobs, "link") + "\n" +
				"try mkfifo " + filepath.Join(blobs, "fifo") + "\n" +
				"try touch " + filepath.Join(src, "planted.go") + "\n" +
				"fi\n" +
				"exec " + tc.Path() + " \"$@\"\n"
			if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			wrapped, err := LoadToolchain(context.Background(), fake)
			if err != nil {
				t.Fatal(err)
			}
			log.Reset()
			if err := wrapped.compile(context.Background(), spec("wrapped"), env, &log, sb); err != nil {
				t.Errorf("compile through the go command that tries to escape = %v\n%s", err, log.String())
			}
			if strings.Contains(log.String(), "allowed:") {
				t.Errorf("the sandbox let the go command write outside:\n%s", log.String())
			}
			if _, err := os.Stat(filepath.Join(src, "planted.go")); err == nil {
				t.Errorf("the go command wrote into the source dir")
			}
			unchanged()
		})
	}
}

// TestCompileRefusesUncheckedLdflags: Compile checks spec.Ldflags as RenderLdflags
// does, before it runs anything.
func TestCompileRefusesUncheckedLdflags(t *testing.T) {
	tc, env := testToolchain(t)
	p, _ := ParsePlatform("linux/amd64")
	dir := t.TempDir()
	for _, ld := range [][]string{{"-o", filepath.Join(dir, "x")}, {"-X", `main.v=a" -o /x "`}, {"-X", "@main.v=x"}, {"-extld=/bin/sh"}} {
		err := tc.Compile(context.Background(), CompileSpec{Dir: dir, Main: ".", Platform: p, Ldflags: ld,
			Out: filepath.Join(dir, "out"), Temp: dir}, env, nil)
		if !errors.Is(err, ErrLdflags) {
			t.Errorf("Compile(Ldflags %q) = %v, want ErrLdflags", ld, err)
		}
	}
}

// TestCompileNoSpace fills a small tmpfs holding the binary's directory and the scratch
// directory: the compile returns ErrNoSpace, not a CompileError.
func TestCompileNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	tc, env := testToolchain(t)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	src := t.TempDir()
	testModule(t, src, printVersion)
	p, _ := ParsePlatform("linux/amd64")
	spec := CompileSpec{Dir: src, Main: ".", Platform: p, Out: filepath.Join(mnt, "out", "app"),
		Temp: filepath.Join(mnt, "tmp"), Timeout: 2 * time.Minute}
	for _, d := range []string{filepath.Dir(spec.Out), spec.Temp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(filepath.Join(mnt, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	if d := fullDir([]string{mnt}); d != mnt {
		t.Errorf("fullDir(%s) = %q, want it full", mnt, d)
	}
	var log bytes.Buffer
	err = tc.Compile(context.Background(), spec, env, &log)
	var ce *CompileError
	if !errors.Is(err, ErrNoSpace) || errors.As(err, &ce) {
		t.Errorf("Compile on a full disk = %v, want ErrNoSpace and no CompileError\n%s", err, log.String())
	}
	t.Logf("Compile on a full disk = %v", err)
}

func TestNoSpaceLine(t *testing.T) {
	for _, tc := range []struct{ output, want string }{
		{"# example.com/x\n/usr/local/go/pkg/tool/linux_amd64/link: write $WORK/b001/exe/a.out: no space left on device\n",
			"/usr/local/go/pkg/tool/linux_amd64/link: write $WORK/b001/exe/a.out: no space left on device"},
		{"go: creating work dir: mkdir /w/tmp/go-build1: no space left on device", "go: creating work dir: mkdir /w/tmp/go-build1: no space left on device"},
		{"open /c/ab/x-d: disk quota exceeded\n", "open /c/ab/x-d: disk quota exceeded"},
		{"./main.go:3:2: undefined: x", ""},
		{"no space left on device:1:2: undefined: x", ""},
		{"./main.go:1:1: expected 'package', found no space left on device", ""},
	} {
		if got := noSpaceLine(tc.output); got != tc.want {
			t.Errorf("noSpaceLine(%q) = %q, want %q", tc.output, got, tc.want)
		}
	}
}
