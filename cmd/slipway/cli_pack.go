package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// sourceTree is what of a module directory goes into its upload: every regular file but
// those under .git and those the top-level .gitignore names, in name order.
type sourceTree struct {
	dir     string
	entries []sourceEntry
	// skipped are the entries that are not regular files or directories (symbolic links,
	// sockets), which the server would refuse; they are left out, as Go's module zips do.
	skipped []string
	files   int
	size    int64 // bytes of file content
}

// sourceEntry is one file of a sourceTree.
type sourceEntry struct {
	name string // slash-separated, relative to the tree
	size int64
	exec bool
}

// listSource walks dir, which must hold go.mod, and returns what of it to upload.
func listSource(dir string) (*sourceTree, error) {
	if st, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w; give the module's root directory", dir, errNoGoMod)
	}
	var ig ignorer
	gi, err := os.ReadFile(filepath.Join(dir, ".gitignore"))
	switch {
	case err == nil:
		ig = parseGitignore(gi)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("reading .gitignore: %w", err)
	}
	t := &sourceTree{dir: dir}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		isDir := d.IsDir()
		if d.Name() == ".git" || ig.ignored(rel, isDir) {
			if isDir {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case isDir:
			// Directories are implied by their files; like git, the archive has no empty ones.
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			t.entries = append(t.entries, sourceEntry{name: rel, size: info.Size(), exec: info.Mode()&0o111 != 0})
			t.files++
			t.size += info.Size()
		default:
			t.skipped = append(t.skipped, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	slices.SortFunc(t.entries, func(a, b sourceEntry) int { return strings.Compare(a.name, b.name) })
	return t, nil
}

// epoch is the modification time of every archive entry, so that archives depend only
// on names, modes and contents.
var epoch = time.Unix(0, 0).UTC()

// writeTarGz writes the tree as a tar.gz: files in name order, mode 0644 or 0755, no
// owners and the same time for all. The same files make the same bytes.
func (t *sourceTree) writeTarGz(w io.Writer) error {
	gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, e := range t.entries {
		hdr := &tar.Header{Name: e.name, ModTime: epoch, Mode: 0o644, Typeflag: tar.TypeReg, Size: e.size}
		if e.exec {
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("packing %s: %w", e.name, err)
		}
		if err := copyFile(tw, filepath.Join(t.dir, filepath.FromSlash(e.name)), e.size); err != nil {
			return fmt.Errorf("packing %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("packing: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("packing: %w", err)
	}
	return nil
}

// copyFile copies the size bytes of the file at p to w.
func copyFile(w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return err
	}
	if n != size {
		return errChanged
	}
	return nil
}

// ignorer is the rules of one .gitignore, in file order; the last rule that matches a
// path decides.
//
// Supported: blank lines and # comments; \# and \! for a literal first character;
// trailing spaces dropped unless escaped; ! to re-include; a trailing / for directories
// only; a pattern with a / before its end anchored to the top, one without matching at
// any depth; *, ?, [a-z] and [!a-z] within a name; ** as a whole segment for any number
// of directories (leading **/, a/**/b, trailing /** for everything inside).
//
// Not supported: .gitignore files in subdirectories, .git/info/exclude, core.excludesFile.
// As in git, a path inside an ignored directory cannot be re-included.
type ignorer []ignoreRule

// ignoreRule is one pattern line.
type ignoreRule struct {
	segs    []string // the pattern split at /, "**" standing for any number of directories
	negate  bool
	dirOnly bool
}

// parseGitignore reads the rules of a .gitignore file.
func parseGitignore(data []byte) ignorer {
	var rules ignorer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, `\ `) {
			line = line[:len(line)-1]
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var r ignoreRule
		if strings.HasPrefix(line, "!") {
			r.negate, line = true, line[1:]
		} else if strings.HasPrefix(line, `\#`) || strings.HasPrefix(line, `\!`) {
			line = line[1:]
		}
		if strings.HasSuffix(line, "/") {
			r.dirOnly, line = true, strings.TrimRight(line, "/")
		}
		if line == "" {
			continue
		}
		anchored := strings.Contains(line, "/")
		line = strings.TrimPrefix(line, "/")
		line = strings.ReplaceAll(line, "[!", "[^") // git's negated class is path.Match's [^...]
		if !anchored {
			r.segs = []string{"**"}
		}
		for s := range strings.SplitSeq(line, "/") {
			if s != "" {
				r.segs = append(r.segs, s)
			}
		}
		rules = append(rules, r)
	}
	return rules
}

// ignored reports whether the slash-separated path rel, a directory if isDir, is ignored.
func (ig ignorer) ignored(rel string, isDir bool) bool {
	name := strings.Split(rel, "/")
	ignored := false
	for _, r := range ig {
		if r.dirOnly && !isDir {
			continue
		}
		if matchSegments(r.segs, name) {
			ignored = !r.negate
		}
	}
	return ignored
}

// matchSegments matches a path, split at /, against a pattern's segments.
func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			if len(pat) == 1 {
				return len(name) > 0 // a trailing /** is everything inside, not the directory
			}
			for i := 0; i < len(name); i++ {
				if matchSegments(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
