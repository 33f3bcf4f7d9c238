// Package buildertest has what tests of builds need: Go modules packed as uploads, and
// the installed toolchain with the test machine's caches.
package buildertest

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/slipway/slipway/builder/gobuild"
)

// HelloMain prints the version the linker sets through -X main.version.
const HelloMain = `package main

import "fmt"

var version = "dev"

func main() { fmt.Println(version) }
`

// SlowMain is a program whose compile takes seconds (about 18 s for 150 000 statements on
// one core of the CI machine): one function of many statements. Each call returns a
// different program, so the build cache never has it.
func SlowMain(statements int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "package main\n\nimport \"fmt\"\n\nvar sink [64]int\n\nconst nonce = %q\n\nfunc main() {\n", rand.Text())
	for i := range statements {
		fmt.Fprintf(&b, "\tsink[%d] += %d * sink[%d]\n", i%64, i, (i*7)%64)
	}
	b.WriteString("\tfmt.Println(sink[0])\n}\n")
	return b.String()
}

// files returns the module's files, go.mod included, in name order.
func files(name string, fs map[string]string) ([]string, map[string]string) {
	all := map[string]string{"go.mod": "module example.com/" + name + "\n\ngo 1.22\n"}
	for k, v := range fs {
		all[k] = v
	}
	names := make([]string, 0, len(all))
	for k := range all {
		names = append(names, k)
	}
	slices.Sort(names)
	return names, all
}

// Module returns a tar.gz of the module example.com/<name> with the given files; go.mod
// is added unless given.
func Module(t testing.TB, name string, fs map[string]string) []byte {
	t.Helper()
	_, all := files(name, fs)
	return Archive(t, all)
}

// Archive returns a tar.gz of exactly the given files, in name order.
func Archive(t testing.TB, all map[string]string) []byte {
	t.Helper()
	names := make([]string, 0, len(all))
	for k := range all {
		names = append(names, k)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(all[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(all[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ModuleZip is Module as a zip archive.
func ModuleZip(t testing.TB, name string, fs map[string]string) []byte {
	t.Helper()
	names, all := files(name, fs)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(all[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var (
	once  sync.Once
	tc    *gobuild.Toolchain
	goEnv gobuild.Env
	err   error
)

// Toolchain returns the installed toolchain and a Go environment that shares the test
// machine's build and module caches (so the standard library is cross-compiled once for
// all tests) with the network off (test modules have no dependencies).
func Toolchain(t testing.TB) (*gobuild.Toolchain, gobuild.Env) {
	t.Helper()
	once.Do(func() {
		tc, err = gobuild.LoadToolchain(context.Background(), "go")
		if err != nil {
			return
		}
		var out []byte
		out, err = exec.Command("go", "env", "GOCACHE", "GOMODCACHE").Output()
		if err != nil {
			return
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		goEnv = gobuild.Env{Cache: lines[0], ModCache: lines[1], Proxy: "off", SumDB: "off"}
	})
	if err != nil {
		t.Fatal(err)
	}
	return tc, goEnv
}
