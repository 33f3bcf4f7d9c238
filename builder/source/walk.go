package source

import (
	"archive/tar"
	"archive/zip"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

const (
	// maxGoMod is the largest go.mod Inspect returns.
	maxGoMod = 1 << 20
	// ratioGrace is how much must be inflated before MaxRatio is checked: the ratio of a
	// stream's first bytes (a run of tar headers, say) says little.
	ratioGrace = 1 << 20
	// headerAllowance is how many inflated bytes of tar headers and padding an entry may
	// bring on top of its content.
	headerAllowance = 4 << 10
	// maxTrailing is how much may follow the end of a tar archive inside the gzip stream;
	// tar pads its output to a record of 10 KiB.
	maxTrailing = 1 << 20
)

// sink receives what the walker accepts, in archive order, parents before children.
// Names are slash-separated and relative to the archive root.
type sink interface {
	mkdir(name string) error
	create(name string, exec bool) (io.WriteCloser, error)
}

// node is what the walker knows about one path.
type node struct {
	name     string // the path as the archive spells it (after cleanName)
	dir      bool
	explicit bool // an entry of its own rather than implied by a path below it
}

// goMod is a go.mod that may turn out to be the module's.
type goMod struct {
	entry  string // the entry's name in the archive
	data   []byte
	tooBig bool
}

// walker applies every rule to one archive. Inspect and Extract both run it; Extract
// gives it a sink that writes. The format readers (tar.go, zip.go) call begin and then
// add for each entry.
type walker struct {
	lim  Limits
	sink sink
	info Info
	buf  []byte

	paths   map[string]node // by fold(path)
	slashes [][2]int        // scratch for parents
	entries int             // entries and implied directories, for MaxEntries

	top      string // the first segment of the first entry
	topIsDir bool
	single   bool // every entry so far lies under top
	rootMod  *goMod
	wrapMod  *goMod // top/go.mod

	cur        string // the entry being read, for errors
	compressed int64  // bytes read from the archive file
	inflated   int64  // bytes out of the decompressor
	maxInflate int64  // MaxUncompressed and what headers may add
	stop       error  // set by the counting readers: a limit, ctx, or a read error of the file
}

func newWalker(lim Limits, s sink) *walker {
	maxInflate := lim.MaxUncompressed + int64(lim.MaxEntries)*headerAllowance + maxTrailing
	if maxInflate < lim.MaxUncompressed { // overflow: the limits are beyond reach anyway
		maxInflate = math.MaxInt64
	}
	return &walker{
		lim:        lim,
		sink:       s,
		buf:        make([]byte, 32<<10),
		paths:      make(map[string]node),
		single:     true,
		maxInflate: maxInflate,
	}
}

// walk opens the archive at path and runs the walker over it.
func walk(ctx context.Context, path string, f Format, lim Limits, s sink) (*walker, error) {
	lim = lim.withDefaults()
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening archive: %w", err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("opening archive: %w", err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("opening archive: %s is not a regular file", path)
	case fi.Size() == 0:
		return nil, &Error{Reason: "the archive is empty"}
	case fi.Size() > lim.MaxCompressed:
		return nil, &Error{Reason: fmt.Sprintf("the archive is larger than %s", sizeString(lim.MaxCompressed))}
	}
	w := newWalker(lim, s)
	switch f {
	case TarGz:
		err = w.tarGz(ctx, file)
	case Zip:
		err = w.zip(ctx, file, fi.Size())
	default:
		return nil, fmt.Errorf("unknown archive format %d", f)
	}
	if err == nil {
		err = w.finish()
	}
	if err != nil {
		return nil, err
	}
	return w, nil
}

// begin starts an entry: it checks ctx and counts the entry.
func (w *walker) begin(ctx context.Context, raw string) error {
	w.cur = raw
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.count(raw)
}

func (w *walker) count(raw string) error {
	w.entries++
	if w.entries > w.lim.MaxEntries {
		return invalid(raw, "the archive has more than %d files and directories", w.lim.MaxEntries)
	}
	return nil
}

// add applies the naming rules to an entry that is a regular file or a directory and hands
// it to the sink; a file's content is read from body.
func (w *walker) add(ctx context.Context, raw string, dir, exec bool, body io.Reader) error {
	name, skip, reason := cleanName(raw, dir, w.lim.MaxPathLen)
	if reason != "" {
		return invalid(raw, "%s", reason)
	}
	if skip {
		return nil
	}
	key := fold(name)
	if err := w.parents(raw, name, key); err != nil {
		return err
	}
	if n, ok := w.paths[key]; ok {
		switch {
		case n.name != name:
			return invalid(raw, "the path collides with %q (the names differ only in case)", n.name)
		case dir && n.dir && !n.explicit:
			n.explicit = true // a directory listed after a file inside it
			w.paths[key] = n
			w.track(name, dir)
			return nil
		case dir && n.dir, !dir && !n.dir:
			return invalid(raw, "the path appears twice in the archive")
		case dir:
			return invalid(raw, "a directory has the same path as a file")
		default:
			return invalid(raw, "a file has the same path as a directory")
		}
	}
	w.paths[key] = node{name: name, dir: dir, explicit: true}
	w.track(name, dir)
	if dir {
		w.info.Dirs++
		return w.sink.mkdir(name)
	}
	w.info.Files++
	return w.copyFile(ctx, raw, name, exec, body)
}

// parents checks that every parent of name is a directory spelled the same way, and
// registers and creates the missing ones, which the path implies. It looks from the
// deepest parent up and stops at the first it knows, whose own parents were checked when
// it was registered, so an archive of long paths costs one lookup per entry, not one per
// segment.
func (w *walker) parents(raw, name, key string) error {
	w.slashes = w.slashes[:0]
	for i, j := 0, 0; ; i, j = i+1, j+1 {
		di := strings.IndexByte(name[i:], '/')
		if di < 0 {
			break
		}
		// fold keeps every '/' and nothing else becomes one, so the segments line up.
		i, j = i+di, j+strings.IndexByte(key[j:], '/')
		w.slashes = append(w.slashes, [2]int{i, j})
	}
	known := len(w.slashes)
	for ; known > 0; known-- {
		s := w.slashes[known-1]
		n, ok := w.paths[key[:s[1]]]
		if !ok {
			continue
		}
		switch parent := name[:s[0]]; {
		case !n.dir:
			return invalid(raw, "the path runs through %q, which is a file", n.name)
		case n.name != parent:
			return invalid(raw, "directory %q collides with %q (the names differ only in case)", parent, n.name)
		}
		break
	}
	for _, s := range w.slashes[known:] {
		if err := w.count(raw); err != nil {
			return err
		}
		parent := name[:s[0]]
		w.paths[key[:s[1]]] = node{name: parent, dir: true}
		w.info.Dirs++
		if err := w.sink.mkdir(parent); err != nil {
			return err
		}
	}
	return nil
}

// track follows the archive's top level, to find the directory wrapping everything, if
// there is one, and where go.mod must be.
func (w *walker) track(name string, dir bool) {
	top, _, below := strings.Cut(name, "/")
	switch {
	case w.top == "":
		w.top, w.topIsDir = top, dir || below
	case top != w.top:
		w.single = false
	}
}

// copyFile reads a file's content from body, counting every byte actually read, and
// writes it to the sink.
func (w *walker) copyFile(ctx context.Context, raw, name string, exec bool, body io.Reader) error {
	var mod *goMod
	switch {
	case name == "go.mod":
		w.rootMod = &goMod{entry: raw}
		mod = w.rootMod
	case name == w.top+"/go.mod":
		w.wrapMod = &goMod{entry: raw}
		mod = w.wrapMod
	}
	out, err := w.sink.create(name, exec)
	if err != nil {
		return err
	}
	defer out.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := body.Read(w.buf)
		if n > 0 {
			w.info.Size += int64(n)
			if w.info.Size > w.lim.MaxUncompressed {
				return invalid(raw, "the files hold more than %s uncompressed", sizeString(w.lim.MaxUncompressed))
			}
			if mod != nil && !mod.tooBig {
				if len(mod.data)+n > maxGoMod {
					mod.tooBig, mod.data = true, nil
				} else {
					mod.data = append(mod.data, w.buf[:n]...)
				}
			}
			if _, err := out.Write(w.buf[:n]); err != nil {
				return fmt.Errorf("writing %s: %w", name, err)
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return w.readError(rerr, "")
		}
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// finish settles where the module is: go.mod at the archive root, or inside the one
// top-level directory that holds every entry.
func (w *walker) finish() error {
	mod := w.rootMod
	if mod == nil && w.single && w.topIsDir && w.wrapMod != nil {
		mod = w.wrapMod
		w.info.Root = w.top + "/"
	}
	if mod == nil {
		return &Error{Reason: "a go.mod is needed at the root of the archive or inside one top-level directory that holds everything"}
	}
	if mod.tooBig {
		return invalid(mod.entry, "go.mod is larger than %s", sizeString(maxGoMod))
	}
	w.info.GoMod = mod.data
	if w.info.GoMod == nil {
		w.info.GoMod = []byte{}
	}
	return nil
}

// readError turns an error of the archive readers into what the caller sees. An error the
// counting readers recorded (a limit, ctx, a failing disk) wins; anything else is the
// archive's fault. what describes the error when it is not recognised.
func (w *walker) readError(err error, what string) error {
	if w.stop != nil {
		return w.stop
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	reason := describe(err)
	if reason == "" {
		if what == "" {
			what = "the archive is corrupt"
		}
		reason = fmt.Sprintf("%s (%v)", what, err)
	}
	return invalid(w.cur, "%s", reason)
}

// addInflated counts the bytes that come out of a decompressor and stops a stream that
// expands too far, absolutely or relative to the compressed bytes read so far.
func (w *walker) addInflated(n int) error {
	w.inflated += int64(n)
	switch {
	case w.inflated > w.maxInflate:
		w.stop = invalid(w.cur, "the archive inflates to more than %s", sizeString(w.maxInflate))
	case w.inflated > ratioGrace && w.compressed > 0 && w.inflated/w.compressed > w.lim.MaxRatio:
		w.stop = invalid(w.cur, "the archive expands more than %d times its compressed size", w.lim.MaxRatio)
	}
	return w.stop
}

// countReader counts the compressed bytes read from the archive file and records a read
// error as the walker's, so it is not mistaken for a corrupt archive.
type countReader struct {
	w *walker
	r io.Reader
}

func (c *countReader) Read(p []byte) (int, error) {
	if c.w.stop != nil {
		return 0, c.w.stop
	}
	n, err := c.r.Read(p)
	c.w.compressed += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		c.w.stop = fmt.Errorf("reading archive: %w", err)
		return n, c.w.stop
	}
	return n, err
}

// countReaderAt is countReader for random access. An offset outside the file comes from
// the archive, not from the disk, and is reported as such.
type countReaderAt struct {
	w    *walker
	r    io.ReaderAt
	size int64
}

// errOffset is a read at an offset outside the archive file.
var errOffset = errors.New("an offset points outside the file")

func (c *countReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if c.w.stop != nil {
		return 0, c.w.stop
	}
	if off < 0 || off > c.size {
		return 0, errOffset
	}
	n, err := c.r.ReadAt(p, off)
	c.w.compressed += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		c.w.stop = fmt.Errorf("reading archive: %w", err)
		return n, c.w.stop
	}
	return n, err
}

// inflateReader counts what a decompressor produces and checks ctx, so that even a long
// run of headers the tar reader skips by itself stops when it should.
type inflateReader struct {
	ctx context.Context
	w   *walker
	r   io.Reader
}

func (c *inflateReader) Read(p []byte) (int, error) {
	if c.w.stop != nil {
		return 0, c.w.stop
	}
	if err := c.ctx.Err(); err != nil {
		c.w.stop = err
		return 0, err
	}
	n, err := c.r.Read(p)
	if lerr := c.w.addInflated(n); lerr != nil {
		return n, lerr
	}
	return n, err
}

// describe says in words what a decompressor's or archive reader's error means for the
// archive, or returns "" when it is not one of the known ones.
func describe(err error) string {
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the archive is truncated"
	case errors.Is(err, errOffset):
		return "the archive is corrupt: " + errOffset.Error()
	case errors.Is(err, gzip.ErrChecksum):
		return "the archive is corrupt: the gzip checksum does not match"
	case errors.Is(err, gzip.ErrHeader):
		return "the archive is corrupt: the gzip stream has a bad header"
	case errors.As(err, &corrupt):
		return "the archive is corrupt: bad compressed data"
	case errors.Is(err, tar.ErrHeader):
		return "the archive is corrupt: a tar header is invalid"
	case errors.Is(err, zip.ErrChecksum):
		return "the archive is corrupt: the entry's checksum does not match"
	case errors.Is(err, zip.ErrFormat):
		return "the archive is corrupt: the zip data is malformed"
	case errors.Is(err, zip.ErrAlgorithm):
		return "the entry's compression method is not supported"
	}
	return ""
}
