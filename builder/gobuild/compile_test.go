package gobuild

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCompileEnvCarriesNoSecrets(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "topsecret")
	t.Setenv("SLIPWAY_ADMIN_TOKEN", "topsecret")
	tc, env := testToolchain(t)
	dir := t.TempDir()
	dump := filepath.Join(dir, "env")
	// A main package whose build fails unless its environment is clean would need cgo;
	// instead, check what the compiler is given with a go command that records it.
	fake := filepath.Join(dir, "go")
	script := "#!/bin/sh\nenv > " + dump + "\nexec " + tc.Path() + " \"$@\"\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapped, err := LoadToolchain(context.Background(), fake)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/e\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(printVersion), 0o644)
	p, _ := ParsePlatform("linux/amd64")
	err = wrapped.Compile(context.Background(), CompileSpec{
		Dir: src, Main: ".", Platform: p, Out: filepath.Join(dir, "out"), Temp: t.TempDir(), Timeout: time.Minute,
	}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "topsecret") || strings.Contains(string(got), "SLIPWAY_") || strings.Contains(string(got), "AWS_") {
		t.Errorf("the compiler's environment carries the server's secrets:\n%s", got)
	}
	for _, want := range []string{"GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off", "GOOS=linux", "GOARCH=amd64"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the compiler's environment lacks %s:\n%s", want, got)
		}
	}
}
