package gobuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Env is the environment every compile runs in, besides the platform's variables. It is
// the whole environment: nothing of the server's own (no credentials, no SLIPWAY_*) reaches
// the compiler.
type Env struct {
	Cache    string // GOCACHE, shared by all builds
	ModCache string // GOMODCACHE, shared by all builds
	Proxy    string // GOPROXY; default DefaultProxy
	SumDB    string // GOSUMDB; default DefaultSumDB
	Private  string // GOPRIVATE
	// CacheProg is GOCACHEPROG, a command line the go command runs to keep its build
	// cache (builder/gocache); empty for the go command's own cache in Cache. The go
	// command still needs Cache then, for the little it keeps outside the program.
	CacheProg string
}

// The module proxy and checksum database of an Env that names none.
const (
	DefaultProxy = "https://proxy.golang.org,direct"
	DefaultSumDB = "sum.golang.org"
)

// CompileSpec is one compile: one module, one main package, one platform.
//
// The compile may write only beneath the directory of Out, Temp, and the Env's caches
// (see Toolchain.Sandbox); Dir is read-only to it.
type CompileSpec struct {
	Dir      string   // the module root
	Main     string   // the main package, "." or "./cmd/x"
	Platform Platform //
	Ldflags  []string // from RenderLdflags
	Out      string   // where the binary goes
	Temp     string   // a scratch directory for the compiler (HOME, TMPDIR)
	Timeout  time.Duration
	MaxSize  int64 // the largest binary accepted
}

// Compile runs `go build` for one platform. Its output goes to log as it comes. A failed
// compile is a *CompileError carrying the compiler's output; a compile past its timeout
// is killed, with its whole process group, and returns ErrTimeout; a compile that ran out
// of disk (or of inodes) returns ErrNoSpace, never a *CompileError.
//
// The go command and everything it starts run in the sandbox Toolchain.Sandbox names,
// which lets them write only the directory of spec.Out, spec.Temp and env's caches.
// spec.Ldflags are checked again as RenderLdflags checks them.
func (tc *Toolchain) Compile(ctx context.Context, spec CompileSpec, env Env, log io.Writer) error {
	if err := checkLinkerArgs(spec.Ldflags); err != nil {
		return err
	}
	return tc.compile(ctx, spec, env, log, hostSandbox())
}

// compile is Compile in the sandbox sb, with spec.Ldflags as they are.
func (tc *Toolchain) compile(ctx context.Context, spec CompileSpec, env Env, log io.Writer, sb sandbox) error {
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, spec.Timeout)
		defer cancel()
	}
	ldflags, err := joinLdflags(append([]string{"-s", "-w", "-buildid="}, spec.Ldflags...))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLdflags, err)
	}
	// The go command resolves -o from its working directory, spec.Dir; Compile reads
	// the binary from its own. One absolute path serves both.
	out, err := filepath.Abs(spec.Out)
	if err != nil {
		return fmt.Errorf("compiling %s: %w", spec.Platform, err)
	}
	dirs, err := newCompileDirs(out, spec.Temp, env)
	if err != nil {
		return noSpace(fmt.Errorf("compiling %s: %w", spec.Platform, err))
	}
	tail := &tailBuffer{max: 64 << 10}
	cmd := tc.command(ctx, spec, env, ldflags, out, io.MultiWriter(tail, log))
	if sb.kind == sandboxUID {
		if err := sb.prepare(spec.Dir, dirs); err != nil {
			return fmt.Errorf("compiling %s: preparing the sandbox: %w", spec.Platform, err)
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(sb.uid), Gid: uint32(sb.gid), Groups: []uint32{}}
	}
	err = runConfined(cmd, sb, dirs, spec.Platform)
	return compileResult(ctx, spec, out, dirs, tail, err)
}

// command is the go build of spec, writing the binary at out and its output to w, in the
// environment compileEnv builds.
func (tc *Toolchain) command(ctx context.Context, spec CompileSpec, env Env, ldflags, out string, w io.Writer) *exec.Cmd {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, spec.Main}
	cmd := exec.CommandContext(ctx, tc.goBin, args...)
	cmd.Dir = spec.Dir
	cmd.Env = tc.compileEnv(spec, env)
	// The compiler and everything it starts share one process group, killed as one.
	cmd.SysProcAttr = processGroupAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout, cmd.Stderr = w, w
	return cmd
}

// runConfined runs cmd in the sandbox sb, which may write only dirs.
//
// The go command starts from a goroutine locked to a thread of its own, which the
// Landlock sandbox confines (a thread's domain is inherited by the processes it starts,
// and by nothing else in slipway). The thread is never unlocked: it ends with the
// goroutine, its domain with it. It also outlives the child, as Pdeathsig needs: the
// signal comes when the thread that started the child ends, not the process.
func runConfined(cmd *exec.Cmd, sb sandbox, dirs compileDirs, platform Platform) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if sb.kind == sandboxLandlock {
			if err := restrictThread(sb.abi, dirs.all()); err != nil {
				done <- fmt.Errorf("compiling %s: entering the Landlock sandbox: %w", platform, err)
				return
			}
		}
		done <- cmd.Run()
	}()
	return <-done
}

// compileResult is what a compile that ran and ended with err returns: ErrTimeout past
// its deadline, ErrNoSpace on a full disk, a *CompileError when the go command failed
// or the binary is too large.
func compileResult(ctx context.Context, spec CompileSpec, out string, dirs compileDirs, tail *tailBuffer, err error) error {
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: compiling %s took longer than %s", ErrTimeout, spec.Platform, spec.Timeout)
		}
		return ctx.Err()
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return goBuildFailed(spec.Platform, strings.TrimSpace(tail.String()), dirs)
	case err != nil:
		return noSpace(fmt.Errorf("running go build for %s: %w", spec.Platform, err))
	}
	fi, err := os.Stat(out)
	if err != nil {
		return fmt.Errorf("go build for %s wrote no binary: %w", spec.Platform, err)
	}
	if spec.MaxSize > 0 && fi.Size() > spec.MaxSize {
		return &CompileError{Platform: spec.Platform.String(),
			Output: fmt.Sprintf("the binary is %d bytes, over the limit of %d", fi.Size(), spec.MaxSize)}
	}
	return nil
}

// goBuildFailed is the error of a go command that exited with output: ErrNoSpace when
// the output or the disk says the disk is full, else a *CompileError.
func goBuildFailed(p Platform, output string, dirs compileDirs) error {
	if line := noSpaceLine(output); line != "" {
		return fmt.Errorf("%w: compiling %s: %s", ErrNoSpace, p, line)
	}
	if dir := fullDir(dirs.all()); dir != "" {
		return fmt.Errorf("%w: compiling %s: %s is (nearly) full", ErrNoSpace, p, dir)
	}
	return &CompileError{Platform: p.String(), Output: output}
}

// compileDirs are the directories a compile may write, as absolute paths: its own (the
// directory of the binary, and the scratch directory) and the caches all builds share.
type compileDirs struct {
	own, shared []string
}

func (d compileDirs) all() []string { return append(slices.Clip(d.own), d.shared...) }

// newCompileDirs returns a compile's writable directories, creating any that is missing.
func newCompileDirs(out, temp string, env Env) (compileDirs, error) {
	var dirs compileDirs
	for i, d := range []string{filepath.Dir(out), temp, env.Cache, env.ModCache} {
		if d == "" {
			continue
		}
		d, err := filepath.Abs(d)
		if err != nil {
			return compileDirs{}, err
		}
		if err := os.MkdirAll(d, 0o750); err != nil {
			return compileDirs{}, err
		}
		if i < 2 {
			dirs.own = append(dirs.own, d)
		} else {
			dirs.shared = append(dirs.shared, d)
		}
	}
	return dirs, nil
}

// noSpaceRE matches the go command's and its tools' reports of a full filesystem: an
// error from the system that ends a line, as "write $WORK/b001/_pkg_.a: no space left
// on device". A compiler's message about the source starts with a position and ends
// with its own words, so a file name the source chooses (//line can set any) does not
// end a line this way; a source that still managed it would only have its build retried.
var noSpaceRE = regexp.MustCompile(`(?m)^.*: (?:no space left on device|disk quota exceeded)$`)

// noSpaceLine returns the first line of output that reports a full filesystem, or "".
func noSpaceLine(output string) string {
	return strings.TrimSpace(noSpaceRE.FindString(output))
}

// noSpace wraps ErrNoSpace around err when err is a full filesystem's.
func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// minFree is the free space below which a failed compile is blamed on the disk.
const minFree = 1 << 20

// fullDir returns the first of dirs whose filesystem has less than minFree bytes, or no
// inodes, free for unprivileged users; "" when none (or when that is unknown).
func fullDir(dirs []string) string {
	for _, d := range dirs {
		if bytes, inodes, ok := diskFree(d); ok && (bytes < minFree || inodes == 0) {
			return d
		}
	}
	return ""
}

// compileEnv builds the compiler's environment from nothing.
func (tc *Toolchain) compileEnv(spec CompileSpec, env Env) []string {
	proxy, sumdb := env.Proxy, env.SumDB
	if proxy == "" {
		proxy = DefaultProxy
	}
	if sumdb == "" {
		sumdb = DefaultSumDB
	}
	e := []string{
		"PATH=" + filepath.Dir(tc.goBin) + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + spec.Temp,
		"TMPDIR=" + spec.Temp,
		"GOENV=off",
		"GOTOOLCHAIN=local",
		"GOWORK=off",
		"GOFLAGS=-mod=readonly",
		"CGO_ENABLED=0",
		"GOCACHE=" + env.Cache,
		"GOMODCACHE=" + env.ModCache,
		"GOPATH=" + filepath.Join(spec.Temp, "gopath"),
		"GOPROXY=" + proxy,
		"GOSUMDB=" + sumdb,
	}
	if env.Private != "" {
		e = append(e, "GOPRIVATE="+env.Private)
	}
	if env.CacheProg != "" {
		e = append(e, "GOCACHEPROG="+env.CacheProg)
	}
	return append(e, spec.Platform.Env()...)
}

// joinLdflags quotes the linker arguments into one -ldflags value that the go command
// splits (splitQuoted) back into exactly args. An argument is quoted when it is empty or
// holds a space, a quote or anything but ASCII (the go command trims Unicode white space
// off the whole value, which a quoted last argument keeps); one holding both kinds of
// quote cannot be passed.
func joinLdflags(args []string) (string, error) {
	quoted := make([]string, len(args))
	for i, a := range args {
		switch {
		case a != "" && !strings.ContainsFunc(a, func(r rune) bool {
			return r > 0x7e || r < 0x21 || r == '\'' || r == '"'
		}):
			quoted[i] = a
		case !strings.Contains(a, "'"):
			quoted[i] = "'" + a + "'"
		case !strings.Contains(a, `"`):
			quoted[i] = `"` + a + `"`
		default:
			return "", fmt.Errorf("linker argument %q holds both kinds of quote", a)
		}
	}
	return strings.Join(quoted, " "), nil
}

// Sandbox describes how compiles are confined on this machine: "landlock ABI 7" (the
// go command may write only the compile's own directories and the caches), "uid 65534"
// (no Landlock, so slipway, running as root, runs the go command as that user, which can
// write only what Compile hands to it), or "none" (neither: compiles run unconfined, as
// slipway's own user). A worker logs it once at start.
func (tc *Toolchain) Sandbox() string { return hostSandbox().String() }

// SandboxUser returns the user and group compiles run as when the sandbox is a user of
// its own ("uid 65534"); ok is false otherwise (Landlock, or none), when compiles run as
// slipway's own user. What a compile must reach (a cache program's socket) must be
// reachable by that user.
func (tc *Toolchain) SandboxUser() (uid, gid int, ok bool) {
	sb := hostSandbox()
	return sb.uid, sb.gid, sb.kind == sandboxUID
}

type sandboxKind int

const (
	sandboxNone sandboxKind = iota
	sandboxLandlock
	sandboxUID
)

// sandbox is how one compile is confined.
type sandbox struct {
	kind     sandboxKind
	abi      int // the Landlock ABI version, for sandboxLandlock
	uid, gid int // for sandboxUID
}

func (s sandbox) String() string {
	switch s.kind {
	case sandboxLandlock:
		return fmt.Sprintf("landlock ABI %d", s.abi)
	case sandboxUID:
		return fmt.Sprintf("uid %d", s.uid)
	}
	return "none"
}

// nobody is the user and group a compile runs as without Landlock, when slipway is root.
const nobody = 65534

// hostSandbox returns the best sandbox this machine offers: Landlock, or else (as root)
// a user of its own, or else none.
var hostSandbox = sync.OnceValue(func() sandbox {
	if abi := landlockABI(); abi > 0 {
		return sandbox{kind: sandboxLandlock, abi: abi}
	}
	if os.Geteuid() == 0 {
		return sandbox{kind: sandboxUID, uid: nobody, gid: nobody}
	}
	return sandbox{}
})

// sharedOwned records the shared directories (the caches) already handed to a sandbox
// user in this process.
var sharedOwned struct {
	sync.Mutex
	done map[string]bool
}

// prepare hands a compile's directories to the sandbox user, for a compile that runs as
// that user. The compile's own directories (new for each compile) become the user's;
// so do the caches, walked once per process and only while a cache's top directory is
// not the user's yet, so before any compile as the user could have put a link in it.
// The directories leading to them, and to the source dir, gain others' search permission
// (x, not r), and the source dir others' read permission: the source's files are
// extracted readable by all. The caches are shared by every build, with Landlock as
// without: what one build writes there, the next one reads.
func (s sandbox) prepare(src string, dirs compileDirs) error {
	for _, d := range dirs.own {
		if err := s.chownTree(d); err != nil {
			return err
		}
	}
	sharedOwned.Lock()
	defer sharedOwned.Unlock()
	if sharedOwned.done == nil {
		sharedOwned.done = map[string]bool{}
	}
	for _, d := range dirs.shared {
		if sharedOwned.done[d] {
			continue
		}
		if err := s.chownTreeUnlessOwned(d); err != nil {
			return err
		}
		sharedOwned.done[d] = true
	}
	for _, d := range dirs.all() {
		if err := grantSearch(filepath.Dir(d)); err != nil {
			return err
		}
	}
	if src == "" {
		return nil
	}
	src, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	if err := grantMode(src, 0o005); err != nil {
		return err
	}
	return grantSearch(filepath.Dir(src))
}

func (s sandbox) chownTreeUnlessOwned(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == s.uid {
		return nil
	}
	return s.chownTree(dir)
}

// chownTree gives dir and everything in it to the sandbox user; links are not followed.
func (s sandbox) chownTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, s.uid, s.gid)
	})
}

// grantSearch adds others' search permission to dir and every directory above it.
func grantSearch(dir string) error {
	for {
		if err := grantMode(dir, 0o001); err != nil {
			return err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

// grantMode adds the permission bits perm to dir's, if it lacks any.
func grantMode(dir string, perm os.FileMode) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&perm == perm {
		return nil
	}
	return os.Chmod(dir, fi.Mode().Perm()|perm|fi.Mode()&(os.ModeSticky|os.ModeSetgid|os.ModeSetuid))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
