package chatops

import (
	"fmt"
	"strings"

	"github.com/slipway/slipway/release"
)

// Verb is what a command does.
type Verb string

// The commands.
const (
	VerbHelp     Verb = "help"
	VerbStatus   Verb = "status"
	VerbReleases Verb = "releases"
	VerbPromote  Verb = "promote"
	VerbRollback Verb = "rollback"
	VerbLock     Verb = "lock"
	VerbUnlock   Verb = "unlock"
	VerbDiff     Verb = "diff"
	VerbApprove  Verb = "approve"
)

// commands are the commands with their arguments and what they do, in the order help
// lists them.
var commands = []struct {
	verb       Verb
	args, does string
}{
	{VerbStatus, "APP", "the app's channels and what each holds"},
	{VerbReleases, "APP", "the app's newest releases"},
	{VerbPromote, "APP CH [--override] VERSION|--from CH REASON...", "point channel CH at a release, or at what another channel holds; --override moves past gates that do not pass"},
	{VerbApprove, "APP CH VERSION [REASON...]", "approve release VERSION for CH, whose gates ask for approvals"},
	{VerbRollback, "APP CH [--to VERSION] REASON...", "point CH back at the release before, or at VERSION"},
	{VerbLock, "APP CH REASON...", "lock CH against promotion (rollback stays allowed)"},
	{VerbUnlock, "APP CH REASON...", "unlock CH"},
	{VerbDiff, "APP CH1 CH2", "what changes from CH1's release to CH2's: Go, modules, base image, commits"},
	{VerbHelp, "", "this list"},
}

// Command is a command as the user wrote it.
type Command struct {
	Verb    Verb
	App     string
	Channel string // the channel it moves; diff's first channel
	Other   string // diff's second channel
	Version string // promote's VERSION, rollback's --to
	From    string // promote's --from
	Reason  string
	// Override is promote's --override: move past the gates that do not pass.
	Override bool
}

// Moves reports whether the command changes a channel.
func (c Command) Moves() bool {
	switch c.Verb {
	case VerbPromote, VerbRollback, VerbLock, VerbUnlock:
		return true
	}
	return false
}

// Scope is the scope the command needs on its app, as an operation of the API would:
// promote (or promote:<channel>) for a move, read otherwise.
func (c Command) Scope() string {
	if c.Moves() {
		return "promote"
	}
	if c.Verb == VerbApprove {
		return "approve"
	}
	return "read"
}

// Move is the channel move the command asks for; the caller sets the actor and the
// generation it read.
func (c Command) Move() release.Move {
	// The verbs of moves are release's actions: promote, rollback, lock, unlock.
	return release.Move{Action: string(c.Verb), Version: c.Version, FromChannel: c.From, Reason: c.Reason, Override: c.Override}
}

// Usage is how the command is written after command (the slash command, "/slipway").
func Usage(command string, v Verb) string {
	for _, c := range commands {
		if c.verb == v {
			return strings.TrimSpace(command + " " + string(v) + " " + c.args)
		}
	}
	return command + " help"
}

// Parse reads a command's text (what follows the slash command). An empty text is
// help; a text that does not parse is a *UsageError.
func Parse(text string) (Command, error) {
	words := strings.Fields(text)
	if len(words) == 0 {
		return Command{Verb: VerbHelp}, nil
	}
	c := Command{Verb: Verb(strings.ToLower(words[0]))}
	args := words[1:]
	var err error
	switch c.Verb {
	case VerbHelp:
	case VerbStatus, VerbReleases:
		err = c.positional(args, &c.App)
	case VerbDiff:
		err = c.positional(args, &c.App, &c.Channel, &c.Other)
	case VerbPromote:
		err = c.parsePromote(args)
	case VerbRollback:
		err = c.parseRollback(args)
	case VerbLock, VerbUnlock:
		err = c.parseReasoned(args)
	case VerbApprove:
		if len(args) < 3 {
			return Command{}, c.usageError("approve needs an app, a channel and a version")
		}
		if err = c.positional(args[:2], &c.App, &c.Channel); err == nil {
			c.Version, c.Reason = args[2], strings.Join(args[3:], " ")
		}
	default:
		return Command{}, &UsageError{Problem: fmt.Sprintf("there is no command %q", words[0])}
	}
	if err != nil {
		return Command{}, err
	}
	return c, nil
}

// usageError is a *UsageError of c's verb.
func (c Command) usageError(format string, args ...any) error {
	return &UsageError{Problem: fmt.Sprintf(format, args...), Verb: c.Verb}
}

// positional reads exactly len(into) names, each a DNS label (an app or a channel).
func (c Command) positional(args []string, into ...*string) error {
	if len(args) != len(into) {
		return c.usageError("%s takes %d arguments, not %d", c.Verb, len(into), len(args))
	}
	for i, a := range args {
		if err := release.ValidateName(a); err != nil {
			return c.usageError("%s", err.Error())
		}
		*into[i] = a
	}
	return nil
}

// parseReasoned reads APP CH REASON...
func (c *Command) parseReasoned(args []string) error {
	if len(args) < 2 {
		return c.usageError("%s needs an app and a channel", c.Verb)
	}
	if err := c.positional(args[:2], &c.App, &c.Channel); err != nil {
		return err
	}
	return c.reason(args[2:])
}

// reason takes the rest of the words as the reason, which a move must give.
func (c *Command) reason(words []string) error {
	c.Reason = strings.Join(words, " ")
	if c.Reason == "" {
		return c.usageError("say why: the reason goes into the channel's history")
	}
	return nil
}

// parsePromote reads APP CH VERSION REASON... or APP CH --from CH REASON...
func (c *Command) parsePromote(args []string) error {
	if len(args) < 3 {
		return c.usageError("promote needs an app, a channel, and a version or --from CH")
	}
	if err := c.positional(args[:2], &c.App, &c.Channel); err != nil {
		return err
	}
	rest := args[2:]
	if rest[0] == "--override" {
		c.Override, rest = true, rest[1:]
		if len(rest) == 0 {
			return c.usageError("promote needs a version or --from CH after --override")
		}
	}
	if rest[0] == "--from" {
		if len(rest) < 2 {
			return c.usageError("--from needs the channel to take the release from")
		}
		if err := c.positional(rest[1:2], &c.From); err != nil {
			return err
		}
		return c.reason(rest[2:])
	}
	if strings.HasPrefix(rest[0], "-") {
		return c.usageError("%s is not a version or --from", rest[0])
	}
	c.Version = rest[0]
	return c.reason(rest[1:])
}

// parseRollback reads APP CH [--to VERSION] REASON...
func (c *Command) parseRollback(args []string) error {
	if len(args) < 2 {
		return c.usageError("rollback needs an app and a channel")
	}
	if err := c.positional(args[:2], &c.App, &c.Channel); err != nil {
		return err
	}
	rest := args[2:]
	if len(rest) > 0 && rest[0] == "--to" {
		if len(rest) < 2 {
			return c.usageError("--to needs the version to go back to")
		}
		c.Version, rest = rest[1], rest[2:]
	}
	return c.reason(rest)
}
