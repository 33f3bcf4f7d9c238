package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// imaged answers every build id "b-<version>" as a succeeded build with an image, so
// releases can be made without building.
type imaged struct{}

func (imaged) BuildRef(_ context.Context, _, id string) (release.BuildRef, error) {
	v := id[2:]
	return release.BuildRef{ID: id, Version: v, Status: "succeeded", Succeeded: true, ImageDigest: store.DigestBytes([]byte(v)).String()}, nil
}

type releaseRig struct {
	rdb      redis.UniversalClient
	apps     *release.Apps
	releases *release.Releases
	channels *release.Channels
	handler  http.Handler
}

func newReleaseRig(b *testing.B) *releaseRig {
	b.Helper()
	rdb := storetest.Redis(b)
	blobs, err := store.NewFS(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	tc, _ := buildertest.Toolchain(b)
	apps := release.NewApps(rdb, builder.AppChecker{Toolchain: tc})
	r := &releaseRig{rdb: rdb, apps: apps, releases: release.NewReleases(rdb, blobs, imaged{}), channels: release.NewChannels(rdb, apps)}
	builds := builder.NewBuilds(rdb)
	intake, err := builder.NewIntake(builds, blobs, tc, builder.IntakeOptions{SpoolDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	h, err := api.New(api.Deps{Apps: apps, Releases: r.releases, Channels: r.channels, Builds: builds, Intake: intake,
		Blobs: blobs, Idempotency: api.NewIdempotency(rdb, 0), Tokens: auth.NewTokens(rdb), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	r.handler = h
	return r
}

func (r *releaseRig) app(b *testing.B, name string, releases int) {
	b.Helper()
	ctx := context.Background()
	if _, _, err := r.apps.Put(ctx, name, release.AppSpec{}, release.Precondition{}); err != nil {
		b.Fatal(err)
	}
	// Sixteen writers at once: each release is a script call and a synced file.
	var g errgroup.Group
	g.SetLimit(16)
	for i := range releases {
		v := fmt.Sprintf("1.%d.%d", i/1000, i%1000)
		g.Go(func() error {
			_, _, err := r.releases.Create(ctx, name, release.ReleaseSpec{BuildID: "b-" + v, Actor: "bench"})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkPromote compares a promotion's latency with a bare EVALSHA round trip to the
// same Redis, alternating the two in one loop.
func BenchmarkPromote(b *testing.B) {
	r := newReleaseRig(b)
	r.app(b, "hello", 2)
	ctx := context.Background()
	bare := redis.NewScript(`return redis.call('GET', KEYS[1])`)
	if err := bare.Load(ctx, r.rdb).Err(); err != nil {
		b.Fatal(err)
	}
	var moves, trips []time.Duration
	b.ResetTimer()
	for i := range b.N {
		v := "1.0.0"
		if i%2 == 1 {
			v = "1.0.1"
		}
		start := time.Now()
		if _, err := r.channels.Move(ctx, "hello", "dev", release.Move{Action: release.ActionPromote, Version: v, Actor: "bench"}); err != nil {
			b.Fatal(err)
		}
		moves = append(moves, time.Since(start))
		start = time.Now()
		bare.EvalSha(ctx, r.rdb, []string{"k"})
		trips = append(trips, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(moves, 0.5))/float64(percentile(trips, 0.5)), "x_p50_vs_evalsha")
	b.ReportMetric(float64(percentile(moves, 0.99))/float64(percentile(trips, 0.99)), "x_p99_vs_evalsha")
	b.ReportMetric(float64(percentile(moves, 0.5).Microseconds()), "promote_p50_us")
	b.ReportMetric(float64(percentile(trips, 0.5).Microseconds()), "evalsha_p50_us")
}

// BenchmarkListReleases compares a page of 20 releases of an app with 100 000 releases
// with the same page of an app with 10, alternating, 500 pages of each per iteration.
func BenchmarkListReleases(b *testing.B) {
	r := newReleaseRig(b)
	r.app(b, "small", 10)
	r.app(b, "large", 100_000)
	ctx := context.Background()
	var small, large time.Duration
	b.ResetTimer()
	for range b.N * 500 {
		start := time.Now()
		if _, _, err := r.releases.Page(ctx, "large", "", 0, 20); err != nil {
			b.Fatal(err)
		}
		large += time.Since(start)
		start = time.Now()
		if _, _, err := r.releases.Page(ctx, "small", "", 0, 20); err != nil {
			b.Fatal(err)
		}
		small += time.Since(start)
	}
	b.ReportMetric(float64(large)/float64(small), "x_100k_vs_10")
}

// BenchmarkListReleasesHTTP loads GET /v1/apps/{app}/releases?limit=20 with wrk, for an
// app with 10 releases and one with 100 000, and compares their throughput with a bare
// Echo handler that does one Redis GET, in turns.
func BenchmarkListReleasesHTTP(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("wrk is not installed: apt-get install wrk")
	}
	r := newReleaseRig(b)
	r.app(b, "small", 10)
	r.app(b, "large", 100_000)
	ctx := context.Background()
	r.rdb.Set(ctx, "bench:key", "value", 0)
	e := echo.New()
	e.GET("/bare", func(c echo.Context) error {
		v, err := r.rdb.Get(c.Request().Context(), "bench:key").Result()
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]string{"value": v})
	})
	slipway := httptest.NewServer(r.handler)
	defer slipway.Close()
	bare := httptest.NewServer(e)
	defer bare.Close()
	for _, app := range []string{"small", "large"} {
		resp, err := http.Get(slipway.URL + "/v1/apps/" + app + "/releases?limit=20")
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET releases of %s = %v %v", app, resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	var small, large, rb float64
	b.ResetTimer()
	for range b.N {
		small += wrk(b, slipway.URL+"/v1/apps/small/releases?limit=20")
		large += wrk(b, slipway.URL+"/v1/apps/large/releases?limit=20")
		rb += wrk(b, bare.URL+"/bare")
	}
	b.ReportMetric(small/float64(b.N), "slipway_10_req/s")
	b.ReportMetric(large/float64(b.N), "slipway_100k_req/s")
	b.ReportMetric(rb/float64(b.N), "bare_req/s")
	b.ReportMetric(small/rb, "x_10_vs_bare")
	b.ReportMetric(large/rb, "x_100k_vs_bare")
}

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrk(b *testing.B, url string) float64 {
	b.Helper()
	out, err := exec.Command("wrk", "-t2", "-c16", "-d3s", url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	m := wrkRate.FindSubmatch(out)
	if m == nil {
		b.Fatalf("wrk printed no rate:\n%s", out)
	}
	if regexp.MustCompile(`Non-2xx`).Match(out) {
		b.Fatalf("wrk saw errors:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
