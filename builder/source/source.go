package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// Format is the format of an archive.
type Format int

// The formats, named for the media types they are uploaded as.
const (
	TarGz Format = iota + 1 // application/gzip: a gzip-compressed tar
	Zip                     // application/zip
)

// String returns "tar.gz" or "zip".
func (f Format) String() string {
	switch f {
	case TarGz:
		return "tar.gz"
	case Zip:
		return "zip"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Limits bound the work one archive may cause. Each is a server setting; a field that is
// zero or negative takes its default from DefaultLimits.
type Limits struct {
	// MaxCompressed is the most bytes the archive itself may have; default 100 MiB.
	MaxCompressed int64
	// MaxUncompressed is the most bytes all file contents together may have, counted as
	// they are read from the decompressor, never taken from a header; default 1 GiB.
	MaxUncompressed int64
	// MaxEntries is the most files and directories, counting those only implied by a
	// path, the archive may hold; default 50 000.
	MaxEntries int
	// MaxPathLen is the most bytes one entry's name may have; default 1024.
	MaxPathLen int
	// MaxRatio is the most the archive may expand: once more than 1 MiB has been
	// inflated, the bytes inflated so far may be at most MaxRatio times the compressed
	// bytes read so far, so a compression bomb stops within its first megabytes;
	// default 200.
	MaxRatio int64
}

// DefaultLimits returns the default limits: 100 MiB compressed, 1 GiB uncompressed,
// 50 000 entries, 1024 bytes of path and an expansion ratio of 200.
func DefaultLimits() Limits {
	return Limits{
		MaxCompressed:   100 << 20,
		MaxUncompressed: 1 << 30,
		MaxEntries:      50_000,
		MaxPathLen:      1024,
		MaxRatio:        200,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxCompressed <= 0 {
		l.MaxCompressed = d.MaxCompressed
	}
	if l.MaxUncompressed <= 0 {
		l.MaxUncompressed = d.MaxUncompressed
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxPathLen <= 0 {
		l.MaxPathLen = d.MaxPathLen
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = d.MaxRatio
	}
	return l
}

// Info describes a valid module source.
type Info struct {
	// Root is the directory prefix wrapping the module inside the archive: "" when
	// go.mod is at the archive root, "name/" when one top-level directory holds
	// everything and go.mod is in it.
	Root string
	// GoMod is the content of the module's go.mod (at most 1 MiB).
	GoMod []byte
	// Files counts regular files.
	Files int
	// Dirs counts directories, including those only implied by a path and the Root
	// directory.
	Dirs int
	// Size is the uncompressed bytes of all files.
	Size int64
}

// Inspect reads the archive at path and checks every rule without writing anything. A
// broken rule is an *Error naming the entry.
func Inspect(ctx context.Context, path string, f Format, lim Limits) (*Info, error) {
	w, err := walk(ctx, path, f, lim, discard{})
	if err != nil {
		return nil, err
	}
	return &w.info, nil
}

// Extract checks the same rules as Inspect while it writes the module's files under dir,
// which must exist and be empty. The Root prefix is stripped, so go.mod lands at
// dir/go.mod. Files are written 0644, or 0755 when the archive set any execute bit;
// directories are 0755; times and owners are not restored. Nothing is written outside
// dir and no link is created or followed. On any error Extract removes everything it
// wrote, leaving dir empty.
func Extract(ctx context.Context, path string, f Format, dir string, lim Limits) (*Info, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("extracting into %s: %w", dir, err)
	}
	defer root.Close()
	if err := checkEmpty(root); err != nil {
		return nil, fmt.Errorf("extracting into %s: %w", dir, err)
	}
	out := &rootSink{root: root}
	w, err := walk(ctx, path, f, lim, out)
	if err == nil && w.info.Root != "" {
		err = stripRoot(root, w)
	}
	if err != nil {
		if cerr := empty(root); cerr != nil {
			err = errors.Join(err, fmt.Errorf("removing what was extracted into %s: %w", dir, cerr))
		}
		return nil, err
	}
	return &w.info, nil
}

// discard is the sink of Inspect.
type discard struct{}

var (
	_ sink = discard{}
	_ sink = (*rootSink)(nil)
)

func (discard) mkdir(string) error                          { return nil }
func (discard) create(string, bool) (io.WriteCloser, error) { return nopCloser{io.Discard}, nil }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// rootSink is the sink of Extract. Going through an os.Root keeps every operation inside
// the directory even if something there were a link.
type rootSink struct {
	root *os.Root
}

func (s *rootSink) mkdir(name string) error {
	p := filepath.FromSlash(name)
	if err := s.root.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("creating directory %s: %w", name, err)
	}
	// Mkdir's mode passes through the umask; the result must not depend on it.
	if err := s.root.Chmod(p, 0o755); err != nil {
		return fmt.Errorf("creating directory %s: %w", name, err)
	}
	return nil
}

func (s *rootSink) create(name string, exec bool) (io.WriteCloser, error) {
	mode := fs.FileMode(0o644)
	if exec {
		mode = 0o755
	}
	f, err := s.root.OpenFile(filepath.FromSlash(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", name, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return nil, fmt.Errorf("creating %s: %w", name, err)
	}
	return onlyWriter{f}, nil
}

// onlyWriter hides *os.File's ReadFrom, which would allocate a buffer per file.
type onlyWriter struct{ f *os.File }

func (o onlyWriter) Write(p []byte) (int, error) { return o.f.Write(p) }
func (o onlyWriter) Close() error                { return o.f.Close() }

func checkEmpty(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if len(names) > 0 {
		return errors.New("the directory is not empty")
	}
	return nil
}

// stripRoot moves the contents of the wrapping directory up into the root and removes it.
// The directory is first renamed to a name none of its children has, so that a child
// with the directory's own name (hello/hello/) can move up.
func stripRoot(root *os.Root, w *walker) error {
	top := w.top
	tmp := ".slipway-strip"
	for i := 1; tmp == top || hasPath(w.paths, fold(top+"/"+tmp)); i++ {
		tmp = ".slipway-strip-" + strconv.Itoa(i)
	}
	if err := root.Rename(top, tmp); err != nil {
		return fmt.Errorf("stripping %s: %w", w.info.Root, err)
	}
	d, err := root.Open(tmp)
	if err != nil {
		return fmt.Errorf("stripping %s: %w", w.info.Root, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("stripping %s: %w", w.info.Root, err)
	}
	for _, name := range names {
		if err := root.Rename(filepath.Join(tmp, name), name); err != nil {
			return fmt.Errorf("stripping %s: %w", w.info.Root, err)
		}
	}
	if err := root.Remove(tmp); err != nil {
		return fmt.Errorf("stripping %s: %w", w.info.Root, err)
	}
	return nil
}

func hasPath(paths map[string]node, key string) bool {
	_, ok := paths[key]
	return ok
}

// empty removes everything in the root.
func empty(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := root.RemoveAll(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
