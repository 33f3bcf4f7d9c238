package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
)

// tinyMain imports nothing, so a cold build compiles only the runtime and what it needs.
const tinyMain = "package main\n\nvar version = \"dev\"\n\nfunc main() { println(version) }\n"

// metric reads one sample of /metrics, or -1 when it is not there.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestServeSharedBuildCache builds with the default build cache (shared, through S3) on one
// slipway serve, stops it, and builds a changed module on another with an empty data
// directory: its workers take the unchanged packages from the bucket, as /metrics shows;
// its next build of the app uses its hot tier.
func TestServeSharedBuildCache(t *testing.T) {
	env := append(buildEnv(t), "SLIPWAY_BUILD_CACHE=shared")
	build := func(p *process, main string) {
		t.Helper()
		req, _ := http.NewRequest("PUT", p.url+"/v1/apps/cached", strings.NewReader(`{"platforms":["linux/amd64"]}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		b := postSource(t, p.url, "cached", buildertest.Module(t, "cached", map[string]string{"main.go": main}))
		done := waitStatus(t, p.url, "cached", b.Id, 5*time.Minute, func(b openapi.Build) bool {
			return b.Status == openapi.BuildStatusSucceeded || b.Status == openapi.BuildStatusFailed
		})
		if done.Status != openapi.BuildStatusSucceeded {
			t.Fatalf("build = %s:\n%s", done.Status, buildLog(t, p.url, "cached", b.Id))
		}
	}
	first := startServe(t, env)
	build(first, tinyMain)
	if m := metric(t, first.url, `slipway_build_cache_gets_total{result="miss"}`); m <= 0 {
		t.Fatalf("misses after a cold build = %v, want some", m)
	}
	if m := metric(t, first.url, "slipway_build_cache_puts_total"); m <= 0 {
		t.Fatalf("puts after a cold build = %v, want some", m)
	}
	// SIGTERM: the server drains its uploads before it exits.
	first.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-first.done:
	case <-time.After(time.Minute):
		t.Fatal("slipway serve did not stop within a minute of SIGTERM")
	}
	first.done <- nil
	if !strings.Contains(first.stderr.String(), `"msg":"build cache stopped"`) {
		t.Errorf("the build cache did not say it stopped:\n%s", first.stderr)
	}

	second := startServe(t, env)
	build(second, tinyMain+"\n// changed\n")
	if m := metric(t, second.url, `slipway_build_cache_gets_total{result="remote_hit"}`); m <= 0 {
		t.Errorf("remote hits of a fresh server = %v, want the runtime's packages", m)
	}
	if m := metric(t, second.url, "slipway_build_cache_remote_refused_total"); m != 0 {
		t.Errorf("refused remote entries = %v, want 0", m)
	}
	// The server's next build of the app (the same go.mod, its code changed again) runs
	// on the hot tier, the go command's own cache, which the first one filled.
	if m := metric(t, second.url, "slipway_build_cache_hot_compiles_total"); m != 0 {
		t.Errorf("hot compiles of a fresh server = %v, want 0", m)
	}
	build(second, tinyMain+"\n// changed again\n")
	if m := metric(t, second.url, "slipway_build_cache_hot_compiles_total"); m != 1 {
		t.Errorf("hot compiles after the server's second build of the app = %v, want 1", m)
	}
}

// TestCachePrune runs `slipway cache prune` against the filesystem store of a data
// directory: it deletes only the build cache's objects older than --older-than.
func TestCachePrune(t *testing.T) {
	data := t.TempDir()
	fs, err := store.NewFS(filepath.Join(data, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []string{store.GoCacheActionKey("shared", strings.Repeat("a", 64)), store.GoCacheOutputKey("shared", strings.Repeat("b", 64)), "logs/app/x.log"} {
		if _, err := fs.Put(ctx, key, bytes.NewReader([]byte("content")), ""); err != nil {
			t.Fatal(err)
		}
	}
	fs.Close()
	prune := func(olderThan string) string {
		t.Helper()
		cmd := exec.Command(binary, "cache", "prune", "--older-than", olderThan)
		cmd.Env = append(baseEnv(t), "SLIPWAY_DATA_DIR="+data)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("slipway cache prune --older-than %s: %v\n%s", olderThan, err, out)
		}
		return string(out)
	}
	if out := prune("1h"); !strings.Contains(out, "deleted 0 objects") || !strings.Contains(out, "kept 2 ") {
		t.Errorf("prune --older-than 1h of new objects printed %q, want 0 deleted, 2 kept", out)
	}
	time.Sleep(20 * time.Millisecond)
	if out := prune("10ms"); !strings.Contains(out, "deleted 2 objects (14 bytes)") || !strings.Contains(out, "kept 0 ") {
		t.Errorf("prune --older-than 10ms printed %q, want 2 deleted (14 bytes), 0 kept", out)
	}
	fs, _ = store.NewFS(filepath.Join(data, "blobs"))
	defer fs.Close()
	if _, err := fs.Stat(ctx, "logs/app/x.log"); err != nil {
		t.Errorf("prune deleted a key outside gocache/: %v", err)
	}
}
