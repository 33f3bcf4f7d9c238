package bench

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pullStore is a blob store configuration of the server a pull benchmark reads from.
type pullStore struct {
	name    string
	s3      bool // blobs in the test S3 server's bucket; else on the filesystem
	presign bool // blob GETs answered with a redirect to a presigned S3 URL
}

var pullStores = []pullStore{
	{name: "fs"},
	{name: "s3", s3: true},
	{name: "s3-presign", s3: true, presign: true},
}

// pullServer starts slipway serve with st's blob store, its other settings as
// startServer's, and extra appended to its environment.
func pullServer(b *testing.B, st pullStore, goCache string, extra ...string) *server {
	b.Helper()
	return startServerEnv(b, func(dir, addr string) []string {
		env := serveEnv(b, dir, addr, goCache)
		if !st.s3 {
			env = slices.DeleteFunc(env, func(kv string) bool {
				return strings.HasPrefix(kv, "SLIPWAY_S3_") || strings.HasPrefix(kv, "AWS_")
			})
		}
		if st.presign {
			env = append(env, "SLIPWAY_S3_PRESIGN_TTL=15m")
		}
		return append(env, extra...)
	})
}

// BenchmarkPull builds the small HTTP service of BenchmarkImage for linux/amd64 and
// linux/arm64 (an image of about 5.5 MiB in all), copies the image, same digests, into
// go-containerregistry's in-memory registry (pkg/registry, what `crane registry serve`
// runs), and then pulls the whole image from each in turns with go-containerregistry's
// remote package: the index, each platform's manifest, its config and every layer, read
// to the end and checked against their digests. x_pull_vs_ggcr is slipway's time ÷ the
// in-memory registry's. It runs once per blob store: the filesystem, S3 streamed through
// slipway, and S3 with blob downloads redirected to presigned URLs.
func BenchmarkPull(b *testing.B) {
	goCache := b.TempDir() // shared, so only the first store's build compiles the standard library
	for _, st := range pullStores {
		b.Run(st.name, func(b *testing.B) {
			srv := pullServer(b, st, goCache)
			app := "pullbench"
			srv.createApp(b, app, platforms)
			archive := pullArchive(b, map[string][]byte{
				"go.mod":  []byte("module example.com/pullbench\n\ngo 1.22\n"),
				"main.go": []byte(imageFixtureMain),
			}, gzip.DefaultCompression)
			benchPull(b, srv, app, archive, "x_pull_vs_ggcr")
		})
	}
}

// largeLayerMiB is the size of the random data BenchmarkPull200MiB's binary embeds, and
// so about the size of its layer: random bytes do not compress.
const largeLayerMiB = 200

// BenchmarkPull200MiB is BenchmarkPull for an image whose binary embeds 200 MiB of random
// data (go:embed), for linux/amd64 only: its layer is about 200 MiB. It reports
// x_throughput_200MiB_vs_ggcr, slipway's throughput ÷ the in-memory registry's (the
// inverse of the time ratio), and the server's peak RSS growth while it serves the pulls,
// which stays flat when the blob is streamed, not held.
func BenchmarkPull200MiB(b *testing.B) {
	goCache := b.TempDir()
	data := make([]byte, largeLayerMiB<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	archive := pullArchive(b, map[string][]byte{
		"go.mod": []byte("module example.com/pullbig\n\ngo 1.22\n"),
		"main.go": []byte(`package main

import (
	_ "embed"
	"fmt"
)

//go:embed data.bin
var data []byte

var version = "dev"

func main() { fmt.Println(version, len(data)) }
`),
		"data.bin": data,
	}, gzip.NoCompression)
	for _, st := range pullStores[:2] {
		b.Run(st.name, func(b *testing.B) {
			srv := pullServer(b, st, goCache, "SLIPWAY_MAX_SOURCE_BYTES=512MiB")
			app := "pullbig"
			srv.createApp(b, app, []string{"linux/amd64"})
			benchPull(b, srv, app, archive, "x_throughput_200MiB_vs_ggcr")
		})
	}
}

// benchPull builds archive as app on srv, copies its image into an in-memory registry
// and pulls it from both in turns, reporting metric: x_pull_vs_ggcr is a ratio of times,
// x_throughput_… its inverse.
func benchPull(b *testing.B, srv *server, app string, archive []byte, metric string) {
	b.Helper()
	code, queued, err := srv.submit(app, "1.0.0", bytes.NewReader(archive), int64(len(archive)))
	if err != nil || code != http.StatusAccepted {
		b.Fatalf("POST build = %d, %v", code, err)
	}
	build := srv.wait(b, app, queued.Id)

	tr := &http.Transport{MaxIdleConnsPerHost: 8, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	ctx := context.Background()
	opts := []remote.Option{remote.WithTransport(tr), remote.WithContext(ctx)}

	slipwayRef, err := name.NewDigest(strings.TrimPrefix(srv.url, "http://")+"/"+app+"@"+build.Image.Digest, name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	ggcr := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	b.Cleanup(ggcr.Close)
	ggcrRef, err := name.NewDigest(strings.TrimPrefix(ggcr.URL, "http://")+"/"+app+"@"+build.Image.Digest, name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	idx, err := remote.Index(slipwayRef, opts...)
	if err != nil {
		b.Fatalf("reading the image from slipway: %v", err)
	}
	if err := remote.WriteIndex(ggcrRef, idx, opts...); err != nil {
		b.Fatalf("copying the image into the in-memory registry: %v", err)
	}
	// A first pull from each, untimed: connections open, pages cached on both sides.
	size, blobs := pull(b, ggcrRef, opts)
	if s, _ := pull(b, slipwayRef, opts); s != size {
		b.Fatalf("pulled %d bytes from slipway, %d from the in-memory registry", s, size)
	}

	_, rss0, err := srv.memory()
	if err != nil {
		b.Fatal(err)
	}
	resetPeak(b, srv.pid)

	var tSlipway, tGGCR time.Duration
	n := 0
	for b.Loop() {
		// Take turns at going first, so neither always finds the caches the other warmed.
		for i := range 2 {
			start := time.Now()
			if (n+i)%2 == 0 {
				pull(b, slipwayRef, opts)
				tSlipway += time.Since(start)
			} else {
				pull(b, ggcrRef, opts)
				tGGCR += time.Since(start)
			}
		}
		n++
	}
	peak, _, err := srv.memory()
	if err != nil {
		b.Fatal(err)
	}
	r := ratio(tSlipway, tGGCR)
	if strings.HasPrefix(metric, "x_throughput") {
		r = ratio(tGGCR, tSlipway)
	}
	b.ReportMetric(r, metric)
	b.ReportMetric(float64(tSlipway.Microseconds())/1000/float64(n), "slipway_ms")
	b.ReportMetric(float64(tGGCR.Microseconds())/1000/float64(n), "ggcr_ms")
	b.ReportMetric(float64(size)/(1<<20), "image_MiB")
	b.ReportMetric(float64(blobs), "blobs")
	b.ReportMetric(float64(peak-rss0)/(1<<20), "server_peak_rss_growth_MiB")
	b.ReportMetric(float64(rss0)/(1<<20), "server_rss_before_MiB")
	b.Logf("%s: %d pulls each, slipway %v, in-memory registry %v; %s", b.Name(), n, tSlipway/time.Duration(n), tGGCR/time.Duration(n), loadAverage())
}

// pull reads the whole image ref names, as a registry client pulling every platform
// does, and returns the bytes read and the number of documents and blobs. Every
// document and blob is checked against its digest as it is read (remote does it).
func pull(b *testing.B, ref name.Digest, opts []remote.Option) (size int64, n int) {
	b.Helper()
	idx, err := remote.Index(ref, opts...)
	if err != nil {
		b.Fatalf("pulling %s: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := idx.RawManifest()
	if err != nil {
		b.Fatal(err)
	}
	size, n = int64(len(raw)), 1
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			b.Fatalf("pulling %s: manifest %s: %v", ref, desc.Digest, err)
		}
		raw, err := img.RawManifest()
		if err != nil {
			b.Fatal(err)
		}
		cfg, err := img.RawConfigFile()
		if err != nil {
			b.Fatalf("pulling %s: config of %s: %v", ref, desc.Digest, err)
		}
		size, n = size+int64(len(raw)+len(cfg)), n+2
		layers, err := img.Layers()
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range layers {
			read, err := readLayer(l)
			if err != nil {
				b.Fatalf("pulling %s: %v", ref, err)
			}
			size, n = size+read, n+1
		}
	}
	return size, n
}

// readLayer reads l's compressed bytes to the end; remote checks them against the digest
// and fails the read at the end when they differ.
func readLayer(l v1.Layer) (int64, error) {
	d, err := l.Digest()
	if err != nil {
		return 0, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", d, err)
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	if err != nil {
		return n, fmt.Errorf("layer %s: %w", d, err)
	}
	return n, rc.Close()
}

// resetPeak sets the peak RSS of process pid (VmHWM) back to its current RSS.
func resetPeak(b *testing.B, pid int) {
	b.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		b.Fatalf("resetting the server's peak RSS: %v", err)
	}
}

// pullArchive is a tar.gz of files at the given gzip level.
func pullArchive(b *testing.B, files map[string][]byte, level int) []byte {
	b.Helper()
	var buf bytes.Buffer
	gz, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		b.Fatal(err)
	}
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			b.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}
