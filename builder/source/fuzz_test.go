package source_test

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway/slipway/builder/source"
)

// FuzzExtract extracts arbitrary bytes as a tar.gz, as a zip, and (gzip-compressed here,
// so that the fuzzer reaches the tar reader) as a tar.gz again. Whatever the input, only
// regular files and directories may appear, all inside the target directory; a refusal
// must be an *Error that leaves the target empty; and Inspect must agree with Extract.
func FuzzExtract(f *testing.F) {
	mod := file("go.mod", goMod)
	for _, seed := range [][]byte{
		tarOf(f, mod, file("main.go", "package main\n")),
		tarOf(f, dir("hello/"), file("hello/go.mod", goMod), exe("hello/run.sh", "#!/bin/sh\n")),
		tarOf(f, mod, file("../x", "x")),
		tarOf(f, mod, link("etc", tar.TypeSymlink, "/etc"), file("etc/passwd-slipway", "x")),
		tarOf(f, mod, link("passwd", tar.TypeLink, "/etc/passwd")),
		tarOf(f, mod, file("A.go", ""), file("a.go", "")),
		tarOf(f, mod, file("a", ""), file("a/b", "")),
		tarOf(f, ent{typ: tar.TypeXGlobalHeader, body: "c0ffee"}, file("m/go.mod", goMod), file("m/m/x.go", "")),
		tarGz(f, mod, file("main.go", "package main\n")),
		tarGz(f, dir("./"), file("./go.mod", goMod), file("./a/b.go", "package a\n")),
		zipOf(f, mod, file("main.go", "package main\n")),
		zipOf(f, dir("hello/"), file("hello/go.mod", goMod), exe("hello/run.sh", "#!/bin/sh\n")),
		zipOf(f, mod, link("link", tar.TypeSymlink, "/etc")),
		zipOf(f, mod, file("../x", "x")),
		zipOverlap(f),
	} {
		f.Add(seed)
	}
	// One directory for all runs, as t.TempDir per run would make fuzzing much slower.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzOne(t, dir, source.TarGz, data)
		fuzzOne(t, dir, source.Zip, data)
		fuzzOne(t, dir, source.TarGz, gz(t, data))
	})
}

func fuzzOne(t *testing.T, dir string, f source.Format, data []byte) {
	ctx := context.Background()
	lim := source.DefaultLimits()
	lim.MaxUncompressed = 16 << 20 // keeps each run short
	path := filepath.Join(dir, "archive")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "run")
	if err := os.RemoveAll(base); err != nil {
		t.Fatal(err)
	}
	out, canary := filepath.Join(base, "out"), filepath.Join(base, "canary")
	for _, d := range []string{base, out, canary} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	info, err := source.Extract(ctx, path, f, out, lim)

	files, size := 0, int64(0)
	walkErr := filepath.WalkDir(base, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t.Fatalf("Extract(%v) created a symbolic link %s", f, rel)
		case fi.Mode().IsRegular():
			files++
			size += fi.Size()
		case !fi.IsDir():
			t.Fatalf("Extract(%v) created %s of mode %v", f, rel, fi.Mode())
		}
		if rel != "." && rel != "out" && rel != "canary" && !strings.HasPrefix(rel, "out"+string(filepath.Separator)) {
			t.Fatalf("Extract(%v) wrote %s, outside the target directory", f, rel)
		}
		return nil
	})
	if walkErr != nil {
		t.Fatal(walkErr)
	}

	if err != nil {
		if !errors.Is(err, source.ErrInvalid) {
			t.Fatalf("Extract(%v) = %v, want nil or an *Error", f, err)
		}
		if files > 0 {
			t.Fatalf("Extract(%v) = %v and left %d files behind", f, err, files)
		}
		if left, _ := os.ReadDir(out); len(left) > 0 {
			t.Fatalf("Extract(%v) = %v and left %q behind", f, err, left[0].Name())
		}
	} else {
		if files != info.Files || size != info.Size {
			t.Fatalf("Extract(%v) = %d files of %d bytes, but wrote %d files of %d bytes", f, info.Files, info.Size, files, size)
		}
		mod, rerr := os.ReadFile(filepath.Join(out, "go.mod"))
		if rerr != nil || string(mod) != string(info.GoMod) {
			t.Fatalf("Extract(%v) reported go.mod %q, but out/go.mod is %q (%v)", f, info.GoMod, mod, rerr)
		}
	}

	iinfo, ierr := source.Inspect(ctx, path, f, lim)
	switch {
	case (err == nil) != (ierr == nil):
		t.Fatalf("Extract(%v) = %v but Inspect = %v", f, err, ierr)
	case err != nil && err.Error() != ierr.Error():
		t.Fatalf("Extract(%v) = %v but Inspect = %v", f, err, ierr)
	case err == nil && !equalInfo(info, iinfo):
		t.Fatalf("Extract(%v) = %+v but Inspect = %+v", f, info, iinfo)
	}
}
