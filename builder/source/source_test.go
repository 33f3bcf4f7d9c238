package source_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slipway/slipway/builder/source"
)

// anyEntry in a test case accepts an *Error naming any entry.
const anyEntry = "\x00any"

// target is a directory to extract into, with a canary beside it.
type target struct {
	parent, out, canary string
}

const canaryText = "the canary\n"

func newTarget(t *testing.T) target {
	t.Helper()
	parent := t.TempDir()
	tg := target{parent: parent, out: filepath.Join(parent, "out"), canary: filepath.Join(parent, "canary.txt")}
	if err := os.Mkdir(tg.out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tg.canary, []byte(canaryText), 0o644); err != nil {
		t.Fatal(err)
	}
	return tg
}

// checkUntouched checks that the target is empty and nothing beside it changed.
func (tg target) checkUntouched(t *testing.T) {
	t.Helper()
	if got, err := os.ReadFile(tg.canary); err != nil || string(got) != canaryText {
		t.Errorf("canary = %q, %v; want it unchanged", got, err)
	}
	names, err := os.ReadDir(tg.parent)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	if !slices.Equal(got, []string{"canary.txt", "out"}) {
		t.Errorf("directory holding the target has %q, want only canary.txt and out", got)
	}
	if left, _ := os.ReadDir(tg.out); len(left) > 0 {
		t.Errorf("target directory has %d entries after a failed Extract, want none (first %q)", len(left), left[0].Name())
	}
}

func checkInvalid(t *testing.T, call string, err error, entry string) {
	t.Helper()
	var e *source.Error
	switch {
	case !errors.As(err, &e):
		t.Errorf("%s = %v, want an *Error", call, err)
	case !errors.Is(err, source.ErrInvalid):
		t.Errorf("%s = %v, which is not ErrInvalid", call, err)
	case entry != anyEntry && e.Entry != entry:
		t.Errorf("%s = %v (entry %q), want an *Error for entry %q", call, err, e.Entry, entry)
	default:
		t.Logf("%s: %v", call, err)
	}
}

// checkRejected runs Inspect and Extract on the archive and wants both to refuse it,
// naming entry, with nothing written.
func checkRejected(t *testing.T, data []byte, f source.Format, lim source.Limits, entry string) {
	t.Helper()
	ctx := context.Background()
	path := writeTemp(t, data)
	info, err := source.Inspect(ctx, path, f, lim)
	if info != nil {
		t.Errorf("Inspect returned %+v with error %v, want nil", info, err)
	}
	checkInvalid(t, "Inspect", err, entry)
	tg := newTarget(t)
	info, err = source.Extract(ctx, path, f, tg.out, lim)
	if info != nil {
		t.Errorf("Extract returned %+v with error %v, want nil", info, err)
	}
	checkInvalid(t, "Extract", err, entry)
	tg.checkUntouched(t)
}

func TestRejects(t *testing.T) {
	mod := file("go.mod", goMod)
	for _, tc := range []struct {
		name    string
		format  source.Format
		archive func(t testing.TB) []byte
		entry   string
	}{
		{"dot dot", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("../x", "escaped")) }, "../x"},
		{"dot dot inside", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("a/../../x", "escaped")) }, "a/../../x"},
		{"absolute", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("/abs", "x")) }, "/abs"},
		{"drive letter", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("C:/x.go", "x")) }, "C:/x.go"},
		{"leading backslash", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file(`\x.go`, "x")) }, `\x.go`},
		{"backslash", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file(`a\..\..\x`, "x")) }, `a\..\..\x`},
		{"control character", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("a\x01b.go", "x")) }, "a\x01b.go"},
		{"empty segment", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("a//b.go", "x")) }, "a//b.go"},
		{"dot segment", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("a/./b.go", "x")) }, "a/./b.go"},
		{"file named with a slash", source.TarGz, func(t testing.TB) []byte {
			return gz(t, rawTar(rawEntry{"go.mod", '0', []byte(goMod)}, rawEntry{"f/", '0', []byte("x")}))
		}, "f/"},
		{"path too long", source.TarGz, func(t testing.TB) []byte {
			return tarGz(t, mod, file(strings.Repeat("a/", 512)+"x.go", "x"))
		}, strings.Repeat("a/", 512) + "..."}, // cut to 1024 bytes
		{"segment too long", source.TarGz, func(t testing.TB) []byte {
			return tarGz(t, mod, file(strings.Repeat("a", 256), "x"))
		}, strings.Repeat("a", 256)},
		{"symlink to /etc and a file through it", source.TarGz, func(t testing.TB) []byte {
			return tarGz(t, mod, link("etc", tar.TypeSymlink, "/etc"), file("etc/passwd-slipway", "root::0:0::/:/bin/sh\n"))
		}, "etc"},
		{"symlink and a file of the same name", source.TarGz, func(t testing.TB) []byte {
			return tarGz(t, mod, link("x", tar.TypeSymlink, "../outside"), file("x", "written through the link"))
		}, "x"},
		{"hard link", source.TarGz, func(t testing.TB) []byte {
			return tarGz(t, mod, link("passwd", tar.TypeLink, "/etc/passwd"))
		}, "passwd"},
		{"character device", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, ent{name: "null", typ: tar.TypeChar}) }, "null"},
		{"block device", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, ent{name: "sda", typ: tar.TypeBlock}) }, "sda"},
		{"fifo", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, ent{name: "fifo", typ: tar.TypeFifo}) }, "fifo"},
		{"old GNU sparse file", source.TarGz, func(t testing.TB) []byte {
			return gz(t, rawTar(rawEntry{"go.mod", '0', []byte(goMod)}, rawEntry{"old", 'S', nil}))
		}, "old"},
		{"PAX sparse file", source.TarGz, func(t testing.TB) []byte {
			return gz(t, rawTar(
				rawEntry{"go.mod", '0', []byte(goMod)},
				rawEntry{"PaxHeaders/big", 'x', pax("GNU.sparse.major", "1", "GNU.sparse.minor", "0", "GNU.sparse.name", "big", "GNU.sparse.realsize", "1073741824")},
				rawEntry{"GNUSparseFile.0/big", '0', append([]byte("1\n0\n0\n"), make([]byte, 506)...)},
			))
		}, "big"},
		{"unknown type", source.TarGz, func(t testing.TB) []byte {
			return gz(t, rawTar(rawEntry{"go.mod", '0', []byte(goMod)}, rawEntry{"volume", 'V', nil}))
		}, "volume"},
		{"names differing in case", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("A.go", "a"), file("a.go", "a")) }, "a.go"},
		{"Kelvin sign", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("\u212a.go", "a"), file("k.go", "a")) }, "k.go"},
		{"directories differing in case", source.TarGz, func(t testing.TB) []byte {
			return tarGz(t, mod, file("Dir/x.go", "a"), file("dir/y.go", "a"))
		}, "dir/y.go"},
		{"same file twice", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("x.go", "a"), file("x.go", "b")) }, "x.go"},
		{"same file with and without ./", source.TarGz, func(t testing.TB) []byte {
			return tarGz(t, mod, file("./x.go", "a"), file("x.go", "b"))
		}, "x.go"},
		{"same directory twice", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, dir("d/"), dir("d/")) }, "d/"},
		{"file below a file", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("a", "a"), file("a/b", "b")) }, "a/b"},
		{"file where a directory is", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("a/b", "b"), file("a", "a")) }, "a"},
		{"directory where a file is", source.TarGz, func(t testing.TB) []byte { return tarGz(t, mod, file("a", "a"), dir("a/")) }, "a/"},
		{"2 GiB of zeros in 2 MiB", source.TarGz, func(t testing.TB) []byte { return tarBomb(t, 2048, false) }, "zeros"},
		{"2 GiB of zeros after the end of the tar", source.TarGz, func(t testing.TB) []byte { return tarBomb(t, 2048, true) }, ""},
		{"100 000 entries", source.TarGz, func(testing.TB) []byte { return manyEntriesTarGz() }, "e049999"},
		{"not gzip", source.TarGz, func(t testing.TB) []byte { return []byte("just some text, not an archive\n") }, ""},
		{"gzip but not tar", source.TarGz, func(t testing.TB) []byte { return gz(t, bytes.Repeat([]byte("not a tar "), 100)) }, ""},
		{"a zip as tar.gz", source.TarGz, func(t testing.TB) []byte { return zipOf(t, mod) }, ""},
		{"truncated", source.TarGz, func(t testing.TB) []byte {
			b := tarGz(t, mod, file("main.go", strings.Repeat("package main // some text\n", 4000)))
			return b[:len(b)/2]
		}, anyEntry},
		{"bad gzip checksum", source.TarGz, func(t testing.TB) []byte {
			b := tarGz(t, mod)
			b[len(b)-8] ^= 0xff
			return b
		}, ""},
		{"no go.mod", source.TarGz, func(t testing.TB) []byte { return tarGz(t, file("main.go", "package main\n")) }, ""},
		{"go.mod only nested", source.TarGz, func(t testing.TB) []byte { return tarGz(t, file("a/b/go.mod", goMod)) }, ""},
		{"two top-level directories with go.mod", source.TarGz, func(t testing.TB) []byte {
			return tarGz(t, file("a/go.mod", goMod), file("b/go.mod", goMod))
		}, ""},
		{"wrapping directory and a top-level file", source.TarGz, func(t testing.TB) []byte {
			return tarGz(t, file("README", "hi"), file("m/go.mod", goMod))
		}, ""},
		{"go.mod is a directory", source.TarGz, func(t testing.TB) []byte { return tarGz(t, dir("go.mod/"), file("go.mod/x", "x")) }, ""},
		{"only the root entry", source.TarGz, func(t testing.TB) []byte { return tarGz(t, dir("./")) }, ""},
		{"go.mod over 1 MiB", source.TarGz, func(t testing.TB) []byte {
			return tarGz(t, file("go.mod", goMod+strings.Repeat("// padding\n", 100_000)))
		}, "go.mod"},

		{"zip dot dot", source.Zip, func(t testing.TB) []byte { return zipOf(t, mod, file("../x", "escaped")) }, "../x"},
		{"zip NUL in a name", source.Zip, func(t testing.TB) []byte { return zipOf(t, mod, file("a\x00b.go", "x")) }, "a\x00b.go"},
		{"zip name not UTF-8", source.Zip, func(t testing.TB) []byte { return zipOf(t, mod, file("\xff.go", "x")) }, "\xff.go"},
		{"zip symlink", source.Zip, func(t testing.TB) []byte { return zipOf(t, mod, link("link", tar.TypeSymlink, "/etc")) }, "link"},
		{"zip device", source.Zip, func(t testing.TB) []byte { return zipOf(t, mod, ent{name: "null", typ: tar.TypeChar}) }, "null"},
		{"zip fifo", source.Zip, func(t testing.TB) []byte { return zipOf(t, mod, ent{name: "fifo", typ: tar.TypeFifo}) }, "fifo"},
		{"zip names differing in case", source.Zip, func(t testing.TB) []byte { return zipOf(t, mod, file("A.go", "a"), file("a.go", "a")) }, "a.go"},
		{"zip bomb", source.Zip, func(t testing.TB) []byte { return zipBomb(t, 2048) }, "zeros"},
		{"zip 100 000 entries", source.Zip, func(t testing.TB) []byte { return zipOf(t, manyEntries(100_000)...) }, "e049999"},
		{"zip overlapping entries", source.Zip, zipOverlap, "b.go"},
		{"zip local name differs", source.Zip, func(t testing.TB) []byte {
			b := zipOf(t, mod, file("main.go", "package main\n"))
			i := bytes.Index(b, []byte("main.go")) // the local header comes first
			b[i+6] = 'x'
			return b
		}, "main.go"},
		{"zip encrypted", source.Zip, func(t testing.TB) []byte {
			b := zipOf(t, mod, file("main.go", "package main\n"))
			rec := centralRecord(t, b, "main.go")
			b[rec+8] |= 1
			return b
		}, "main.go"},
		{"zip bad checksum", source.Zip, func(t testing.TB) []byte {
			b := zipOf(t, mod, file("main.go", "package main\n"))
			rec := centralRecord(t, b, "main.go")
			b[rec+16] ^= 0xff
			return b
		}, "main.go"},
		{"zip truncated", source.Zip, func(t testing.TB) []byte {
			b := zipOf(t, mod, file("main.go", "package main\n"))
			return b[:len(b)-30]
		}, ""},
		{"not zip", source.Zip, func(t testing.TB) []byte { return tarGz(t, mod) }, ""},
		{"zip no go.mod", source.Zip, func(t testing.TB) []byte { return zipOf(t, file("main.go", "package main\n")) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // 100 000 entries take seconds on a slow disk
			checkRejected(t, tc.archive(t), tc.format, source.DefaultLimits(), tc.entry)
		})
	}
}

// centralRecord returns the offset of name's record in the zip's central directory.
func centralRecord(t testing.TB, b []byte, name string) int {
	t.Helper()
	for i := 0; i+46 <= len(b); i++ {
		if binary.LittleEndian.Uint32(b[i:]) != 0x02014b50 {
			continue
		}
		n := int(binary.LittleEndian.Uint16(b[i+28:]))
		if string(b[i+46:i+46+n]) == name {
			return i
		}
	}
	t.Fatalf("no central directory record for %q", name)
	return 0
}

// zipOverlap returns a zip whose entry b.go lies inside the data of a.go: a.go's stored
// content is a complete local header and data for b.go, and b.go's central directory
// record points there.
func zipOverlap(t testing.TB) []byte {
	inner := zipOf(t, file("b.go", "package b\n"))
	zr, err := zip.NewReader(bytes.NewReader(inner), int64(len(inner)))
	if err != nil {
		t.Fatal(err)
	}
	innerB := zr.File[0]
	raw, err := innerB.OpenRaw()
	if err != nil {
		t.Fatal(err)
	}
	var rawB bytes.Buffer
	rawB.ReadFrom(raw)

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("go.mod")
	w.Write([]byte(goMod))
	w, _ = zw.CreateHeader(&zip.FileHeader{Name: "a.go", Method: zip.Store})
	w.Write(inner[:centralRecord(t, inner, "b.go")])
	w, _ = zw.CreateRaw(&innerB.FileHeader)
	w.Write(rawB.Bytes())
	zw.Close()
	b := buf.Bytes()

	zr, err = zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	aData, err := zr.File[1].DataOffset()
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(b[centralRecord(t, b, "b.go")+42:], uint32(aData))
	return b
}

func TestRejectsOverLimits(t *testing.T) {
	mod := file("go.mod", goMod)
	with := func(change func(*source.Limits)) source.Limits {
		lim := source.DefaultLimits()
		change(&lim)
		return lim
	}
	zeros := strings.Repeat("\x00", 4<<20)
	for _, tc := range []struct {
		name    string
		lim     source.Limits
		archive []byte
		entry   string
	}{
		{"MaxCompressed", with(func(l *source.Limits) { l.MaxCompressed = 100 }), tarGz(t, mod, file("a", strings.Repeat("x", 1000))), ""},
		{"MaxUncompressed", with(func(l *source.Limits) { l.MaxUncompressed = 1000 }), tarGz(t, mod, file("big", strings.Repeat("x", 2000))), "big"},
		{"MaxEntries counts implied directories", with(func(l *source.Limits) { l.MaxEntries = 3 }), tarGz(t, mod, file("a/b/c.go", "c")), "a/b/c.go"},
		{"MaxPathLen", with(func(l *source.Limits) { l.MaxPathLen = 10 }), tarGz(t, mod, file("abcdefghijk.go", "x")), "abcdefghijk.go"},
		{"MaxRatio", with(func(l *source.Limits) { l.MaxRatio = 100 }), tarGz(t, mod, file("zeros", zeros)), "zeros"},
		{"zip MaxUncompressed", with(func(l *source.Limits) { l.MaxUncompressed = 1000 }), zipOf(t, mod, file("big", strings.Repeat("x", 2000))), "big"},
		{"zip MaxEntries", with(func(l *source.Limits) { l.MaxEntries = 2 }), zipOf(t, mod, file("a", ""), file("b", "")), "b"},
		{"zip MaxPathLen", with(func(l *source.Limits) { l.MaxPathLen = 10 }), zipOf(t, mod, file("abcdefghijk.go", "x")), "abcdefghijk.go"},
		{"zip MaxRatio", with(func(l *source.Limits) { l.MaxRatio = 100 }), zipOf(t, mod, file("zeros", zeros)), "zeros"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := source.TarGz
			if strings.HasPrefix(tc.name, "zip") {
				f = source.Zip
			}
			checkRejected(t, tc.archive, f, tc.lim, tc.entry)
		})
	}
	t.Run("MaxRatio above what gzip reaches", func(t *testing.T) {
		lim := with(func(l *source.Limits) { l.MaxRatio = 2000 })
		if _, err := source.Inspect(context.Background(), writeTemp(t, tarGz(t, mod, file("zeros", zeros))), source.TarGz, lim); err != nil {
			t.Errorf("Inspect(4 MiB of zeros, MaxRatio 2000) = %v, want nil", err)
		}
	})
}

func TestError(t *testing.T) {
	err := error(&source.Error{Entry: "../x", Reason: "path leaves the module root"})
	if got, want := err.Error(), `entry "../x": path leaves the module root`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&source.Error{Reason: "the archive is empty"}).Error(), "the archive is empty"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, source.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false, want true", err)
	}
}

func TestInspectEmptyFile(t *testing.T) {
	for _, f := range []source.Format{source.TarGz, source.Zip} {
		checkRejected(t, nil, f, source.DefaultLimits(), "")
	}
}
