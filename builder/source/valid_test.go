package source_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/slipway/slipway/builder/source"
)

// tree lists what is under dir: each path (slash-separated, relative) with its type,
// permissions and, for a file, its content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			got[filepath.ToSlash(rel)] = fmt.Sprintf("dir %v", fi.Mode().Perm())
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got[filepath.ToSlash(rel)] = fmt.Sprintf("file %v %s", fi.Mode().Perm(), b)
		default:
			got[filepath.ToSlash(rel)] = fmt.Sprintf("other %v", fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestAccepts(t *testing.T) {
	mod := file("go.mod", goMod)
	const rw, rwx = "-rw-r--r--", "-rwxr-xr-x"
	dirMode := "dir " + rwx
	for _, tc := range []struct {
		name    string
		format  source.Format
		archive func(t testing.TB) []byte
		root    string
		want    map[string]string
	}{{
		name:   "go.mod at the root",
		format: source.TarGz,
		archive: func(t testing.TB) []byte {
			return tarGz(t, mod, file("main.go", "package main\n"), dir("cmd/"), file("cmd/tool/main.go", "package main\n"))
		},
		want: map[string]string{
			"go.mod":           "file " + rw + " " + goMod,
			"main.go":          "file " + rw + " package main\n",
			"cmd":              dirMode,
			"cmd/tool":         dirMode,
			"cmd/tool/main.go": "file " + rw + " package main\n",
		},
	}, {
		name:   "one wrapping directory",
		format: source.TarGz,
		archive: func(t testing.TB) []byte {
			return tarGz(t, dir("hello-1.0/"), file("hello-1.0/go.mod", goMod), file("hello-1.0/main.go", "package main\n"))
		},
		root: "hello-1.0/",
		want: map[string]string{
			"go.mod":  "file " + rw + " " + goMod,
			"main.go": "file " + rw + " package main\n",
		},
	}, {
		name:   "wrapping directory only implied",
		format: source.TarGz,
		archive: func(t testing.TB) []byte {
			return tarGz(t, file("hello/go.mod", goMod), file("hello/a/b.go", "package a\n"))
		},
		root: "hello/",
		want: map[string]string{
			"go.mod": "file " + rw + " " + goMod,
			"a":      dirMode,
			"a/b.go": "file " + rw + " package a\n",
		},
	}, {
		name:   "wrapping directory holding one of its own name",
		format: source.TarGz,
		archive: func(t testing.TB) []byte {
			return tarGz(t, file("m/go.mod", goMod), file("m/m/x.go", "package m\n"), file("m/.slipway-strip/y.go", "package y\n"))
		},
		root: "m/",
		want: map[string]string{
			"go.mod":              "file " + rw + " " + goMod,
			"m":                   dirMode,
			"m/x.go":              "file " + rw + " package m\n",
			".slipway-strip":      dirMode,
			".slipway-strip/y.go": "file " + rw + " package y\n",
		},
	}, {
		name:   "implicit parent directories",
		format: source.TarGz,
		archive: func(t testing.TB) []byte {
			return tarGz(t, mod, file("a/b/c/d.go", "package c\n"), dir("a/"))
		},
		want: map[string]string{
			"go.mod":     "file " + rw + " " + goMod,
			"a":          dirMode,
			"a/b":        dirMode,
			"a/b/c":      dirMode,
			"a/b/c/d.go": "file " + rw + " package c\n",
		},
	}, {
		name:   "names as tar -C dir . writes them",
		format: source.TarGz,
		archive: func(t testing.TB) []byte {
			return tarGz(t, dir("./"), file("./go.mod", goMod), dir("./cmd/"), file("./cmd/main.go", "package main\n"))
		},
		want: map[string]string{
			"go.mod":      "file " + rw + " " + goMod,
			"cmd":         dirMode,
			"cmd/main.go": "file " + rw + " package main\n",
		},
	}, {
		name:   "execute bits",
		format: source.TarGz,
		archive: func(t testing.TB) []byte {
			return tarGz(t, ent{name: "go.mod", body: goMod, mode: 0o600}, exe("run.sh", "#!/bin/sh\n"),
				ent{name: "owner.sh", body: "x", mode: 0o700}, ent{name: "other.sh", body: "x", mode: 0o601},
				ent{name: "setuid", body: "x", mode: 0o4755}, ent{name: "d/", typ: tar.TypeDir, mode: 0o700})
		},
		want: map[string]string{
			"go.mod":   "file " + rw + " " + goMod,
			"run.sh":   "file " + rwx + " #!/bin/sh\n",
			"owner.sh": "file " + rwx + " x",
			"other.sh": "file " + rwx + " x",
			"setuid":   "file " + rwx + " x",
			"d":        dirMode,
		},
	}, {
		name:   "git archive with a global header",
		format: source.TarGz,
		archive: func(t testing.TB) []byte {
			return tarGz(t, ent{typ: tar.TypeXGlobalHeader, body: "0123456789abcdef0123456789abcdef01234567"},
				dir("repo/"), file("repo/go.mod", goMod), file("repo/main.go", "package main\n"))
		},
		root: "repo/",
		want: map[string]string{
			"go.mod":  "file " + rw + " " + goMod,
			"main.go": "file " + rw + " package main\n",
		},
	}, {
		name:   "empty go.mod",
		format: source.TarGz,
		archive: func(t testing.TB) []byte {
			return tarGz(t, file("go.mod", ""))
		},
		want: map[string]string{"go.mod": "file " + rw + " "},
	}, {
		name:   "zip with a wrapping directory",
		format: source.Zip,
		archive: func(t testing.TB) []byte {
			return zipOf(t, dir("hello-1.0/"), file("hello-1.0/go.mod", goMod), file("hello-1.0/main.go", "package main\n"),
				exe("hello-1.0/scripts/run.sh", "#!/bin/sh\n"))
		},
		root: "hello-1.0/",
		want: map[string]string{
			"go.mod":         "file " + rw + " " + goMod,
			"main.go":        "file " + rw + " package main\n",
			"scripts":        dirMode,
			"scripts/run.sh": "file " + rwx + " #!/bin/sh\n",
		},
	}, {
		name:   "zip with go.mod at the root",
		format: source.Zip,
		archive: func(t testing.TB) []byte {
			return zipOf(t, mod, file("./main.go", "package main\n"), file("a/b.go", "package a\n"))
		},
		want: map[string]string{
			"go.mod":  "file " + rw + " " + goMod,
			"main.go": "file " + rw + " package main\n",
			"a":       dirMode,
			"a/b.go":  "file " + rw + " package a\n",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := writeTemp(t, tc.archive(t))
			info, err := source.Inspect(ctx, path, tc.format, source.DefaultLimits())
			if err != nil {
				t.Fatalf("Inspect = %v, want nil", err)
			}
			tg := newTarget(t)
			got, err := source.Extract(ctx, path, tc.format, tg.out, source.DefaultLimits())
			if err != nil {
				t.Fatalf("Extract = %v, want nil", err)
			}
			if !equalInfo(info, got) {
				t.Errorf("Inspect = %+v, Extract = %+v; want them equal", info, got)
			}
			if info.Root != tc.root {
				t.Errorf("Inspect(...).Root = %q, want %q", info.Root, tc.root)
			}
			if want := tc.want["go.mod"][len("file -rw-r--r-- "):]; string(info.GoMod) != want {
				t.Errorf("Inspect(...).GoMod = %q, want %q", info.GoMod, want)
			}
			files, size := 0, int64(0)
			for _, v := range tc.want {
				if v[:4] == "file" {
					files++
					size += int64(len(v) - len("file -rw-r--r-- "))
				}
			}
			if info.Files != files || info.Size != size {
				t.Errorf("Inspect(...) = %d files, %d bytes, want %d files, %d bytes", info.Files, info.Size, files, size)
			}
			tree := tree(t, tg.out)
			if !maps.Equal(tree, tc.want) {
				for _, k := range slices.Sorted(maps.Keys(tree)) {
					t.Logf("extracted %s: %q", k, tree[k])
				}
				t.Errorf("Extract wrote %d paths, want %v", len(tree), slices.Sorted(maps.Keys(tc.want)))
			}
			if b, err := os.ReadFile(tg.canary); err != nil || string(b) != canaryText {
				t.Errorf("canary = %q, %v; want it unchanged", b, err)
			}
		})
	}
}

func equalInfo(a, b *source.Info) bool {
	return a.Root == b.Root && bytes.Equal(a.GoMod, b.GoMod) && a.Files == b.Files && a.Dirs == b.Dirs && a.Size == b.Size
}

func TestExtractNeedsEmptyDir(t *testing.T) {
	path := writeTemp(t, tarGz(t, file("go.mod", goMod)))
	tg := newTarget(t)
	if err := os.WriteFile(filepath.Join(tg.out, "old"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := source.Extract(context.Background(), path, source.TarGz, tg.out, source.DefaultLimits())
	if err == nil || errors.Is(err, source.ErrInvalid) {
		t.Errorf("Extract(into a non-empty directory) = %v, want an error that is not ErrInvalid", err)
	}
	if b, err := os.ReadFile(filepath.Join(tg.out, "old")); err != nil || string(b) != "x" {
		t.Errorf("file already in the directory = %q, %v; want it untouched", b, err)
	}
	if _, err := source.Extract(context.Background(), path, source.TarGz, filepath.Join(tg.parent, "missing"), source.DefaultLimits()); err == nil {
		t.Errorf("Extract(into a missing directory) = nil, want an error")
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, f := range []source.Format{source.TarGz, source.Zip} {
		data := tarGz(t, file("go.mod", goMod))
		if f == source.Zip {
			data = zipOf(t, file("go.mod", goMod))
		}
		path := writeTemp(t, data)
		if _, err := source.Inspect(ctx, path, f, source.DefaultLimits()); !errors.Is(err, context.Canceled) {
			t.Errorf("Inspect(%v, canceled) = %v, want context.Canceled", f, err)
		}
		tg := newTarget(t)
		if _, err := source.Extract(ctx, path, f, tg.out, source.DefaultLimits()); !errors.Is(err, context.Canceled) {
			t.Errorf("Extract(%v, canceled) = %v, want context.Canceled", f, err)
		}
		tg.checkUntouched(t)
	}
}

func TestUnknownFormat(t *testing.T) {
	path := writeTemp(t, tarGz(t, file("go.mod", goMod)))
	if _, err := source.Inspect(context.Background(), path, source.Format(9), source.DefaultLimits()); err == nil || errors.Is(err, source.ErrInvalid) {
		t.Errorf("Inspect(Format(9)) = %v, want an error that is not ErrInvalid", err)
	}
}
