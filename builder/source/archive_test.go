package source_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// ent is one entry of an archive a test builds.
type ent struct {
	name  string
	typ   byte  // a tar type flag; 0 is a regular file
	mode  int64 // permission bits; 0 means 0644, or 0755 for a directory
	body  string
	link  string
	store bool // zip: store rather than deflate (deflating is slow under the race detector)
}

func file(name, body string) ent { return ent{name: name, body: body} }
func exe(name, body string) ent  { return ent{name: name, body: body, mode: 0o755} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir} }
func link(name string, typ byte, target string) ent {
	return ent{name: name, typ: typ, link: target}
}

func (e ent) perm() int64 {
	switch {
	case e.mode != 0:
		return e.mode
	case e.typ == tar.TypeDir:
		return 0o755
	}
	return 0o644
}

const goMod = "module example.com/hello\n\ngo 1.26\n"

// tarOf returns the uncompressed tar of ents.
func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.perm(), Linkname: e.link}
		switch e.typ {
		case 0:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.body))
		case tar.TypeChar, tar.TypeBlock:
			hdr.Devmajor, hdr.Devminor = 1, 3
		case tar.TypeXGlobalHeader:
			hdr = &tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": e.body}}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("writing tar header %q: %v", e.name, err)
		}
		if hdr.Size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarGz(t testing.TB, ents ...ent) []byte { return gz(t, tarOf(t, ents...)) }

func zipOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.store {
			h.Method = zip.Store
		}
		body := e.body
		switch e.typ {
		case 0:
			h.SetMode(fs.FileMode(e.perm()))
		case tar.TypeDir:
			h.SetMode(fs.ModeDir | fs.FileMode(e.perm()))
		case tar.TypeSymlink:
			h.SetMode(fs.ModeSymlink | 0o777)
			body = e.link
		case tar.TypeChar:
			h.SetMode(fs.ModeDevice | fs.ModeCharDevice | 0o666)
		case tar.TypeFifo:
			h.SetMode(fs.ModeNamedPipe | 0o666)
		default:
			t.Fatalf("zipOf: no zip equivalent of tar type %q", e.typ)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// manyEntries returns a go.mod and n empty files named e000000, e000001, ...
func manyEntries(n int) []ent {
	ents := []ent{file("go.mod", goMod)}
	for i := range n {
		ents = append(ents, ent{name: entryName(i), store: true})
	}
	return ents
}

// manyEntriesTarGz is the tar.gz of manyEntries(100 000), built from raw headers
// streamed into gzip, because archive/tar and a 50 MB buffer of headers take many
// seconds under the race detector.
var manyEntriesTarGz = sync.OnceValue(func() []byte {
	entries := []rawEntry{{"go.mod", '0', []byte(goMod)}}
	for i := range 100_000 {
		entries = append(entries, rawEntry{entryName(i), '0', nil})
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	writeRawTar(zw, entries...)
	zw.Close()
	return buf.Bytes()
})

func entryName(i int) string {
	b := []byte("e000000")
	for j := len(b) - 1; i > 0; j-- {
		b[j] = byte('0' + i%10)
		i /= 10
	}
	return string(b)
}

// zeroSegment is deflate data for 1 MiB of zeros that ends on a byte boundary without a
// final block, so that copies of it can be strung together into one stream.
var zeroSegment = sync.OnceValue(func() []byte { return deflateFlushed(make([]byte, 1<<20)) })

// deflateFlushed compresses p on its own (no reference to earlier data) and flushes
// without ending the stream.
func deflateFlushed(p []byte) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	fw.Write(p)
	fw.Flush()
	return b.Bytes()
}

// finalBlock ends a deflate stream.
var finalBlock = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	fw.Close()
	return b.Bytes()
})

// zerosCRC returns the CRC-32 of crc's data followed by n MiB of zeros.
func zerosCRC(crc uint32, mib int) uint32 {
	zero := make([]byte, 1<<20)
	for range mib {
		crc = crc32.Update(crc, crc32.IEEETable, zero)
	}
	return crc
}

// tarBomb returns a tar.gz of go.mod and one file, "zeros", of mib MiB of zeros, packed
// into about mib KiB. When lie is set, the header of "zeros" claims 10 bytes and the tar
// archive ends after them, so that the zeros follow the end of the tar in the gzip
// stream.
func tarBomb(t testing.TB, mib int, lie bool) []byte {
	t.Helper()
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	if err := tw.WriteHeader(&tar.Header{Name: "go.mod", Mode: 0o644, Size: int64(len(goMod))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(goMod))
	claim := int64(mib) << 20
	if lie {
		claim = 10
	}
	// WriteHeader writes the header at once; the content is strung together below.
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Mode: 0o644, Size: claim}); err != nil {
		t.Fatal(err)
	}
	end := make([]byte, 1024) // two zero blocks end a tar archive
	if lie {
		head.Write(make([]byte, 512)) // the 10 bytes claimed, padded
		head.Write(end)
		end = nil
	}

	var z bytes.Buffer
	z.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}) // a gzip header
	z.Write(deflateFlushed(head.Bytes()))
	for range mib {
		z.Write(zeroSegment())
	}
	if end != nil {
		z.Write(deflateFlushed(end))
	}
	z.Write(finalBlock())
	crc := crc32.Update(zerosCRC(crc32.ChecksumIEEE(head.Bytes()), mib), crc32.IEEETable, end)
	z.Write(binary.LittleEndian.AppendUint32(nil, crc))
	z.Write(binary.LittleEndian.AppendUint32(nil, uint32(head.Len()+mib<<20+len(end))))
	return z.Bytes()
}

// zipBomb returns a zip of go.mod and "zeros", mib MiB of zeros deflated.
func zipBomb(t testing.TB, mib int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("go.mod")
	w.Write([]byte(goMod))
	var d bytes.Buffer
	for range mib {
		d.Write(zeroSegment())
	}
	d.Write(finalBlock())
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name:               "zeros",
		Method:             zip.Deflate,
		CRC32:              zerosCRC(0, mib),
		CompressedSize64:   uint64(d.Len()),
		UncompressedSize64: uint64(mib) << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(d.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawTar returns a tar stream with the given raw headers, each followed by its data, and
// the end of the archive: for entries archive/tar cannot write.
func rawTar(entries ...rawEntry) []byte {
	var out bytes.Buffer
	writeRawTar(&out, entries...)
	return out.Bytes()
}

func writeRawTar(out io.Writer, entries ...rawEntry) {
	for _, e := range entries {
		var blk [512]byte
		copy(blk[0:100], e.name)
		copy(blk[100:], "0000644\x00")
		copy(blk[108:], "0000000\x00")
		copy(blk[116:], "0000000\x00")
		copy(blk[124:], octal(int64(len(e.data)), 12))
		copy(blk[136:], "00000000000\x00")
		blk[156] = e.typ
		copy(blk[257:], "ustar\x0000")
		if e.typ == 'S' {
			copy(blk[257:], "ustar  \x00") // old GNU sparse files exist only in the GNU format
		}
		for i := 148; i < 156; i++ {
			blk[i] = ' '
		}
		var sum int64
		for _, c := range blk {
			sum += int64(c)
		}
		copy(blk[148:], octal(sum, 7))
		blk[155] = ' '
		out.Write(blk[:])
		out.Write(e.data)
		out.Write(make([]byte, (512-len(e.data)%512)%512))
	}
	out.Write(make([]byte, 1024))
}

type rawEntry struct {
	name string
	typ  byte
	data []byte
}

func octal(n int64, width int) string {
	s := make([]byte, width-1)
	for i := len(s) - 1; i >= 0; i-- {
		s[i] = byte('0' + n%8)
		n /= 8
	}
	return string(s) + "\x00"
}

func pax(records ...string) []byte {
	var b bytes.Buffer
	for i := 0; i < len(records); i += 2 {
		rec := " " + records[i] + "=" + records[i+1] + "\n"
		n := len(rec)
		for ; ; n++ {
			if len(strconv.Itoa(n))+len(rec) == n {
				break
			}
		}
		b.WriteString(strconv.Itoa(n) + rec)
	}
	return b.Bytes()
}

// writeTemp writes an archive to a file of its own.
func writeTemp(t testing.TB, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
