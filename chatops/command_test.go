package chatops

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		text string
		want Command
		err  string // in the *UsageError, "" when it parses
	}{
		{"", Command{Verb: VerbHelp}, ""},
		{"  help ", Command{Verb: VerbHelp}, ""},
		{"status hello", Command{Verb: VerbStatus, App: "hello"}, ""},
		{"STATUS hello", Command{Verb: VerbStatus, App: "hello"}, ""},
		{"releases hello", Command{Verb: VerbReleases, App: "hello"}, ""},
		{"promote hello prod 1.4.2 fixes the login page", Command{Verb: VerbPromote, App: "hello", Channel: "prod", Version: "1.4.2", Reason: "fixes the login page"}, ""},
		{"promote hello prod --from staging tested", Command{Verb: VerbPromote, App: "hello", Channel: "prod", From: "staging", Reason: "tested"}, ""},
		{"rollback hello prod  broken   health check", Command{Verb: VerbRollback, App: "hello", Channel: "prod", Reason: "broken health check"}, ""},
		{"rollback hello prod --to 1.3.0 broken", Command{Verb: VerbRollback, App: "hello", Channel: "prod", Version: "1.3.0", Reason: "broken"}, ""},
		{"lock hello prod freeze", Command{Verb: VerbLock, App: "hello", Channel: "prod", Reason: "freeze"}, ""},
		{"unlock hello prod thaw", Command{Verb: VerbUnlock, App: "hello", Channel: "prod", Reason: "thaw"}, ""},
		{"diff hello staging prod", Command{Verb: VerbDiff, App: "hello", Channel: "staging", Other: "prod"}, ""},
		{"approve hello prod 1.4.2", Command{Verb: VerbApprove, App: "hello", Channel: "prod", Version: "1.4.2"}, ""},
		{"approve hello prod 1.4.2 canary is clean", Command{Verb: VerbApprove, App: "hello", Channel: "prod", Version: "1.4.2", Reason: "canary is clean"}, ""},
		{"promote hello prod --override 1.4.2 incident 42", Command{Verb: VerbPromote, App: "hello", Channel: "prod", Version: "1.4.2", Reason: "incident 42", Override: true}, ""},
		{"approve hello prod", Command{}, "approve needs an app, a channel and a version"},
		{"promote hello prod --override", Command{}, "needs a version or --from CH after --override"},
		{"deploy hello", Command{}, `there is no command "deploy"`},
		{"status", Command{}, "status takes 1 arguments, not 0"},
		{"status hello extra", Command{}, "status takes 1 arguments, not 2"},
		{"status Hello_World", Command{}, "not a DNS label"},
		{"promote hello prod 1.4.2", Command{}, "say why"},
		{"promote hello prod", Command{}, "needs an app, a channel, and a version"},
		{"promote hello prod --from", Command{}, "--from needs the channel"},
		{"promote hello prod --from Bad! why", Command{}, "not a DNS label"},
		{"promote hello prod --version 1 why", Command{}, "--version is not a version or --from"},
		{"rollback hello prod --to", Command{}, "--to needs the version"},
		{"rollback hello prod", Command{}, "say why"},
		{"lock hello", Command{}, "needs an app and a channel"},
		{"diff hello prod", Command{}, "diff takes 3 arguments, not 2"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			got, err := Parse(tc.text)
			if tc.err != "" {
				var u *UsageError
				if !errors.As(err, &u) || !strings.Contains(u.Error(), tc.err) {
					t.Fatalf("Parse(%q) = %+v, %v, want a usage error with %q", tc.text, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Parse(%q) = %+v, %v, want %+v", tc.text, got, err, tc.want)
			}
		})
	}
}

func TestCommandScopeAndMove(t *testing.T) {
	for _, tc := range []struct {
		text, scope, action string
	}{
		{"status hello", "read", ""},
		{"diff hello a b", "read", ""},
		{"approve hello prod 1.0.0", "approve", ""},
		{"promote hello prod 1.0.0 go", "promote", "promote"},
		{"rollback hello prod go", "promote", "rollback"},
		{"lock hello prod go", "promote", "lock"},
		{"unlock hello prod go", "promote", "unlock"},
	} {
		c, err := Parse(tc.text)
		if err != nil {
			t.Fatal(err)
		}
		if c.Scope() != tc.scope || c.Moves() != (tc.action != "") {
			t.Errorf("Parse(%q): Scope() = %s, Moves() = %v, want %s, %v", tc.text, c.Scope(), c.Moves(), tc.scope, tc.action != "")
		}
		if m := c.Move(); tc.action != "" && (m.Action != tc.action || m.Reason != "go") {
			t.Errorf("Parse(%q).Move() = %+v, want action %s with the reason", tc.text, m, tc.action)
		}
	}
}

func TestHelpAndUsageText(t *testing.T) {
	help := HelpText("/deploy")
	for _, want := range []string{"`/deploy status APP`", "`/deploy promote APP CH [--override] VERSION|--from CH REASON...`", "`/deploy diff APP CH1 CH2`", "promote:CH"} {
		if !strings.Contains(help, want) {
			t.Errorf("HelpText lacks %q:\n%s", want, help)
		}
	}
	_, err := Parse("promote hello prod 1.0.0")
	if got := UsageText("/deploy", err); !strings.Contains(got, "Usage: `/deploy promote APP CH [--override] VERSION|--from CH REASON...`") {
		t.Errorf("UsageText = %q, want the usage of promote under /deploy", got)
	}
	_, err = Parse("frobnicate")
	if got := UsageText("/deploy", err); !strings.Contains(got, "`/deploy help` lists the commands") {
		t.Errorf("UsageText = %q, want a pointer to help", got)
	}
}

// FuzzParse feeds Parse what any chat user may type: it never panics, and what it accepts
// names valid apps and channels and gives a move its reason.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "status hello", "promote hello prod --from staging ok", "rollback a b --to 1 x", "diff a b c", "lock a b \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse(text)
		if err != nil {
			return
		}
		if c.Moves() && (c.Reason == "" || c.App == "" || c.Channel == "") {
			t.Errorf("Parse(%q) = %+v: a move without its app, channel or reason", text, c)
		}
	})
}
