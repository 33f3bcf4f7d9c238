package source_test

import (
	"bytes"
	"compress/gzip"
	"testing"
	"time"
)

func TestTiming2(t *testing.T) {
	start := time.Now()
	entries := []rawEntry{{"go.mod", '0', []byte(goMod)}}
	for i := range 100_000 {
		entries = append(entries, rawEntry{entryName(i), '0', nil})
	}
	raw := rawTar(entries...)
	t.Logf("rawTar %v", time.Since(start))
	for _, lvl := range []int{gzip.HuffmanOnly, gzip.BestSpeed, gzip.DefaultCompression} {
		start = time.Now()
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, lvl)
		zw.Write(raw)
		zw.Close()
		t.Logf("level %d: %v, %d bytes", lvl, time.Since(start), buf.Len())
	}
}
