package main

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway/slipway/builder/buildertest"
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
		"SLIPWAY_GOCACHE=" + relativeTo(t, dir, goEnv.Cache),
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
