package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// GoEnv is the environment every compile runs in, besides the platform's variables. It is
// the whole environment: nothing of the server's own (no credentials, no SLIPWAY_*) reaches
// the compiler.
type GoEnv struct {
	Cache    string // GOCACHE, shared by all builds
	ModCache string // GOMODCACHE, shared by all builds
	Proxy    string // GOPROXY; default "https://proxy.golang.org,direct"
	SumDB    string // GOSUMDB; default "sum.golang.org"
	Private  string // GOPRIVATE
}

// CompileSpec is one compile: one module, one main package, one platform.
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
// is killed, with its whole process group, and returns ErrTimeout. spec.Ldflags are
// checked again as RenderLdflags checks them.
func (tc *Toolchain) Compile(ctx context.Context, spec CompileSpec, env GoEnv, log io.Writer) error {
	if err := checkLinkerArgs(spec.Ldflags); err != nil {
		return err
	}
	ldflags, err := joinLdflags(append([]string{"-s", "-w", "-buildid="}, spec.Ldflags...))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLdflags, err)
	}
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, spec.Timeout)
		defer cancel()
	}
	args := []string{"build", "-trimpath", "-buildvcs=false",
		"-ldflags", ldflags,
		"-o", spec.Out, spec.Main}
	cmd := exec.CommandContext(ctx, tc.goBin, args...)
	cmd.Dir = spec.Dir
	cmd.Env = tc.compileEnv(spec, env)
	// The compiler and everything it starts share one process group, killed as one.
	cmd.SysProcAttr = processGroupAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	tail := &tailBuffer{max: 64 << 10}
	out := io.MultiWriter(tail, log)
	cmd.Stdout, cmd.Stderr = out, out

	err = cmd.Run()
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: compiling %s took longer than %s", ErrTimeout, spec.Platform, spec.Timeout)
		}
		return ctx.Err()
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return &CompileError{Platform: spec.Platform.String(), Output: strings.TrimSpace(tail.String())}
		}
		return fmt.Errorf("running go build for %s: %w", spec.Platform, err)
	}
	fi, err := os.Stat(spec.Out)
	if err != nil {
		return fmt.Errorf("go build for %s wrote no binary: %w", spec.Platform, err)
	}
	if spec.MaxSize > 0 && fi.Size() > spec.MaxSize {
		return &CompileError{Platform: spec.Platform.String(),
			Output: fmt.Sprintf("the binary is %d bytes, over the limit of %d", fi.Size(), spec.MaxSize)}
	}
	return nil
}

// compileEnv builds the compiler's environment from nothing.
func (tc *Toolchain) compileEnv(spec CompileSpec, env GoEnv) []string {
	proxy, sumdb := env.Proxy, env.SumDB
	if proxy == "" {
		proxy = "https://proxy.golang.org,direct"
	}
	if sumdb == "" {
		sumdb = "sum.golang.org"
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
