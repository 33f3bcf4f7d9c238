package image

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
)

// gzipBlock is how much of a layer's tar stream one compressor takes at a time, and
// gzipDict how much of the block before it primes its dictionary.
const (
	gzipBlock = 1 << 20
	gzipDict  = 32 << 10
)

// blockGzip is a gzip writer that compresses fixed blocks of its input on up to
// GOMAXPROCS goroutines at once, so that the layer of the platform whose link ends last
// is compressed by every core, not one. Each block is deflated at gzipLevel on its own,
// primed with the 32 KiB before it and ended with a sync flush (the last one with the
// final block), so the blocks join into one deflate stream in one gzip member, which
// any gzip reader reads. The output depends only on the input, never on the scheduling:
// block boundaries are fixed, and blocks are written in order.
type blockGzip struct {
	w     io.Writer
	buf   []byte // the block being filled
	prev  []byte // the end of the block before it: its dictionary
	crc   uint32
	size  uint32 // of the input, modulo 2^32 as gzip's trailer has it
	queue chan chan []byte
	done  chan struct{}
	slots chan struct{} // one per block being compressed
	mu    sync.Mutex
	err   error
}

// gzipHeader is the gzip member header every layer starts with: deflate, no flags, no
// time, no extra flags, an unknown OS.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

func newBlockGzip(w io.Writer) (*blockGzip, error) {
	if _, err := w.Write(gzipHeader); err != nil {
		return nil, err
	}
	n := runtime.GOMAXPROCS(0)
	z := &blockGzip{w: w, buf: make([]byte, 0, gzipBlock), queue: make(chan chan []byte, n),
		done: make(chan struct{}), slots: make(chan struct{}, n)}
	go z.writeOut()
	return z, nil
}

// writeOut writes the compressed blocks in order as they are done.
func (z *blockGzip) writeOut() {
	defer close(z.done)
	for fut := range z.queue {
		out := <-fut
		if z.failed() == nil {
			if _, err := z.w.Write(out); err != nil {
				z.fail(err)
			}
		}
	}
}

func (z *blockGzip) fail(err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.err == nil {
		z.err = err
	}
}

func (z *blockGzip) failed() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

func (z *blockGzip) Write(p []byte) (int, error) {
	if err := z.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p)
	z.size += uint32(n)
	for len(p) > 0 {
		k := min(len(p), gzipBlock-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p = p[k:]
		if len(z.buf) == gzipBlock {
			z.dispatch(false)
		}
	}
	return n, nil
}

// dispatch compresses the block filled so far on a goroutine of its own, once a slot is
// free, and queues its output to be written in turn.
func (z *blockGzip) dispatch(last bool) {
	block, dict := z.buf, z.prev
	z.prev = block[max(0, len(block)-gzipDict):]
	z.buf = make([]byte, 0, gzipBlock)
	fut := make(chan []byte, 1)
	z.slots <- struct{}{}
	z.queue <- fut
	go func() {
		defer func() { <-z.slots }()
		var out bytes.Buffer
		out.Grow(len(block) / 2)
		fw, err := flate.NewWriterDict(&out, gzipLevel, dict)
		if err == nil {
			_, err = fw.Write(block)
		}
		if err == nil && last {
			err = fw.Close()
		} else if err == nil {
			err = fw.Flush()
		}
		if err != nil {
			z.fail(err)
		}
		fut <- out.Bytes()
	}()
}

// Close compresses what is left as the final block, waits for every block to be written
// and writes the gzip trailer.
func (z *blockGzip) Close() error {
	z.dispatch(true)
	close(z.queue)
	<-z.done
	if err := z.failed(); err != nil {
		return err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], z.crc)
	binary.LittleEndian.PutUint32(trailer[4:], z.size)
	_, err := z.w.Write(trailer[:])
	return err
}
