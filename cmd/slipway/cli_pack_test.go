package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestCLIGitignore(t *testing.T) {
	const gitignore = `# build output
dist/
*.log
/root-only.txt
secret.txt
**/generated/*.go
docs/**
!keep.log
tmp/**/cache
\#literal
trailing   
*.sw[!a-n]
`
	ig := parseGitignore([]byte(gitignore))
	for _, tc := range []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"dist", true, true},
		{"dist", false, false}, // dir/ matches directories only
		{"cmd/dist", true, true},
		{"app.log", false, true},
		{"deep/down/app.log", false, true},
		{"keep.log", false, false}, // re-included by !keep.log
		{"sub/keep.log", false, false},
		{"root-only.txt", false, true},
		{"sub/root-only.txt", false, false}, // anchored by the leading /
		{"secret.txt", false, true},
		{"a/b/secret.txt", false, true},
		{"generated/x.go", false, true},
		{"pkg/generated/x.go", false, true},
		{"pkg/generated/x.txt", false, false},
		{"docs", true, false}, // docs/** is what is inside, not docs itself
		{"docs/a.md", false, true},
		{"docs/deep/a.md", false, true},
		{"tmp/cache", true, true},
		{"tmp/x/y/cache", true, true},
		{"#literal", false, true},
		{"trailing", false, true},
		{"main.go", false, false},
		{"x.swp", false, true},
		{"x.swa", false, false},
		{"go.mod", false, false},
	} {
		if got := ig.ignored(tc.path, tc.isDir); got != tc.want {
			t.Errorf("ignored(%q, dir=%v) = %v, want %v", tc.path, tc.isDir, got, tc.want)
		}
	}
}

// writeTree creates files (name → content) under a new temporary directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tarEntries lists a tar.gz's entries as "name mode uid gid mtime-unix".
func tarEntries(t *testing.T, data []byte) []string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" || !hdr.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("entry %s has owner %d/%d %q/%q, time %v; want none and the epoch", hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname, hdr.ModTime)
		}
		names = append(names, hdr.Name)
	}
}

func TestCLIPackSource(t *testing.T) {
	files := map[string]string{
		"go.mod":         "module example.com/x\n\ngo 1.22\n",
		"main.go":        "package main\n\nfunc main() {}\n",
		".gitignore":     "secret.txt\ndist/\n",
		"secret.txt":     "hunter2",
		"dist/x":         "binary",
		".git/HEAD":      "ref: refs/heads/main\n",
		"sub/.git":       "gitdir: ../.git/modules/sub\n",
		"sub/a.go":       "package sub\n",
		"b/secret.txt":   "also",
		"notes/todo.md":  "- ship it\n",
		"main_test.go":   "package main\n",
		"a.txt":          "sorted before a/",
		"a/z.txt":        "inside a",
		"internal/.keep": "",
	}
	dir := writeTree(t, files)
	if err := os.Symlink("main.go", filepath.Join(dir, "link.go")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "notes/todo.md"), 0o755); err != nil {
		t.Fatal(err)
	}
	tree, err := listSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	var first, second bytes.Buffer
	if err := tree.writeTarGz(&first); err != nil {
		t.Fatal(err)
	}
	// Another listing of the same files, with other times, packs to the same bytes.
	later := time.Now().Add(time.Hour)
	_ = os.Chtimes(filepath.Join(dir, "main.go"), later, later)
	tree2, err := listSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := tree2.writeTarGz(&second); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Error("packing the same tree twice gave different archives")
	}
	got := tarEntries(t, first.Bytes())
	want := []string{".gitignore", "a.txt", "a/z.txt", "go.mod", "internal/.keep", "main.go", "main_test.go", "notes/todo.md", "sub/a.go"}
	if !slices.Equal(got, want) {
		t.Errorf("archive entries =\n  %q\nwant\n  %q", got, want)
	}
	if !slices.Equal(tree.skipped, []string{"link.go"}) {
		t.Errorf("skipped = %q, want the symbolic link", tree.skipped)
	}

	gz, _ := gzip.NewReader(bytes.NewReader(first.Bytes()))
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if hdr.Name == "notes/todo.md" && hdr.Mode != 0o755 || hdr.Name == "main.go" && hdr.Mode != 0o644 {
			t.Errorf("%s has mode %o", hdr.Name, hdr.Mode)
		}
	}

	if _, err := listSource(filepath.Join(dir, "notes")); !errors.Is(err, errNoGoMod) {
		t.Errorf("listSource(a directory without go.mod) = %v, want errNoGoMod", err)
	}
}
