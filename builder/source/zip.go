package source

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"slices"
)

const notZip = "not a zip archive"

// zip walks a zip archive. Before archive/zip reads the central directory, the walker
// reads it the same way to count the records, so a directory of millions of tiny records
// is refused before anything is allocated for them. It then checks that each record's
// local header carries the same name and that no two entries' data overlap (the trick of
// the overlapping-file zip bombs) before it reads any content.
func (w *walker) zip(ctx context.Context, file io.ReaderAt, size int64) error {
	r := &countReaderAt{w: w, r: file, size: size}
	recs, dirStart, err := w.scanZipDirectory(r, size)
	if err != nil {
		return err
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // GODEBUG=zipinsecurepath=0
		if w.stop != nil {
			return w.stop
		}
		return &Error{Reason: notZip}
	}
	if len(zr.File) != len(recs) {
		return &Error{Reason: "the central directory is inconsistent"}
	}
	if err := w.checkZipLayout(ctx, r, zr.File, recs, dirStart); err != nil {
		return err
	}
	// Only the compressed bytes of contents count towards MaxRatio, not the directory.
	w.compressed = 0
	for _, f := range zr.File {
		if err := w.begin(ctx, f.Name); err != nil {
			return err
		}
		mode := f.Mode()
		switch mode.Type() {
		case fs.ModeDir:
			if err := w.add(ctx, f.Name, true, false, nil); err != nil {
				return err
			}
		case 0:
			if err := w.zipFile(ctx, f, mode); err != nil {
				return err
			}
		case fs.ModeSymlink:
			return invalid(f.Name, "symbolic links are not allowed")
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			return invalid(f.Name, "device files are not allowed")
		case fs.ModeNamedPipe:
			return invalid(f.Name, "named pipes are not allowed")
		default:
			return invalid(f.Name, "entries of mode %v are not allowed, only regular files and directories", mode.Type())
		}
	}
	return nil
}

func (w *walker) zipFile(ctx context.Context, f *zip.File, mode fs.FileMode) error {
	if f.Flags&0x1 != 0 {
		return invalid(f.Name, "encrypted entries are not supported")
	}
	if f.Method != zip.Store && f.Method != zip.Deflate {
		return invalid(f.Name, "compression method %d is not supported, only stored and deflated entries", f.Method)
	}
	rc, err := f.Open()
	if err != nil {
		return w.readError(err, "the entry is corrupt")
	}
	defer rc.Close()
	return w.add(ctx, f.Name, false, mode&0o111 != 0, &inflateReader{ctx: ctx, w: w, r: rc})
}

// zipRecord is what scanZipDirectory keeps of a central directory record.
type zipRecord struct {
	name   string
	offset int64 // of the local header in the file
}

const (
	zipDirEndSig     = 0x06054b50
	zipDir64EndSig   = 0x06064b50
	zipDir64LocSig   = 0x07064b50
	zipDirHeaderSig  = 0x02014b50
	zipFileHeaderSig = 0x04034b50
	zipDirEndLen     = 22
	zipDir64LocLen   = 20
	zipDir64EndLen   = 56
	zipDirHeaderLen  = 46
	zipFileHeaderLen = 30
)

// scanZipDirectory finds the central directory as archive/zip's reader does
// (readDirectoryEnd in its reader.go), and reads its records, stopping where archive/zip
// would or at the first record past MaxEntries or with too long a name. It returns the
// records and the offset where the directory starts.
func (w *walker) scanZipDirectory(r io.ReaderAt, size int64) ([]zipRecord, int64, error) {
	base, start, err := locateZipDirectory(r, size)
	if err != nil {
		if w.stop != nil {
			return nil, 0, w.stop
		}
		if errors.Is(err, errNoZipDirectory) {
			return nil, 0, &Error{Reason: notZip}
		}
		return nil, 0, invalid("", "%s (%v)", notZip, err)
	}
	recs, err := w.readZipDirectory(r, size, start, base)
	if err != nil {
		return nil, 0, err
	}
	return recs, start, nil
}

// zipDirEnd is what the end of central directory record (or its zip64 form) says.
type zipDirEnd struct {
	offset                     int64 // where the record is
	records, dirSize, dirStart uint64
}

// locateZipDirectory returns the offset archive/zip adds to the directory's offsets
// (base) and where the directory starts. It fails with errNoZipDirectory where
// archive/zip finds none, or with the reader's error.
func locateZipDirectory(r io.ReaderAt, size int64) (base, start int64, err error) {
	end, err := readZipDirEnd(r, size)
	if err != nil {
		return 0, 0, err
	}
	if end.records == 0xffff || end.dirSize == 0xffff || end.dirStart == 0xffffffff {
		if end, err = readZip64DirEnd(r, end); err != nil {
			return 0, 0, err
		}
	}
	if end.dirSize > 1<<63-1 || end.dirStart > 1<<63-1 {
		return 0, 0, errNoZipDirectory
	}
	base = end.offset - int64(end.dirSize) - int64(end.dirStart)
	if o := base + int64(end.dirStart); o < 0 || o >= size {
		return 0, 0, errNoZipDirectory
	}
	// archive/zip prefers a base of 0 when a directory record is found there.
	if base > 0 {
		off := int64(end.dirStart)
		if _, err := readZipRecord(bufio.NewReader(io.NewSectionReader(r, off, size-off))); err == nil {
			base = 0
		}
	}
	return base, base + int64(end.dirStart), nil
}

// readZipDirEnd finds the end of central directory record in the last 65 KiB: the
// 22-byte record and a comment of at most 64 KiB.
func readZipDirEnd(r io.ReaderAt, size int64) (zipDirEnd, error) {
	n := min(size, 65<<10)
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return zipDirEnd{}, err
	}
	for i := len(buf) - zipDirEndLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(buf[i:]) != zipDirEndSig {
			continue
		}
		if int(binary.LittleEndian.Uint16(buf[i+20:]))+zipDirEndLen+i > len(buf) {
			return zipDirEnd{}, errNoZipDirectory // truncated comment; archive/zip gives up here too
		}
		end := buf[i:]
		return zipDirEnd{
			offset:   size - n + int64(i),
			records:  uint64(binary.LittleEndian.Uint16(end[10:])),
			dirSize:  uint64(binary.LittleEndian.Uint32(end[12:])),
			dirStart: uint64(binary.LittleEndian.Uint32(end[16:])),
		}, nil
	}
	return zipDirEnd{}, errNoZipDirectory
}

// readZip64DirEnd reads the zip64 end of central directory record that end's locator
// points at, if it has one; without one, end stands.
func readZip64DirEnd(r io.ReaderAt, end zipDirEnd) (zipDirEnd, error) {
	loc := end.offset - zipDir64LocLen
	if loc < 0 {
		return end, nil
	}
	b := make([]byte, zipDir64LocLen)
	if _, err := r.ReadAt(b, loc); err != nil {
		return end, err
	}
	if binary.LittleEndian.Uint32(b) != zipDir64LocSig || binary.LittleEndian.Uint32(b[4:]) != 0 ||
		binary.LittleEndian.Uint32(b[16:]) != 1 {
		return end, nil
	}
	p64 := int64(binary.LittleEndian.Uint64(b[8:]))
	if p64 < 0 {
		return end, errNoZipDirectory
	}
	b = make([]byte, zipDir64EndLen)
	if _, err := r.ReadAt(b, p64); err != nil {
		return end, err
	}
	if binary.LittleEndian.Uint32(b) != zipDir64EndSig {
		return end, errNoZipDirectory
	}
	end.offset = p64
	end.dirSize = binary.LittleEndian.Uint64(b[40:])
	end.dirStart = binary.LittleEndian.Uint64(b[48:])
	return end, nil
}

// readZipDirectory reads the directory's records from start, each with its local header
// offset moved by base.
func (w *walker) readZipDirectory(r io.ReaderAt, size, start, base int64) ([]zipRecord, error) {
	br := bufio.NewReader(io.NewSectionReader(r, start, size-start))
	var recs []zipRecord
	for {
		rec, err := readZipRecord(br)
		if err != nil {
			if w.stop != nil {
				return nil, w.stop
			}
			return recs, nil // where archive/zip stops too; it judges whether that is an error
		}
		if len(recs) == w.lim.MaxEntries {
			return nil, invalid(rec.name, "the archive has more than %d files and directories", w.lim.MaxEntries)
		}
		if len(rec.name) > w.lim.MaxPathLen {
			return nil, invalid(rec.name, "the path is longer than %d bytes", w.lim.MaxPathLen)
		}
		rec.offset += base
		recs = append(recs, rec)
	}
}

// errNoZipDirectory means an archive has no central directory that archive/zip would
// find.
var errNoZipDirectory = errors.New("no zip central directory")

// errZipRecord ends the directory, as archive/zip's ErrFormat does.
var errZipRecord = errors.New("not a directory record")

// readZipRecord reads one central directory record as archive/zip's readDirectoryHeader
// does, keeping the name and the local header offset.
func readZipRecord(r io.Reader) (zipRecord, error) {
	var hdr [zipDirHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return zipRecord{}, err
	}
	if binary.LittleEndian.Uint32(hdr[:]) != zipDirHeaderSig {
		return zipRecord{}, errZipRecord
	}
	le := binary.LittleEndian
	nameLen, extraLen, commentLen := int(le.Uint16(hdr[28:])), int(le.Uint16(hdr[30:])), int(le.Uint16(hdr[32:]))
	needUSize := le.Uint32(hdr[24:]) == ^uint32(0)
	needCSize := le.Uint32(hdr[20:]) == ^uint32(0)
	offset := int64(le.Uint32(hdr[42:]))
	needOffset := offset == int64(^uint32(0))
	d := make([]byte, nameLen+extraLen+commentLen)
	if _, err := io.ReadFull(r, d); err != nil {
		return zipRecord{}, err
	}
	for extra := d[nameLen : nameLen+extraLen]; len(extra) >= 4; {
		tag, n := le.Uint16(extra), int(le.Uint16(extra[2:]))
		extra = extra[4:]
		if len(extra) < n {
			break
		}
		field := extra[:n]
		extra = extra[n:]
		if tag != 0x0001 { // zip64; archive/zip's other extras never fail a record
			continue
		}
		for _, need := range []*bool{&needUSize, &needCSize, &needOffset} {
			if !*need {
				continue
			}
			*need = false
			if len(field) < 8 {
				return zipRecord{}, errZipRecord
			}
			if need == &needOffset {
				offset = int64(le.Uint64(field))
			}
			field = field[8:]
		}
	}
	if needCSize || needOffset {
		return zipRecord{}, errZipRecord
	}
	return zipRecord{name: string(d[:nameLen]), offset: offset}, nil
}

// checkZipLayout reads each entry's local header where the central directory says it is
// and checks that it names the same file, and that the entries' headers and data lie
// before the central directory without overlapping one another.
func (w *walker) checkZipLayout(ctx context.Context, r io.ReaderAt, files []*zip.File, recs []zipRecord, dirStart int64) error {
	type span struct {
		name       string
		start, end int64
	}
	spans := make([]span, 0, len(files))
	var hdr [zipFileHeaderLen]byte
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		w.cur = f.Name
		rec := recs[i]
		if rec.name != f.Name {
			return &Error{Reason: "the central directory is inconsistent"}
		}
		data, err := f.DataOffset()
		if err != nil {
			return w.readError(err, "the local header is unreadable")
		}
		if _, err := r.ReadAt(hdr[:], rec.offset); err != nil {
			return w.readError(err, "the local header is unreadable")
		}
		le := binary.LittleEndian
		nameLen, extraLen := int64(le.Uint16(hdr[26:])), int64(le.Uint16(hdr[28:]))
		if le.Uint32(hdr[:]) != zipFileHeaderSig || rec.offset+zipFileHeaderLen+nameLen+extraLen != data {
			return invalid(f.Name, "the local header is not where the central directory says")
		}
		local := make([]byte, nameLen)
		if _, err := r.ReadAt(local, rec.offset+zipFileHeaderLen); err != nil {
			return w.readError(err, "the local header is unreadable")
		}
		if !bytes.Equal(local, []byte(f.Name)) {
			return invalid(f.Name, "the local header names the entry %q instead", local)
		}
		end := data + int64(f.CompressedSize64)
		if f.CompressedSize64 > 1<<62 || end > dirStart {
			return invalid(f.Name, "the entry's data runs past the start of the central directory")
		}
		spans = append(spans, span{f.Name, rec.offset, end})
	}
	w.cur = ""
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(spans); i++ {
		if prev := spans[i-1]; spans[i].start < prev.end {
			return invalid(spans[i].name, "the entry's data overlaps entry %q", prev.name)
		}
	}
	return nil
}
