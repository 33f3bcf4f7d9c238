package gobuild

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzLdflags holds RenderLdflags and joinLdflags to the go command's own reading of
// -ldflags: for every template RenderLdflags accepts, `go build -n` (the real toolchain)
// prints the link command it would run, and the linker must receive exactly the checked
// arguments after the go command's own, with no -o but the go command's. The seed
// corpus is trickyLdflags, each with a plain commit and a hostile one; a normal test run
// checks those (about 0.1 s a template accepted).
//
//	go test -run '^$' -fuzz FuzzLdflags -fuzztime 1m ./builder/
func FuzzLdflags(f *testing.F) {
	for _, tc := range trickyLdflags {
		f.Add(tc.tmpl, "abc")
	}
	f.Add("-X main.c={{.Commit}}", "x -X main.admin=true")
	f.Add("-X 'main.c={{.Commit}}'", "x' -o /tmp/y '")
	f.Add("-X main.c={{.Commit}}", "a\u00a0")
	goBin, err := exec.LookPath("go")
	if err != nil {
		f.Skip("no go command in PATH")
	}
	mod := f.TempDir()
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/fuzz\n\ngo 1.22\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "main.go"), []byte("package main\n\nvar version = \"dev\"\n\nfunc main() { println(version) }\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	cache, err := exec.Command(goBin, "env", "GOCACHE").Output()
	if err != nil {
		f.Fatal(err)
	}
	home := f.TempDir()
	env := []string{
		"PATH=" + filepath.Dir(goBin) + ":/usr/bin:/bin", "HOME=" + home, "GOENV=off",
		"GOCACHE=" + strings.TrimSpace(string(cache)), "GOTOOLCHAIN=local", "GOWORK=off",
		"GOFLAGS=-mod=mod", "GOPROXY=off", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64",
	}
	out := filepath.Join(home, "out")

	f.Fuzz(func(t *testing.T, tmpl, commit string) {
		args, err := RenderLdflags(tmpl, LdflagsVars{Version: "1.2.3", Commit: commit, Date: "2026-01-01T00:00:00Z", App: "hello"})
		if err != nil {
			if !errors.Is(err, ErrLdflags) {
				t.Fatalf("RenderLdflags(%.200q) = %v, want ErrLdflags", tmpl, err)
			}
			return
		}
		if err := checkLinkerArgs(args); err != nil {
			t.Fatalf("RenderLdflags(%.200q) = %.200q, which checkLinkerArgs refuses: %v", tmpl, args, err)
		}
		want := append([]string{"-s", "-w", "-buildid="}, args...)
		joined, err := joinLdflags(want)
		if err != nil {
			t.Fatalf("joinLdflags(%.200q) = %v", want, err)
		}
		if got, err := splitQuoted(strings.TrimSpace(joined)); err != nil || !slices.Equal(got, want) {
			t.Fatalf("splitQuoted(joinLdflags(%.200q)) = %.200q, %v", want, got, err)
		}

		cmd := exec.Command(goBin, "build", "-n", "-trimpath", "-buildvcs=false", "-ldflags", joined, "-o", out, ".")
		cmd.Dir, cmd.Env = mod, env
		start := time.Now()
		printed, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("template %.200q: go build -n -ldflags %.200q: %v\n%.2000s", tmpl, joined, err, printed)
		}
		link, err := linkArgs(string(printed))
		if err != nil {
			t.Fatalf("template %.200q: %v\n%.2000s", tmpl, err, printed)
		}
		if err := checkLinkLine(link, want); err != nil {
			t.Fatalf("template %.200q, -ldflags %.200q: %.500v\nlink %.500q", tmpl, joined, err, link)
		}
		if !strings.Contains(string(printed), "\nmv $WORK/b001/exe/a.out "+out+"\n") {
			t.Fatalf("template %.200q: go build -n does not move the binary to %s:\n%.2000s", tmpl, out, printed)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Logf("go build -n took %s", d)
		}
	})
}

// linkArgs finds the link command in what `go build -n` printed and returns its
// arguments. The go command prints an argument as it is, or quoted as by strconv.Quote
// when it holds a space, a quote or anything unprintable.
func linkArgs(printed string) ([]string, error) {
	for _, line := range strings.Split(printed, "\n") {
		fields, err := unquoteFields(line)
		if err != nil {
			return nil, fmt.Errorf("reading %q: %v", line, err)
		}
		for i, f := range fields {
			if strings.HasSuffix(f, "/link") && i+1 < len(fields) && fields[i+1] == "-o" {
				return fields[i+1:], nil
			}
		}
	}
	return nil, errors.New("go build -n printed no link command")
}

func unquoteFields(line string) ([]string, error) {
	var fields []string
	for line = strings.TrimLeft(line, " "); line != ""; line = strings.TrimLeft(line, " ") {
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, err
			}
			s, _ := strconv.Unquote(q)
			fields = append(fields, s)
			line = line[len(q):]
			continue
		}
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			i = len(line)
		}
		fields = append(fields, line[:i])
		line = line[i:]
	}
	return fields, nil
}

// checkLinkLine checks the linker's arguments: the go command's own (-o, -importcfg,
// its GODEBUG default, -buildmode, -buildid), then exactly want, then -extld and the
// main package's archive; and, parsed as the linker parses them (the flag package), one
// -o, the go command's, and only the -X definitions in want.
func checkLinkLine(link, want []string) error {
	if len(link) < 8 || !slices.Equal(link[:4], []string{"-o", "$WORK/b001/exe/a.out", "-importcfg", "$WORK/b001/importcfg.link"}) {
		return errors.New("the link command does not start with the go command's -o and -importcfg")
	}
	i := slices.Index(link, "-buildmode=exe")
	if i < 0 || i+1 >= len(link) || !strings.HasPrefix(link[i+1], "-buildid=") || link[i+1] == "-buildid=" {
		return errors.New("no -buildmode=exe -buildid=<id> in the link command")
	}
	for _, a := range link[4:i] {
		if !strings.HasPrefix(a, "-X=runtime.godebugDefault=") {
			return fmt.Errorf("the go command passed %q before -buildmode", a)
		}
	}
	user, tail := link[i+2:len(link)-2], link[len(link)-2:]
	if !slices.Equal(user, want) {
		return fmt.Errorf("the linker receives %q, want %q", user, want)
	}
	if !slices.Equal(tail, []string{"-extld=gcc", "$WORK/b001/_pkg_.a"}) {
		return fmt.Errorf("the link command ends with %q", tail)
	}
	for _, a := range link {
		if strings.HasPrefix(a, "@") {
			return fmt.Errorf("the linker would read %q as a file of arguments", a)
		}
	}

	fs := flag.NewFlagSet("link", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := fs.String("o", "", "")
	fs.String("importcfg", "", "")
	fs.String("buildmode", "", "")
	fs.String("buildid", "", "")
	extld := fs.String("extld", "", "")
	fs.Bool("s", false, "")
	fs.Bool("w", false, "")
	var defines []string
	fs.Func("X", "", func(s string) error { defines = append(defines, s); return nil })
	if err := fs.Parse(link); err != nil {
		return fmt.Errorf("the linker would not parse its arguments: %v", err)
	}
	if *o != "$WORK/b001/exe/a.out" || *extld != "gcc" || fs.NArg() != 1 {
		return fmt.Errorf("the linker would write %q with -extld %q and %d archives", *o, *extld, fs.NArg())
	}
	var wantDefines []string
	for i := 0; i < len(want); i++ {
		switch {
		case want[i] == "-X" || want[i] == "--X":
			i++
			wantDefines = append(wantDefines, want[i])
		case strings.HasPrefix(want[i], "-X="):
			wantDefines = append(wantDefines, strings.TrimPrefix(want[i], "-X="))
		}
	}
	if got := slices.DeleteFunc(defines, func(d string) bool { return strings.HasPrefix(d, "runtime.godebugDefault=") }); !slices.Equal(got, wantDefines) {
		return fmt.Errorf("the linker would define %q, want %q", got, wantDefines)
	}
	return nil
}
