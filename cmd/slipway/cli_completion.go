package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// completion is what a shell completes after one command line prefix.
type completion struct {
	key   string   // "" for slipway alone, then "apps", "apps create" and so on
	words []string // what may come next: subcommands, command names
	flags []completionFlag
}

// completionFlag is one flag: "--app" or "-o", and whether it takes a value.
type completionFlag struct {
	name  string
	value bool
}

// completions lists, for every command and group, the words and flags that may follow.
func completions() []completion {
	top := completion{words: commandNames(), flags: []completionFlag{{"--help", false}, {"--version", false}}}
	out := []completion{top, {key: "completion", words: []string{"bash", "zsh", "fish"}}}
	var serveFlags []completionFlag
	for _, s := range serveSettings(&serveConfig{}) {
		serveFlags = append(serveFlags, completionFlag{"--" + s.flag, true})
	}
	serveFlags = append(serveFlags, completionFlag{"--help", false})
	out = append(out, completion{key: "serve", flags: serveFlags}, completion{key: "worker", flags: serveFlags})
	out = append(out, completion{key: "cache", words: []string{"prune"}}, completion{key: "cache prune", flags: []completionFlag{
		{"--older-than", true}, {"--data-dir", true}, {"--s3-bucket", true}, {"--s3-endpoint", true}, {"--s3-region", true},
		{"--s3-path-style", false}, {"--help", false}}})
	for group, g := range commandGroups {
		c := completion{key: group, words: g.subs}
		if g.bare != "" {
			c.flags = flagsOf(clientCommands[g.bare])
		}
		out = append(out, c)
	}
	for key, cmd := range clientCommands {
		out = append(out, completion{key: key, flags: flagsOf(cmd)})
	}
	slices.SortFunc(out, func(a, b completion) int { return strings.Compare(a.key, b.key) })
	return out
}

// flagsOf lists cmd's flags: the command gives its flag set to listFlags instead of
// parsing its arguments. It is run with --help, so that a command that parsed its flags
// another way would only print its help.
func flagsOf(cmd *clientCommand) []completionFlag {
	var flags []completionFlag
	e := &cliEnv{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard, now: time.Now}
	e.listFlags = func(fs *flag.FlagSet) {
		fs.VisitAll(func(f *flag.Flag) {
			name := "--" + f.Name
			if len(f.Name) == 1 {
				name = "-" + f.Name
			}
			b, isBool := f.Value.(interface{ IsBoolFlag() bool })
			flags = append(flags, completionFlag{name, !isBool || !b.IsBoolFlag()})
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing a command starts may reach a server
	if err := cmd.run(ctx, e, cmd, []string{"--help"}); !errors.Is(err, errFlagsListed) {
		return []completionFlag{{"--help", false}}
	}
	return append(flags, completionFlag{"--help", false})
}

// runCompletion is `slipway completion SHELL`.
func runCompletion(args []string, stdout io.Writer) error {
	if len(args) == 1 && isHelpFlag(args[0]) {
		_, err := fmt.Fprint(stdout, completionHelp)
		return err
	}
	if len(args) != 1 {
		return &usageError{"usage: slipway completion bash|zsh|fish (see slipway completion --help)"}
	}
	write, ok := map[string]func(io.Writer, []completion) error{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}[args[0]]
	if !ok {
		return &usageError{fmt.Sprintf("no completion script for shell %q (completion takes bash, zsh or fish)", args[0])}
	}
	return write(stdout, completions())
}

const completionHelp = `Usage: slipway completion bash|zsh|fish

Prints a script that completes slipway's commands, subcommands and flags in the shell:
  bash  source <(slipway completion bash)       (or save it in /etc/bash_completion.d/slipway)
  zsh   source <(slipway completion zsh)        (after compinit; or save it as _slipway in $fpath)
  fish  slipway completion fish | source        (or save it in ~/.config/fish/completions/slipway.fish)
`

// subcommandKeys are the "GROUP SUB" keys of every group's subcommands.
func subcommandKeys(cs []completion) []string {
	var keys []string
	for _, c := range cs {
		if strings.Contains(c.key, " ") {
			keys = append(keys, c.key)
		}
	}
	return keys
}

// flagNames are the names of flags, space-separated.
func flagNames(flags []completionFlag) string {
	names := make([]string, len(flags))
	for i, f := range flags {
		names[i] = f.name
	}
	return strings.Join(names, " ")
}

// shellCases writes one case arm per completion: key) words=...; flags=... ;;, in the
// syntax bash and zsh share.
func shellCases(w io.Writer, cs []completion, wordsVar string) {
	for _, c := range cs {
		fmt.Fprintf(w, "\t%q) %s=%q; flags=%q ;;\n", c.key, wordsVar, strings.Join(c.words, " "), flagNames(c.flags))
	}
}

// shellFindKey is the loop bash and zsh share that finds the command being completed,
// with its subcommand when it has one, in the variable key.
func shellFindKey(w io.Writer, cs []completion, wordsArray, first, current string) {
	fmt.Fprintf(w, `	local cmd="" sub="" key="" i
	for ((i = %s; i < %s; i++)); do
		case "${%s[i]}" in -*) continue ;; esac
		if [[ -z $cmd ]]; then cmd="${%s[i]}"; else sub="${%s[i]}"; break; fi
	done
	key="$cmd"
	case "$cmd $sub" in
`, first, current, wordsArray, wordsArray, wordsArray)
	for _, k := range subcommandKeys(cs) {
		fmt.Fprintf(w, "\t%q) key=%q ;;\n", k, k)
	}
	fmt.Fprint(w, "\tesac\n")
}

func bashCompletion(w io.Writer, cs []completion) error {
	fmt.Fprint(w, "# bash completion for slipway: source <(slipway completion bash)\n_slipway() {\n")
	shellFindKey(w, cs, "COMP_WORDS", "1", "COMP_CWORD")
	fmt.Fprint(w, `	local cur="${COMP_WORDS[COMP_CWORD]}" words="" flags=""
	case "$key" in
`)
	shellCases(w, cs, "words")
	_, err := fmt.Fprint(w, `	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
	else
		COMPREPLY=($(compgen -W "$words" -- "$cur"))
	fi
}
complete -o default -F _slipway slipway
`)
	return err
}

func zshCompletion(w io.Writer, cs []completion) error {
	fmt.Fprint(w, "#compdef slipway\n# zsh completion for slipway: source <(slipway completion zsh), after compinit\n_slipway() {\n")
	shellFindKey(w, cs, "words", "2", "CURRENT")
	fmt.Fprint(w, `	local cands="" flags=""
	case "$key" in
`)
	shellCases(w, cs, "cands")
	_, err := fmt.Fprint(w, `	esac
	if [[ ${words[CURRENT]} == -* ]]; then
		compadd -- ${=flags}
	elif [[ -n $cands ]]; then
		compadd -- ${=cands}
	else
		_files
	fi
}
if [[ "${funcstack[1]}" == "_slipway" ]]; then
	_slipway "$@"
else
	compdef _slipway slipway
fi
`)
	return err
}

func fishCompletion(w io.Writer, cs []completion) error {
	fmt.Fprint(w, `# fish completion for slipway: slipway completion fish | source
function __slipway_key
	set -l cmd ""
	for word in (commandline -opc)[2..-1]
		string match -q -- '-*' $word; and continue
		if test -z "$cmd"
			set cmd $word
			continue
		end
		switch "$cmd $word"
`)
	for _, k := range subcommandKeys(cs) {
		fmt.Fprintf(w, "\t\t\tcase '%s'\n\t\t\t\techo '%s'\n\t\t\t\treturn\n", k, k)
	}
	fmt.Fprint(w, `		end
		break
	end
	echo $cmd
end
function __slipway_at
	set -l key (__slipway_key)
	test "$key" = "$argv[1]"
end
`)
	for _, c := range cs {
		if len(c.words) > 0 {
			fmt.Fprintf(w, "complete -c slipway -n '__slipway_at \"%s\"' -f -a '%s'\n", c.key, strings.Join(c.words, " "))
		}
		for _, f := range c.flags {
			opt := "-l " + strings.TrimPrefix(f.name, "--")
			if !strings.HasPrefix(f.name, "--") {
				opt = "-s " + strings.TrimPrefix(f.name, "-")
			}
			if f.value {
				opt += " -r"
			}
			fmt.Fprintf(w, "complete -c slipway -n '__slipway_at \"%s\"' %s\n", c.key, opt)
		}
	}
	return nil
}
