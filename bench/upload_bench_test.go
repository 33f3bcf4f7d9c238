package bench

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
)

// Sizes of the large upload: the server's default limit on a source archive
// (SLIPWAY_MAX_SOURCE_BYTES), and the random file that, with go.mod, main.go and the
// tar and gzip framing around it, keeps the archive just under that limit.
const (
	uploadLimit = 100 << 20
	randomSize  = uploadLimit - 256<<10
)

// BenchmarkUpload100MiB posts a module archive of just under 100 MiB — go.mod, main.go
// and one file of random bytes — streamed from a file, and waits for its build to
// succeed. It reports how much the server process's peak RSS (VmHWM) grew over all
// iterations, from its value after a small warm-up build. Each iteration's archive
// differs (a nonce file), so each goes the whole way: spool, inspect, store in S3,
// fetch, extract, compile. Each is then posted again with the same version, and the
// dedupe answer's latency is reported as a fraction of the build's time.
func BenchmarkUpload100MiB(b *testing.B) {
	const app = "big"
	srv := startServer(b, b.TempDir())
	srv.createApp(b, app, platforms)
	dir := b.TempDir()
	random := filepath.Join(dir, "random.bin")
	writeRandom(b, random, randomSize)

	small := buildertest.Archive(b, fixtureFiles(app))
	_, warm, err := srv.submit(app, "0.0.1-warmup", bytes.NewReader(small), int64(len(small)))
	if err != nil {
		b.Fatal(err)
	}
	srv.wait(b, app, warm.Id)
	before, _, err := srv.memory()
	if err != nil {
		b.Fatal(err)
	}

	archive := filepath.Join(dir, "source.tar.gz")
	var size int64
	var build, dedupe, digestFirst time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		size = writeBigModule(b, archive, app, random, n)
		b.StartTimer()
		f, err := os.Open(archive)
		if err != nil {
			b.Fatal(err)
		}
		version := fmt.Sprintf("1.0.%d", n)
		start := time.Now()
		code, queued, err := srv.submit(app, version, f, size)
		f.Close()
		if err != nil {
			b.Fatalf("%v\n%s", err, srv.logTail())
		}
		if code != http.StatusAccepted {
			b.Fatalf("POST build = %d, want 202", code)
		}
		srv.wait(b, app, queued.Id)
		build += time.Since(start)

		// The same archive and version again: answered from dedupe.
		f, err = os.Open(archive)
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		code, again, err := srv.submit(app, version, f, size)
		dedupe += time.Since(start)
		f.Close()
		if err != nil || code != http.StatusOK || !again.Deduplicated || again.Id != queued.Id {
			b.Fatalf("resubmitting = %d, deduplicated %t, build %s, %v; want 200, true, %s", code, again.Deduplicated, again.Id, err, queued.Id)
		}

		// Again, the digest first, as slipway build sends it: answered before the body.
		f, err = os.Open(archive)
		if err != nil {
			b.Fatal(err)
		}
		digest := digestField(b, archive)
		start = time.Now()
		code, again, err = srv.submitDigestFirst(app, version, f, size, digest)
		digestFirst += time.Since(start)
		f.Close()
		if err != nil || code != http.StatusOK || !again.Deduplicated || again.Id != queued.Id {
			b.Fatalf("resubmitting digest first = %d, deduplicated %t, build %s, %v; want 200, true, %s", code, again.Deduplicated, again.Id, err, queued.Id)
		}
		peak, current, err := srv.memory()
		if err != nil {
			b.Fatal(err)
		}
		m, err := srv.metrics("go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes",
			"go_memstats_heap_released_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes")
		if err != nil {
			b.Fatal(err)
		}
		mib := func(v float64) float64 { return v / (1 << 20) }
		b.Logf("iteration %d: server peak RSS %.1f MiB, RSS %.1f MiB; Go heap in use %.1f MiB, idle %.1f MiB (released %.1f), stacks %.1f MiB, from the OS %.1f MiB; %.0f goroutines",
			n, mib(float64(peak)), mib(float64(current)), mib(m["go_memstats_heap_inuse_bytes"]), mib(m["go_memstats_heap_idle_bytes"]),
			mib(m["go_memstats_heap_released_bytes"]), mib(m["go_memstats_stack_inuse_bytes"]), mib(m["go_memstats_sys_bytes"]), m["go_goroutines"])
		n++
	}
	after, _, err := srv.memory()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(after-before)/(1<<20), "rss_growth_MiB")
	b.ReportMetric(float64(before)/(1<<20), "rss_before_MiB")
	b.ReportMetric(float64(size)/(1<<20), "archive_MiB")
	b.ReportMetric(float64(dedupe)/float64(build), "dedupe_fraction_of_build")
	b.ReportMetric(float64(digestFirst)/float64(build), "digest_first_fraction_of_build")
}

// digestField is the Repr-Digest field of the file at path, hashed outside the timer (a
// CLI knows it from packing the archive).
func digestField(b *testing.B, path string) string {
	b.StopTimer()
	defer b.StartTimer()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		b.Fatal(err)
	}
	return "sha-256=:" + base64.StdEncoding.EncodeToString(h.Sum(nil)) + ":"
}

// submitDigestFirst posts body as submit does, with its digest in Repr-Digest and
// Expect: 100-continue, waiting for the server's answer before sending the body.
func (s *server) submitDigestFirst(app, version string, body io.Reader, size int64, digest string) (int, openapi.Build, error) {
	req, err := http.NewRequest(http.MethodPost, s.url+"/v1/apps/"+app+"/builds?version="+version, body)
	if err != nil {
		return 0, openapi.Build{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Repr-Digest", digest)
	req.Header.Set("Expect", "100-continue")
	resp, err := expectContinue.Do(req)
	if err != nil {
		return 0, openapi.Build{}, fmt.Errorf("posting build: %w", err)
	}
	defer resp.Body.Close()
	var build openapi.Build
	if err := json.NewDecoder(resp.Body).Decode(&build); err != nil {
		return resp.StatusCode, build, fmt.Errorf("decoding build response: %w", err)
	}
	return resp.StatusCode, build, nil
}

// expectContinue waits as long as it takes for a 100 Continue before sending a body.
var expectContinue = &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Hour}}

// writeRandom writes size random bytes to path, a megabyte at a time.
func writeRandom(b *testing.B, path string, size int64) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), left)]
		_, _ = rand.Read(chunk)
		if _, err := f.Write(chunk); err != nil {
			b.Fatalf("writing random data: %v", err)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatalf("writing random data: %v", err)
	}
}

// writeBigModule writes to path a tar.gz of the module example.com/<app>: go.mod,
// main.go, a nonce file holding n and the random file, streamed from disk. The random
// bytes do not compress, so gzip stores them (NoCompression) rather than try. It returns
// the archive's size, which must stay under uploadLimit.
func writeBigModule(b *testing.B, path, app, random string, n int) int64 {
	b.Helper()
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	gz, err := gzip.NewWriterLevel(out, gzip.NoCompression)
	if err != nil {
		b.Fatal(err)
	}
	tw := tar.NewWriter(gz)
	files := fixtureFiles(app)
	files["nonce.txt"] = fmt.Sprintf("%d\n", n)
	for _, name := range []string{"go.mod", "main.go", "nonce.txt"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(tw, files[name]); err != nil {
			b.Fatal(err)
		}
	}
	in, err := os.Open(random)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		b.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "random.bin", Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg}); err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(tw, in); err != nil {
		b.Fatalf("writing the archive: %v", err)
	}
	for _, c := range []io.Closer{tw, gz, out} {
		if err := c.Close(); err != nil {
			b.Fatalf("writing the archive: %v", err)
		}
	}
	fi, err = os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	if fi.Size() >= uploadLimit {
		b.Fatalf("the archive is %d bytes, not under the limit of %d", fi.Size(), uploadLimit)
	}
	return fi.Size()
}
