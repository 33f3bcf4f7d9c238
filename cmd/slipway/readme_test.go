package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/store/storetest"
)

// quickstart is the README's quick start: the block that starts the server, and the
// blocks a user then types into another shell, in order.
type quickstart struct {
	server string
	steps  []string
}

// parseQuickstart finds the fenced sh blocks between <!-- quickstart and
// <!-- /quickstart -->; the one after <!-- quickstart: server --> starts the server.
func parseQuickstart(readme string) (quickstart, error) {
	var qs quickstart
	_, rest, ok := strings.Cut(readme, "<!-- quickstart")
	section, _, closed := strings.Cut(rest, "<!-- /quickstart -->")
	if !ok || !closed {
		return qs, errors.New("README.md has no <!-- quickstart ... --> to <!-- /quickstart --> section")
	}
	var block []string
	inBlock, isServer := false, false
	for line := range strings.Lines(section) {
		line = strings.TrimRight(line, "\n")
		switch {
		case !inBlock && line == "<!-- quickstart: server -->":
			isServer = true
		case !inBlock && line == "```sh":
			inBlock, block = true, nil
		case inBlock && line == "```":
			inBlock = false
			text := strings.Join(block, "\n") + "\n"
			if isServer {
				if qs.server != "" || len(qs.steps) > 0 {
					return qs, errors.New("the quick start's server block must be its first and only one")
				}
				qs.server, isServer = text, false
			} else {
				qs.steps = append(qs.steps, text)
			}
		case inBlock:
			block = append(block, line)
		}
	}
	if qs.server == "" || len(qs.steps) == 0 {
		return qs, fmt.Errorf("the quick start has %d server blocks and %d steps, want one and some", len(qs.server), len(qs.steps))
	}
	return qs, nil
}

// copyRepo copies the repository as git sees it, tracked files and untracked ones it
// does not ignore (so no ./data and no built binary), to a new directory: a fresh clone
// of the working tree.
func copyRepo(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("listing the repository's files with git: %v", err)
	}
	dst := t.TempDir()
	for name := range strings.SplitSeq(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the working tree, or not a file
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// quickstartEnv is a developer's shell for the quick start: this process's environment
// without slipway's settings, the test's binary first on PATH (and GOBIN there, so that
// the README's go install replaces it), the server on a free port instead of 8080, and
// the test machine's Go caches for builds. When a Redis answers on 127.0.0.1:6379, the
// server gets the private one all the same (SLIPWAY_REDIS_URL=embedded), which is what
// the README's reader without a Redis gets, and leaves that Redis alone.
func quickstartEnv(t *testing.T, addr string) []string {
	t.Helper()
	_, goEnv := buildertest.Toolchain(t)
	bin := t.TempDir()
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "slipway"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLIPWAY_") && !strings.HasPrefix(kv, "GOBIN=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "GOBIN="+bin,
		"SLIPWAY_ADDR="+addr, "SLIPWAY_URL=http://"+addr,
		"SLIPWAY_GOCACHE="+goEnv.Cache, "SLIPWAY_BUILD_CACHE=local", "SLIPWAY_GOMODCACHE="+goEnv.ModCache)
	if c, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second); err == nil {
		c.Close()
		env = append(env, "SLIPWAY_REDIS_URL=embedded")
	}
	return env
}

// TestReadmeQuickstart runs the README's quick start literally against a real server:
// the server block in the background until it logs that it serves, then every other
// block in order in one bash (set -euo pipefail), in a fresh copy of the repository. Only
// the address changes: 127.0.0.1:8080 becomes a free port, for the server
// (SLIPWAY_ADDR), the client (SLIPWAY_URL) and the commands that name it.
func TestReadmeQuickstart(t *testing.T) {
	storetest.NeedRedisServer(t)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	qs, err := parseQuickstart(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	repo := copyRepo(t, filepath.Join("..", ".."))
	addr := storetest.FreeAddr(t)
	env := quickstartEnv(t, addr)
	local := func(s string) string { return strings.ReplaceAll(s, "127.0.0.1:8080", addr) }

	stop, lines := startBash(t, repo, env, local(qs.server))
	waitLine(t, lines, `"msg":"slipway serving"`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euxo pipefail\n"+local(strings.Join(qs.steps, "")))
	cmd.Dir, cmd.Env = repo, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the quick start failed: %v\n%s", err, out.String())
	}
	t.Logf("the quick start:\n%s", out.String())
	for _, want := range []string{
		"created app hello from slipway.yaml",
		"version v1.1.0 is taken as 1.1.0",
		"hello/prod: 1.1.0 → 1.0.0",
		`"org.opencontainers.image.version":"1.0.0"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the quick start's output lacks %q", want)
		}
	}
	if got := field(out.String(), "release"); got != "1.0.0" {
		t.Errorf("the first build's release = %q, want 1.0.0", got)
	}
	// go run exits 1 after an interrupt whatever the program's status, so the server's
	// last log line tells how it stopped.
	stopErr := stop()
	var tail []string
	for l := range lines {
		tail = append(tail, l)
	}
	if len(tail) == 0 || !strings.Contains(tail[len(tail)-1], `"msg":"stopped"`) {
		t.Errorf("the server did not stop cleanly on Ctrl-C (%v); it said last:\n%s", stopErr, strings.Join(tail[max(0, len(tail)-20):], "\n"))
	}
	checkRedisGone(t, filepath.Join(repo, "data", "redis"))
}

// checkRedisGone checks that no private redis-server runs in dir any more: the lock it
// holds with serve is free.
func checkRedisGone(t *testing.T, dir string) {
	t.Helper()
	lock, err := lockRedisDir(dir)
	if err != nil {
		t.Errorf("the private redis-server of %s runs after serve stopped: %v", dir, err)
		return
	}
	lock.Close()
}

// startBash runs script with bash in dir, in a process group of its own, and returns its
// stderr a line at a time and a function that stops the group with SIGINT, as Ctrl-C in
// a terminal does, and waits for it; it fails only when the group does not end.
func startBash(t *testing.T, dir string, env []string, script string) (func() error, <-chan string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = io.Discard, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); done <- err }()
	stopped := false
	stop := func() error {
		stopped = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-done:
			return nil
		case <-time.After(time.Minute):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return errors.New("still running a minute after SIGINT")
		}
	}
	t.Cleanup(func() {
		if !stopped {
			_ = stop()
		}
	})
	return stop, scanLines(pr)
}
