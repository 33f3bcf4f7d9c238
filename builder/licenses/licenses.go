package licenses

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/google/licensecheck"
	"golang.org/x/mod/module"
)

// Files are the names of the license files read at a module's root, in this order.
var Files = []string{
	"LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "LICENCE.md", "LICENCE.txt",
	"COPYING", "COPYING.md", "COPYING.txt", "License", "License.md", "License.txt",
	"license", "license.md", "license.txt",
}

// MaxFile is the largest license file read; a larger one is not classified.
const MaxFile = 64 << 10

// MinCoverage is the share of a license file's text, in percent, that known licenses
// must cover for the file to be classified.
const MinCoverage = 75

// Go is the license of the Go distribution, the standard library's.
const Go = "BSD-3-Clause"

// Finder finds the licenses of the modules of one build: the main module in the
// extracted source tree, and each dependency in the module cache the compile used, in
// the tree's vendor directory, or in a directory of the tree a replace names. It never
// reads outside those roots, nor through a symbolic link, nor anything but regular files.
// Its methods may be called from several goroutines; each module is read once.
type Finder struct {
	source, modCache string

	mu    sync.Mutex
	found map[string]string
}

// New returns the Finder of a build whose source tree (the main module's root) is source
// and whose compile used the module cache modCache ("" for none).
func New(source, modCache string) *Finder {
	return &Finder{source: source, modCache: modCache, found: map[string]string{}}
}

// License returns the SPDX license expression of module m (the main module when main is
// true) declared by the license files at its root: one license id, or several joined
// with " AND " in id order. It returns "" when it cannot tell: no license file, one that
// no known license covers well enough, or a module whose root is out of bounds.
func (f *Finder) License(m *debug.Module, main bool) string {
	k := key(m, main)
	f.mu.Lock()
	l, ok := f.found[k]
	f.mu.Unlock()
	if ok {
		return l
	}
	l = f.license(m, main)
	f.mu.Lock()
	f.found[k] = l
	f.mu.Unlock()
	return l
}

func key(m *debug.Module, main bool) string {
	k := m.Path + "@" + m.Version
	if r := m.Replace; r != nil {
		k += "=>" + r.Path + "@" + r.Version
	}
	if main {
		k = "main " + k
	}
	return k
}

func (f *Finder) license(m *debug.Module, main bool) string {
	if main {
		return readRoot(f.source, ".")
	}
	p, v := m.Path, m.Version
	if r := m.Replace; r != nil {
		if r.Version == "" || r.Version == "(devel)" {
			// A directory: only one inside the source tree is read.
			return readRoot(f.source, r.Path)
		}
		p, v = r.Path, r.Version
	}
	if f.modCache != "" {
		if dir, ok := cacheDir(p, v); ok {
			if l, found := readModule(f.modCache, dir); found {
				return l
			}
		}
	}
	if module.CheckImportPath(m.Path) == nil { // go mod vendor keeps the path required
		return readRoot(f.source, "vendor/"+m.Path)
	}
	return ""
}

// cacheDir is the directory of module path@version in a module cache, relative to it.
func cacheDir(p, v string) (string, bool) {
	ep, err := module.EscapePath(p)
	if err != nil {
		return "", false
	}
	ev, err := module.EscapeVersion(v)
	if err != nil {
		return "", false
	}
	return ep + "@" + ev, true
}

// readRoot classifies the license files of the directory dir (slash-separated, relative
// to root), or returns "" when dir is not inside root.
func readRoot(root, dir string) string {
	l, _ := readModule(root, dir)
	return l
}

// readModule classifies the license files of the directory dir under root; found
// reports whether the directory exists there.
func readModule(root, dir string) (license string, found bool) {
	dir = path.Clean(dir)
	if strings.Contains(dir, `\`) || !filepath.IsLocal(filepath.FromSlash(dir)) && dir != "." {
		return "", false
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return "", false
	}
	defer r.Close()
	// The directory itself must be a directory, not a link to one.
	for d := dir; d != "."; d = path.Dir(d) {
		fi, err := r.Lstat(d)
		if err != nil || !fi.IsDir() {
			return "", false
		}
	}
	mr, err := r.OpenRoot(dir)
	if err != nil {
		return "", false
	}
	defer mr.Close()
	var texts [][]byte
	for _, name := range Files {
		b, err := readFile(mr, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", true // a license file that cannot be read leaves the license unknown
		}
		texts = append(texts, b)
	}
	return Classify(texts), true
}

var errNotRegular = errors.New("not a regular file")

// readFile reads the regular file name of r, of at most MaxFile bytes.
func readFile(r *os.Root, name string) ([]byte, error) {
	fi, err := r.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > MaxFile {
		return nil, errNotRegular
	}
	file, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	if ofi, err := file.Stat(); err != nil || !os.SameFile(fi, ofi) {
		return nil, errNotRegular
	}
	b, err := io.ReadAll(io.LimitReader(file, MaxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFile {
		return nil, errNotRegular
	}
	return b, nil
}

// Warm readies the license classifier, which takes about a second the first time a
// process uses it, and is instant after; a build calls it while its platforms compile.
func Warm() { licensecheck.Scan(nil) }

// Classify returns the SPDX license expression of a module whose license files hold
// texts: the ids of the licenses they match, sorted and joined with " AND ". It returns ""
// when there are no texts, when known licenses cover less than MinCoverage percent of one
// of them, or when one matches a license that has no SPDX id.
func Classify(texts [][]byte) string {
	var ids []string
	for _, t := range texts {
		c := licensecheck.Scan(t)
		if c.Percent < MinCoverage || len(c.Match) == 0 {
			return ""
		}
		for _, m := range c.Match {
			if notSPDX[m.ID] {
				return ""
			}
			ids = append(ids, m.ID)
		}
	}
	slices.Sort(ids)
	return strings.Join(slices.Compact(ids), " AND ")
}

// notSPDX are the ids licensecheck v0.3.1 reports that are not SPDX license ids (every
// other id of licensecheck.BuiltinLicenses is one).
var notSPDX = map[string]bool{
	"BSD": true, "GPL": true, "Anti996": true, "CommonsClause": true, "GPL-2.0-or-3.0": true,
	"GooglePatentClause": true, "GooglePatentsFile": true,
}
