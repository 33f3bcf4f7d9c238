package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// pollEvery is how often a benchmark asks whether its build has finished. Following the
// log would be coarser: the server looks for more log every 200 ms.
const pollEvery = 5 * time.Millisecond

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// TestMain removes the slipway binary the benchmarks built, if they built one.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// slipwayBinary builds cmd/slipway once per run, without -race or any test flag, as it
// would be deployed: with cmd/slipway-gocacheprog beside it.
func slipwayBinary(b *testing.B) string {
	b.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "slipway-bench-bin")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "slipway")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/slipway/slipway/cmd/slipway").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("building slipway: %w\n%s", err, out)
			return
		}
		// The build cache's program beside it, as the Dockerfile installs it.
		out, err = exec.Command("go", "build", "-o", filepath.Join(binDir, "slipway-gocacheprog"),
			"github.com/slipway/slipway/cmd/slipway-gocacheprog").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("building slipway-gocacheprog: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		b.Fatal(binErr)
	}
	return binPath
}

// server is a running `slipway serve` with one worker.
type server struct {
	url    string
	pid    int
	log    string // the file its stderr goes to
	client *http.Client
}

// startServer runs `slipway serve` with one in-process worker, its blobs in a bucket of
// the test S3 server and its builds in a database of the test Redis, compiling with
// goCache as GOCACHE. It skips, naming scripts/test.sh, when those servers are missing.
func startServer(b *testing.B, goCache string) *server {
	b.Helper()
	return startServerEnv(b, func(dir, addr string) []string { return serveEnv(b, dir, addr, goCache) })
}

// startServerEnv is startServer with the server's environment made by env from its data
// directory and the address it listens on.
func startServerEnv(b *testing.B, env func(dir, addr string) []string) *server {
	b.Helper()
	bin := slipwayBinary(b)
	dir := b.TempDir()
	addr := storetest.FreeAddr(b)
	logPath := filepath.Join(dir, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = env(dir, addr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting slipway serve: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logFile.Close() }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})

	s := &server{url: "http://" + addr, pid: cmd.Process.Pid, log: logPath, client: &http.Client{}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err // for the cleanup
			b.Fatalf("slipway serve exited at start: %v\n%s", err, s.logTail())
		default:
		}
		resp, err := s.client.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("slipway serve was not ready within 30s\n%s", s.logTail())
	return nil
}

// logTail returns the last lines the server logged.
func (s *server) logTail() string {
	data, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// createApp creates app with the given platforms and the default ldflags,
// "-X main.version={{.Version}}".
func (s *server) createApp(b *testing.B, app string, platforms []string) {
	b.Helper()
	body, _ := json.Marshal(map[string]any{"platforms": platforms})
	req, err := http.NewRequest(http.MethodPut, s.url+"/v1/apps/"+app, strings.NewReader(string(body)))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatalf("creating app %s: %v", app, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("PUT /v1/apps/%s = %d, want 201: %s", app, resp.StatusCode, msg)
	}
}

// submit posts a tar.gz of size bytes read from body as a build of version.
func (s *server) submit(app, version string, body io.Reader, size int64) (int, openapi.Build, error) {
	req, err := http.NewRequest(http.MethodPost, s.url+"/v1/apps/"+app+"/builds?version="+version, body)
	if err != nil {
		return 0, openapi.Build{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/gzip")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, openapi.Build{}, fmt.Errorf("posting build: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, openapi.Build{}, fmt.Errorf("reading build response: %w", err)
	}
	var build openapi.Build
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return resp.StatusCode, build, fmt.Errorf("POST build = %d: %s", resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, &build); err != nil {
		return resp.StatusCode, build, fmt.Errorf("decoding build response: %w", err)
	}
	return resp.StatusCode, build, nil
}

// wait polls the build every pollEvery until it has finished and returns it; a build
// that did not succeed fails the benchmark.
func (s *server) wait(b *testing.B, app, id string) openapi.Build {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	for {
		build, err := s.get(ctx, app, id)
		if err != nil {
			b.Fatalf("polling build %s: %v\n%s", id, err, s.logTail())
		}
		switch build.Status {
		case openapi.BuildStatusSucceeded:
			return build
		case openapi.BuildStatusFailed, openapi.BuildStatusCanceled:
			b.Fatalf("build %s %s: %+v\n%s", id, build.Status, build.Error, s.buildLog(app, id))
		}
		select {
		case <-ctx.Done():
			b.Fatalf("build %s still %s after 15m", id, build.Status)
		case <-time.After(pollEvery):
		}
	}
}

func (s *server) get(ctx context.Context, app, id string) (openapi.Build, error) {
	var build openapi.Build
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/v1/apps/"+app+"/builds/"+id, nil)
	if err != nil {
		return build, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return build, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return build, fmt.Errorf("GET build = %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&build); err != nil {
		return build, fmt.Errorf("decoding build: %w", err)
	}
	return build, nil
}

func (s *server) buildLog(app, id string) string {
	resp, err := s.client.Get(s.url + "/v1/apps/" + app + "/builds/" + id + "/log")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// clockTick is the unit of the times in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time the server process has used itself, and that of the
// children it has waited for: the go commands of its builds, with their compilers and
// linkers.
func (s *server) cpuTime() (self, children time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the server's CPU time: %w", err)
	}
	// The fields after the command name, which is in parentheses and may hold spaces:
	// state is field 3, utime, stime, cutime and cstime fields 14 to 17.
	rest := string(data[strings.LastIndexByte(string(data), ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("reading the server's CPU time: %d fields in /proc/<pid>/stat", len(f)+2)
	}
	var ticks [4]int64
	for i, v := range f[11:15] {
		if ticks[i], err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("reading the server's CPU time: %w", err)
		}
	}
	return time.Duration(ticks[0]+ticks[1]) * clockTick, time.Duration(ticks[2]+ticks[3]) * clockTick, nil
}

// memory returns the server process's peak resident set size (VmHWM) and its current
// one (VmRSS), in bytes.
func (s *server) memory() (peak, current int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0, 0, fmt.Errorf("reading the server's memory: %w", err)
	}
	defer f.Close()
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, _ := strings.Cut(sc.Text(), ":")
		var dst *int64
		switch name {
		case "VmHWM":
			dst = &peak
		case "VmRSS":
			dst = &current
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing %s %q: %w", name, v, err)
		}
		*dst = kb << 10
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("reading the server's memory: %w", err)
	}
	if found != 2 {
		return 0, 0, errors.New("no VmHWM and VmRSS lines in /proc/<pid>/status")
	}
	return peak, current, nil
}

// metrics returns the named metrics, without labels, from the server's /metrics.
func (s *server) metrics(names ...string) (map[string]float64, error) {
	resp, err := s.client.Get(s.url + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("reading /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics = %d", resp.StatusCode)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("parsing %s %q: %w", name, v, err)
		}
		out[name] = f
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /metrics: %w", err)
	}
	return out, nil
}

// serveEnv is the environment of a `slipway serve` listening on addr with one in-process
// worker, its data under dir, its blobs in a bucket of the test S3 server and its builds
// in a database of the test Redis, compiling with goCache as GOCACHE. It skips, naming
// scripts/test.sh, when those servers are missing.
func serveEnv(b *testing.B, dir, addr, goCache string) []string {
	b.Helper()
	redisURL := storetest.RedisURL(b)
	_, s3cfg := storetest.S3(b)
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"),
		"SLIPWAY_ADDR=" + addr,
		"SLIPWAY_DATA_DIR=" + filepath.Join(dir, "data"),
		"SLIPWAY_REDIS_URL=" + redisURL,
		"SLIPWAY_S3_BUCKET=" + s3cfg.Bucket,
		"SLIPWAY_S3_ENDPOINT=" + s3cfg.Endpoint,
		"SLIPWAY_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s3cfg.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3cfg.SecretKey,
		"AWS_REGION=" + s3cfg.Region,
		"SLIPWAY_WORKERS=1",
		"SLIPWAY_GOCACHE=" + goCache,
		"SLIPWAY_BUILD_CACHE=local", // the figures of docs/PERFORMANCE.md are the go command's own cache's
		"SLIPWAY_GOMODCACHE=" + filepath.Join(dir, "gomodcache"),
		"SLIPWAY_GOPROXY=off",
		"SLIPWAY_GOSUMDB=off",
	}
}
