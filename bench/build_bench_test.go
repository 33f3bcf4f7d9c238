package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
)

// fixtureMain is the benchmarks' program: a little more than hello world, with a couple
// of standard-library imports, and the version the linker sets through -X main.version.
const fixtureMain = `package main

import (
	"fmt"
	"os"
	"strings"
)

var version = "dev"

func main() {
	who := "world"
	if len(os.Args) > 1 {
		who = strings.Join(os.Args[1:], " ")
	}
	fmt.Printf("hello, %s, from version %s\n", who, version)
}
`

// fixtureFiles returns the fixture module example.com/<name>.
func fixtureFiles(name string) map[string]string {
	return map[string]string{
		"go.mod":  "module example.com/" + name + "\n\ngo 1.22\n",
		"main.go": fixtureMain,
	}
}

// platforms are the targets of every benchmark build: slipway's default pair.
var platforms = []string{"linux/amd64", "linux/arm64"}

// harness is a slipway server and, beside it, the same module checked out for plain go
// build, each with a GOCACHE of its own.
type harness struct {
	srv          *server
	app          string
	archive      []byte // the module as a tar.gz, for slipway
	checkout     string // the same files, for plain go build
	slipwayCache string
	plainCache   string
	plainModDir  string // GOMODCACHE; the module has no dependencies
	goBin        string
}

// newHarness starts a slipway server with app and checks the fixture out beside it.
func newHarness(b *testing.B, app string) *harness {
	b.Helper()
	return newHarnessFiles(b, app, fixtureFiles(app))
}

// newHarnessFiles is newHarness with the module's files given.
func newHarnessFiles(b *testing.B, app string, files map[string]string) *harness {
	b.Helper()
	h := &harness{app: app, slipwayCache: b.TempDir(), plainCache: b.TempDir(), plainModDir: b.TempDir(), checkout: b.TempDir()}
	h.srv = startServer(b, h.slipwayCache)
	h.srv.createApp(b, app, platforms)
	tc, _ := buildertest.Toolchain(b)
	h.goBin = tc.Path()
	h.archive = buildertest.Archive(b, files)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(h.checkout, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return h
}

// slipwayBuild posts the module as a build of version and polls until it has succeeded.
// It returns the time from the POST to seeing the build succeeded, the POST's share of
// it, the CPU time the server's go commands and the server itself used meanwhile, and
// the build.
func (h *harness) slipwayBuild(b *testing.B, version string) (total, post, goCPU, serverCPU time.Duration, build openapi.Build) {
	b.Helper()
	self0, children0, err := h.srv.cpuTime()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	code, queued, err := h.srv.submit(h.app, version, bytes.NewReader(h.archive), int64(len(h.archive)))
	post = time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if code != http.StatusAccepted {
		b.Fatalf("POST build of %s = %d, want 202 (a new build)", version, code)
	}
	build = h.srv.wait(b, h.app, queued.Id)
	total = time.Since(start)
	self1, children1, err := h.srv.cpuTime()
	if err != nil {
		b.Fatal(err)
	}
	return total, post, children1 - children0, self1 - self0, build
}

// resubmit posts the same module and version again; slipway must answer 200 with the
// earlier build. It returns the request's latency.
func (h *harness) resubmit(b *testing.B, version, wantID string) time.Duration {
	b.Helper()
	start := time.Now()
	code, build, err := h.srv.submit(h.app, version, bytes.NewReader(h.archive), int64(len(h.archive)))
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if code != http.StatusOK || !build.Deduplicated || build.Id != wantID {
		b.Fatalf("resubmitting %s = %d, deduplicated %t, build %s; want 200, true, %s", version, code, build.Deduplicated, build.Id, wantID)
	}
	return took
}

// plainBuild runs one go build as a CI script would, with the flags and the clean
// environment slipway's gobuild.Toolchain.Compile uses.
// It returns the CPU time the go command and its compilers and linker used.
func (h *harness) plainBuild(version, platform, out string) (time.Duration, error) {
	goos, goarch, _ := strings.Cut(platform, "/")
	tmp, err := os.MkdirTemp("", "plain-build")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(h.goBin, "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X main.version="+version,
		"-o", out, ".")
	cmd.Dir = h.checkout
	cmd.Env = []string{
		"PATH=" + filepath.Dir(h.goBin) + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + tmp,
		"TMPDIR=" + tmp,
		"GOENV=off",
		"GOTOOLCHAIN=local",
		"GOWORK=off",
		"GOFLAGS=-mod=readonly",
		"CGO_ENABLED=0",
		"GOCACHE=" + h.plainCache,
		"GOMODCACHE=" + h.plainModDir,
		"GOPATH=" + filepath.Join(tmp, "gopath"),
		"GOPROXY=off",
		"GOSUMDB=off",
		"GOOS=" + goos,
		"GOARCH=" + goarch,
	}
	output, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("go build for %s: %w\n%s", platform, err, output)
	}
	// The usage wait4 reports includes the descendants the go command waited for.
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// plainSequential builds every platform one after the other, as `go build; go build`.
// It returns the wall time and the CPU time.
func (h *harness) plainSequential(b *testing.B, version string) (wall, cpu time.Duration) {
	b.Helper()
	out := b.TempDir()
	start := time.Now()
	for _, p := range platforms {
		c, err := h.plainBuild(version, p, filepath.Join(out, filepath.Base(p), h.app))
		if err != nil {
			b.Fatal(err)
		}
		cpu += c
	}
	return time.Since(start), cpu
}

// plainParallel builds every platform at once, as slipway's worker does. It returns the
// wall time and the CPU time.
func (h *harness) plainParallel(b *testing.B, version string) (wall, cpu time.Duration) {
	b.Helper()
	out := b.TempDir()
	cpus := make([]time.Duration, len(platforms))
	errs := make([]error, len(platforms))
	var wg sync.WaitGroup
	start := time.Now()
	for i, p := range platforms {
		wg.Go(func() { cpus[i], errs[i] = h.plainBuild(version, p, filepath.Join(out, filepath.Base(p), h.app)) })
	}
	wg.Wait()
	wall = time.Since(start)
	for i, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
		cpu += cpus[i]
	}
	return wall, cpu
}

// sample is one iteration's measurements: wall times, and the CPU times of the go
// commands (and, for slipway, of the server itself).
type sample struct {
	slipway, post                time.Duration // POST to seen succeeded; the POST alone
	build                        openapi.Build // with the worker's timings
	sequential, parallel, dedupe time.Duration
	slipwayCPU, seqCPU, parCPU   time.Duration // of the go commands
	serverCPU                    time.Duration // of slipway serve itself
}

// totals adds up one benchmark's samples.
type totals struct {
	n                             int
	slipway, sequential, parallel time.Duration
	dedupe, post                  time.Duration
	slipwayCPU, seqCPU, parCPU    time.Duration
	serverCPU                     time.Duration
	// From the builds' timings: creation to a worker starting it, fetching and
	// extracting the source, compiling, storing the binaries, assembling the image.
	queued, source, compile, upload, image time.Duration
	// Everything after the compile until the build ended (afterCompile): each
	// platform's image is made as soon as its own compile ends, so image and upload
	// overlap the compile and only what follows the last link counts here.
	store time.Duration
}

// add logs the sample and adds it to the totals.
func (t *totals) add(b *testing.B, s sample) {
	b.Helper()
	tm := s.build.Timings
	b.Logf("iteration %d: slipway %v (post %v, queued %v, source %v, compile %v, upload %v, image %v; go cpu %v, server cpu %v), "+
		"go build sequential %v (cpu %v), parallel %v (cpu %v), dedupe %v; load average %s",
		t.n, s.slipway.Round(time.Millisecond), s.post.Round(100*time.Microsecond), ms(tm.QueuedMs), ms(tm.SourceMs),
		ms(tm.CompileMs), ms(tm.UploadMs), ms(tm.ImageMs), s.slipwayCPU, s.serverCPU,
		s.sequential.Round(time.Millisecond), s.seqCPU, s.parallel.Round(time.Millisecond), s.parCPU,
		s.dedupe.Round(100*time.Microsecond), loadAverage())
	t.n++
	t.slipway += s.slipway
	t.post += s.post
	t.sequential += s.sequential
	t.parallel += s.parallel
	t.dedupe += s.dedupe
	t.slipwayCPU += s.slipwayCPU
	t.serverCPU += s.serverCPU
	t.seqCPU += s.seqCPU
	t.parCPU += s.parCPU
	t.queued += ms(tm.QueuedMs)
	t.source += ms(tm.SourceMs)
	t.compile += ms(tm.CompileMs)
	t.upload += ms(tm.UploadMs)
	t.image += ms(tm.ImageMs)
	t.store += afterCompile(s.build)
}

// ms reads a timing field of a build.
func ms(p *int64) time.Duration {
	if p == nil {
		return 0
	}
	return time.Duration(*p) * time.Millisecond
}

func ratio(a, c time.Duration) float64 { return float64(a) / float64(c) }

// report sets the ratios as metrics, named for the cache case ("warm" or "cold"), and
// the breakdown of slipway's time as fractions of it. Absolute means (…_ms) are for
// reading the ratios, not for comparing runs.
func (t *totals) report(b *testing.B, cache string) {
	b.Helper()
	b.ReportMetric(ratio(t.slipway, t.sequential), "x_"+cache+"_vs_sequential")
	b.ReportMetric(ratio(t.slipway, t.parallel), "x_"+cache+"_vs_parallel")
	b.ReportMetric(ratio(t.compile, t.parallel), "x_compile_vs_parallel")
	// The go commands' CPU time, slipway's against plain: the same commands should do the
	// same work. And the server's own CPU time, against its go commands'.
	b.ReportMetric(ratio(t.slipwayCPU, t.seqCPU), "x_gocpu_vs_sequential")
	b.ReportMetric(ratio(t.slipwayCPU, t.parCPU), "x_gocpu_vs_parallel")
	b.ReportMetric(ratio(t.serverCPU, t.slipwayCPU), "server_cpu_fraction")
	if t.dedupe > 0 {
		b.ReportMetric(ratio(t.dedupe, t.slipway), "dedupe_fraction_of_"+cache)
	}
	// Where slipway's time goes. The POST and queued overlap by the moment between the
	// build's creation and the POST's answer; rest is mostly the moment between the end of
	// the build and the poll that saw it, and the Redis transitions between phases.
	b.ReportMetric(ratio(t.post, t.slipway), "frac_post")
	b.ReportMetric(ratio(t.queued, t.slipway), "frac_queued")
	b.ReportMetric(ratio(t.source, t.slipway), "frac_source")
	b.ReportMetric(ratio(t.compile, t.slipway), "frac_compile")
	b.ReportMetric(ratio(t.upload, t.slipway), "frac_upload")
	b.ReportMetric(ratio(t.image, t.slipway), "frac_image")
	b.ReportMetric(ratio(t.store, t.slipway), "frac_after_compile")
	b.ReportMetric(1-ratio(t.post+t.queued+t.source+t.compile+t.store, t.slipway), "frac_rest")
	mean := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(t.n) }
	b.ReportMetric(mean(t.slipway), "slipway_ms")
	b.ReportMetric(mean(t.sequential), "sequential_ms")
	b.ReportMetric(mean(t.parallel), "parallel_ms")
	n := time.Duration(t.n)
	b.Logf("%s cache, %d iterations, means: slipway %v (post %v, queued %v, source %v, compile %v, upload %v, image %v; go cpu %v, server cpu %v), "+
		"go build sequential %v (cpu %v), parallel %v (cpu %v), dedupe %v; load average %s",
		cache, t.n, t.slipway/n, t.post/n, t.queued/n, t.source/n, t.compile/n, t.upload/n, t.image/n, t.slipwayCPU/n, t.serverCPU/n,
		t.sequential/n, t.seqCPU/n, t.parallel/n, t.parCPU/n, t.dedupe/n, loadAverage())
}

// loadAverage returns the machine's 1, 5 and 15 minute load averages, to read noisy
// figures by.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	return strings.Join(f[:min(3, len(f))], " ")
}

// emptyDir removes everything inside dir, leaving it empty.
func emptyDir(b *testing.B, dir string) {
	b.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			b.Fatal(err)
		}
	}
}

// inTurn runs the steps starting with the i-th, so each comes first, second and third
// equally often and none is favoured by what ran just before it.
func inTurn(i int, steps ...func()) {
	for k := range steps {
		steps[(i+k)%len(steps)]()
	}
}

// BenchmarkBuildWarm compares, per iteration and side by side, a slipway build of the
// fixture for linux/amd64 and linux/arm64 — from the POST to the build seen succeeded —
// with plain go build of the same two targets, sequential and parallel, each with a
// GOCACHE of its own warmed by one build beforehand. Each iteration sets a new version,
// so the link is redone and slipway's dedupe does not answer, while compiled packages
// come from the cache. After each slipway build the same source and version are posted
// again, and the dedupe answer's latency is reported as a fraction of the build's time.
func BenchmarkBuildWarm(b *testing.B) {
	h := newHarness(b, "warm")
	_, _, _, _, first := h.slipwayBuild(b, "0.0.1-warmup")
	h.resubmit(b, "0.0.1-warmup", first.Id)
	h.plainSequential(b, "0.0.1-warmup")

	var t totals
	var last openapi.Build
	for b.Loop() {
		version := fmt.Sprintf("1.0.%d", t.n)
		var s sample
		inTurn(t.n,
			func() {
				s.slipway, s.post, s.slipwayCPU, s.serverCPU, s.build = h.slipwayBuild(b, version)
				s.dedupe = h.resubmit(b, version, s.build.Id)
			},
			func() { s.sequential, s.seqCPU = h.plainSequential(b, version) },
			func() { s.parallel, s.parCPU = h.plainParallel(b, version) },
		)
		t.add(b, s)
		last = s.build
	}
	t.report(b, "warm")
	b.ReportMetric(pollLoad(b, h.srv, h.app, last.Id), "poll_load_cores")
	b.Logf("the last build's log:\n%s", h.srv.buildLog(h.app, last.Id))
}

// pollLoad polls a finished build for two seconds as wait does, and returns the CPU the
// server and this process spent on it per second: the load the benchmark's own polling
// puts on the machine while slipway compiles (Redis's share not counted).
func pollLoad(b *testing.B, srv *server, app, id string) float64 {
	b.Helper()
	self0, _, err := srv.cpuTime()
	if err != nil {
		b.Fatal(err)
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	for time.Since(start) < 2*time.Second {
		if _, err := srv.get(context.Background(), app, id); err != nil {
			b.Fatal(err)
		}
		time.Sleep(pollEvery)
	}
	wall := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	self1, _, err := srv.cpuTime()
	if err != nil {
		b.Fatal(err)
	}
	client := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	return float64(self1-self0+client) / float64(wall)
}

// BenchmarkBuildCold is BenchmarkBuildWarm with every GOCACHE emptied before each build,
// so each compiles the standard library for both platforms. It is slow: run it with
// -benchtime 2x or 3x.
func BenchmarkBuildCold(b *testing.B) {
	h := newHarness(b, "cold")
	fresh := func(dir string) {
		b.StopTimer()
		emptyDir(b, dir)
		b.StartTimer()
	}
	var t totals
	for b.Loop() {
		version := fmt.Sprintf("1.0.%d", t.n)
		var s sample
		inTurn(t.n,
			func() {
				fresh(h.slipwayCache)
				s.slipway, s.post, s.slipwayCPU, s.serverCPU, s.build = h.slipwayBuild(b, version)
			},
			func() { fresh(h.plainCache); s.sequential, s.seqCPU = h.plainSequential(b, version) },
			func() { fresh(h.plainCache); s.parallel, s.parCPU = h.plainParallel(b, version) },
		)
		t.add(b, s)
	}
	t.report(b, "cold")
}
