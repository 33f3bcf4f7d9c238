package licenses_test

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/licenses"
)

// write puts files (slash-separated paths under dir) on disk.
func write(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLicense: the main module's license is read in the source tree, a dependency's in the
// module cache (its path escaped), in the tree's vendor directory, or in a directory of
// the tree a replace names; nothing outside those roots is read, nor through a link, nor
// a file that is not regular or too large.
func TestLicense(t *testing.T) {
	base := t.TempDir()
	src, cache, outside := filepath.Join(base, "src"), filepath.Join(base, "modcache"), filepath.Join(base, "outside")
	mit, apache := buildertest.MITLicense, buildertest.ApacheLicense
	write(t, src, map[string]string{
		"LICENSE":                            apache,
		"greet/LICENSE":                      mit,
		"greet/go.mod":                       "module example.com/greet\n",
		"nolicense/go.mod":                   "module example.com/nolicense\n",
		"both/LICENSE":                       mit,
		"both/COPYING":                       apache,
		"vendor/example.com/vend/LICENSE.md": mit,
		"big/LICENSE":                        mit + strings.Repeat(" ", licenses.MaxFile),
		"prose/LICENSE":                      "Do what you like with it, as long as you tell your friends about it.\n" + mit[:200],
		"linked/go.mod":                      "module example.com/linked\n",
		"dirlicense/LICENSE/x":               mit,
	})
	write(t, cache, map[string]string{"example.com/!big!co/lib@v1.2.0/LICENSE.txt": mit})
	write(t, outside, map[string]string{"LICENSE": mit, "dir/LICENSE": mit})
	if err := os.Symlink(filepath.Join(outside, "LICENSE"), filepath.Join(src, "linked", "LICENSE")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "dir"), filepath.Join(src, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(src, "greet"), filepath.Join(src, "linkgreet")); err != nil {
		t.Fatal(err)
	}

	dir := func(p, d string) *debug.Module {
		return &debug.Module{Path: p, Version: "v1.0.0", Replace: &debug.Module{Path: d}}
	}
	f := licenses.New(src, cache)
	for _, tc := range []struct {
		name string
		m    *debug.Module
		main bool
		want string
	}{
		{"main module", &debug.Module{Path: "example.com/hello", Version: "(devel)"}, true, "Apache-2.0"},
		{"replace ./greet", dir("example.com/greet", "./greet"), false, "MIT"},
		{"replace greet/../greet", dir("example.com/greet", "greet/../greet"), false, "MIT"},
		{"module cache, escaped path", &debug.Module{Path: "example.com/BigCo/lib", Version: "v1.2.0"}, false, "MIT"},
		{"module cache, replaced by a version", &debug.Module{Path: "example.com/lib", Version: "v1.0.0",
			Replace: &debug.Module{Path: "example.com/BigCo/lib", Version: "v1.2.0"}}, false, "MIT"},
		{"vendored", &debug.Module{Path: "example.com/vend", Version: "v0.1.0"}, false, "MIT"},
		{"two license files", dir("example.com/both", "./both"), false, "Apache-2.0 AND MIT"},
		{"no license file", dir("example.com/nolicense", "./nolicense"), false, ""},
		{"nowhere", &debug.Module{Path: "example.com/gone", Version: "v1.0.0"}, false, ""},
		{"replace outside the tree", dir("example.com/out", "../outside"), false, ""},
		{"replace ../../etc", dir("example.com/etc", "../../etc"), false, ""},
		{"replace by an absolute directory", dir("example.com/abs", outside), false, ""},
		{"symlinked LICENSE", dir("example.com/linked", "./linked"), false, ""},
		{"symlinked directory out of the tree", dir("example.com/linkdir", "./linkdir"), false, ""},
		{"symlinked directory in the tree", dir("example.com/linkgreet", "./linkgreet"), false, ""},
		{"LICENSE too large", dir("example.com/big", "./big"), false, ""},
		{"LICENSE mostly unknown prose", dir("example.com/prose", "./prose"), false, ""},
		{"LICENSE a directory", dir("example.com/dirlicense", "./dirlicense"), false, ""},
		{"vendor path climbing out", &debug.Module{Path: "../outside", Version: "v1.0.0"}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.License(tc.m, tc.main); got != tc.want {
				t.Errorf("License(%s => %v) = %q, want %q", tc.m.Path, tc.m.Replace, got, tc.want)
			}
		})
	}

	// Without a module cache, a dependency is found only in the tree.
	if got := licenses.New(src, "").License(&debug.Module{Path: "example.com/BigCo/lib", Version: "v1.2.0"}, false); got != "" {
		t.Errorf("License without a module cache = %q, want \"\"", got)
	}
}

// TestClassify: the ids are sorted and deduplicated; nothing, or an unknown text, is "".
func TestClassify(t *testing.T) {
	mit, apache := []byte(buildertest.MITLicense), []byte(buildertest.ApacheLicense)
	for _, tc := range []struct {
		name  string
		texts [][]byte
		want  string
	}{
		{"none", nil, ""},
		{"MIT", [][]byte{mit}, "MIT"},
		{"MIT twice", [][]byte{mit, mit}, "MIT"},
		{"Apache and MIT", [][]byte{mit, apache}, "Apache-2.0 AND MIT"},
		{"unknown", [][]byte{[]byte("All rights reserved. Ask us first.\n")}, ""},
		{"MIT and an unknown one", [][]byte{mit, []byte("All rights reserved. Ask us first.\n")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := licenses.Classify(tc.texts); got != tc.want {
				t.Errorf("Classify(%s) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}
