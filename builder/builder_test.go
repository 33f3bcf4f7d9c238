package builder_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/builder/source"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// rig is a build system on real Redis and a real blob store.
type rig struct {
	t      *testing.T
	builds *builder.Builds
	intake *builder.Intake
	blobs  store.Blobs
	data   string
}

func newRig(t *testing.T, blobs store.Blobs) *rig {
	t.Helper()
	rdb := storetest.Redis(t)
	tc, _ := buildertest.Toolchain(t)
	if err := builder.EnsureQueue(context.Background(), rdb); err != nil {
		t.Fatal(err)
	}
	builds := builder.NewBuilds(rdb)
	data := t.TempDir()
	intake, err := builder.NewIntake(builds, blobs, tc, builder.IntakeOptions{SpoolDir: filepath.Join(data, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, builds: builds, intake: intake, blobs: blobs, data: data}
}

func fsBlobs(t *testing.T) store.Blobs {
	s, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// worker starts a worker that runs until the test ends.
func (r *rig) worker(opts builder.WorkerOptions) {
	r.t.Helper()
	tc, env := buildertest.Toolchain(r.t)
	if opts.Go == (gobuild.Env{}) {
		opts.Go = env
	}
	r.workerWith(tc, opts)
}

// workerWith starts a worker with the compiler c that runs until the test ends.
func (r *rig) workerWith(c builder.Compiler, opts builder.WorkerOptions) {
	r.t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = r.data
	}
	w, err := builder.NewWorker(r.builds, r.blobs, c, opts)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done })
}

func (r *rig) submit(app string, req builder.Request, archive []byte) (builder.Build, bool, error) {
	r.t.Helper()
	req.App.Name = app
	if req.App.Main == "" {
		req.App.Main = "."
	}
	if req.App.Platforms == nil {
		req.App.Platforms = []string{"linux/amd64"}
	}
	if req.App.Ldflags == "" {
		req.App.Ldflags = "-X main.version={{.Version}}"
	}
	if req.Format == 0 {
		req.Format = source.TarGz
	}
	if err := r.intake.Check(&req); err != nil {
		return builder.Build{}, false, err
	}
	sp, err := r.intake.Spool(context.Background(), bytes.NewReader(archive))
	if err != nil {
		return builder.Build{}, false, err
	}
	defer sp.Remove()
	return r.intake.Submit(context.Background(), req, sp)
}

// wait polls until the build has ended.
func (r *rig) wait(app, id string, within time.Duration) builder.Build {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, err := r.builds.Get(context.Background(), app, id)
		if err != nil {
			r.t.Fatal(err)
		}
		if b.Status.Done() {
			return b
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("build %s still %s after %s", id, b.Status, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *rig) log(app, id string) string {
	r.t.Helper()
	c, err := r.builds.ReadLog(context.Background(), r.blobs, app, id, 0, 1<<20)
	if err != nil {
		r.t.Fatal(err)
	}
	return string(c.Data)
}

// artifact copies a build's binary for platform out of the blob store into a file.
func (r *rig) artifact(b builder.Build, platform string) string {
	r.t.Helper()
	a, ok := b.Artifact(platform)
	if !ok {
		r.t.Fatalf("build has no %s artifact: %+v", platform, b.Artifacts)
	}
	rc, err := builder.OpenArtifact(context.Background(), r.blobs, b.App, a)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rc.Close()
	path := filepath.Join(r.t.TempDir(), strings.ReplaceAll(platform, "/", "_"))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		r.t.Fatal(err)
	}
	n, err := io.Copy(f, rc)
	f.Close()
	if err != nil || n != a.Size {
		r.t.Fatalf("copying artifact: %d bytes, %v; want %d", n, err, a.Size)
	}
	return path
}

// TestBuildEndToEnd builds for two platforms against real Redis and real S3: the amd64
// binary runs and prints the requested version, the arm64 one is an ARM64 ELF.
func TestBuildEndToEnd(t *testing.T) {
	client, cfg := storetest.S3(t)
	blobs, err := store.NewS3(client, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, blobs)
	r.worker(builder.WorkerOptions{})
	b, dedup, err := r.submit("hello", builder.Request{
		Version: "1.4.2", Commit: "abc123", Platforms: []string{"linux/amd64", "linux/arm64"},
	}, buildertest.Module(t, "hello", map[string]string{"main.go": buildertest.HelloMain}))
	if err != nil || dedup || b.Status != builder.StatusQueued {
		t.Fatalf("Submit = %+v, %v, %v; want a queued build", b, dedup, err)
	}
	b = r.wait("hello", b.ID, 5*time.Minute)
	if b.Status != builder.StatusSucceeded {
		t.Fatalf("build %s: %+v\nlog:\n%s", b.Status, b.Error, r.log("hello", b.ID))
	}
	if len(b.Artifacts) != 2 || b.GoVersion == "" || b.Timings.CompileMS == nil || b.Timings.TotalMS == nil || b.Attempts != 1 {
		t.Errorf("succeeded build = %+v", b)
	}
	out, err := exec.Command(r.artifact(b, "linux/amd64")).Output()
	if err != nil || strings.TrimSpace(string(out)) != "1.4.2" {
		t.Errorf("linux/amd64 binary printed %q, %v; want 1.4.2", out, err)
	}
	f, err := elf.Open(r.artifact(b, "linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("linux/arm64 binary is for %v, want EM_AARCH64", f.Machine)
	}
	f.Close()
	// The source and the log are in the blob store.
	if _, err := blobs.Stat(context.Background(), store.SourceKey(store.Digest(b.SourceDigest))); err != nil {
		t.Errorf("source not stored: %v", err)
	}
	if _, err := blobs.Stat(context.Background(), store.LogKey("hello", b.ID)); err != nil {
		t.Errorf("log not stored: %v", err)
	}
	if log := r.log("hello", b.ID); !strings.Contains(log, "succeeded") || !strings.Contains(log, "linux/arm64") {
		t.Errorf("log lacks the outcome:\n%s", log)
	}

	// The same inputs again: the existing build, at once.
	again, dedup, err := r.submit("hello", builder.Request{
		Version: "1.4.2", Commit: "abc123", Platforms: []string{"linux/arm64", "linux/amd64"},
	}, buildertest.Module(t, "hello", map[string]string{"main.go": buildertest.HelloMain}))
	if err != nil || !dedup || again.ID != b.ID {
		t.Errorf("resubmit = %s dedup %v err %v, want %s deduplicated", again.ID, dedup, err, b.ID)
	}
}

func TestCompileFailed(t *testing.T) {
	r := newRig(t, fsBlobs(t))
	r.worker(builder.WorkerOptions{})
	b, _, err := r.submit("broken", builder.Request{}, buildertest.Module(t, "broken", map[string]string{
		"main.go": "package main\n\nfunc main() { undefinedThing() }\n",
	}))
	if err != nil {
		t.Fatal(err)
	}
	b = r.wait("broken", b.ID, 2*time.Minute)
	if b.Status != builder.StatusFailed || b.Error == nil || b.Error.Reason != builder.ReasonCompileFailed ||
		!strings.Contains(b.Error.Detail, "undefined: undefinedThing") || b.Error.Platform != "linux/amd64" {
		t.Errorf("build = %s %+v, want compile_failed naming undefinedThing", b.Status, b.Error)
	}
	// A failed build is not reused: the same source builds again.
	again, dedup, err := r.submit("broken", builder.Request{}, buildertest.Module(t, "broken", map[string]string{
		"main.go": "package main\n\nfunc main() { undefinedThing() }\n",
	}))
	if err != nil || dedup || again.ID == b.ID {
		t.Errorf("resubmit of a failed build = %s dedup %v err %v, want a new build", again.ID, dedup, err)
	}
}

func TestToolchainNotDownloaded(t *testing.T) {
	r := newRig(t, fsBlobs(t))
	for _, gomod := range []string{
		"module example.com/future\n\ngo 1.99.0\n",
		"module example.com/future\n\ngo 1.22\n\ntoolchain go1.99.0\n",
	} {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		for name, body := range map[string]string{"go.mod": gomod, "main.go": buildertest.HelloMain} {
			_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
			_, _ = tw.Write([]byte(body))
		}
		tw.Close()
		gz.Close()
		_, _, err := r.submit("future", builder.Request{}, buf.Bytes())
		var serr *builder.SourceError
		if !errors.As(err, &serr) || !strings.Contains(serr.Detail, "1.99.0") {
			t.Errorf("Submit(%q) = %v, want a SourceError naming 1.99.0", gomod, err)
		}
	}
}

func TestTimeoutThenKeepsWorking(t *testing.T) {
	r := newRig(t, fsBlobs(t))
	// Warm the cache for the quick build, so only the slow one can time out.
	warm := newRig(t, fsBlobs(t))
	warm.worker(builder.WorkerOptions{})
	wb, _, err := warm.submit("quick", builder.Request{}, buildertest.Module(t, "quick", map[string]string{"main.go": buildertest.HelloMain}))
	if err != nil {
		t.Fatal(err)
	}
	if b := warm.wait("quick", wb.ID, 2*time.Minute); b.Status != builder.StatusSucceeded {
		t.Fatalf("warm-up build %s: %+v", b.Status, b.Error)
	}

	r.worker(builder.WorkerOptions{Timeout: 3 * time.Second})
	slow, _, err := r.submit("slow", builder.Request{}, buildertest.Module(t, "slow", map[string]string{"main.go": buildertest.SlowMain(150000)}))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b := r.wait("slow", slow.ID, 2*time.Minute)
	if b.Status != builder.StatusFailed || b.Error == nil || b.Error.Reason != builder.ReasonTimeout {
		t.Fatalf("slow build = %s %+v after %s, want failed with timeout", b.Status, b.Error, time.Since(start))
	}
	quick, _, err := r.submit("quick", builder.Request{}, buildertest.Module(t, "quick", map[string]string{"main.go": buildertest.HelloMain}))
	if err != nil {
		t.Fatal(err)
	}
	if b := r.wait("quick", quick.ID, 2*time.Minute); b.Status != builder.StatusSucceeded {
		t.Errorf("after a timeout, the next build = %s %+v, want succeeded", b.Status, b.Error)
	}
}

func TestCancel(t *testing.T) {
	r := newRig(t, fsBlobs(t))
	// Queued: canceled at once, never built.
	b, _, err := r.submit("c", builder.Request{}, buildertest.Module(t, "c", map[string]string{"main.go": buildertest.HelloMain}))
	if err != nil {
		t.Fatal(err)
	}
	got, done, err := r.builds.Cancel(context.Background(), "c", b.ID)
	if err != nil || !done || got.Status != builder.StatusCanceled {
		t.Fatalf("Cancel(queued) = %s %v %v, want canceled at once", got.Status, done, err)
	}
	// Running: the worker stops the compile.
	r.worker(builder.WorkerOptions{Visibility: 2 * time.Second})
	slow, _, err := r.submit("c", builder.Request{}, buildertest.Module(t, "c", map[string]string{"main.go": buildertest.SlowMain(150000)}))
	if err != nil {
		t.Fatal(err)
	}
	for {
		cur, _ := r.builds.Get(context.Background(), "c", slow.ID)
		if cur.Status == builder.StatusRunning {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if _, done, err := r.builds.Cancel(context.Background(), "c", slow.ID); err != nil || done {
		t.Fatalf("Cancel(running) = %v %v, want accepted", done, err)
	}
	final := r.wait("c", slow.ID, time.Minute)
	if final.Status != builder.StatusCanceled || time.Since(start) > 10*time.Second {
		t.Errorf("running build after cancel = %s in %s, want canceled within seconds", final.Status, time.Since(start))
	}
	if _, _, err := r.builds.Cancel(context.Background(), "c", slow.ID); err != nil {
		t.Errorf("Cancel(canceled) = %v, want nil", err)
	}
}

func TestLogFollowAndOffsets(t *testing.T) {
	r := newRig(t, fsBlobs(t))
	r.worker(builder.WorkerOptions{})
	b, _, err := r.submit("logs", builder.Request{}, buildertest.Module(t, "logs", map[string]string{"main.go": buildertest.HelloMain}))
	if err != nil {
		t.Fatal(err)
	}
	// Follow from the start, reading small chunks, until done; between reads that find
	// nothing new, wait for WatchLog's wake-up, which comes with every line and the end.
	wake, stop := r.builds.WatchLog(context.Background(), "logs", b.ID)
	defer stop()
	if wake == nil {
		t.Fatal("WatchLog could not subscribe")
	}
	var got []byte
	for deadline := time.Now().Add(2 * time.Minute); ; {
		c, err := r.builds.ReadLog(context.Background(), r.blobs, "logs", b.ID, int64(len(got)), 7)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c.Data...)
		if c.Done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("log never ended")
		}
		if len(c.Data) == 0 {
			<-wake
		}
	}
	whole := r.log("logs", b.ID)
	if string(got) != whole || !strings.Contains(whole, "succeeded") {
		t.Errorf("followed log (%d bytes) differs from the stored one (%d bytes)", len(got), len(whole))
	}
	mid := int64(len(whole) / 2)
	c, err := r.builds.ReadLog(context.Background(), r.blobs, "logs", b.ID, mid, 1<<20)
	if err != nil || string(c.Data) != whole[mid:] || !c.Done {
		t.Errorf("ReadLog(offset %d) = %q, %v", mid, c.Data, err)
	}
}

// TestImageReproducible builds the same source (with licenses for the SBOMs to declare) in
// two separate systems (their own Redis databases, blob stores and data directories) a
// second apart: same index digest, same SBOM.
func TestImageReproducible(t *testing.T) {
	var digests []string
	for range 2 {
		r := newRig(t, fsBlobs(t))
		r.worker(builder.WorkerOptions{})
		b, _, err := r.submit("same", builder.Request{Version: "1.0.0", SourceDateEpoch: 1700000000,
			Platforms: []string{"linux/amd64", "linux/arm64"}}, licensedModule(t))
		if err != nil {
			t.Fatal(err)
		}
		b = r.wait("same", b.ID, 3*time.Minute)
		if b.Status != builder.StatusSucceeded || b.Image == nil {
			t.Fatalf("build = %s %+v", b.Status, b.Error)
		}
		digests = append(digests, b.Image.Digest+" "+b.Image.SBOM)
		time.Sleep(time.Second)
	}
	if digests[0] != digests[1] {
		t.Errorf("the same source built twice gave %s and %s", digests[0], digests[1])
	}
}

// TestRegistryBase builds on a base image served by an in-process registry; a platform
// the base lacks fails the build with a reason that names it.
func TestRegistryBase(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	baseRef := host + "/base:1"
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        mustRandomImage(t),
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}},
	})
	ref, err := name.ParseReference(baseRef, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, fsBlobs(t))
	r.worker(builder.WorkerOptions{})
	src := buildertest.Module(t, "based", map[string]string{"main.go": buildertest.HelloMain})
	b, _, err := r.submit("based", builder.Request{App: builder.AppSettings{BaseImage: baseRef}, Platforms: []string{"linux/amd64"}}, src)
	if err != nil {
		t.Fatal(err)
	}
	b = r.wait("based", b.ID, 3*time.Minute)
	if b.Status != builder.StatusSucceeded || b.Image == nil {
		t.Fatalf("build on a registry base = %s %+v\n%s", b.Status, b.Error, r.log("based", b.ID))
	}
	img, err := image.OpenImage(context.Background(), r.blobs, store.Digest(b.Image.Manifests[0].Digest))
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	if len(layers) != 2 {
		t.Errorf("image has %d layers, want the base's one and the binary's", len(layers))
	}
	b, _, err = r.submit("based", builder.Request{App: builder.AppSettings{BaseImage: baseRef}, Platforms: []string{"linux/amd64", "linux/arm64"}}, src)
	if err != nil {
		t.Fatal(err)
	}
	b = r.wait("based", b.ID, 3*time.Minute)
	if b.Status != builder.StatusFailed || b.Error == nil || b.Error.Reason != builder.ReasonImageFailed || !strings.Contains(b.Error.Detail, "linux/arm64") {
		t.Errorf("build for a platform the base lacks = %s %+v, want image_failed naming linux/arm64", b.Status, b.Error)
	}
}

func mustRandomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
