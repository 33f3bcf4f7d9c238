package source_test

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/source"
)

// TestBombsStopEarly feeds Inspect and Extract 2 GiB of zeros packed into about 2 MiB and
// wants them to stop within a fraction of a second with little memory.
func TestBombsStopEarly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		format  source.Format
		archive func(t testing.TB) []byte
		entry   string
	}{
		{"tar.gz", source.TarGz, func(t testing.TB) []byte { return tarBomb(t, 2048, false) }, "zeros"},
		{"tar.gz with zeros after the end", source.TarGz, func(t testing.TB) []byte { return tarBomb(t, 2048, true) }, ""},
		{"zip", source.Zip, func(t testing.TB) []byte { return zipBomb(t, 2048) }, "zeros"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.archive(t)
			path := writeTemp(t, data)
			t.Logf("archive of %d KiB", len(data)>>10)
			ctx := context.Background()

			peak := watchHeap()
			start := time.Now()
			_, err := source.Inspect(ctx, path, tc.format, source.DefaultLimits())
			inspect := time.Since(start)
			checkInvalid(t, "Inspect", err, tc.entry)

			tg := newTarget(t)
			start = time.Now()
			_, err = source.Extract(ctx, path, tc.format, tg.out, source.DefaultLimits())
			extract := time.Since(start)
			growth := peak()
			checkInvalid(t, "Extract", err, tc.entry)
			tg.checkUntouched(t)

			t.Logf("Inspect took %v, Extract %v; heap grew by %.1f MiB", inspect, extract, float64(growth)/(1<<20))
			if limit := 2 * time.Second; inspect > limit || extract > limit {
				t.Errorf("Inspect took %v and Extract %v, want each under %v", inspect, extract, limit)
			}
			if growth > 16<<20 {
				t.Errorf("heap grew by %d MiB, want under 16 MiB", growth>>20)
			}
		})
	}
}

// TestInflatingIsStreamed lifts MaxRatio so that only MaxUncompressed stops the bomb, after
// 64 MiB, and wants the heap to stay small all the same.
func TestInflatingIsStreamed(t *testing.T) {
	lim := source.DefaultLimits()
	lim.MaxRatio, lim.MaxUncompressed = 1<<40, 64<<20
	for _, tc := range []struct {
		format  source.Format
		archive []byte
	}{
		{source.TarGz, tarBomb(t, 2048, false)},
		{source.Zip, zipBomb(t, 2048)},
	} {
		t.Run(tc.format.String(), func(t *testing.T) {
			path := writeTemp(t, tc.archive)
			peak := watchHeap()
			_, err := source.Inspect(context.Background(), path, tc.format, lim)
			growth := peak()
			checkInvalid(t, "Inspect", err, "zeros")
			t.Logf("heap grew by %.1f MiB while inflating 64 MiB", float64(growth)/(1<<20))
			if growth > 16<<20 {
				t.Errorf("heap grew by %d MiB, want under 16 MiB", growth>>20)
			}
		})
	}
}

// TestBombIsReal makes sure the bombs are what they claim, so that TestBombsStopEarly
// proves something. The 2 GiB ones differ from these 64 MiB ones only in how often the
// same deflate segment repeats; inflating 2 GiB would take long under the race detector.
func TestBombIsReal(t *testing.T) {
	const mib = 64
	zr, err := gzip.NewReader(bytesReader(tarBomb(t, mib, false)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var sizes []int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the tar.gz bomb: %v", err)
		}
		n, err := io.Copy(io.Discard, tr)
		if err != nil {
			t.Fatalf("reading %s from the tar.gz bomb: %v", hdr.Name, err)
		}
		sizes = append(sizes, n)
	}
	if _, err := io.Copy(io.Discard, zr); err != nil { // the gzip checksum
		t.Fatalf("reading the tar.gz bomb to its end: %v", err)
	}
	if want := []int64{int64(len(goMod)), mib << 20}; !slices.Equal(sizes, want) {
		t.Errorf("tar.gz bomb holds files of %v bytes, want %v", sizes, want)
	}

	b := zipBomb(t, mib)
	zipr, err := zip.NewReader(bytesReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := zipr.File[1].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if n, err := io.Copy(io.Discard, rc); err != nil || n != mib<<20 {
		t.Errorf("zip bomb inflates to %d bytes (%v), want %d", n, err, mib<<20)
	}
}

// TestCanceledMidway cancels while a file is being copied.
func TestCanceledMidway(t *testing.T) {
	big := string(randomBytes(4 << 20))
	for _, f := range []source.Format{source.TarGz, source.Zip} {
		t.Run(f.String(), func(t *testing.T) {
			data := tarGz(t, file("go.mod", goMod), file("big", big))
			if f == source.Zip {
				data = zipOf(t, file("go.mod", goMod), ent{name: "big", body: big, store: true})
			}
			path := writeTemp(t, data)
			// Enough checks to get past the go.mod and into the big file.
			ctx := &countdown{Context: context.Background()}
			ctx.left.Store(8)
			if _, err := source.Inspect(ctx, path, f, source.DefaultLimits()); !errors.Is(err, context.Canceled) {
				t.Errorf("Inspect(canceled mid-way) = %v, want context.Canceled", err)
			}
			ctx.left.Store(8)
			tg := newTarget(t)
			if _, err := source.Extract(ctx, path, f, tg.out, source.DefaultLimits()); !errors.Is(err, context.Canceled) {
				t.Errorf("Extract(canceled mid-way) = %v, want context.Canceled", err)
			}
			tg.checkUntouched(t)
		})
	}
}

// countdown is a context that reports itself canceled once Err has been called left times.
type countdown struct {
	context.Context
	left atomic.Int64
}

func (c *countdown) Err() error {
	if c.left.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// watchHeap samples the live heap until the returned function is called, which returns
// the peak growth over the heap at the start.
func watchHeap() func() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if v := read(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		if v := read(); v > peak.Load() {
			peak.Store(v)
		}
		if p := peak.Load(); p > base {
			return p - base
		}
		return 0
	}
}
