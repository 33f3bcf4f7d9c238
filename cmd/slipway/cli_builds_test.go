package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
)

// TestCLIBuildsLogsDownload lists builds, prints and follows their logs, and downloads a
// build's binaries by build id, release and channel, against a server on real Redis and
// S3; sha256sum -c then checks what was saved.
func TestCLIBuildsLogsDownload(t *testing.T) {
	p := startServe(t, buildEnv(t))
	call(t, "PUT", p.url+"/v1/apps/hello", "", `{"platforms":["linux/amd64","linux/arm64"]}`, http.StatusCreated, nil)
	cli := []string{"SLIPWAY_URL=" + p.url}
	dir := writeTree(t, map[string]string{"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": buildertest.HelloMain})
	r := runCLI(t, cli, "build", dir, "--app", "hello", "--version", "1.0.0", "--promote", "dev")
	id := field(r.stdout, "build")
	if r.code != 0 || id == "" {
		t.Fatalf("build --promote dev: %s", r)
	}

	t.Run("builds", func(t *testing.T) {
		r := runCLI(t, cli, "builds", "hello")
		row := regexp.MustCompile(`(?m)^` + id + `\s+1\.0\.0\s+succeeded\s+linux/amd64,linux/arm64\s+sha256:[0-9a-f]{12}\s+\d+s ago\s+[0-9.]+m?s$`)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "BUILD ") || !row.MatchString(r.stdout) {
			t.Errorf("builds hello:\n%s", r)
		}
		if r := runCLI(t, cli, "builds", "hello", "--status", "failed"); r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("builds hello --status failed: %s\nwant the header alone", r)
		}
		r = runCLI(t, cli, "builds", "hello", "--json")
		var l openapi.BuildList
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Items) != 1 || l.Items[0].Id != id {
			t.Errorf("builds --json = %+v, %v", l, err)
		}
		if r := runCLI(t, cli, "builds", "nope"); r.code != 3 || !strings.Contains(r.stderr, `no app named "nope" (404 not-found)`) {
			t.Errorf("builds nope: %s", r)
		}
	})

	t.Run("logs", func(t *testing.T) {
		log := buildLog(t, p.url, "hello", id)
		if r := runCLI(t, cli, "logs", "hello", id); r.code != 0 || r.stdout != log {
			t.Errorf("logs: %s\nwant the log:\n%s", r, log)
		}
		// A build followed from its start: the log as it is written, and exit 0.
		r := runCLI(t, cli, "build", dir, "--app", "hello", "--version", "1.0.1")
		next := field(r.stdout, "build")
		if r := runCLI(t, cli, "logs", "hello", next, "--follow"); r.code != 0 || r.stdout != buildLog(t, p.url, "hello", next) || !strings.Contains(r.stdout, "succeeded") {
			t.Errorf("logs --follow of a build that succeeds: %s", r)
		}
		bad := writeTree(t, map[string]string{"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": "package main\n\nfunc main() { notDefined() }\n"})
		r = runCLI(t, cli, "build", bad, "--app", "hello")
		failed := field(r.stdout, "build")
		r = runCLI(t, cli, "logs", "hello", failed, "--follow")
		if r.code != 1 || !strings.Contains(r.stdout, "undefined: notDefined") || !strings.Contains(r.stderr, "compile_failed") {
			t.Errorf("logs --follow of a build that fails: %s\nwant exit 1, the compiler's message and the reason", r)
		}
	})

	t.Run("download", func(t *testing.T) {
		all := t.TempDir()
		r := runCLI(t, cli, "download", "hello", "--channel", "dev", "-o", all)
		if r.code != 0 || !regexp.MustCompile(`(?m)^hello_linux_amd64\s+linux/amd64\s+`).MatchString(r.stdout) || !strings.Contains(r.stderr, "sha256sum -c") {
			t.Fatalf("download --channel dev: %s", r)
		}
		checkSums(t, all, "hello_linux_amd64", "hello_linux_arm64")
		if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
			out, err := exec.Command(filepath.Join(all, "hello_linux_amd64")).Output()
			if err != nil || string(out) != "1.0.0\n" {
				t.Errorf("the downloaded binary printed %q, %v; want its version 1.0.0", out, err)
			}
		}

		one := t.TempDir()
		if r := runCLI(t, cli, "download", "hello", "--version", "1.0.0", "--platform", "linux/arm64", "-o", one); r.code != 0 {
			t.Fatalf("download --version --platform: %s", r)
		}
		checkSums(t, one, "hello_linux_arm64")

		r = runCLI(t, cli, "download", "hello", id, "--platform", "linux/amd64", "-o", t.TempDir(), "--json")
		var saved struct {
			Build openapi.Build `json:"build"`
			Files []savedFile   `json:"files"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &saved); err != nil || saved.Build.Id != id || len(saved.Files) != 1 || saved.Files[0].Name != "hello_linux_amd64" {
			t.Errorf("download BUILD --json = %+v, %v: %s", saved, err, r)
		}

		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"--channel", "staging"}, 1, "channel staging of hello holds no release yet"},
			{[]string{id, "--platform", "windows/amd64"}, 3, "(404 not-found)"},
			{[]string{"--version", "9.9.9"}, 3, `hello has no release "9.9.9" (404 not-found)`},
			{nil, 2, "download needs one of BUILD, --version V or --channel CH"},
			{[]string{id, "--channel", "dev"}, 2, "download needs one of"},
		} {
			r := runCLI(t, cli, append([]string{"download", "hello", "-o", t.TempDir()}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("download hello %q: %s\nwant exit %d and %q", tc.args, r, tc.code, tc.want)
			}
		}
	})
}

// checkSums runs sha256sum -c SHA256SUMS in dir, which must hold exactly the files
// named and SHA256SUMS.
func checkSums(t *testing.T, dir string, files ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := append(slices.Clone(files), sumsName); !slices.Equal(names, slices.Sorted(slices.Values(want))) {
		t.Errorf("%s holds %q, want %q", dir, names, want)
	}
	cmd := exec.Command("sha256sum", "-c", sumsName)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sha256sum -c %s: %v\n%s", sumsName, err, out)
	}
	for _, f := range files {
		if !strings.Contains(string(out), f+": OK") {
			t.Errorf("sha256sum -c did not check %s:\n%s", f, out)
		}
	}
}

// TestCLIDownloadRefusesMismatch serves a binary that is not the one SHA256SUMS lists,
// and one under a name SHA256SUMS does not list: download refuses both and leaves
// nothing of them behind.
func TestCLIDownloadRefusesMismatch(t *testing.T) {
	good := sha256.Sum256([]byte("the real binary"))
	for _, tc := range []struct {
		name, filename, want string
	}{
		{"digest differs", "a_linux_amd64", "a_linux_amd64 has sha256 "},
		{"name not listed", "../a_linux_amd64", "which SHA256SUMS does not list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/v1/apps/a/builds/b":
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprint(w, `{"id":"b","app":"a","status":"succeeded","artifacts":[{"platform":"linux/amd64","digest":"sha256:`+hex.EncodeToString(good[:])+`","size":15}]}`)
				case "/v1/apps/a/builds/b/checksums":
					w.Header().Set("Content-Type", "text/plain")
					fmt.Fprintf(w, "%x  a_linux_amd64\n", good)
				case "/v1/apps/a/builds/b/artifacts/linux/amd64":
					w.Header().Set("Content-Disposition", `attachment; filename="`+tc.filename+`"`)
					w.Header().Set("Content-Type", "application/octet-stream")
					fmt.Fprint(w, "a tampered binary")
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			dir := t.TempDir()
			r := runCLI(t, []string{"SLIPWAY_URL=" + srv.URL}, "download", "a", "b", "-o", dir)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("download of a binary that does not match: %s\nwant exit 1 and %q", r, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("download left %v in %s", entries, dir)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "a_linux_amd64")); err == nil {
				t.Error("download wrote outside its directory")
			}
		})
	}
}

// TestCLICancel cancels a queued build (200, canceled at once), a running one (202, it
// stops within seconds), and one that has ended (409, too late), each said plainly.
func TestCLICancel(t *testing.T) {
	env := buildEnv(t)
	p := startServe(t, append(slices.Clone(env), "SLIPWAY_WORKERS=0")) // builds wait in the queue
	cli := []string{"SLIPWAY_URL=" + p.url}
	queued := submitSlow(t, p.url, "slow")
	r := runCLI(t, cli, "cancel", "slow", queued.Id)
	if r.code != 0 || r.stdout != "build "+queued.Id+" is canceled\n" {
		t.Errorf("cancel of a queued build: %s", r)
	}
	if b := getBuild(t, p.url, "slow", queued.Id); b.Status != openapi.BuildStatusCanceled {
		t.Errorf("the queued build is %s after cancel, want canceled", b.Status)
	}

	startWorker(t, env)
	running := postSource(t, p.url, "slow", buildertest.Module(t, "slow", map[string]string{"main.go": buildertest.SlowMain(60000)}))
	waitStatus(t, p.url, "slow", running.Id, time.Minute, func(b openapi.Build) bool { return b.Status == openapi.BuildStatusRunning })
	r = runCLI(t, cli, "cancel", "slow", running.Id)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "build "+running.Id+" is running; it was asked to stop") {
		t.Errorf("cancel of a running build: %s", r)
	}
	waitStatus(t, p.url, "slow", running.Id, time.Minute, func(b openapi.Build) bool { return b.Status == openapi.BuildStatusCanceled })

	done := postSource(t, p.url, "slow", buildertest.Module(t, "slow", map[string]string{"main.go": buildertest.HelloMain}))
	waitStatus(t, p.url, "slow", done.Id, time.Minute, func(b openapi.Build) bool { return b.Status == openapi.BuildStatusSucceeded })
	r = runCLI(t, cli, "cancel", "slow", done.Id)
	want := fmt.Sprintf("slipway: too late to cancel: build %s already succeeded (409 conflict)\n", done.Id)
	if r.code != 3 || r.stderr != want {
		t.Errorf("cancel of a build that succeeded: %s\nwant exit 3 and %q", r, want)
	}
}

// postSource posts a tar.gz as a build of app.
func postSource(t *testing.T, base, app string, src []byte) openapi.Build {
	t.Helper()
	resp, err := http.Post(base+"/v1/apps/"+app+"/builds", "application/gzip", bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b openapi.Build
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST build = %d, %v", resp.StatusCode, err)
	}
	return b
}
