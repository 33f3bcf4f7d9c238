package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/slipway/slipway/openapi"
)

// cliBuild runs `slipway build --follow --json` on the harness's checkout as a CI job
// would, from the start of the process to its exit, and returns the wall time and the
// build it printed. The log goes to stderr, which is kept to show on failure.
func (h *harness) cliBuild(b *testing.B, version string) (time.Duration, openapi.Build) {
	b.Helper()
	home := b.TempDir()
	cmd := exec.Command(slipwayBinary(b), "build", "--follow", "--json",
		"--app", h.app, "--version", version, "--url", h.srv.url, h.checkout)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + home}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("slipway build --follow: %v\n%s\n%s", err, stderr.Bytes(), h.srv.logTail())
	}
	var out struct {
		Build openapi.Build `json:"build"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		b.Fatalf("reading slipway build --json: %v\n%s", err, stdout.Bytes())
	}
	if out.Build.Status != openapi.BuildStatusSucceeded {
		b.Fatalf("build %s is %s\n%s", out.Build.Id, out.Build.Status, stderr.Bytes())
	}
	return took, out.Build
}

// afterCompile is the part of a build's run after its compile: from the last link's end
// to the build's end, as its timings tell (the whole run less queue, source and compile).
func afterCompile(bd openapi.Build) time.Duration {
	t := bd.Timings
	return ms(t.TotalMs) - ms(t.QueuedMs) - ms(t.SourceMs) - ms(t.CompileMs)
}

// BenchmarkBuildCLI compares, per iteration and side by side, a CI job's whole slipway
// build — the real `slipway build --follow` against the real `slipway serve`, from the
// command's start to its exit — with plain parallel go build of the same platforms. The
// fixture is the small HTTP service of BenchmarkImage (a ~6 MiB binary); each cache is
// warm and each iteration sets a new version, so both relink. From each build's own
// timings it also reports the image step (everything after the compile until the build
// succeeded) against the compile.
func BenchmarkBuildCLI(b *testing.B) {
	h := newHarnessFiles(b, "clibench", map[string]string{
		"go.mod":  "module example.com/clibench\n\ngo 1.22\n",
		"main.go": imageFixtureMain,
	})
	h.cliBuild(b, "0.0.1-warmup")
	h.plainParallel(b, "0.0.1-warmup")

	var cli, parallel, compile, after time.Duration
	var last openapi.Build
	n := 0
	for b.Loop() {
		version := fmt.Sprintf("1.0.%d", n)
		var c, p time.Duration
		var bd openapi.Build
		inTurn(n,
			func() { c, bd = h.cliBuild(b, version) },
			func() { p, _ = h.plainParallel(b, version) },
		)
		tm := bd.Timings
		b.Logf("iteration %d: slipway build --follow %v (queued %v, source %v, compile %v, after the compile %v; upload %v, image %v), "+
			"go build parallel %v; load average %s",
			n, c.Round(time.Millisecond), ms(tm.QueuedMs), ms(tm.SourceMs), ms(tm.CompileMs), afterCompile(bd),
			ms(tm.UploadMs), ms(tm.ImageMs), p.Round(time.Millisecond), loadAverage())
		cli += c
		parallel += p
		compile += ms(tm.CompileMs)
		after += afterCompile(bd)
		last = bd
		n++
	}
	b.ReportMetric(ratio(cli, parallel), "x_cli_vs_parallel")
	b.ReportMetric(ratio(after, compile), "x_after_compile_vs_compile")
	b.ReportMetric(ratio(compile, parallel), "x_compile_vs_parallel")
	mean := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(n) }
	b.ReportMetric(mean(cli), "cli_ms")
	b.ReportMetric(mean(parallel), "parallel_ms")
	b.ReportMetric(mean(compile), "compile_ms")
	b.ReportMetric(mean(after), "after_compile_ms")
	b.Logf("%d iterations, means: slipway build --follow %v (compile %v, after the compile %v), go build parallel %v; load average %s",
		n, cli/time.Duration(n), compile/time.Duration(n), after/time.Duration(n), parallel/time.Duration(n), loadAverage())
	b.Logf("the last build's log:\n%s", h.srv.buildLog(h.app, last.Id))
}
