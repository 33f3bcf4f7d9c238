package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/openapi/openapitest"
	"github.com/slipway/slipway/store/storetest"
)

var binary string

// TestMain builds the slipway binary once; the tests run it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "slipway-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "slipway")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building slipway: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running `slipway serve`.
type process struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncWriter
	done   chan error
}

// baseEnv is the environment a user's shell would give slipway: PATH and HOME, and
// nothing of the test's own settings.
func baseEnv(t *testing.T) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
}

func startServe(t *testing.T, env []string) *process {
	t.Helper()
	return startServeIn(t, "", env)
}

// startServeIn starts slipway serve in the working directory dir ("": the test's) and
// waits until it is ready.
func startServeIn(t *testing.T, dir string, env []string) *process {
	t.Helper()
	addr := storetest.FreeAddr(t)
	cmd := exec.Command(binary, "serve")
	cmd.Dir = dir
	cmd.Env = append(baseEnv(t), append([]string{"SLIPWAY_ADDR=" + addr, "SLIPWAY_DATA_DIR=" + t.TempDir()}, env...)...)
	p := &process{cmd: cmd, url: "http://" + addr, stderr: &syncWriter{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("slipway serve exited at start: %v\n%s", err, p.stderr)
		default:
		}
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("slipway serve was not ready within 30s\n%s", p.stderr)
	return nil
}

// syncWriter is a buffer the child's output goroutine writes while the test reads it.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestServeDoneWhen is the "done when", end to end against the binary: ready,
// serves a valid spec, creates an app with the defaults, stops cleanly on SIGTERM.
func TestServeDoneWhen(t *testing.T) {
	p := startServe(t, []string{"SLIPWAY_REDIS_URL=" + storetest.RedisURL(t)})
	client := openapitest.New(t).Client(t)

	resp, err := client.Get(p.url + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		t.Fatalf("served /openapi.yaml does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("served /openapi.yaml does not validate: %v", err)
	}

	req, _ := http.NewRequest("PUT", p.url+"/v1/apps/hello", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT /v1/apps/hello {} = %d, want 201", resp.StatusCode)
	}
	resp, err = client.Get(p.url + "/v1/apps/hello")
	if err != nil {
		t.Fatal(err)
	}
	var app openapi.App
	err = json.NewDecoder(resp.Body).Decode(&app)
	resp.Body.Close()
	if err != nil || app.Main != "." || len(app.Platforms) != 2 || len(app.Channels) != 3 || app.Ldflags != "-X main.version={{.Version}}" {
		t.Errorf("GET /v1/apps/hello = %+v, %v; want the defaults", app, err)
	}

	stopServe(t, p)
	logs := p.stderr.String()
	for _, want := range []string{`"msg":"slipway serving"`, `"msg":"request"`, `"route":"/v1/apps/:app"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

// TestServeOnS3 runs the server with its blobs in a real S3 bucket.
func TestServeOnS3(t *testing.T) {
	_, s3cfg := storetest.S3(t)
	p := startServe(t, []string{
		"SLIPWAY_REDIS_URL=" + storetest.RedisURL(t),
		"SLIPWAY_S3_BUCKET=" + s3cfg.Bucket,
		"SLIPWAY_S3_ENDPOINT=" + s3cfg.Endpoint,
		"SLIPWAY_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s3cfg.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3cfg.SecretKey,
		"AWS_REGION=" + s3cfg.Region,
	})
	if !strings.Contains(p.stderr.String(), `"blobs":"s3://`+s3cfg.Bucket) {
		t.Errorf("start-up log does not name the bucket:\n%s", p.stderr)
	}
}

// TestServeFailsFast checks the one-line start-up errors.
func TestServeFailsFast(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   []string
		code  int
		wants []string
		never []string
	}{
		{
			name:  "redis unreachable",
			env:   []string{"SLIPWAY_REDIS_URL=redis://:hunter2@" + storetest.FreeAddr(t) + "/0", "SLIPWAY_REDIS_WAIT=0"},
			code:  1,
			wants: []string{"cannot reach Redis at redis://", "SLIPWAY_REDIS_URL"},
			never: []string{"hunter2"},
		},
		{
			name:  "redis URL malformed",
			env:   []string{"SLIPWAY_REDIS_URL=mysql://nope"},
			code:  2,
			wants: []string{"SLIPWAY_REDIS_URL", "redis://"},
		},
		{
			name:  "bad flag",
			args:  []string{"--nope"},
			code:  2,
			wants: []string{"-nope", "slipway serve --help"},
		},
		{
			name:  "bad duration",
			env:   []string{"SLIPWAY_SHUTDOWN_TIMEOUT=soon"},
			code:  2,
			wants: []string{"SLIPWAY_SHUTDOWN_TIMEOUT"},
		},
		{
			name:  "endpoint without bucket",
			env:   []string{"SLIPWAY_S3_ENDPOINT=http://127.0.0.1:1"},
			code:  2,
			wants: []string{"SLIPWAY_S3_BUCKET"},
		},
		{
			name:  "no go toolchain",
			env:   []string{"SLIPWAY_REDIS_URL=" + storetest.RedisURL(t), "SLIPWAY_GO=/nonexistent/go"},
			code:  1,
			wants: []string{"Go toolchain", "SLIPWAY_GO"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary, append([]string{"serve"}, tc.args...)...)
			cmd.Env = append(baseEnv(t), append([]string{"SLIPWAY_ADDR=" + storetest.FreeAddr(t), "SLIPWAY_DATA_DIR=" + t.TempDir()}, tc.env...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if code != tc.code {
				t.Fatalf("exit code %d (%v), want %d\nstderr: %s", code, err, tc.code, stderr.String())
			}
			out := strings.TrimRight(stderr.String(), "\n")
			if strings.Count(out, "\n") != 0 {
				t.Errorf("stderr has %d lines, want one:\n%s", strings.Count(out, "\n")+1, out)
			}
			for _, w := range tc.wants {
				if !strings.Contains(out, w) {
					t.Errorf("stderr lacks %q: %s", w, out)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(out+stdout.String(), n) {
					t.Errorf("output leaks %q: %s", n, out)
				}
			}
		})
	}
}

func TestServeHelpListsEverySetting(t *testing.T) {
	out, err := exec.Command(binary, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, out)
	}
	for _, s := range serveSettings(&serveConfig{}) {
		for _, want := range []string{"--" + s.flag, s.env} {
			if !bytes.Contains(out, []byte(want)) {
				t.Errorf("serve --help lacks %s", want)
			}
		}
	}
	for _, want := range []string{"SLIPWAY_ADDR", "SLIPWAY_REDIS_URL", "SLIPWAY_DATA_DIR", "SLIPWAY_S3_BUCKET", "SLIPWAY_S3_ENDPOINT",
		"SLIPWAY_S3_REGION", "SLIPWAY_S3_PATH_STYLE", "SLIPWAY_ADMIN_TOKEN", "default: 127.0.0.1:8080", "default: redis://127.0.0.1:6379/0", "default: ./data"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

func TestParseServePrecedence(t *testing.T) {
	env := map[string]string{"SLIPWAY_ADDR": "127.0.0.1:9000", "SLIPWAY_S3_PATH_STYLE": "true", "SLIPWAY_ADMIN_TOKEN": "s3cret"}
	cfg, err := parseServe("serve", []string{"--addr", "127.0.0.1:9100"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9100" || !cfg.S3PathStyle || cfg.AdminToken != "s3cret" || cfg.RedisURL != "redis://127.0.0.1:6379/0" || cfg.ShutdownTimeout != 20*time.Second {
		t.Errorf("parseServe = %+v, want the flag over the variable over the default", cfg)
	}
	_, err = parseServe("serve", nil, func(k string) string {
		if k == "SLIPWAY_S3_PATH_STYLE" {
			return "maybe"
		}
		return ""
	}, io.Discard)
	if err == nil {
		t.Error("parseServe(SLIPWAY_S3_PATH_STYLE=maybe) = nil error")
	}
}

func TestRunUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), nil, os.Getenv, &out, &errOut); err == nil {
		t.Error("run() with no command = nil error")
	}
	if err := run(context.Background(), []string{"frobnicate"}, os.Getenv, &out, &errOut); err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("run(frobnicate) = %v", err)
	}
	if err := run(context.Background(), []string{"version"}, os.Getenv, &out, &errOut); err != nil || !strings.Contains(out.String(), "slipway") {
		t.Errorf("run(version) = %v, %q", err, out.String())
	}
}

func TestServeRefusesOpenNonLoopback(t *testing.T) {
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(baseEnv(t), "SLIPWAY_ADDR=0.0.0.0:0", "SLIPWAY_DATA_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "SLIPWAY_ADMIN_TOKEN") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("serve on 0.0.0.0 without a token = %v: %s; want exit 2 and one line naming SLIPWAY_ADMIN_TOKEN", err, out)
	}
}
