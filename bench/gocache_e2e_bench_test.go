package bench

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
)

// BenchmarkBuildCacheEndToEnd times whole warm builds through `slipway serve`, as a CI
// job sees them (from the POST to the build's success: compile, image, upload), on two
// servers side by side: one with SLIPWAY_BUILD_CACHE=local (the go command's own warm
// GOCACHE, as before the shared cache) and one with the default, shared (its local tier
// warm, the bucket behind it). Each iteration builds a new version on both, the one that
// goes first alternating; the ratio is of the medians.
//
//	RACE=0 ./scripts/test.sh -run '^$' -bench BuildCacheEndToEnd -benchtime 10x -v ./bench/
func BenchmarkBuildCacheEndToEnd(b *testing.B) {
	const app = "e2ecache"
	local := startServer(b, b.TempDir())
	shared := startServerEnv(b, func(dir, addr string) []string {
		env := serveEnv(b, dir, addr, b.TempDir())
		for i, kv := range env {
			if strings.HasPrefix(kv, "SLIPWAY_BUILD_CACHE=") {
				env[i] = "SLIPWAY_BUILD_CACHE=shared"
			}
		}
		return env
	})
	servers := []*server{local, shared}
	build := func(srv *server, version string) time.Duration {
		files := fixtureFiles(app)
		archive := buildertest.Archive(b, files)
		start := time.Now()
		_, q, err := srv.submit(app, version, bytes.NewReader(archive), int64(len(archive)))
		if err != nil {
			b.Fatal(err)
		}
		srv.wait(b, app, q.Id)
		return time.Since(start)
	}
	for _, srv := range servers {
		srv.createApp(b, app, platforms)
		build(srv, "0.0.1") // cold: fills the GOCACHE, or the local tier and the bucket
	}
	times := [2][]time.Duration{}
	b.ResetTimer()
	for i := range b.N {
		version := fmt.Sprintf("1.0.%d", i)
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, k := range order {
			times[k] = append(times[k], build(servers[k], version))
		}
	}
	b.StopTimer()
	l, s := percentile(times[0], 0.5), percentile(times[1], 0.5)
	b.ReportMetric(float64(s)/float64(l), "shared/local")
	b.ReportMetric(float64(l.Milliseconds()), "local_ms")
	b.ReportMetric(float64(s.Milliseconds()), "shared_ms")
	fmt.Fprintf(os.Stderr, "end to end: local %v, shared %v (medians of %d); load %s\n", l, s, b.N, loadAverage())
}
