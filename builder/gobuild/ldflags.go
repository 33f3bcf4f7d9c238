package gobuild

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode"
	"unicode/utf8"
)

// LdflagsVars are the values an app's ldflags template may use.
type LdflagsVars struct {
	Version string // the build's SemVer version
	Commit  string // the source commit, as the CI system sent it
	Date    string // the source date, RFC 3339 UTC
	App     string // the app's name
}

const (
	maxLdflagsTemplate = 4096  // bytes of template
	maxLdflagsRendered = 16384 // bytes of rendered flags
	ldflagsQuotes      = `'"`  // refused anywhere in a linker argument
)

// CheckLdflags checks an ldflags template: it must parse, use only the fields of
// LdflagsVars, and consist only of -X importpath.name=value flags (and -s, -w). Any other
// linker flag could make the linker run programs (-extld) or change the build's shape.
func CheckLdflags(tmpl string) error {
	_, err := RenderLdflags(tmpl, LdflagsVars{Version: "0.0.0", Commit: "0", Date: "1970-01-01T00:00:00Z", App: "app"})
	return err
}

// RenderLdflags executes the template with vars and returns the linker arguments.
//
// The rendered text is split into arguments exactly as the go command splits -ldflags
// (splitQuoted), and what comes out is what the linker receives: -s, -w, and -X
// importpath.name=value (or -X=importpath.name=value), nothing else. No argument may hold
// a quote, a control character or invalid UTF-8, so joinLdflags can hand every argument
// through the go command unchanged; none may start with @, which the linker would read
// as a file of more arguments.
//
// The values in vars are substituted before the text is split, so a value may hold no
// white space (Unicode's, not only ASCII), quote or control character: then it cannot
// end a field, start a quoted one, or close one, and the arguments have the shape the
// template gives them whatever the values are (an empty value can only leave out a field
// that holds nothing else). The intake's checks on versions, commits
// and app names already keep to this; RenderLdflags does not rely on them.
//
// The template may use if, with, else and comments; range, define, template and block
// are refused (a template must not be able to loop for minutes at intake), and the
// rendered text is at most 16 KiB.
func RenderLdflags(tmpl string, vars LdflagsVars) ([]string, error) {
	if len(tmpl) > maxLdflagsTemplate {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrLdflags, maxLdflagsTemplate)
	}
	for _, v := range []struct{ name, value string }{
		{".Version", vars.Version}, {".Commit", vars.Commit}, {".Date", vars.Date}, {".App", vars.App},
	} {
		if err := checkVar(v.value); err != nil {
			return nil, fmt.Errorf("%w: %s %q %v", ErrLdflags, v.name, v.value, err)
		}
	}
	t, err := template.New("ldflags").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrLdflags, strings.TrimPrefix(err.Error(), "template: "))
	}
	if len(t.Templates()) > 1 {
		return nil, fmt.Errorf("%w: define and block are not allowed", ErrLdflags)
	}
	if err := checkTemplateNodes(t.Tree.Root); err != nil {
		return nil, err
	}
	b := &limitedBuffer{max: maxLdflagsRendered}
	if err := t.Execute(b, vars); err != nil {
		if errors.Is(err, errTooLong) {
			return nil, fmt.Errorf("%w: renders to more than %d bytes", ErrLdflags, maxLdflagsRendered)
		}
		return nil, fmt.Errorf("%w: %s (the fields are .Version, .Commit, .Date and .App)", ErrLdflags, strings.TrimPrefix(err.Error(), "template: "))
	}
	args, err := splitQuoted(b.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLdflags, err)
	}
	if err := checkLinkerArgs(args); err != nil {
		return nil, err
	}
	return args, nil
}

// checkVar checks a value substituted into the template: no white space, quote or control
// character, valid UTF-8.
func checkVar(v string) error {
	if !utf8.ValidString(v) {
		return errors.New("is not valid UTF-8")
	}
	for _, r := range v {
		switch {
		case unicode.IsSpace(r):
			return errors.New("holds white space")
		case unicode.IsControl(r):
			return errors.New("holds a control character")
		case strings.ContainsRune(ldflagsQuotes, r):
			return errors.New("holds a quote")
		}
	}
	return nil
}

// checkTemplateNodes refuses the actions an ldflags template has no use for: range (a
// loop over a number runs as long as the number says) and template (calls that multiply).
func checkTemplateNodes(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkTemplateNodes(c); err != nil {
				return err
			}
		}
	case *parse.IfNode:
		return checkBranch(&n.BranchNode)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode)
	case *parse.RangeNode:
		return fmt.Errorf("%w: range is not allowed", ErrLdflags)
	case *parse.TemplateNode:
		return fmt.Errorf("%w: template is not allowed", ErrLdflags)
	}
	return nil
}

func checkBranch(b *parse.BranchNode) error {
	if err := checkTemplateNodes(b.List); err != nil {
		return err
	}
	return checkTemplateNodes(b.ElseList)
}

var errTooLong = errors.New("too long")

// limitedBuffer is a strings.Builder that fails writes past max bytes, which stops the
// template's execution.
type limitedBuffer struct {
	strings.Builder
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errTooLong
	}
	return b.Builder.Write(p)
}

// checkLinkerArgs checks the arguments the linker will receive: -s, -w, and -X
// importpath.name=value, each argument free of quotes, control characters and invalid
// UTF-8, and none starting with @.
func checkLinkerArgs(args []string) error {
	for _, a := range args {
		if !utf8.ValidString(a) {
			return fmt.Errorf("%w: %q is not valid UTF-8", ErrLdflags, a)
		}
		if i := strings.IndexFunc(a, func(r rune) bool { return unicode.IsControl(r) || strings.ContainsRune(ldflagsQuotes, r) }); i >= 0 {
			r, _ := utf8.DecodeRuneInString(a[i:])
			what := "a control character"
			if r == '\'' || r == '"' {
				what = "a quote"
			}
			return fmt.Errorf("%w: %q holds %s (%q); a quote counts only at the start of an argument, so none may appear inside one", ErrLdflags, a, what, r)
		}
		if strings.HasPrefix(a, "@") {
			return fmt.Errorf("%w: %q starts with @, which the linker reads as a file of arguments", ErrLdflags, a)
		}
	}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-s" || a == "-w":
		case a == "-X" || a == "--X":
			if i+1 == len(args) {
				return fmt.Errorf("%w: -X needs importpath.name=value after it", ErrLdflags)
			}
			i++
			if err := checkDefine(args[i]); err != nil {
				return err
			}
		case strings.HasPrefix(a, "-X="):
			if err := checkDefine(strings.TrimPrefix(a, "-X=")); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: flag %q is not allowed; only -X importpath.name=value (and -s, -w) are", ErrLdflags, a)
		}
	}
	return nil
}

func checkDefine(d string) error {
	name, _, ok := strings.Cut(d, "=")
	if !ok || name == "" || !strings.Contains(name, ".") || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "@") {
		return fmt.Errorf("%w: %q is not importpath.name=value", ErrLdflags, d)
	}
	return nil
}

// splitQuoted splits s into fields exactly as the go command splits -ldflags
// (cmd/internal/quoted.Split, which cannot be imported): fields are separated by ASCII
// spaces, tabs, newlines and carriage returns; a field that starts with ' or " runs to
// the next same quote, with no escapes, and the text after that quote starts a new field
// even when no space follows; a quote anywhere else is an ordinary character.
func splitQuoted(s string) ([]string, error) {
	var f []string
	for len(s) > 0 {
		for len(s) > 0 && isSpaceByte(s[0]) {
			s = s[1:]
		}
		if len(s) == 0 {
			break
		}
		if s[0] == '"' || s[0] == '\'' {
			quote := s[0]
			s = s[1:]
			i := strings.IndexByte(s, quote)
			if i < 0 {
				return nil, fmt.Errorf("unterminated %c string", quote)
			}
			f = append(f, s[:i])
			s = s[i+1:]
			continue
		}
		i := 0
		for i < len(s) && !isSpaceByte(s[i]) {
			i++
		}
		f = append(f, s[:i])
		s = s[i:]
	}
	return f, nil
}

func isSpaceByte(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}
