package builder

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"text/template"
)

// LdflagsVars are the values an app's ldflags template may use.
type LdflagsVars struct {
	Version string // the build's SemVer version
	Commit  string // the source commit, as the CI system sent it
	Date    string // the source date, RFC 3339 UTC
	App     string // the app's name
}

// ErrLdflags means an ldflags template is malformed or asks for a linker flag slipway
// does not pass.
var ErrLdflags = errors.New("invalid ldflags")

// CheckLdflags checks an ldflags template: it must parse, use only the fields of
// LdflagsVars, and consist only of -X importpath.name=value flags (and -s, -w). Any other
// linker flag could make the linker run programs (-extld) or change the build's shape.
func CheckLdflags(tmpl string) error {
	_, err := RenderLdflags(tmpl, LdflagsVars{Version: "0.0.0", Commit: "0", Date: "1970-01-01T00:00:00Z", App: "app"})
	return err
}

// RenderLdflags executes the template with vars and returns the linker arguments.
func RenderLdflags(tmpl string, vars LdflagsVars) ([]string, error) {
	if len(tmpl) > 4096 {
		return nil, fmt.Errorf("%w: longer than 4096 bytes", ErrLdflags)
	}
	t, err := template.New("ldflags").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrLdflags, strings.TrimPrefix(err.Error(), "template: "))
	}
	var b bytes.Buffer
	if err := t.Execute(&b, vars); err != nil {
		return nil, fmt.Errorf("%w: %s (the fields are .Version, .Commit, .Date and .App)", ErrLdflags, strings.TrimPrefix(err.Error(), "template: "))
	}
	args, err := splitQuoted(b.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLdflags, err)
	}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-s" || a == "-w":
		case a == "-X" || a == "--X":
			if i+1 == len(args) {
				return nil, fmt.Errorf("%w: -X needs importpath.name=value after it", ErrLdflags)
			}
			i++
			if err := checkDefine(args[i]); err != nil {
				return nil, err
			}
		case strings.HasPrefix(a, "-X="):
			if err := checkDefine(strings.TrimPrefix(a, "-X=")); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: flag %q is not allowed; only -X importpath.name=value (and -s, -w) are", ErrLdflags, a)
		}
	}
	return args, nil
}

func checkDefine(d string) error {
	name, _, ok := strings.Cut(d, "=")
	if !ok || name == "" || !strings.Contains(name, ".") || strings.HasPrefix(name, "-") {
		return fmt.Errorf("%w: %q is not importpath.name=value", ErrLdflags, d)
	}
	return nil
}

// splitQuoted splits s into fields at spaces, keeping text in single or double quotes
// together, as the go command splits -ldflags.
func splitQuoted(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inField := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote = c
			inField = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inField {
				args = append(args, cur.String())
				cur.Reset()
				inField = false
			}
		default:
			cur.WriteByte(c)
			inField = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inField {
		args = append(args, cur.String())
	}
	return args, nil
}
