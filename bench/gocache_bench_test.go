package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/gocache"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// cacheVersion numbers the builds of BenchmarkBuildCache: each build links a version of
// its own, as each build slipway runs does (an identical build is never run again), so
// the link's entry is always a miss, looked for in the blob store too.
var cacheVersion atomic.Int64

// cacheBuild builds the fixture for both platforms at once, as a worker does, with the
// flags and clean environment of gobuild.Toolchain.Compile, GOCACHE set to goCache and,
// when prog is not empty, GOCACHEPROG to prog. It returns the wall time.
func cacheBuild(b *testing.B, goBin, checkout, goCache, prog string) time.Duration {
	b.Helper()
	return cacheBuildWith(b, goBin, checkout, func(string) (string, string, func(bool)) { return goCache, prog, func(bool) {} })
}

// cacheBuildWith is cacheBuild with each platform's GOCACHE and GOCACHEPROG chosen as a
// worker chooses them (gocache.Server.Compile), done told when its compile ends.
func cacheBuildWith(b *testing.B, goBin, checkout string, choose func(platform string) (goCache, prog string, done func(ok bool))) time.Duration {
	b.Helper()
	version := fmt.Sprintf("1.0.%d", cacheVersion.Add(1))
	out := b.TempDir()
	errs := make([]error, len(platforms))
	var wg sync.WaitGroup
	start := time.Now()
	for i, p := range platforms {
		goCache, prog, done := choose(p)
		wg.Go(func() {
			goos, goarch, _ := strings.Cut(p, "/")
			tmp := filepath.Join(out, "tmp-"+goarch)
			os.MkdirAll(tmp, 0o755)
			cmd := exec.Command(goBin, "build", "-trimpath", "-buildvcs=false",
				"-ldflags", "-s -w -buildid= -X main.version="+version, "-o", filepath.Join(out, goarch, "app"), ".")
			cmd.Dir = checkout
			cmd.Env = []string{
				"PATH=" + filepath.Dir(goBin) + ":/usr/local/bin:/usr/bin:/bin",
				"HOME=" + tmp, "TMPDIR=" + tmp, "GOENV=off", "GOTOOLCHAIN=local", "GOWORK=off",
				"GOFLAGS=-mod=readonly", "CGO_ENABLED=0", "GOCACHE=" + goCache,
				"GOMODCACHE=" + filepath.Join(out, "gomod"), "GOPATH=" + filepath.Join(tmp, "gopath"),
				"GOPROXY=off", "GOSUMDB=off", "GOOS=" + goos, "GOARCH=" + goarch,
			}
			if prog != "" {
				cmd.Env = append(cmd.Env, "GOCACHEPROG="+prog)
			}
			output, err := cmd.CombinedOutput()
			done(err == nil)
			if err != nil {
				errs[i] = fmt.Errorf("go build for %s: %w\n%s", p, err, output)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return took
}

// BenchmarkBuildCache measures the shared build cache (issue 16) on the fixture, for
// linux/amd64 and linux/arm64 at once, in these builds side by side:
//
//   - cold: a worker with an empty local tier and an empty shared tier (an S3 bucket of
//     the test's versitygw), so the go command compiles the standard library for both;
//   - fresh: a new worker, its local tier empty, over the shared tier the cold build
//     filled (its uploads drained first, untimed);
//   - today: the go command's own GOCACHE, warm (SLIPWAY_BUILD_CACHE=local);
//   - prog: the fresh worker again, its local tier now warm, through slipway-gocacheprog;
//   - local only: the same local tier with no blob store behind it, which isolates the
//     shared tier's share of prog (the go command's misses looked for there too);
//   - worker: a warm worker as slipway runs one (gocache.Server.Compile): its first
//     build of the fixture went through the program, the timed ones use its hot tier.
//
// It reports fresh÷cold (target ≤ 0.2) and worker÷today (target ≤ 1.05), and prog÷today
// and local only÷today, the cache program's own cost; the warm builds are timed
// warmRounds times each, interleaved, and compared by their medians.
func BenchmarkBuildCache(b *testing.B) {
	const warmRounds = 15
	// The small cache program a worker runs, built beside slipway as the image has it.
	slipwayBinary(b)
	prog := filepath.Join(binDir, gocache.ProgramName)
	if out, err := exec.Command("go", "build", "-o", prog, "github.com/slipway/slipway/cmd/slipway-gocacheprog").CombinedOutput(); err != nil {
		b.Fatalf("building %s: %v\n%s", gocache.ProgramName, err, out)
	}
	tc, _ := buildertest.Toolchain(b)
	checkout := b.TempDir()
	for name, content := range fixtureFiles("cached") {
		if err := os.WriteFile(filepath.Join(checkout, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var cold, fresh, today, warmProg, warmLocal, warmWorker []time.Duration
	hotCompiles := int64(0)
	for range b.N {
		client, cfg := storetest.S3(b)
		blobs, err := store.NewS3(client, cfg.Bucket)
		if err != nil {
			b.Fatal(err)
		}
		newServerIn := func(dir string, blobs store.Blobs, opts ...gocache.Option) *gocache.Server {
			s, err := gocache.New(dir, blobs, append([]gocache.Option{gocache.WithProgram(prog)}, opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close(context.Background()) })
			return s
		}
		newServer := func() *gocache.Server { return newServerIn(b.TempDir(), blobs) }
		first := newServer()
		c := cacheBuild(b, tc.Path(), checkout, b.TempDir(), first.Command("cached"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		if err := first.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		secondDir := b.TempDir()
		second := newServerIn(secondDir, blobs)
		f := cacheBuild(b, tc.Path(), checkout, b.TempDir(), second.Command("cached"))
		st := second.Stats()
		b.Logf("cold %.2fs; fresh %.2fs: %d remote hits (%.1f MiB), %d misses, %d puts, %d refused; cold worker: %d puts, %d uploads (%.1f MiB), %d dropped; load %s",
			c.Seconds(), f.Seconds(), st.RemoteHits.Load(), float64(st.BytesFetched.Load())/(1<<20), st.Misses.Load(), st.Puts.Load(),
			st.RemoteRefused.Load(), first.Stats().Puts.Load(), first.Stats().Uploads.Load(),
			float64(first.Stats().BytesUploaded.Load())/(1<<20), first.Stats().UploadsDropped.Load(), loadAverage())
		cold, fresh = append(cold, c), append(fresh, f)

		// Both warm builds keep one GOCACHE across builds, as a worker does
		// (SLIPWAY_GOCACHE); with the cache program it holds only what the go command
		// keeps outside it.
		// localOnly is the second worker's local tier with no blob store behind it: what
		// the shared tier's lookups of the go command's misses (the link's, each build)
		// cost is the difference between it and the second worker.
		localOnly := newServerIn(secondDir, nil)
		plainCache, progCache := b.TempDir(), b.TempDir()
		cacheBuild(b, tc.Path(), checkout, plainCache, "")                      // warms it, untimed
		cacheBuild(b, tc.Path(), checkout, progCache, second.Command("cached")) // the same
		// worker is a worker as slipway runs one (gocache.Server.Compile, with its hot
		// tier): its first build of the fixture goes through the program, over the warm
		// shared tier, and fills its hot GOCACHE; the next ones use that directly.
		hotServer := newServerIn(b.TempDir(), blobs, gocache.WithHotDir(filepath.Join(b.TempDir(), "hot")))
		workerCache := b.TempDir()
		worker := func(p string) (string, string, func(bool)) {
			gc, prog, done := hotServer.Compile("cached", checkout, p)
			if gc == "" {
				gc = workerCache
			}
			return gc, prog, done
		}
		cacheBuildWith(b, tc.Path(), checkout, worker) // through the program, untimed
		if err := hotServer.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		cacheBuildWith(b, tc.Path(), checkout, worker) // the hot tier's first, untimed
		runs := []func(){
			func() { today = append(today, cacheBuild(b, tc.Path(), checkout, plainCache, "")) },
			func() {
				warmProg = append(warmProg, cacheBuild(b, tc.Path(), checkout, progCache, second.Command("cached")))
			},
			func() {
				warmLocal = append(warmLocal, cacheBuild(b, tc.Path(), checkout, progCache, localOnly.Command("cached")))
			},
			func() { warmWorker = append(warmWorker, cacheBuildWith(b, tc.Path(), checkout, worker)) },
		}
		for i := range warmRounds {
			// Rotate which goes first, so none always follows another.
			for j := range runs {
				runs[(i+j)%len(runs)]()
			}
		}
		hotCompiles += hotServer.Stats().HotCompiles.Load()
		if want := int64(len(platforms) * (warmRounds + 1)); hotServer.Stats().HotCompiles.Load() != want {
			b.Fatalf("the worker's warm compiles used its hot tier %d times, want %d", hotServer.Stats().HotCompiles.Load(), want)
		}
	}
	med := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	b.Logf("cold %v, fresh %v, today %v, prog %v, prog without the blob store %v, worker %v (medians: today %v, prog %v, without the store %v, worker %v; %d hot compiles)",
		cold, fresh, today, warmProg, warmLocal, warmWorker, med(today), med(warmProg), med(warmLocal), med(warmWorker), hotCompiles)
	b.ReportMetric(mean(fresh).Seconds()/mean(cold).Seconds(), "fresh/cold")
	b.ReportMetric(med(warmProg).Seconds()/med(today).Seconds(), "warmprog/warmtoday")
	b.ReportMetric(mean(cold).Seconds(), "cold_s")
	b.ReportMetric(mean(fresh).Seconds(), "fresh_s")
	b.ReportMetric(med(today).Seconds(), "warmtoday_s")
	b.ReportMetric(med(warmProg).Seconds(), "warmprog_s")
	b.ReportMetric(med(warmLocal).Seconds()/med(today).Seconds(), "warmlocalonly/warmtoday")
	b.ReportMetric(med(warmWorker).Seconds()/med(today).Seconds(), "warmworker/warmtoday")
	b.ReportMetric(med(warmWorker).Seconds(), "warmworker_s")
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// BenchmarkHotTierCollect measures what a warm worker does after each compile on
// its hot tier, off the build's path: finding the entries the compile wrote among those
// of a large hot GOCACHE (100 000 entries, all older than the compile) and taking them
// into the local tier. Each iteration is one compile that wrote one entry (and its
// output), as a warm build of a changed app does for its package; collect_ms is the time
// from the compile's end until the entry is in the local tier.
func BenchmarkHotTierCollect(b *testing.B) {
	const entries = 100_000
	ctx := context.Background()
	s, err := gocache.New(b.TempDir(), nil, gocache.WithHotDir(filepath.Join(b.TempDir(), "hot")))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	mod := b.TempDir()
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/collect\n\ngo 1.22\n"), 0o644)
	// The key's first compile, through the program: a go command that asked nothing.
	_, prog, done := s.Compile("collect", mod, "linux/amd64")
	if err := gocache.RunProg(ctx, strings.Fields(prog)[1:], strings.NewReader(`{"ID":1,"Command":"close"}`+"\n"), io.Discard); err != nil {
		b.Fatal(err)
	}
	done(true)
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	gc := s.GoCacheDir(gocache.SharedNamespace)
	old := time.Now().Add(-24 * time.Hour)
	// entry writes an entry and, with output, its output, dated t.
	entry := func(seed string, t time.Time, output bool) {
		body := []byte("output of " + seed)
		a, o := sha256.Sum256([]byte("action "+seed)), sha256.Sum256(body)
		action, out := hex.EncodeToString(a[:]), hex.EncodeToString(o[:])
		files := []struct {
			name string
			b    []byte
		}{{filepath.Join(action[:2], action+"-a"), fmt.Appendf(nil, "v1 %s %s %20d %20d\n", action, out, len(body), t.UnixNano())}}
		if output {
			files = append(files, struct {
				name string
				b    []byte
			}{filepath.Join(out[:2], out+"-d"), body})
		}
		for _, p := range files {
			path := filepath.Join(gc, p.name)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, p.b, 0o644); err != nil {
				b.Fatal(err)
			}
			os.Chtimes(path, t, t)
		}
	}
	for i := range entries {
		entry(fmt.Sprint("old ", i), old, false) // never read: older than every compile
	}
	for i := range 256 {
		d := filepath.Join(gc, fmt.Sprintf("%02x", i))
		os.Chtimes(d, old, old)
	}
	puts := s.Stats().Puts.Load()
	var took time.Duration
	b.ResetTimer()
	for i := range b.N {
		goCache, _, done := s.Compile("collect", mod, "linux/amd64")
		if goCache == "" {
			b.Fatal("the key is not warm")
		}
		entry(fmt.Sprint("new ", i), time.Now(), true)
		start := time.Now()
		done(true)
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
	}
	b.StopTimer()
	if got := s.Stats().Puts.Load() - puts; got != int64(b.N) {
		b.Fatalf("%d entries taken into the local tier, want the %d the compiles wrote", got, b.N)
	}
	b.ReportMetric(float64(took.Microseconds())/1000/float64(b.N), "collect_ms")
}
