package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCLICompletionKnowsEveryCommand checks that every client command gives its flags to
// the completion scripts, and that the scripts name every command.
func TestCLICompletionKnowsEveryCommand(t *testing.T) {
	for key, cmd := range clientCommands {
		flags := flagsOf(cmd)
		if len(flags) < 4 { // --url, --token, --json and --help at least
			t.Errorf("completion knows %d flags of %s: %v", len(flags), key, flags)
		}
	}
	cs := completions()
	var keys []string
	for _, c := range cs {
		keys = append(keys, c.key)
	}
	for _, want := range []string{"", "build", "apps", "apps create", "download", "events", "webhooks rotate", "token create", "serve", "completion"} {
		if !slices.Contains(keys, want) {
			t.Errorf("completions lack %q", want)
		}
	}
}

// TestCLICompletion checks the scripts' syntax with each shell that is installed (bash
// always), and completes command lines with the bash script as bash itself would.
func TestCLICompletion(t *testing.T) {
	dir := t.TempDir()
	for _, sh := range []struct{ name, check string }{{"bash", "-n"}, {"zsh", "-n"}, {"fish", "--no-execute"}} {
		r := runCLI(t, nil, "completion", sh.name)
		if r.code != 0 || !strings.Contains(r.stdout, "slipway") {
			t.Fatalf("completion %s: %s", sh.name, r)
		}
		script := filepath.Join(dir, "slipway."+sh.name)
		if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := exec.LookPath(sh.name); err != nil {
			if sh.name == "bash" {
				t.Fatal("bash is not installed")
			}
			t.Logf("%s is not installed; its script is not checked", sh.name)
			continue
		}
		if out, err := exec.Command(sh.name, sh.check, script).CombinedOutput(); err != nil {
			t.Errorf("%s %s %s: %v\n%s", sh.name, sh.check, script, err, out)
		}
	}
	for _, tc := range []struct {
		line string // the words typed, the last one being completed
		want []string
	}{
		{"slipway bu", []string{"build", "builds"}},
		{"slipway apps cr", []string{"create"}},
		{"slipway apps create web --ma", []string{"--main"}},
		{"slipway apps --li", []string{"--limit"}},
		{"slipway webhooks ro", []string{"rotate"}},
		{"slipway download hello --pl", []string{"--platform"}},
		{"slipway token create ci --sc", []string{"--scope"}},
		{"slipway serve --redis-u", []string{"--redis-url"}},
		{"slipway completion z", []string{"zsh"}},
		{"slipway promote hello dev --", []string{"--from", "--help", "--json", "--override", "--reason", "--token", "--url", "--version"}},
	} {
		if got := bashComplete(t, filepath.Join(dir, "slipway.bash"), tc.line); !slices.Equal(got, tc.want) {
			t.Errorf("bash completes %q as %q, want %q", tc.line, got, tc.want)
		}
	}
}

// bashComplete sources the bash script in a bash subprocess and calls its completion
// function as bash does on TAB at the end of line.
func bashComplete(t *testing.T, script, line string) []string {
	t.Helper()
	words := strings.Fields(line)
	prog := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _slipway; printf '%s\n' "${COMPREPLY[@]}"`
	out, err := exec.Command("bash", append([]string{"-c", prog, "bash", script}, words...)...).Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		t.Fatalf("completing %q: %v\n%s", line, err, exitErr.Stderr)
	}
	got := strings.Fields(string(out))
	slices.Sort(got)
	return got
}

// TestCLICompletionZshFish completes command lines with the zsh and fish scripts when
// those shells are installed: zsh with compadd replaced by a function that prints what
// it is offered (zsh matches the prefix itself), fish with complete -C.
func TestCLICompletionZshFish(t *testing.T) {
	dir := t.TempDir()
	for _, sh := range []string{"zsh", "fish"} {
		if _, err := exec.LookPath(sh); err != nil {
			t.Logf("%s is not installed; its script is not tried", sh)
			continue
		}
		script := filepath.Join(dir, "slipway."+sh)
		r := runCLI(t, nil, "completion", sh)
		if err := os.WriteFile(script, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			words []string // the last one is being completed
			want  string
		}{
			{[]string{"slipway", "bu"}, "builds"},
			{[]string{"slipway", "apps", "cr"}, "create"},
			{[]string{"slipway", "apps", "create", "web", "--ma"}, "--main"},
			{[]string{"slipway", "download", "hello", "--pl"}, "--platform"},
		} {
			var cmd *exec.Cmd
			if sh == "zsh" {
				prog := `compdef() {}; compadd() { shift; print -l -- "$@" }; _files() {}; source "$1"; shift; words=("$@"); CURRENT=$#; _slipway`
				cmd = exec.Command("zsh", append([]string{"-f", "-c", prog, "zsh", script}, tc.words...)...)
			} else {
				cmd = exec.Command("fish", "--no-config", "-c", `source $argv[1]; complete -C "$argv[2]"`, script, strings.Join(tc.words, " "))
			}
			out, err := cmd.CombinedOutput()
			if err != nil || !slices.Contains(strings.Fields(string(out)), tc.want) {
				t.Errorf("%s completes %q as %q (%v), want %s among them", sh, tc.words, out, err, tc.want)
			}
		}
	}
}
