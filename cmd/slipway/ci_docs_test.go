package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// docBlock is one fenced code block of a Markdown file: its language and text, and the
// <!-- workflow: PATH --> or <!-- gitlab: PATH --> marker before it, if any.
type docBlock struct {
	lang, text, marker string
}

// docBlocks returns the fenced code blocks of the Markdown text md.
func docBlocks(md string) []docBlock {
	var blocks []docBlock
	var cur *docBlock
	marker := ""
	for line := range strings.Lines(md) {
		line = strings.TrimRight(line, "\n")
		switch {
		case cur == nil && strings.HasPrefix(line, "<!-- ") && strings.HasSuffix(line, " -->"):
			marker = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- "), " -->")
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &docBlock{lang: strings.TrimPrefix(line, "```"), marker: marker}
			marker = ""
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		default:
			if strings.TrimSpace(line) != "" {
				marker = ""
			}
		}
	}
	return blocks
}

// shellWords splits a line of shell into words and the operators between commands (|,
// ||, &&, ;, $( and )), keeping quoted strings whole; good enough for the commands of
// the docs, not a shell.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'' || c == '"':
			end := strings.IndexByte(line[i+1:], c)
			if end < 0 {
				end = len(line) - i - 1
			}
			w.WriteString(line[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case c == ' ' || c == '\t':
			flush()
		case c == '#' && !inWord:
			flush()
			return words
		case c == '$' && i+1 < len(line) && line[i+1] == '(':
			flush()
			words = append(words, "$(")
			i++
		case strings.IndexByte("|&;()", c) >= 0:
			flush()
			op := string(c)
			if i+1 < len(line) && (line[i:i+2] == "&&" || line[i:i+2] == "||") {
				op = line[i : i+2]
				i++
			}
			words = append(words, op)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words
}

// slipwayCommands returns the arguments of every slipway command in the code blocks of
// md: a word slipway where a command starts (a line's start, after - or run: in YAML, or
// after an operator).
func slipwayCommands(md string) [][]string {
	var cmds [][]string
	for _, b := range docBlocks(md) {
		for line := range strings.Lines(b.text) {
			line = strings.TrimSpace(line)
			line = strings.TrimPrefix(line, "- ")
			line = strings.TrimPrefix(line, "run: ")
			words := shellWords(line)
			for i := 0; i < len(words); i++ {
				start := i == 0 || slices.Contains([]string{"|", "||", "&&", ";", "$(", "then", "else", "do"}, words[i-1])
				if words[i] != "slipway" || !start {
					continue
				}
				j := i + 1
				for j < len(words) && !slices.Contains([]string{"|", "||", "&&", ";", "$(", ")"}, words[j]) {
					j++
				}
				cmds = append(cmds, words[i+1:j])
				i = j
			}
		}
	}
	return cmds
}

// checkCommand says what is wrong with a slipway command's arguments: an unknown
// command, subcommand or flag ("" when nothing is).
func checkCommand(args []string) string {
	cs := completions()
	find := func(key string) *completion {
		for i := range cs {
			if cs[i].key == key {
				return &cs[i]
			}
		}
		return nil
	}
	if len(args) == 0 {
		return "slipway without a command"
	}
	key, rest := args[0], args[1:]
	if g, ok := commandGroups[key]; ok {
		switch {
		case len(rest) > 0 && slices.Contains(g.subs, rest[0]):
			key, rest = key+" "+rest[0], rest[1:]
		case g.bare != "" && (len(rest) == 0 || strings.HasPrefix(rest[0], "-")):
			key = g.bare
		default:
			return "slipway " + key + " has no subcommand " + strings.Join(rest[:min(1, len(rest))], "")
		}
	}
	c := find(key)
	if c == nil {
		return "slipway has no command " + key
	}
	for _, a := range rest {
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		if !slices.ContainsFunc(c.flags, func(f completionFlag) bool { return f.name == name || "-"+f.name == name }) {
			return "slipway " + key + " has no flag " + name
		}
	}
	return ""
}

// TestCIDocsCommands checks that every slipway command docs/ci.md shows exists with
// every flag it gives, and that every file it links to exists.
func TestCIDocsCommands(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("..", "..", "docs", "ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := slipwayCommands(string(md))
	seen := map[string]bool{}
	for _, args := range cmds {
		if msg := checkCommand(args); msg != "" {
			t.Errorf("docs/ci.md: slipway %s: %s", strings.Join(args, " "), msg)
		}
		seen[args[0]] = true
	}
	for _, want := range []string{"init", "token", "build", "promote", "rollback", "history"} {
		if !seen[want] {
			t.Errorf("docs/ci.md shows no slipway %s command (found %d commands: %q)", want, len(cmds), cmds)
		}
	}
	links := regexp.MustCompile(`\]\(([^)\s]+)\)`).FindAllStringSubmatch(string(md), -1)
	if len(links) < 5 {
		t.Errorf("docs/ci.md has %d links, want its files linked", len(links))
	}
	for _, l := range links {
		target, _, _ := strings.Cut(l[1], "#")
		if target == "" || strings.Contains(target, "://") {
			continue
		}
		if _, err := os.Stat(filepath.Join("..", "..", "docs", target)); err != nil {
			t.Errorf("docs/ci.md links to %s: %v", l[1], err)
		}
	}
}

// TestCIDocsCheckCommand checks the checker on commands that must fail it.
func TestCIDocsCheckCommand(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{`slipway promote hello staging --version "$V" --reason "x y"`, true},
		{`export T=$(slipway token create ci --scope build --app hello)`, true},
		{`slipway apps --json | jq .`, true},
		{`slipway promote hello staging --versoin 1.2.3`, false},
		{`slipway token mint ci`, false},
		{`slipway deploy hello`, false},
		{`echo slipway deploy # slipway is not the command here`, true},
	} {
		cmds := slipwayCommands("```sh\n" + tc.line + "\n```\n")
		bad := ""
		for _, c := range cmds {
			if msg := checkCommand(c); msg != "" {
				bad = msg
			}
		}
		if (bad == "") != tc.ok {
			t.Errorf("checking %q: %q, want ok %t", tc.line, bad, tc.ok)
		}
	}
}

// TestCIDocsDescribeTheActions checks that docs/ci.md names every input and output of
// action.yml and every variable of the GitLab template, that its workflows use the
// actions by a release tag (never latest or a branch), and that every ${{ }} of the
// actions names an input or step they declare and every run: a script that exists.
func TestCIDocsDescribeTheActions(t *testing.T) {
	root := filepath.Join("..", "..")
	md, err := os.ReadFile(filepath.Join(root, "docs", "ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(md)
	action := readAction(t, filepath.Join(root, "action.yml"))
	for name := range action.Inputs {
		if !strings.Contains(doc, "| `"+name+"` |") {
			t.Errorf("docs/ci.md's inputs table lacks input %s", name)
		}
	}
	for name := range action.Outputs {
		if !strings.Contains(doc, "| `"+name+"` |") {
			t.Errorf("docs/ci.md's outputs table lacks output %s", name)
		}
	}
	for name := range gitlabTemplate(t)[".slipway-build"].Variables {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/ci.md lacks the GitLab template's variable %s", name)
		}
	}

	workflows := 0
	for _, b := range docBlocks(doc) {
		if !strings.HasPrefix(b.marker, "workflow: .github/workflows/") {
			continue
		}
		workflows++
		var wf struct {
			On   map[string]any `yaml:"on"`
			Jobs map[string]struct {
				Steps []map[string]any `yaml:"steps"`
			} `yaml:"jobs"`
		}
		if err := yaml.Unmarshal([]byte(b.text), &wf); err != nil || len(wf.Jobs) == 0 || len(wf.On) == 0 {
			t.Errorf("docs/ci.md: %s is no workflow (%v)", b.marker, err)
		}
		for job, j := range wf.Jobs {
			for _, st := range j.Steps {
				uses, _ := st["uses"].(string)
				if strings.HasPrefix(uses, "slipway/") && uses != "slipway/slipway@v1" && uses != "slipway/slipway/ci/setup@v1" {
					t.Errorf("%s: job %s uses %s, want slipway/slipway@v1 or slipway/slipway/ci/setup@v1", b.marker, job, uses)
				}
			}
		}
		if strings.Contains(b.text, "@latest") || strings.Contains(b.text, "@main") {
			t.Errorf("%s uses something @latest or @main", b.marker)
		}
	}
	if workflows < 2 {
		t.Errorf("docs/ci.md has %d marked GitHub workflows, want build-and-promote and rollback", workflows)
	}

	for _, file := range []string{"action.yml", filepath.Join("ci", "setup", "action.yml")} {
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "latest") {
			t.Errorf("%s mentions latest; the CLI is pinned to the action's ref", file)
		}
		a := readAction(t, filepath.Join(root, file))
		ids := map[string]bool{}
		for _, st := range a.Runs.Steps {
			ids[st.ID] = true
			if m := regexp.MustCompile(`^bash "\$GITHUB_ACTION_PATH/(\S+)"$`).FindStringSubmatch(st.Run); st.Run != "" {
				if m == nil {
					t.Errorf("%s: a step runs %q, want bash \"$GITHUB_ACTION_PATH/ci/action/SCRIPT.sh\"", file, st.Run)
				} else if _, err := os.Stat(filepath.Join(root, filepath.Dir(file), m[1])); err != nil {
					t.Errorf("%s: a step runs %s: %v", file, m[1], err)
				}
			}
		}
		for _, m := range expression.FindAllStringSubmatch(string(data), -1) {
			parts := strings.Split(m[1], ".")
			switch {
			case parts[0] == "inputs" && len(parts) == 2:
				if _, ok := a.Inputs[parts[1]]; !ok {
					t.Errorf("%s: ${{ %s }} names no input", file, m[1])
				}
			case parts[0] == "steps" && len(parts) == 4:
				if !ids[parts[1]] {
					t.Errorf("%s: ${{ %s }} names no step", file, m[1])
				}
			case m[1] == "github.action_path" || m[1] == "github.action_ref":
			default:
				t.Errorf("%s: ${{ %s }} is an expression the tests do not know", file, m[1])
			}
		}
	}
}
