package builder_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/gobuild"
)

// fakeCompiler stands in for the Go toolchain: each platform's compile does what its
// function in compile says (a platform without one succeeds at once); calls holds the
// platform of every compile so far, and a function is told how many there were.
type fakeCompiler struct {
	compile map[string]func(ctx context.Context, call int, spec gobuild.CompileSpec) error
	calls   chan string
}

func (f *fakeCompiler) Compile(ctx context.Context, spec gobuild.CompileSpec, _ gobuild.Env, log io.Writer) error {
	p := spec.Platform.String()
	fmt.Fprintf(log, "fake compile of %s\n", spec.Main)
	f.calls <- p
	fn, ok := f.compile[p]
	if !ok {
		return os.WriteFile(spec.Out, []byte("not a binary"), 0o755)
	}
	return fn(ctx, len(f.calls), spec)
}

func (f *fakeCompiler) Version() string     { return "go1.26.0" }
func (f *fakeCompiler) ZoneinfoZip() string { return "" }

// waitCanceled is a compile that runs until it is canceled, after saying it started.
func waitCanceled(started chan<- struct{}) func(context.Context, int, gobuild.CompileSpec) error {
	return func(ctx context.Context, _ int, _ gobuild.CompileSpec) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}
}

// TestPipelineFakeCompiler runs builds on a worker whose compiler is a fake: the failure
// a build reports is the one that caused it, a fault of the infrastructure is retried,
// and a cancel stops a compile in progress.
func TestPipelineFakeCompiler(t *testing.T) {
	const amd64, arm64 = "linux/amd64", "linux/arm64"
	type compileFunc = func(context.Context, int, gobuild.CompileSpec) error
	for _, tc := range []struct {
		name      string
		platforms []string
		compile   func(started chan struct{}) map[string]compileFunc
		cancel    bool // cancel the build once a compile started
		status    builder.Status
		reason    builder.Reason
		platform  string
		detail    string
		log       string
	}{
		{
			name:      "a compile error stops the other platform and is what the build reports",
			platforms: []string{amd64, arm64},
			compile: func(started chan struct{}) map[string]compileFunc {
				return map[string]compileFunc{
					amd64: waitCanceled(started),
					arm64: func(ctx context.Context, _ int, spec gobuild.CompileSpec) error {
						select {
						case <-started:
						case <-ctx.Done():
						}
						return &gobuild.CompileError{Platform: spec.Platform.String(), Output: "./main.go:3:1: syntax error"}
					},
				}
			},
			status: builder.StatusFailed, reason: builder.ReasonCompileFailed, platform: arm64,
			detail: "./main.go:3:1: syntax error",
		},
		{
			name:      "one platform compiles, the other fails",
			platforms: []string{amd64, arm64},
			compile: func(chan struct{}) map[string]compileFunc {
				return map[string]compileFunc{
					amd64: func(context.Context, int, gobuild.CompileSpec) error {
						return &gobuild.CompileError{Platform: amd64, Output: "undefined: x"}
					},
				}
			},
			status: builder.StatusFailed, reason: builder.ReasonCompileFailed, platform: amd64, detail: "undefined: x",
		},
		{
			name:      "a timeout",
			platforms: []string{amd64},
			compile: func(chan struct{}) map[string]compileFunc {
				return map[string]compileFunc{
					amd64: func(context.Context, int, gobuild.CompileSpec) error {
						return fmt.Errorf("%w: compiling %s took longer than 1ms", gobuild.ErrTimeout, amd64)
					},
				}
			},
			status: builder.StatusFailed, reason: builder.ReasonTimeout, platform: amd64,
			detail: "build timed out: compiling linux/amd64 took longer than 1ms",
		},
		{
			name:      "a full disk is retried; the source's error after it is reported",
			platforms: []string{amd64},
			compile: func(chan struct{}) map[string]compileFunc {
				return map[string]compileFunc{
					amd64: func(_ context.Context, call int, _ gobuild.CompileSpec) error {
						if call == 1 {
							return fmt.Errorf("%w: compiling %s", gobuild.ErrNoSpace, amd64)
						}
						return &gobuild.CompileError{Platform: amd64, Output: "undefined: y"}
					},
				}
			},
			status: builder.StatusFailed, reason: builder.ReasonCompileFailed, platform: amd64, detail: "undefined: y",
			log: "the worker's disk is full; trying again",
		},
		{
			name:      "a cancel stops the compile",
			platforms: []string{amd64},
			compile: func(started chan struct{}) map[string]compileFunc {
				return map[string]compileFunc{amd64: waitCanceled(started)}
			},
			cancel: true,
			status: builder.StatusCanceled, reason: builder.ReasonCanceled, detail: "canceled while running",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, fsBlobs(t))
			started := make(chan struct{})
			fake := &fakeCompiler{compile: tc.compile(started), calls: make(chan string, 16)}
			r.workerWith(fake, builder.WorkerOptions{Concurrency: 2, RetryMin: 10 * time.Millisecond, CancelPoll: 50 * time.Millisecond})
			b, _, err := r.submit("fake", builder.Request{App: builder.AppSettings{Platforms: tc.platforms}},
				buildertest.Module(t, "fake", map[string]string{"main.go": buildertest.HelloMain}))
			if err != nil {
				t.Fatal(err)
			}
			if tc.cancel {
				<-started
				if _, _, err := r.builds.Cancel(context.Background(), "fake", b.ID); err != nil {
					t.Fatal(err)
				}
			}
			b = r.wait("fake", b.ID, 30*time.Second)
			if b.Status != tc.status || b.Error == nil {
				t.Fatalf("build = %s %+v, want %s", b.Status, b.Error, tc.status)
			}
			if got := *b.Error; got.Reason != tc.reason || got.Platform != tc.platform || got.Detail != tc.detail {
				t.Errorf("build error = %+v, want %s %q %q", got, tc.reason, tc.platform, tc.detail)
			}
			if log := r.log("fake", b.ID); !strings.Contains(log, tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, log)
			}
			if b.GoVersion != fake.Version() {
				t.Errorf("GoVersion = %q, want the compiler's %q", b.GoVersion, fake.Version())
			}
		})
	}
}
