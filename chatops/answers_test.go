package chatops

import (
	"testing"

	"github.com/slipway/slipway/release"
)

func TestDiffText(t *testing.T) {
	d := release.DiffSummary{
		FromVersion: "1.0.0", ToVersion: "1.1.0", Changed: 1, Added: 1, Removed: 1,
		GoVersion: &release.Change{From: "go1.26.0", To: "go1.26.1"},
		Modules: []release.ModuleChange{
			{Kind: release.ModuleChanged, Path: "example.com/greet", From: "v1.0.0", To: "v1.1.0"},
			{Kind: release.ModuleAdded, Path: "golang.org/x/text", To: "v0.14.0"},
			{Kind: release.ModuleRemoved, Path: "golang.org/x/sync", From: "v0.6.0", FromReplace: "./sync"},
		},
		MoreModules: 2,
		Commits:     release.Change{From: "aaa", To: "bbb"},
	}
	c := Command{Verb: VerbDiff, App: "hello", Channel: "prod", Other: "staging"}
	want := "hello prod (1.0.0) → staging (1.1.0):\n" +
		"• Go go1.26.0 → go1.26.1\n" +
		"• modules: 1 changed, 1 added, 1 removed\n" +
		"  ~ example.com/greet v1.0.0 → v1.1.0\n" +
		"  + golang.org/x/text v0.14.0\n" +
		"  - golang.org/x/sync v0.6.0 => ./sync\n" +
		"  and 2 more\n" +
		"• commits aaa → bbb"
	if got := DiffText(c, d); got != want {
		t.Errorf("DiffText() =\n%s\nwant\n%s", got, want)
	}
	wantLine := "Changes from 1.0.0: modules 1 changed, 1 added, 1 removed, Go go1.26.0 → go1.26.1 " +
		"(~ example.com/greet v1.0.0 → v1.1.0; + golang.org/x/text v0.14.0; - golang.org/x/sync v0.6.0 => ./sync; and 2 more)"
	if got := DiffLine(d); got != wantLine {
		t.Errorf("DiffLine() =\n%s\nwant\n%s", got, wantLine)
	}
	same := release.DiffSummary{FromVersion: "1.0.0", ToVersion: "1.0.1", Commits: release.Change{From: "aaa", To: "aaa"}}
	if got, want := DiffText(c, same), "hello prod (1.0.0) → staging (1.0.1):\n• modules: unchanged"; got != want {
		t.Errorf("DiffText() of no change = %q, want %q", got, want)
	}
}
