package gobuild

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestRenderLdflags(t *testing.T) {
	vars := LdflagsVars{Version: "1.2.3", Commit: "abc", Date: "2026-01-01T00:00:00Z", App: "hello"}
	for _, tc := range []struct {
		name, tmpl string
		want       []string
		ok         bool
	}{
		{"default", "-X main.version={{.Version}}", []string{"-X", "main.version=1.2.3"}, true},
		{"all fields", "-s -w -X main.version={{.Version}} -X=main.commit={{.Commit}} -X 'main.date={{.Date}}' -X \"main.app={{.App}}\"",
			[]string{"-s", "-w", "-X", "main.version=1.2.3", "-X=main.commit=abc", "-X", "main.date=2026-01-01T00:00:00Z", "-X", "main.app=hello"}, true},
		{"quoted spaces", "-X 'main.greeting=hello world'", []string{"-X", "main.greeting=hello world"}, true},
		{"empty", "", nil, true},
		{"unknown field", "-X main.v={{.Nope}}", nil, false},
		{"bad template", "-X main.v={{.Version", nil, false},
		{"extld", "-linkmode=external -extld=/bin/sh", nil, false},
		{"dangling -X", "-X", nil, false},
		{"define without dot", "-X version=1", nil, false},
		{"unterminated quote", "-X 'main.v=1", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderLdflags(tc.tmpl, vars)
			if (err == nil) != tc.ok {
				t.Fatalf("RenderLdflags(%q) = %v, want ok %v", tc.tmpl, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrLdflags) {
				t.Errorf("RenderLdflags(%q) = %v, want ErrLdflags", tc.tmpl, err)
			}
			if err == nil && !slices.Equal(got, tc.want) {
				t.Errorf("RenderLdflags(%q) = %q, want %q", tc.tmpl, got, tc.want)
			}
		})
	}
}

// trickyLdflags are templates that probe where the go command's splitting of -ldflags
// (cmd/internal/quoted.Split) and slipway's could part: quotes inside a field, quoted
// fields side by side, separators other than a space, Unicode spaces, control characters,
// backslashes, flags the linker must never see. want is nil when the template is refused.
// FuzzLdflags uses them as its seed corpus and checks each accepted one against the go
// command itself.
var trickyLdflags = []struct {
	name, tmpl string
	want       []string
}{
	{"issue 11", `-X 'main.version=a" -o PATH -X "main.z=q'"'"`, nil},
	{"issue 11 double outside", `-X "main.v=a' -o /tmp/x -X 'main.z=q"`, nil},
	{"issue 11 with vars", `-X 'main.version={{.Version}}" -o /tmp/x -X "main.z=q'"'"`, nil},
	{"quote in the middle", `-X main.v='a b'`, nil},
	{"double quote in the middle", `-X main.v="a b"`, nil},
	{"quote at the end", `-X=main.v=a'b`, nil},
	{"apostrophe in double quotes", `-X "main.v=it's"`, nil},
	{"quote glued to a flag", `-X'main.v=1'`, nil},
	{"quoted fields side by side", `-X 'main.a=1''main.b=2'`, nil},
	{"quoted flag and define side by side", `'-X''main.v=1'`, []string{"-X", "main.v=1"}},
	{"quoted flag and define", `"-X" "main.v=1"`, []string{"-X", "main.v=1"}},
	{"quoted -X with its define", `'-X main.v=1'`, nil},
	{"quoted space", `-X 'main.v=a b'`, []string{"-X", "main.v=a b"}},
	{"quote after -X= then -o", `-X='main.v=a' -o x`, nil},
	{"empty quotes", `-s '' -w`, nil},
	{"unterminated quote", `-X "main.v=1`, nil},
	{"tab between", "-X\tmain.v=1", []string{"-X", "main.v=1"}},
	{"newline between", "-s\n-w\r\n-X main.v=1", []string{"-s", "-w", "-X", "main.v=1"}},
	{"tab inside quotes", "-X 'main.v=a\tb'", nil},
	{"newline inside quotes", "-X 'main.v=a\n-o /tmp/x'", nil},
	{"carriage return inside quotes", "-X 'main.v=a\rb'", nil},
	{"carriage returns smuggle -o", "-X 'main.v=a\r-o\r/tmp/x'", nil},
	{"NUL", "-X main.v=a\x00b", nil},
	{"NEL", "-X main.v=a\u0085b", nil},
	{"invalid UTF-8", "-X main.v=\xff", nil},
	{"no-break space inside", "-X main.v=a\u00a0-o\u00a0/tmp/x", []string{"-X", "main.v=a\u00a0-o\u00a0/tmp/x"}},
	{"no-break space last", "-X main.v=a\u00a0", []string{"-X", "main.v=a\u00a0"}},
	{"em space last, quoted", "-X 'main.v=\u2003'", []string{"-X", "main.v=\u2003"}},
	{"no-break space first", "\u00a0-s", nil},
	{"em space between", "-s\u2003-w", nil},
	{"ideographic space between", "-X main.v=1\u3000-o\u3000x", []string{"-X", "main.v=1\u3000-o\u3000x"}},
	{"backslash space", `-X main.v=a\ b`, nil},
	{"backslash quote", `-X 'main.v=a\'b'`, nil},
	{"backslashes", `-X main.v=C:\dir\x`, []string{"-X", `main.v=C:\dir\x`}},
	{"-X=", `-X=`, nil},
	{"-X= empty value", `-X=main.v=`, []string{"-X=main.v="}},
	{"empty value", `-X main.v=`, []string{"-X", "main.v="}},
	{"empty quoted value", `-X 'main.v='`, []string{"-X", "main.v="}},
	{"empty define", `-X ''`, nil},
	{"value -o", `-X main.v=-o`, []string{"-X", "main.v=-o"}},
	{"value with = and spaces", `-X 'main.v=a=b -o c'`, []string{"-X", "main.v=a=b -o c"}},
	{"define -o", `-X -o /tmp/x`, nil},
	{"define -X", `-X -X main.v=1`, nil},
	{"--X", `--X main.v=1`, []string{"--X", "main.v=1"}},
	{"--X=", `--X=main.v=1`, nil},
	{"-o", `-o /tmp/x`, nil},
	{"--o", `--o=/tmp/x`, nil},
	{"-o after a define", `-X main.v=1 -o /tmp/x`, nil},
	{"-extld", `-extld=/bin/sh`, nil},
	{"-extldflags", `-extldflags '-o /tmp/x'`, nil},
	{"-linkmode", `-linkmode external`, nil},
	{"-H", `-H windowsgui`, nil},
	{"-s=false", `-s=false`, nil},
	{"--", `-s -- -o x`, nil},
	{"response file", `@/tmp/args`, nil},
	{"response file as define", `-X @main.v=1`, nil},
	{"response file after -X=", `-X=@main.v=1`, nil},
	{"dangling -X", `-s -X`, nil},
	{"template prints quotes", `-X main.v={{printf "%c" 39}}x{{printf "%c" 39}}`, nil},
	{"template prints -o", `{{"-o"}} /tmp/x`, nil},
	{"template prints a newline", `-X main.v=a{{printf "%c" 10}}-o /tmp/x`, nil},
	{"all vars", `-s -w -X main.version={{.Version}} -X=main.commit={{.Commit}} -X 'main.date={{.Date}}' -X "main.app={{.App}}"`,
		[]string{"-s", "-w", "-X", "main.version=1.2.3", "-X=main.commit=abc", "-X", "main.date=2026-01-01T00:00:00Z", "-X", "main.app=hello"}},
	{"repeated flags", `-w -s -w`, []string{"-w", "-s", "-w"}},
	{"define with spaces in the name", `-X 'main.a b=c'`, []string{"-X", "main.a b=c"}},
	{"range", `{{range 1000000000}}{{end}}-s`, nil},
	{"define and template", `{{define "a"}}-s{{end}}{{template "a"}}`, nil},
	{"long", `-X main.v={{printf "%0999999d" 0}}`, nil},
}

func TestRenderLdflagsTricky(t *testing.T) {
	vars := LdflagsVars{Version: "1.2.3", Commit: "abc", Date: "2026-01-01T00:00:00Z", App: "hello"}
	for _, tc := range trickyLdflags {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderLdflags(tc.tmpl, vars)
			if tc.want == nil {
				if err == nil || !errors.Is(err, ErrLdflags) {
					t.Errorf("RenderLdflags(%q) = %q, %v; want ErrLdflags", tc.tmpl, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("RenderLdflags(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
			}
		})
	}
}

// TestRenderLdflagsVars: a value substituted into the template cannot make a field of
// its own, or quote one, whatever the intake let through.
func TestRenderLdflagsVars(t *testing.T) {
	tmpl := "-X main.commit={{.Commit}} -X 'main.app={{.App}}'"
	for _, tc := range []struct {
		name, commit string
		want         []string
	}{
		{"plain", "abc", []string{"-X", "main.commit=abc", "-X", "main.app=hello"}},
		{"empty", "", []string{"-X", "main.commit=", "-X", "main.app=hello"}},
		{"unicode", "é", []string{"-X", "main.commit=é", "-X", "main.app=hello"}},
		{"space and a define", "x -X main.admin=true", nil},
		{"tab", "x\t-o", nil},
		{"no-break space", "x\u00a0y", nil},
		{"closes the quote", "x' -o /tmp/y '", nil},
		{"double quote", `x"`, nil},
		{"newline", "x\n", nil},
		{"invalid UTF-8", "\xff", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderLdflags(tmpl, LdflagsVars{Version: "1.2.3", Commit: tc.commit, Date: "2026-01-01T00:00:00Z", App: "hello"})
			if tc.want == nil {
				if !errors.Is(err, ErrLdflags) {
					t.Errorf("RenderLdflags with commit %q = %q, %v; want ErrLdflags", tc.commit, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("RenderLdflags with commit %q = %q, %v; want %q", tc.commit, got, err, tc.want)
			}
		})
	}
}

// TestSplitQuoted holds splitQuoted to cmd/internal/quoted's own test cases, and more.
func TestSplitQuoted(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{" ", nil, true},
		{"a", []string{"a"}, true},
		{" a", []string{"a"}, true},
		{"a ", []string{"a"}, true},
		{"a b", []string{"a", "b"}, true},
		{"a  b", []string{"a", "b"}, true},
		{"a\tb", []string{"a", "b"}, true},
		{"a\nb", []string{"a", "b"}, true},
		{"a\rb", []string{"a", "b"}, true},
		{"a\vb", []string{"a\vb"}, true},
		{`'a b'`, []string{"a b"}, true},
		{`"a b"`, []string{"a b"}, true},
		{`'a '"b "`, []string{"a ", "b "}, true},
		{`'a "'"'b"`, []string{`a "`, `'b`}, true},
		{`\'`, []string{`\'`}, true},
		{`'a`, nil, false},
		{`a'b c'`, []string{"a'b", "c'"}, true},
		{`'a'b`, []string{"a", "b"}, true},
		{`''`, []string{""}, true},
		{`a"`, []string{`a"`}, true},
		{"a\u00a0b", []string{"a\u00a0b"}, true},
	} {
		got, err := splitQuoted(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("splitQuoted(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestJoinLdflagsRoundTrip: every argument RenderLdflags accepts comes back from the go
// command's splitting of joinLdflags exactly, trimmed as the go command trims -ldflags.
func TestJoinLdflagsRoundTrip(t *testing.T) {
	argsList := [][]string{
		{"-s", "-w", "-buildid="},
		{"-X", "main.v=a b", "-X=main.w=\u00a0", "-X", "main.x=\u2003"},
		{"-X", "main.v=", "-X", "main.v=-o x", "-X", `main.v=C:\a\`},
		{"-X", "main.a b=c d", "--X", "main.v=é"},
		{"-X", "main.v=a\u00a0"},
		{"", "a'b", `a"b`},
	}
	vars := LdflagsVars{Version: "1.2.3", Commit: "abc", Date: "2026-01-01T00:00:00Z", App: "hello"}
	for _, tc := range trickyLdflags {
		if args, err := RenderLdflags(tc.tmpl, vars); err == nil {
			argsList = append(argsList, args)
		}
	}
	for _, args := range argsList {
		all := append([]string{"-s", "-w", "-buildid="}, args...)
		joined, err := joinLdflags(all)
		if err != nil {
			t.Errorf("joinLdflags(%q) = %v", all, err)
			continue
		}
		if got, err := splitQuoted(strings.TrimSpace(joined)); err != nil || !slices.Equal(got, all) {
			t.Errorf("splitQuoted(joinLdflags(%q)) = %q, %v; want them back", all, got, err)
		}
	}
	if _, err := joinLdflags([]string{`a'"b`}); err == nil {
		t.Errorf("joinLdflags of an argument with both quotes = nil, want an error")
	}
}
