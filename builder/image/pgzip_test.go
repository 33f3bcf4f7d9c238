package image

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"testing"
)

// TestBlockGzip: whatever the input's size relative to the blocks, the output is one
// gzip member that the standard library reads back as the input, and the same input
// always gives the same bytes.
func TestBlockGzip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	text := make([]byte, 4*gzipBlock)
	words := []string{"slipway ", "layer ", "binary ", "\x00\x00\x00\x00", "go "}
	for i := 0; i < len(text); {
		i += copy(text[i:], words[rng.IntN(len(words))])
	}
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"a block less one", gzipBlock - 1},
		{"a block", gzipBlock},
		{"three and a half blocks", 3*gzipBlock + gzipBlock/2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := text[:tc.size]
			compress := func() []byte {
				var out bytes.Buffer
				z, err := newBlockGzip(&out)
				if err != nil {
					t.Fatal(err)
				}
				// Odd-sized writes, to cross block boundaries mid-write.
				for p := in; len(p) > 0; {
					k := min(len(p), 77777)
					if _, err := z.Write(p[:k]); err != nil {
						t.Fatal(err)
					}
					p = p[k:]
				}
				if err := z.Close(); err != nil {
					t.Fatal(err)
				}
				return out.Bytes()
			}
			first, again := compress(), compress()
			if !bytes.Equal(first, again) {
				t.Errorf("two compressions of the same %d bytes differ", len(in))
			}
			zr, err := gzip.NewReader(bytes.NewReader(first))
			if err != nil {
				t.Fatal(err)
			}
			zr.Multistream(false)
			got, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, in) {
				t.Fatalf("gunzip = %d bytes, %v; want the %d bytes compressed", len(got), err, len(in))
			}
			if tc.size > gzipBlock && len(first) > len(in)/2 {
				t.Errorf("compressed %d bytes to %d", len(in), len(first))
			}
		})
	}
}

func BenchmarkBlockGzip(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdefghij\x00\x00slipway"), 6<<20/30)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		if rng.IntN(4) == 0 {
			data[i] = byte(rng.IntN(256))
		}
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		z, _ := newBlockGzip(io.Discard)
		_, _ = z.Write(data)
		_ = z.Close()
	}
}
