package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/store/storetest"
)

// s3Counter is a reverse proxy in front of the test S3 server that counts requests by
// method: what one slipway process asks of its bucket. The Host header passes through
// unchanged, so the requests' signatures still hold.
type s3Counter struct {
	url string
	mu  sync.Mutex
	n   map[string]int
}

func newS3Counter(b *testing.B, endpoint string) *s3Counter {
	b.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		b.Fatal(err)
	}
	c := &s3Counter{n: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.n[r.Method]++
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

// snapshot returns the counts so far, by method, and their sum under "all".
func (c *s3Counter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
		out["all"] += v
	}
	return out
}

// redisCommands is how many commands the Redis server at addr has processed.
func redisCommands(b *testing.B, rdb *redis.Client) int64 {
	b.Helper()
	info, err := rdb.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	m := regexp.MustCompile(`total_commands_processed:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		b.Fatalf("INFO stats without total_commands_processed:\n%s", info)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n - 1 // this INFO
}

// startPlainRedis starts a redis-server of the benchmark's own, without persistence, as
// a cache-sized Redis in production runs, and returns its address.
func startPlainRedis(b *testing.B) string {
	b.Helper()
	storetest.NeedRedisServer(b)
	addr := storetest.FreeAddr(b)
	host, port, _ := net.SplitHostPort(addr)
	dir := b.TempDir()
	cmd := exec.Command("redis-server", "--bind", host, "--port", port, "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			b.Fatalf("redis-server on %s did not answer", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr
}

// redisBenchmark runs the command with redis-benchmark against addr, from 50 clients,
// and returns its requests per second; 0 when redis-benchmark is not installed.
func redisBenchmark(b *testing.B, addr string, command ...string) float64 {
	b.Helper()
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		return 0
	}
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"-h", host, "-p", port, "-q", "-c", "50", "-n", "200000"}, command...)
	out, err := exec.Command("redis-benchmark", args...).CombinedOutput()
	if err != nil {
		b.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	// It rewrites one line with \r as it goes; the last figure is the total.
	m := regexp.MustCompile(`: ([\d.]+) requests per second`).FindSubmatch(out)
	if m == nil {
		b.Fatalf("redis-benchmark printed no rate:\n%s", out)
	}
	f, _ := strconv.ParseFloat(string(m[1]), 64)
	return f
}

// BenchmarkScalingCosts measures what each unit of work asks of the shared parts, for
// docs/SCALING.md: Redis commands and S3 requests per build (two platforms, warm Go
// cache, one worker in the API process), per release, per promote and per page of
// releases, and the builds per minute of one worker; beside them, what this machine's
// Redis serves (redis-benchmark, 50 clients), so the figures become capacities.
//
//	RACE=0 ./scripts/test.sh -run '^$' -bench ScalingCosts -benchtime 1x ./bench/
func BenchmarkScalingCosts(b *testing.B) {
	redisAddr := startPlainRedis(b)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	_, s3cfg := storetest.S3(b)
	s3 := newS3Counter(b, s3cfg.Endpoint)
	goCache := b.TempDir()
	srv := startServerEnv(b, func(dir, addr string) []string {
		env := serveEnv(b, dir, addr, goCache)
		for i, kv := range env {
			switch {
			case strings.HasPrefix(kv, "SLIPWAY_REDIS_URL="):
				env[i] = "SLIPWAY_REDIS_URL=redis://" + redisAddr + "/0"
			case strings.HasPrefix(kv, "SLIPWAY_S3_ENDPOINT="):
				env[i] = "SLIPWAY_S3_ENDPOINT=" + s3.url
			}
		}
		return env
	})
	const app = "scaling"
	srv.createApp(b, app, platforms)
	archive := func(i int) []byte {
		files := fixtureFiles(app)
		files["main.go"] = strings.Replace(fixtureMain, `"dev"`, strconv.Quote(fmt.Sprintf("dev-%d", i)), 1)
		return buildertest.Archive(b, files)
	}
	polls := 0
	build := func(i int) string {
		a := archive(i)
		_, q, err := srv.submit(app, fmt.Sprintf("1.0.%d", i), bytes.NewReader(a), int64(len(a)))
		if err != nil {
			b.Fatal(err)
		}
		for {
			got, err := srv.get(context.Background(), app, q.Id)
			polls++
			if err != nil {
				b.Fatal(err)
			}
			if got.Status == "succeeded" {
				return q.Id
			}
			if got.Status == "failed" || got.Status == "canceled" {
				b.Fatalf("build %s %s:\n%s", q.Id, got.Status, srv.buildLog(app, q.Id))
			}
			time.Sleep(100 * time.Millisecond) // a CI's poll interval, counted and taken out below
		}
	}
	ids0 := build(0) // warms the Go cache

	// What one status poll costs, to take the benchmark's own polls out of a build's count.
	r0 := redisCommands(b, rdb)
	for range 200 {
		if _, err := srv.get(context.Background(), app, ids0); err != nil {
			b.Fatal(err)
		}
	}
	pollCost := float64(redisCommands(b, rdb)-r0) / 200

	const builds = 8
	var ids []string
	r0, s0 := redisCommands(b, rdb), s3.snapshot()
	start := time.Now()
	pollsBefore := polls
	for i := range builds {
		ids = append(ids, build(i+1))
	}
	wall := time.Since(start)
	r1, s1 := redisCommands(b, rdb), s3.snapshot()
	pollCmds := float64(polls-pollsBefore) * pollCost
	redisPerBuild := (float64(r1-r0) - pollCmds) / builds

	// Releases, promotes and pages of releases, through the API.
	do := func(method, path, body string, want int) {
		req, _ := http.NewRequest(method, srv.url+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := srv.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			b.Fatalf("%s %s = %d, want %d", method, path, resp.StatusCode, want)
		}
	}
	r0 = redisCommands(b, rdb)
	for i, id := range ids {
		do("POST", "/v1/apps/"+app+"/releases", fmt.Sprintf(`{"build_id":%q,"version":"2.0.%d"}`, id, i), http.StatusCreated)
	}
	redisPerRelease := float64(redisCommands(b, rdb)-r0) / builds
	r0 = redisCommands(b, rdb)
	for i := range builds {
		do("POST", "/v1/apps/"+app+"/channels/dev/promote", fmt.Sprintf(`{"version":"2.0.%d"}`, i), http.StatusOK)
	}
	redisPerPromote := float64(redisCommands(b, rdb)-r0) / builds
	r0 = redisCommands(b, rdb)
	const pages = 100
	for range pages {
		do("GET", "/v1/apps/"+app+"/releases?limit=20", "", http.StatusOK)
	}
	redisPerPage := float64(redisCommands(b, rdb)-r0) / pages

	// Promotes a second through one API process, from 8 clients at once.
	const clients, each = 8, 100
	var wg sync.WaitGroup
	pstart := time.Now()
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				do("POST", "/v1/apps/"+app+"/channels/dev/promote", fmt.Sprintf(`{"version":"2.0.%d"}`, (c+i)%builds), http.StatusOK)
			}
		})
	}
	wg.Wait()
	b.ReportMetric(clients*each/time.Since(pstart).Seconds(), "promotes/s")

	b.ReportMetric(redisPerBuild, "redis_cmds/build")
	b.ReportMetric(float64(s1["all"]-s0["all"])/builds, "s3_reqs/build")
	b.ReportMetric(float64(s1["PUT"]-s0["PUT"])/builds, "s3_puts/build")
	b.ReportMetric(float64(s1["GET"]-s0["GET"]+s1["HEAD"]-s0["HEAD"])/builds, "s3_gets/build")
	b.ReportMetric(redisPerRelease, "redis_cmds/release")
	b.ReportMetric(redisPerPromote, "redis_cmds/promote")
	b.ReportMetric(redisPerPage, "redis_cmds/page")
	b.ReportMetric(float64(builds)/wall.Minutes(), "builds/min/worker")
	b.ReportMetric(redisBenchmark(b, redisAddr, "GET", "k"), "redis_get/s")
	b.ReportMetric(redisBenchmark(b, redisAddr, "XADD", "bench", "MAXLEN", "~", "1000", "*", "app", "a", "build", "b"), "redis_xadd/s")
	fmt.Fprintf(os.Stderr, "scaling: load %s; %d builds in %s; S3 requests by method %v → %v\n",
		loadAverage(), builds, wall.Round(time.Millisecond), s0, s1)
}
