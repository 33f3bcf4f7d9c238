package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readDotenv reads the KEY=value lines of a dotenv file.
func readDotenv(t *testing.T, name string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if !ok {
			t.Fatalf("%s: line %q is no KEY=value", name, line)
		}
		vars[k] = v
	}
	return vars
}

// TestCLIBuildIdempotencyKey is what --idempotency-key promises a CI job: the same key
// and source get the first answer, even when that was a failed build (an automatic
// retry of one attempt); a new key (a re-run) builds a failed build again, but gets a
// succeeded one without building. --summary and --dotenv describe a failed build too.
func TestCLIBuildIdempotencyKey(t *testing.T) {
	p := startServe(t, buildEnv(t))
	call(t, "PUT", p.url+"/v1/apps/hello", "", `{"platforms":["linux/amd64"]}`, http.StatusCreated, nil)
	cli := []string{"SLIPWAY_URL=" + p.url}
	bad := writeTree(t, map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.22\n",
		"main.go": "package main\n\nfunc main() { notDefined() }\n",
	})
	out := t.TempDir()
	summary, dotenv := filepath.Join(out, "summary.md"), filepath.Join(out, "slipway.env")
	build := func(dir, key string, extra ...string) cliResult {
		return runCLI(t, cli, append([]string{"build", dir, "--app", "hello", "--idempotency-key", key}, extra...)...)
	}

	first := build(bad, "run-1-attempt-1", "--summary", summary, "--dotenv", dotenv)
	failed := field(first.stdout, "build")
	if first.code != 1 || field(first.stdout, "status") != "failed" {
		t.Fatalf("a build that does not compile: %s\nwant exit 1 (--summary waits for the build)", first)
	}
	sum, _ := os.ReadFile(summary)
	for _, want := range []string{"build " + failed + " failed", "- error: compile_failed on linux/amd64", "/v1/apps/hello/builds/" + failed + "/log", "| linux/amd64 | - | - | - |"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("the summary of a failed build lacks %q:\n%s", want, sum)
		}
	}
	if env := readDotenv(t, dotenv); env["SLIPWAY_BUILD_ID"] != failed || env["SLIPWAY_IMAGE"] != "" {
		t.Errorf("the dotenv of failed build %s = %v", failed, env)
	}

	if r := build(bad, "run-1-attempt-1", "--follow"); field(r.stdout, "build") != failed || r.code != 1 {
		t.Errorf("the same key again: %s\nwant failed build %s, the first answer", r, failed)
	}
	again := build(bad, "run-1-attempt-2", "--follow")
	if id := field(again.stdout, "build"); id == failed || id == "" || again.code != 1 {
		t.Errorf("a new key after a failed build: %s\nwant a new build, not %s", again, failed)
	}

	good := writeTree(t, map[string]string{"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": "package main\n\nfunc main() {}\n"})
	ok := build(good, "run-2-attempt-1", "--follow")
	built := field(ok.stdout, "build")
	if r := build(good, "run-2-attempt-1"); field(r.stdout, "build") != built || strings.Contains(r.stderr, "has the same inputs") {
		t.Errorf("the same key again: %s\nwant build %s replayed", r, built)
	}
	if r := build(good, "run-2-attempt-2"); field(r.stdout, "build") != built || !strings.Contains(r.stderr, "has the same inputs") {
		t.Errorf("a new key after a succeeded build: %s\nwant build %s, deduplicated", r, built)
	}
}
