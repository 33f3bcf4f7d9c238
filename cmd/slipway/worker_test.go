package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// startWorker runs `slipway worker` with env until the test ends.
func startWorker(t *testing.T, env []string) *process {
	t.Helper()
	cmd := exec.Command(binary, "worker")
	cmd.Env = append(baseEnv(t), append([]string{"SLIPWAY_DATA_DIR=" + t.TempDir()}, env...)...)
	p := &process{cmd: cmd, stderr: &syncWriter{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-p.done
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), `"msg":"worker started"`) {
		if time.Now().After(deadline) {
			t.Fatalf("slipway worker did not start:\n%s", p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// buildEnv is the environment of processes that share one Redis and one bucket, with the
// test machine's Go caches and no network for modules.
func buildEnv(t *testing.T) []string {
	t.Helper()
	_, goEnv := buildertest.Toolchain(t)
	_, s3cfg := storetest.S3(t)
	return []string{
		"SLIPWAY_REDIS_URL=" + storetest.RedisURL(t),
		"SLIPWAY_S3_BUCKET=" + s3cfg.Bucket,
		"SLIPWAY_S3_ENDPOINT=" + s3cfg.Endpoint,
		"SLIPWAY_S3_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s3cfg.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3cfg.SecretKey,
		"AWS_REGION=" + s3cfg.Region,
		"SLIPWAY_GOPROXY=off",
		"SLIPWAY_GOSUMDB=off",
		"SLIPWAY_BUILD_VISIBILITY=2s",
		"SLIPWAY_GOCACHE=" + goEnv.Cache,
		// The machine's warm GOCACHE, as it is: the shared cache would start cold.
		"SLIPWAY_BUILD_CACHE=local",
		"SLIPWAY_GOMODCACHE=" + goEnv.ModCache,
	}
}

func getBuild(t *testing.T, base, app, id string) openapi.Build {
	t.Helper()
	resp, err := http.Get(base + "/v1/apps/" + app + "/builds/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b openapi.Build
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func buildLog(t *testing.T, base, app, id string) string {
	t.Helper()
	resp, err := http.Get(base + "/v1/apps/" + app + "/builds/" + id + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// putApp creates or updates app for linux/amd64 and checks that the answer's status is
// one of want.
func putApp(t *testing.T, base, app string, want ...int) {
	t.Helper()
	req, _ := http.NewRequest("PUT", base+"/v1/apps/"+app, strings.NewReader(`{"platforms":["linux/amd64"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT app: %v", err)
	}
	resp.Body.Close()
	if !slices.Contains(want, resp.StatusCode) {
		t.Fatalf("PUT app = %d, want one of %v", resp.StatusCode, want)
	}
}

// submitSlow creates app and posts a build whose compile takes several seconds.
func submitSlow(t *testing.T, base, app string) openapi.Build {
	t.Helper()
	putApp(t, base, app, http.StatusCreated)
	return postSource(t, base, app, buildertest.Module(t, app, map[string]string{"main.go": buildertest.SlowMain(60000)}))
}

// waitLog waits until the build's log contains want.
func waitLog(t *testing.T, base, app, id, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(buildLog(t, base, app, id), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log of build %s never said %q:\n%s", id, want, buildLog(t, base, app, id))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitStatus(t *testing.T, base, app, id string, within time.Duration, ok func(openapi.Build) bool) openapi.Build {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b := getBuild(t, base, app, id)
		if ok(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %s is %s after %s", id, b.Status, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWorkerKilledMidBuild kills a worker process while it compiles: another worker
// takes the build over after the visibility timeout and finishes it, once.
func TestWorkerKilledMidBuild(t *testing.T) {
	env := buildEnv(t)
	api := startServe(t, append(env, "SLIPWAY_WORKERS=0"))
	first := startWorker(t, env)
	b := submitSlow(t, api.url, "killed")
	waitStatus(t, api.url, "killed", b.Id, time.Minute, func(b openapi.Build) bool { return b.Status == openapi.BuildStatusRunning })
	waitLog(t, api.url, "killed", b.Id, "linux/amd64: go build", time.Minute) // the compile has started
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	first.done <- nil

	startWorker(t, env)
	done := waitStatus(t, api.url, "killed", b.Id, 3*time.Minute, func(b openapi.Build) bool {
		return b.Status != openapi.BuildStatusRunning && b.Status != openapi.BuildStatusQueued
	})
	log := buildLog(t, api.url, "killed", b.Id)
	if done.Status != openapi.BuildStatusSucceeded || done.Attempts != 2 {
		t.Fatalf("build = %s after %d attempts, want succeeded after 2\n%s", done.Status, done.Attempts, log)
	}
	if n := strings.Count(log, "] succeeded in") + strings.Count(log, " succeeded in "); n != 1 {
		t.Errorf("log records %d successes, want 1:\n%s", n, log)
	}
	if !strings.Contains(log, "attempt 1 of 3") || !strings.Contains(log, "attempt 2 of 3") {
		t.Errorf("log does not show both attempts:\n%s", log)
	}
}

// TestStaleWorkerCannotOverwrite freezes a worker mid-build (SIGSTOP) until another has
// finished the build, then lets it run on: its result is dropped.
func TestStaleWorkerCannotOverwrite(t *testing.T) {
	env := buildEnv(t)
	api := startServe(t, append(env, "SLIPWAY_WORKERS=0"))
	frozen := startWorker(t, env)
	b := submitSlow(t, api.url, "stale")
	waitStatus(t, api.url, "stale", b.Id, time.Minute, func(b openapi.Build) bool { return b.Status == openapi.BuildStatusRunning })
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	startWorker(t, env)
	done := waitStatus(t, api.url, "stale", b.Id, 3*time.Minute, func(b openapi.Build) bool {
		return b.Status == openapi.BuildStatusSucceeded || b.Status == openapi.BuildStatusFailed
	})
	if done.Status != openapi.BuildStatusSucceeded || done.Attempts != 2 {
		t.Fatalf("build = %s after %d attempts", done.Status, done.Attempts)
	}
	_ = frozen.cmd.Process.Signal(syscall.SIGCONT)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(frozen.stderr.String(), "lost the build to another worker") {
		if time.Now().After(deadline) {
			t.Fatalf("the frozen worker never noticed it lost the build:\n%s", frozen.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := getBuild(t, api.url, "stale", b.Id)
	if after.Status != openapi.BuildStatusSucceeded || after.Attempts != 2 || !after.FinishedAt.Equal(*done.FinishedAt) {
		t.Errorf("after the stale worker woke up: %s attempts %d finished %v, want unchanged", after.Status, after.Attempts, after.FinishedAt)
	}
}

// TestAttemptsRunOut kills the only worker allowed an attempt: the next worker fails the
// build with reason internal and the attempts in its log.
func TestAttemptsRunOut(t *testing.T) {
	env := append(buildEnv(t), "SLIPWAY_BUILD_ATTEMPTS=1")
	api := startServe(t, append(env, "SLIPWAY_WORKERS=0"))
	first := startWorker(t, env)
	b := submitSlow(t, api.url, "doomed")
	waitStatus(t, api.url, "doomed", b.Id, time.Minute, func(b openapi.Build) bool { return b.Status == openapi.BuildStatusRunning })
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	first.done <- nil
	startWorker(t, env)
	done := waitStatus(t, api.url, "doomed", b.Id, time.Minute, func(b openapi.Build) bool { return b.Status == openapi.BuildStatusFailed })
	log := buildLog(t, api.url, "doomed", b.Id)
	if done.Error == nil || done.Error.Reason != openapi.BuildErrorReasonInternal || !strings.Contains(log, "attempt 1 of 1") || !strings.Contains(log, "giving up") {
		t.Errorf("build = %s %+v, want failed/internal with the attempts in its log:\n%s", done.Status, done.Error, log)
	}
}

// waitExit waits for p to exit by itself and returns how.
func waitExit(t *testing.T, p *process, within time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(within):
		t.Fatalf("the process did not exit within %s:\n%s", within, p.stderr)
		return nil
	}
}

// submitHello creates app and posts a build that compiles at once.
func submitHello(t *testing.T, base, app string) openapi.Build {
	t.Helper()
	putApp(t, base, app, http.StatusCreated, http.StatusOK)
	return postSource(t, base, app, buildertest.Module(t, app, map[string]string{
		"main.go": "package main\n\nconst nonce = \"" + t.Name() + time.Now().String() + "\"\n\nfunc main() { println(nonce) }\n"}))
}

// TestWorkerOnce runs `slipway worker --once` with two builds queued: it runs one to its
// end and exits 0, leaving the other queued for the next such process.
func TestWorkerOnce(t *testing.T) {
	env := buildEnv(t)
	api := startServe(t, append(env, "SLIPWAY_WORKERS=0"))
	first := submitHello(t, api.url, "once")
	second := submitHello(t, api.url, "once")

	w := startWorker(t, append(env, "SLIPWAY_WORKER_ONCE=true"))
	if err := waitExit(t, w, 3*time.Minute); err != nil {
		t.Fatalf("worker --once exited with %v, want 0:\n%s", err, w.stderr)
	}
	if !strings.Contains(w.stderr.String(), `"why":"ran its one build"`) {
		t.Errorf("the worker did not say why it stopped:\n%s", w.stderr)
	}
	a, b := getBuild(t, api.url, "once", first.Id), getBuild(t, api.url, "once", second.Id)
	ran, left := a, b
	if a.Status == openapi.BuildStatusQueued {
		ran, left = b, a
	}
	if ran.Status != openapi.BuildStatusSucceeded || left.Status != openapi.BuildStatusQueued {
		t.Fatalf("after one worker --once: builds are %s and %s, want one succeeded and one queued", a.Status, b.Status)
	}

	w2 := startWorker(t, append(env, "SLIPWAY_WORKER_ONCE=true"))
	if err := waitExit(t, w2, 3*time.Minute); err != nil {
		t.Fatalf("the second worker --once exited with %v:\n%s", err, w2.stderr)
	}
	if got := getBuild(t, api.url, "once", left.Id); got.Status != openapi.BuildStatusSucceeded || got.Attempts != 1 {
		t.Errorf("the second build is %s after %d attempts, want succeeded after 1", got.Status, got.Attempts)
	}
}

// TestWorkerIdleExit: a worker with --idle-exit and nothing to do exits 0 by itself; one
// with --once and --idle-exit does too, so a Job started for a build another worker took
// does not wait forever.
func TestWorkerIdleExit(t *testing.T) {
	env := buildEnv(t)
	for _, extra := range [][]string{{"SLIPWAY_IDLE_EXIT=1s"}, {"SLIPWAY_IDLE_EXIT=1s", "SLIPWAY_WORKER_ONCE=true"}} {
		w := startWorker(t, append(env, extra...))
		if err := waitExit(t, w, time.Minute); err != nil {
			t.Fatalf("worker %v exited with %v, want 0:\n%s", extra, err, w.stderr)
		}
		if !strings.Contains(w.stderr.String(), `"why":"idle for 1s"`) {
			t.Errorf("worker %v did not say it stopped because idle:\n%s", extra, w.stderr)
		}
	}
}

// TestWorkerDrain sends SIGTERM to a worker in the middle of a compile: with time to
// drain, it finishes the build (one attempt) and exits 0, taking no other build.
func TestWorkerDrain(t *testing.T) {
	env := buildEnv(t)
	api := startServe(t, append(env, "SLIPWAY_WORKERS=0"))
	w := startWorker(t, append(env, "SLIPWAY_DRAIN_TIMEOUT=5m"))
	b := submitSlow(t, api.url, "drain")
	waitLog(t, api.url, "drain", b.Id, "linux/amd64: go build", time.Minute)
	next := submitHello(t, api.url, "drain")
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, w, 5*time.Minute); err != nil {
		t.Fatalf("the draining worker exited with %v, want 0:\n%s", err, w.stderr)
	}
	done := getBuild(t, api.url, "drain", b.Id)
	if done.Status != openapi.BuildStatusSucceeded || done.Attempts != 1 {
		t.Fatalf("the build running at SIGTERM is %s after %d attempts, want succeeded after 1\n%s", done.Status, done.Attempts, buildLog(t, api.url, "drain", b.Id))
	}
	if got := getBuild(t, api.url, "drain", next.Id); got.Status != openapi.BuildStatusQueued {
		t.Errorf("the build queued after SIGTERM is %s, want still queued for another worker", got.Status)
	}
}

// TestWorkerDrainTimeoutHandsBack sends SIGTERM to a worker whose drain time is shorter
// than its compile: the build goes back to the queue at once and another worker finishes
// it long before the visibility timeout would have let it, without using an attempt.
func TestWorkerDrainTimeoutHandsBack(t *testing.T) {
	env := append(buildEnv(t), "SLIPWAY_BUILD_VISIBILITY=10m")
	api := startServe(t, append(env, "SLIPWAY_WORKERS=0"))
	w := startWorker(t, append(env, "SLIPWAY_DRAIN_TIMEOUT=0"))
	b := submitSlow(t, api.url, "handback")
	waitLog(t, api.url, "handback", b.Id, "linux/amd64: go build", time.Minute)
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, w, time.Minute); err != nil {
		t.Fatalf("the worker exited with %v, want 0:\n%s", err, w.stderr)
	}
	if got := getBuild(t, api.url, "handback", b.Id); got.Status != openapi.BuildStatusQueued {
		t.Fatalf("after the drain timeout the build is %s, want queued again", got.Status)
	}
	startWorker(t, env)
	done := waitStatus(t, api.url, "handback", b.Id, 3*time.Minute, func(b openapi.Build) bool {
		return b.Status == openapi.BuildStatusSucceeded || b.Status == openapi.BuildStatusFailed
	})
	log := buildLog(t, api.url, "handback", b.Id)
	if done.Status != openapi.BuildStatusSucceeded || done.Attempts != 1 || !strings.Contains(log, "goes back to the queue") {
		t.Errorf("build = %s after %d attempts, want succeeded after 1 with the hand-back in its log:\n%s", done.Status, done.Attempts, log)
	}
}
