package main

import "testing"

// TestCLIUnknownCommand checks that a mistyped command or subcommand gets one line with
// the closest name, not the whole usage, and exit 2.
func TestCLIUnknownCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"biuld"}, `slipway: unknown command "biuld"; did you mean "build"? (slipway help lists the commands)`},
		{[]string{"wohami"}, `slipway: unknown command "wohami"; did you mean "whoami"? (slipway help lists the commands)`},
		{[]string{"frobnicate", "x"}, `slipway: unknown command "frobnicate" (slipway help lists the commands)`},
		{[]string{"apps", "creat", "x"}, `slipway: unknown apps subcommand "creat"; did you mean "create"? (apps takes list, create, show, update or delete)`},
		{[]string{"webhooks", "remove"}, `slipway: unknown webhooks subcommand "remove" (webhooks takes list, create, delete or rotate)`},
		{[]string{"token"}, `slipway: token needs a subcommand: create, list or revoke (see slipway help)`},
		{[]string{"completion", "tcsh"}, `slipway: no completion script for shell "tcsh" (completion takes bash, zsh or fish)`},
	} {
		r := runCLI(t, nil, tc.args...)
		if r.code != 2 || r.stderr != tc.want+"\n" || r.stdout != "" {
			t.Errorf("slipway %q: %s\nwant exit 2 and the one line %q", tc.args, r, tc.want)
		}
	}
}

func TestCLIDidYouMean(t *testing.T) {
	names := commandNames()
	for _, tc := range []struct{ word, want string }{
		{"biuld", "build"},
		{"bulid", "build"},
		{"relases", "releases"},
		{"histroy", "history"},
		{"serv", "serve"},
		{"x", ""},
		{"zzzzzz", ""},
		{"dowload", "download"},
		{"cancle", "cancel"},
		{"evnets", "events"},
	} {
		got := didYouMean(tc.word, names)
		if want := `; did you mean "` + tc.want + `"?`; (tc.want == "" && got != "") || (tc.want != "" && got != want) {
			t.Errorf("didYouMean(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}
