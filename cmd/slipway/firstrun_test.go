package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// relativeTo is target as a path relative to dir.
func relativeTo(t *testing.T, dir, target string) string {
	t.Helper()
	rel, err := filepath.Rel(dir, target)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// TestServeRelativeDataDir runs serve as the README does, with the default data directory
// ./data and relative Go caches, and builds: the go command refuses relative GOPATH,
// GOCACHE and GOMODCACHE entries, so serve must make them absolute at start.
func TestServeRelativeDataDir(t *testing.T) {
	_, goEnv := buildertest.Toolchain(t)
	dir := t.TempDir()
	p := startServeIn(t, dir, []string{
		"SLIPWAY_REDIS_URL=" + storetest.RedisURL(t),
		"SLIPWAY_DATA_DIR=", // the default, ./data
		"SLIPWAY_GOCACHE=" + relativeTo(t, dir, goEnv.Cache), "SLIPWAY_BUILD_CACHE=local",
		"SLIPWAY_GOMODCACHE=" + relativeTo(t, dir, goEnv.ModCache),
		"SLIPWAY_GOPROXY=off", "SLIPWAY_GOSUMDB=off",
	})
	call(t, "PUT", p.url+"/v1/apps/hello", "", `{"platforms":["linux/amd64"]}`, http.StatusCreated, nil)
	mod := writeTree(t, map[string]string{"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": buildertest.HelloMain})
	r := runCLI(t, []string{"SLIPWAY_URL=" + p.url}, "build", mod, "--app", "hello", "--version", "1.0.0", "--follow")
	if r.code != 0 || field(r.stdout, "status") != "succeeded" {
		t.Fatalf("build with a relative data dir: %s\nserver log:\n%s", r, p.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "blobs")); err != nil {
		t.Errorf("the blobs are not under ./data of serve's working directory: %v", err)
	}
}

// stopServe stops p with SIGTERM, as a terminal or an orchestrator does, and checks that
// it exits 0.
func stopServe(t *testing.T, p *process) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("after SIGTERM slipway exited with %v, want 0\n%s", err, p.stderr)
		}
		p.done <- err // for the cleanup
	case <-time.After(60 * time.Second):
		t.Fatal("slipway did not stop within 60s of SIGTERM")
	}
}

// logRecord finds the first JSON log line whose msg starts with prefix.
func logRecord(t *testing.T, logs, prefix string) map[string]any {
	t.Helper()
	for line := range strings.Lines(logs) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(fmt.Sprint(rec["msg"]), prefix) {
			return rec
		}
	}
	t.Fatalf("no log line %q in:\n%s", prefix, logs)
	return nil
}

// TestServeEmbeddedRedis runs serve with a private redis-server twice on one data
// directory: it says so in one log line, the server is gone once serve has exited, and
// what the first serve wrote is there for the second.
func TestServeEmbeddedRedis(t *testing.T) {
	storetest.NeedRedisServer(t)
	data := t.TempDir()
	env := []string{"SLIPWAY_REDIS_URL=embedded", "SLIPWAY_DATA_DIR=" + data, "SLIPWAY_WORKERS=0"}
	p := startServe(t, env)
	rec := logRecord(t, p.stderr.String(), "started a private redis-server")
	conf, err := os.ReadFile(filepath.Join(data, "redis", "redis.conf"))
	if err != nil {
		t.Fatal(err)
	}
	password := regexp.MustCompile(`(?m)^requirepass "(.+)"$`).FindSubmatch(conf)
	if rec["dir"] != filepath.Join(data, "redis") || password == nil || strings.Contains(p.stderr.String(), string(password[1])) {
		t.Errorf("the private redis-server's log line = %v, want its dir under the data dir and no password", rec)
	}
	pid := int(rec["pid"].(float64))
	call(t, "PUT", p.url+"/v1/apps/hello", "", `{}`, http.StatusCreated, nil)
	stopServe(t, p)
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("redis-server %d after serve exited: kill(0) = %v, want ESRCH (gone)", pid, err)
	}
	if _, err := os.Stat(filepath.Join(data, "redis", "appendonlydir")); err != nil {
		t.Errorf("no append-only file under the data dir: %v", err)
	}

	p = startServe(t, env)
	call(t, "GET", p.url+"/v1/apps/hello", "", "", http.StatusOK, nil)
	stopServe(t, p)
}

// TestConnectRedis checks which Redis serve and worker take: an explicit URL is never
// replaced, the default is used when it answers, and a private redis-server is started
// only for serve, only when nothing answers at the default.
func TestConnectRedis(t *testing.T) {
	storetest.NeedRedisServer(t)
	live := storetest.RedisURL(t)
	dead := "redis://" + storetest.FreeAddr(t) + "/0"
	for _, tc := range []struct {
		name        string
		cfg         serveConfig
		private     bool
		wantPrivate bool
		wantErr     string
	}{
		{name: "explicit answers", cfg: serveConfig{RedisURL: live, RedisExplicit: true}, private: true},
		{name: "explicit silent", cfg: serveConfig{RedisURL: dead, RedisExplicit: true}, private: true, wantErr: "cannot reach Redis at " + dead},
		{name: "default answers", cfg: serveConfig{RedisURL: live}, private: true},
		{name: "default silent", cfg: serveConfig{RedisURL: dead}, private: true, wantPrivate: true},
		{name: "default silent, worker", cfg: serveConfig{RedisURL: dead}, wantErr: "cannot reach Redis at " + dead},
		{name: "embedded, worker", cfg: serveConfig{RedisURL: embeddedRedis}, wantErr: "SLIPWAY_REDIS_URL=embedded is for serve alone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.DataDir = t.TempDir()
			var logs bytes.Buffer
			rdb, priv, err := connectRedis(context.Background(), tc.cfg, tc.private, slog.New(slog.NewJSONHandler(&logs, nil)))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || priv != nil {
					t.Fatalf("connectRedis = %v, %v; want the error %q and no private server", priv, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if (priv != nil) != tc.wantPrivate || strings.Contains(logs.String(), "private") != tc.wantPrivate {
				t.Fatalf("connectRedis started a private server: %v, want %v; log:\n%s", priv != nil, tc.wantPrivate, logs.String())
			}
			if priv != nil {
				defer priv.stop()
				if !strings.Contains(logs.String(), "nothing answers at "+dead) {
					t.Errorf("the log does not say why it started a private server:\n%s", logs.String())
				}
			}
			if err := rdb.Ping(context.Background()).Err(); err != nil {
				t.Errorf("PING = %v", err)
			}
		})
	}
}

// TestConnectRedisCluster checks SLIPWAY_REDIS_CLUSTER: the URL names the nodes of a Redis
// Cluster, reached with a cluster client that serves keys of every slot; what is not a
// cluster, not a cluster URL, or embedded is refused with the password redacted; a plain
// URL that reaches a cluster node is warned about.
func TestConnectRedisCluster(t *testing.T) {
	cluster := storetest.RedisClusterURL(t)
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	rdb, priv, err := connectRedis(ctx, serveConfig{RedisURL: cluster, RedisExplicit: true, RedisCluster: true}, true, log)
	if err != nil || priv != nil {
		t.Fatalf("connectRedis(%s, cluster) = %v, %v; want a client and no private server", cluster, priv, err)
	}
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("connectRedis(cluster) = %T, want *redis.ClusterClient", rdb)
	}
	for _, app := range []string{"a", "b", "c", "d", "e"} { // keys of several slots, so of every node
		if err := rdb.Set(ctx, store.AppKey(app), "x", 0).Err(); err != nil {
			t.Errorf("SET %s = %v", store.AppKey(app), err)
		}
	}
	if err := pingRedis(ctx, rdb); err != nil {
		t.Errorf("pingRedis(cluster) = %v", err)
	}

	standalone := storetest.RedisURL(t)
	node, _, _ := strings.Cut(cluster, "?")
	plain, _, err := connectRedis(ctx, serveConfig{RedisURL: node, RedisExplicit: true}, false, log)
	if err != nil {
		t.Fatalf("connectRedis(a cluster node, plain) = %v, want a client and a warning", err)
	}
	plain.Close()
	if !strings.Contains(logs.String(), "set SLIPWAY_REDIS_CLUSTER=true") {
		t.Errorf("connectRedis(a cluster node, plain) logged no warning:\n%s", logs.String())
	}

	dead := "redis://:hunter2@" + storetest.FreeAddr(t) + "?addr=" + storetest.FreeAddr(t)
	for _, tc := range []struct {
		name, url, wantErr string
		usage, plain       bool
	}{
		{name: "embedded", url: embeddedRedis, wantErr: "SLIPWAY_REDIS_URL=embedded starts one private redis-server, not a Redis Cluster", usage: true},
		{name: "not a cluster", url: strings.TrimSuffix(standalone, "/"+path.Base(standalone)), wantErr: "refused slipway"},
		{name: "database", url: strings.Replace(cluster, "?", "/3?", 1), wantErr: "is not a Redis Cluster URL", usage: true},
		{name: "silent", url: dead, wantErr: "cannot reach Redis at redis://:xxxxx@"},
		{name: "cluster URL, plain", url: cluster, wantErr: "set SLIPWAY_REDIS_CLUSTER=true", usage: true, plain: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := serveConfig{RedisURL: tc.url, RedisExplicit: true, RedisCluster: !tc.plain, DataDir: t.TempDir()}
			rdb, priv, err := connectRedis(ctx, cfg, true, slog.New(slog.DiscardHandler))
			var usage *usageError
			if err == nil || rdb != nil || priv != nil || !strings.Contains(err.Error(), tc.wantErr) || errors.As(err, &usage) != tc.usage || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("connectRedis(%s, cluster) = %v, %v, %v; want the error %q (usage %v) without the password", tc.url, rdb, priv, err, tc.wantErr, tc.usage)
			}
		})
	}
}

// TestConnectRedisNoServer checks the one line that says how to install redis-server.
func TestConnectRedisNoServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, _, err := connectRedis(context.Background(), serveConfig{RedisURL: embeddedRedis, DataDir: t.TempDir()}, true, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "no redis-server on PATH") || !strings.Contains(err.Error(), "apt-get install redis-server") || strings.Contains(err.Error(), "\n") {
		t.Errorf("connectRedis without redis-server = %v, want one line on installing it", err)
	}
}

// startLines starts the binary with args and env and returns its stderr a line at a time.
func startLines(t *testing.T, env []string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(baseEnv(t), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, scanLines(stderr)
}

// scanLines sends r's lines until it ends, then closes the channel. It never stops
// reading, so that the writer never blocks: lines beyond the channel's 10 000 are dropped.
func scanLines(r io.Reader) <-chan string {
	lines := make(chan string, 10000)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, r)
		close(lines)
	}()
	return lines
}

// waitLine reads lines until one holds want, and fails the test if they end first.
func waitLine(t *testing.T, lines <-chan string, want string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the output ended without %q:\n%s", want, strings.Join(seen, "\n"))
			}
			if strings.Contains(l, want) {
				return l
			}
			seen = append(seen, l)
		case <-timeout:
			t.Fatalf("no %q within 60s:\n%s", want, strings.Join(seen, "\n"))
		}
	}
}

// TestServeWaitsForRedis starts serve before its Redis, as compose does: serve says it
// waits, and serves once Redis is up.
func TestServeWaitsForRedis(t *testing.T) {
	srv := storetest.StartRedisServer(t)
	srv.Stop()
	addr := storetest.FreeAddr(t)
	_, lines := startLines(t, []string{"SLIPWAY_REDIS_URL=" + srv.URL(), "SLIPWAY_REDIS_WAIT=2m", "SLIPWAY_ADDR=" + addr,
		"SLIPWAY_DATA_DIR=" + t.TempDir(), "SLIPWAY_WORKERS=0"}, "serve")
	waitLine(t, lines, "Redis does not answer yet; waiting for it")
	srv.Start()
	waitLine(t, lines, `"msg":"slipway serving"`)
	call(t, "GET", "http://"+addr+"/readyz", "", "", http.StatusOK, nil)
}

// TestServeRedisWaitGivesUp checks that serve stops waiting for an explicit Redis after
// SLIPWAY_REDIS_WAIT, with one line that says so, and starts no redis-server instead.
func TestServeRedisWaitGivesUp(t *testing.T) {
	url := "redis://:hunter2@" + storetest.FreeAddr(t) + "/0"
	start := time.Now()
	cmd, lines := startLines(t, []string{"SLIPWAY_REDIS_URL=" + url, "SLIPWAY_REDIS_WAIT=1s", "SLIPWAY_ADDR=" + storetest.FreeAddr(t),
		"SLIPWAY_DATA_DIR=" + t.TempDir()}, "serve")
	var out []string
	for l := range lines {
		out = append(out, l)
	}
	err := cmd.Wait()
	took := time.Since(start)
	last := out[len(out)-1]
	if cmd.ProcessState.ExitCode() != 1 || !strings.HasPrefix(last, "slipway: cannot reach Redis at redis://") || !strings.Contains(last, "waited 1s (SLIPWAY_REDIS_WAIT)") {
		t.Errorf("serve with a silent Redis = %v; output:\n%s\nwant exit 1 and a last line that says it waited 1s", err, strings.Join(out, "\n"))
	}
	all := strings.Join(out, "\n")
	if strings.Contains(all, "hunter2") || strings.Contains(all, "private redis-server") {
		t.Errorf("serve leaked the password or started a private Redis:\n%s", all)
	}
	if took < time.Second || took > 20*time.Second {
		t.Errorf("serve gave up after %s, want about 1s", took)
	}
}

func TestParseServeRedisExplicit(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{name: "default", want: false},
		{name: "variable", env: map[string]string{"SLIPWAY_REDIS_URL": "redis://127.0.0.1:6379/0"}, want: true},
		{name: "flag", args: []string{"--redis-url", "redis://127.0.0.1:6379/0"}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseServe("serve", tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil || cfg.RedisExplicit != tc.want || cfg.RedisWait != 30*time.Second {
				t.Errorf("parseServe(%q, %v) = RedisExplicit %v, RedisWait %s, %v; want %v, 30s", tc.args, tc.env, cfg.RedisExplicit, cfg.RedisWait, err, tc.want)
			}
		})
	}
}
