package gocache

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/store"
)

// tinyMain imports nothing, so a cold build compiles only the runtime and what it needs.
const tinyMain = "package main\n\nvar version = \"dev\"\n\nfunc main() { println(version) }\n"

// goBuild compiles the tiny module for linux/amd64 with the go command's cache kept by
// s, through the real go command in its sandbox, and returns the compile's output.
func goBuild(t *testing.T, s *Server, app string) string {
	t.Helper()
	out, err := compileTiny(t, newHotModule(t).dir, "", s.Command(app))
	if err != nil {
		t.Fatalf("go build with the cache program: %v\n%s", err, out)
	}
	return out
}

// compileTiny compiles the module in src for linux/amd64 through the real go command in
// its sandbox, with GOCACHE goCache (a directory of its own when empty) and GOCACHEPROG
// prog, and returns the compile's output.
func compileTiny(t *testing.T, src, goCache, prog string) (string, error) {
	t.Helper()
	tc, base := buildertest.Toolchain(t)
	work := t.TempDir()
	if goCache == "" {
		goCache = filepath.Join(work, "gocache")
	}
	p, _ := gobuild.ParsePlatform("linux/amd64")
	env := gobuild.Env{Cache: goCache, ModCache: base.ModCache, Proxy: "off", SumDB: "off", CacheProg: prog}
	var out strings.Builder
	err := tc.Compile(context.Background(), gobuild.CompileSpec{
		Dir: src, Main: ".", Platform: p, Out: filepath.Join(work, "out", "tiny"), Temp: filepath.Join(work, "tmp"),
		Timeout: 5 * time.Minute,
	}, env, &out)
	return out.String(), err
}

type counts struct{ local, remote, miss, puts, refused int64 }

func countsOf(s *Server) counts {
	st := s.Stats()
	return counts{st.LocalHits.Load(), st.RemoteHits.Load(), st.Misses.Load(), st.Puts.Load(), st.RemoteRefused.Load()}
}

// TestGoBuildSharedAcrossWorkers builds a module with the real go command on one worker,
// then on a fresh worker (an empty local tier) that shares the blob store, which must
// build it from the store's entries alone; then on a third after one output in the store
// was tampered with, which must refuse it, build that action again, and succeed.
func TestGoBuildSharedAcrossWorkers(t *testing.T) {
	stores(t, func(t *testing.T, newBlobs func(t *testing.T) store.Blobs) {
		blobs := newBlobs(t)
		first := newServer(t, blobs)
		goBuild(t, first, "tiny")
		cold := countsOf(first)
		if cold.miss == 0 || cold.puts == 0 || cold.remote != 0 {
			t.Fatalf("cold build: %+v; want misses and puts, no remote hits", cold)
		}
		flush(t, first)

		// The same worker again: local hits only.
		// The go command always links (it caches no binary of go build), so each build
		// misses the link's entry and puts its output text: linkOnly is that much.
		goBuild(t, first, "tiny")
		warm := countsOf(first)
		linkOnly := counts{miss: warm.miss - cold.miss, puts: warm.puts - cold.puts}
		if warm.local == 0 || linkOnly.miss > 1 || linkOnly.puts > 1 {
			t.Errorf("warm build on the same worker: %+v after %+v; want local hits, no misses or puts but the link's", warm, cold)
		}

		fresh := newServer(t, blobs)
		goBuild(t, fresh, "tiny")
		got := countsOf(fresh)
		t.Logf("cold %+v, fresh worker %+v", cold, got)
		if got.miss != linkOnly.miss || got.puts != linkOnly.puts || got.remote != warm.local {
			t.Errorf("fresh worker with the shared tier warm: %+v; want %d remote hits (the warm build's local ones), no misses or puts but the link's %+v: nothing compiled",
				got, warm.local, linkOnly)
		}
		if fresh.Stats().TimeSavedMS.Load() <= 0 {
			t.Error("TimeSavedMS = 0 after remote hits of entries built here")
		}

		// Tamper with the largest output in the store (the runtime package's).
		var biggest store.Info
		for info, err := range blobs.List(context.Background(), store.GoCachePrefix+SharedNamespace+"/o/") {
			if err != nil {
				t.Fatal(err)
			}
			if info.Size > biggest.Size {
				biggest = info
			}
		}
		tamper(t, blobs, biggest.Key, make([]byte, biggest.Size))
		third := newServer(t, blobs)
		goBuild(t, third, "tiny")
		got = countsOf(third)
		if got.refused != 1 || got.miss == 0 || got.puts == 0 {
			t.Errorf("worker after the tampering: %+v; want 1 refused entry, rebuilt (misses and puts)", got)
		}
	})
}

// TestCacheProgEnvironment checks what the cache program is given: the compile's
// environment with GOCACHEPROG, never the server's secrets.
func TestCacheProgEnvironment(t *testing.T) {
	t.Setenv("SLIPWAY_ADMIN_TOKEN", "topsecret")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "topsecret")
	t.Setenv("AWS_ACCESS_KEY_ID", "topsecret")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dump := filepath.Join(dir, "dumps")
	os.MkdirAll(dump, 0o777)
	// The wrapper records its environment beside the compile's own files (the sandbox
	// lets it write there), then is the cache program.
	script := filepath.Join(dir, "prog")
	os.WriteFile(script, []byte("#!/bin/sh\nenv > \"$TMPDIR/cacheprog.env\"\nexec "+self+" \"$@\"\n"), 0o755)
	s := newServer(t, nil, WithProgram(script, "gocacheprog"))
	tc, base := buildertest.Toolchain(t)
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/tiny\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(tinyMain), 0o644)
	p, _ := gobuild.ParsePlatform("linux/amd64")
	tmp := filepath.Join(dir, "tmp")
	err = tc.Compile(context.Background(), gobuild.CompileSpec{
		Dir: src, Main: ".", Platform: p, Out: filepath.Join(dir, "out", "tiny"), Temp: tmp, Timeout: 5 * time.Minute,
	}, gobuild.Env{Cache: filepath.Join(dir, "gocache"), ModCache: base.ModCache, Proxy: "off", SumDB: "off",
		CacheProg: s.Command("tiny")}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(tmp, "cacheprog.env"))
	if err != nil {
		t.Fatal(err)
	}
	env := string(got)
	if strings.Contains(env, "topsecret") || strings.Contains(env, "SLIPWAY_") || strings.Contains(env, "AWS_") {
		t.Errorf("the cache program's environment carries the server's secrets:\n%s", env)
	}
	if !strings.Contains(env, "GOCACHEPROG="+s.Command("tiny")) {
		t.Errorf("the cache program's environment lacks GOCACHEPROG:\n%s", env)
	}
}
