package builder_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// waitLog waits until the build's log contains want, and returns the log.
func (r *rig) waitLog(app, id, want string, within time.Duration) string {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		log := r.log(app, id)
		if strings.Contains(log, want) {
			return log
		}
		if b, _ := r.builds.Get(context.Background(), app, id); b.Status.Done() || time.Now().After(deadline) {
			r.t.Fatalf("build %s is %s and its log never said %q:\n%s", id, b.Status, want, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCancelStopsTheCompile: a cancel of a running build stops its compile within the
// cancel poll, and the build ends canceled.
func TestCancelStopsTheCompile(t *testing.T) {
	r := newRig(t, fsBlobs(t))
	r.worker(builder.WorkerOptions{})
	b, _, err := r.submit("c", builder.Request{}, buildertest.Module(t, "c", map[string]string{"main.go": buildertest.SlowMain(150000)}))
	if err != nil {
		t.Fatal(err)
	}
	r.waitLog("c", b.ID, "linux/amd64: go build", time.Minute)
	start := time.Now()
	if _, done, err := r.builds.Cancel(context.Background(), "c", b.ID); err != nil || done {
		t.Fatalf("Cancel(running) = %v %v, want accepted", done, err)
	}
	final := r.wait("c", b.ID, time.Minute)
	took := time.Since(start)
	t.Logf("canceled %s after the cancel", took)
	if final.Status != builder.StatusCanceled {
		t.Fatalf("build after cancel = %s %+v, want canceled", final.Status, final.Error)
	}
	// 2 s is the promise; the bound here leaves room for a loaded machine.
	if took > 10*time.Second {
		t.Errorf("cancel took %s to stop the compile, want about a second", took)
	}
	if out, _ := exec.Command("pgrep", "-f", b.ID).Output(); len(out) > 0 {
		t.Errorf("processes of the canceled build still run: %s", out)
	}
}

// TestAcceptedCancelNeverSucceeds cancels builds at every moment of their lives, the
// very end included: a build whose cancel was accepted never ends succeeded, and one
// that ended before the cancel says so (ErrConflict).
func TestAcceptedCancelNeverSucceeds(t *testing.T) {
	r := newRig(t, fsBlobs(t))
	r.worker(builder.WorkerOptions{})
	moments := []string{"", "attempt 1 of", "go build", "image: assembling", "image index", "succeeded in"}
	for i := range 3 * len(moments) {
		moment := moments[i%len(moments)]
		t.Run(fmt.Sprintf("%d after %q", i, moment), func(t *testing.T) {
			b, _, err := r.submit("race", builder.Request{Version: fmt.Sprintf("1.0.%d", i)},
				buildertest.Module(t, "race", map[string]string{"main.go": buildertest.HelloMain}))
			if err != nil {
				t.Fatal(err)
			}
			if moment != "" {
				deadline := time.Now().Add(time.Minute)
				for !strings.Contains(r.log("race", b.ID), moment) && time.Now().Before(deadline) {
					if cur, _ := r.builds.Get(context.Background(), "race", b.ID); cur.Status.Done() {
						break
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			_, _, cerr := r.builds.Cancel(context.Background(), "race", b.ID)
			final := r.wait("race", b.ID, time.Minute)
			t.Logf("cancel: %v; build: %s", cerr, final.Status)
			switch {
			case cerr == nil && final.Status != builder.StatusCanceled:
				t.Errorf("cancel accepted, but the build ended %s", final.Status)
			case errors.Is(cerr, builder.ErrConflict) && final.Status != builder.StatusSucceeded:
				t.Errorf("cancel refused as too late, but the build ended %s", final.Status)
			case cerr != nil && !errors.Is(cerr, builder.ErrConflict):
				t.Errorf("Cancel = %v", cerr)
			}
			if final.Status == builder.StatusCanceled && (final.Image != nil || len(final.Artifacts) > 0) {
				t.Errorf("a canceled build shows artifacts %v and image %v", final.Artifacts, final.Image)
			}
		})
	}
}

// TestBlobStoreOutageIsRetried: the blob store becomes unreachable while a build
// waits; the build is not failed but run again with backoff, and succeeds once the store
// answers again. Its log says what happened and no server address or path.
func TestBlobStoreOutageIsRetried(t *testing.T) {
	client, cfg := storetest.S3(t)
	direct, err := store.NewS3(client, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, direct)
	b, _, err := r.submit("outage", builder.Request{}, buildertest.Module(t, "outage", map[string]string{"main.go": buildertest.HelloMain}))
	if err != nil {
		t.Fatal(err)
	}
	proxy := storetest.StartProxy(t, strings.TrimPrefix(cfg.Endpoint, "http://"))
	proxied := cfg
	proxied.Endpoint = "http://" + proxy.Addr
	viaProxy, err := store.NewS3(storetest.NewS3Client(proxied), cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	tc, goEnv := buildertest.Toolchain(t)
	w, err := builder.NewWorker(r.builds, viaProxy, tc, builder.WorkerOptions{
		DataDir: r.data, Go: goEnv, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	r.waitLog("outage", b.ID, "trying again in", time.Minute)
	if cur, _ := r.builds.Get(context.Background(), "outage", b.ID); cur.Status != builder.StatusRunning {
		t.Fatalf("during the outage the build is %s, want running (retried)", cur.Status)
	}
	proxy.Restore()
	final := r.wait("outage", b.ID, 2*time.Minute)
	log := r.log("outage", b.ID)
	if final.Status != builder.StatusSucceeded {
		t.Fatalf("after the outage the build = %s %+v\n%s", final.Status, final.Error, log)
	}
	if !strings.Contains(log, "Redis or the blob store did not answer") {
		t.Errorf("log does not say what failed:\n%s", log)
	}
	if strings.Contains(log, proxy.Addr) || strings.Contains(log, r.data) {
		t.Errorf("log shows a server address or path:\n%s", log)
	}
}

// TestRedisOutageDoesNotLoseTheBuild: Redis dies while a build compiles and comes back;
// the build's result is recorded, not dropped, and nobody is blamed.
func TestRedisOutageDoesNotLoseTheBuild(t *testing.T) {
	srv := storetest.StartRedisServer(t)
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	if err := builder.EnsureQueue(context.Background(), rdb); err != nil {
		t.Fatal(err)
	}
	tc, _ := buildertest.Toolchain(t)
	blobs := fsBlobs(t)
	builds := builder.NewBuilds(rdb)
	data := t.TempDir()
	intake, err := builder.NewIntake(builds, blobs, tc, builder.IntakeOptions{SpoolDir: data + "/spool"})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, builds: builds, intake: intake, blobs: blobs, data: data}
	r.worker(builder.WorkerOptions{RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond})
	b, _, err := r.submit("redisout", builder.Request{}, buildertest.Module(t, "redisout", map[string]string{"main.go": buildertest.SlowMain(20000)}))
	if err != nil {
		t.Fatal(err)
	}
	r.waitLog("redisout", b.ID, "go build", time.Minute)
	srv.Stop()
	srv.Start()
	final := r.wait("redisout", b.ID, 3*time.Minute)
	if final.Status != builder.StatusSucceeded {
		t.Fatalf("after Redis came back the build = %s %+v\n%s", final.Status, final.Error, r.log("redisout", b.ID))
	}
}

// TestFullDiskIsInternal: a worker whose disk fills up during the compile fails the
// build as internal, never compile_failed, after retrying.
func TestFullDiskIsInternal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	r := newRig(t, fsBlobs(t))
	r.worker(builder.WorkerOptions{DataDir: dir, RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond, RetryHorizon: 500 * time.Millisecond})
	b, _, err := r.submit("full", builder.Request{}, buildertest.Module(t, "full", map[string]string{"main.go": buildertest.HelloMain}))
	if err != nil {
		t.Fatal(err)
	}
	final := r.wait("full", b.ID, 2*time.Minute)
	log := r.log("full", b.ID)
	if final.Status != builder.StatusFailed || final.Error == nil || final.Error.Reason != builder.ReasonInternal {
		t.Fatalf("build on a full disk = %s %+v, want failed internal\n%s", final.Status, final.Error, log)
	}
	if !strings.Contains(final.Error.Detail, "disk is full") || strings.Contains(final.Error.Detail, dir) || strings.Contains(log, dir) {
		t.Errorf("error %q and log should say the disk is full without its path:\n%s", final.Error.Detail, log)
	}
}

// TestBuildReportsNoServerPaths: what a build tells its user (log, error detail) names
// the worker's directories by what they are, never by their paths on the server.
func TestBuildReportsNoServerPaths(t *testing.T) {
	r := newRig(t, fsBlobs(t))
	r.worker(builder.WorkerOptions{})
	tc, goEnv := buildertest.Toolchain(t)
	b, _, err := r.submit("paths", builder.Request{}, buildertest.Module(t, "paths", map[string]string{
		"main.go": "package main\n\nimport _ \"nosuch/pkg\"\n\nfunc main() {}\n",
	}))
	if err != nil {
		t.Fatal(err)
	}
	final := r.wait("paths", b.ID, 2*time.Minute)
	log := r.log("paths", b.ID)
	if final.Status != builder.StatusFailed || final.Error == nil || final.Error.Reason != builder.ReasonCompileFailed {
		t.Fatalf("build = %s %+v, want compile_failed\n%s", final.Status, final.Error, log)
	}
	goroot := strings.TrimSuffix(strings.TrimSuffix(tc.ZoneinfoZip(), "/lib/time/zoneinfo.zip"), "/")
	for _, p := range []string{r.data, goroot, goEnv.Cache, goEnv.ModCache} {
		if strings.Contains(final.Error.Detail, p) || strings.Contains(log, p) {
			t.Errorf("the build shows the server path %s:\ndetail: %s\nlog:\n%s", p, final.Error.Detail, log)
		}
	}
	t.Logf("detail: %s", final.Error.Detail)
	if !strings.Contains(final.Error.Detail, "nosuch/pkg") {
		t.Errorf("the detail lost the compiler's message: %s", final.Error.Detail)
	}
}

// TestBaseImageCannotReachMetadata: an app's base image reference is fetched through the
// same guard as source URLs, so it cannot make the worker call the cloud metadata
// service.
func TestBaseImageCannotReachMetadata(t *testing.T) {
	r := newRig(t, fsBlobs(t))
	r.worker(builder.WorkerOptions{})
	b, _, err := r.submit("ssrf", builder.Request{App: builder.AppSettings{BaseImage: "169.254.169.254/latest/meta-data:x"}},
		buildertest.Module(t, "ssrf", map[string]string{"main.go": buildertest.HelloMain}))
	if err != nil {
		t.Fatal(err)
	}
	final := r.wait("ssrf", b.ID, 2*time.Minute)
	if final.Status != builder.StatusFailed || final.Error == nil || final.Error.Reason != builder.ReasonImageFailed ||
		!strings.Contains(final.Error.Detail, "link-local or a metadata service") {
		t.Errorf("build on a metadata-address base = %s %+v, want image_failed naming the refused address\n%s", final.Status, final.Error, r.log("ssrf", b.ID))
	}
}
