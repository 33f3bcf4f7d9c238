package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Exit statuses of the client commands; `slipway help` documents them.
const (
	exitFailed      = 1 // the build failed or was canceled, the server failed (5xx), a local error
	exitUsage       = 2 // the command line is wrong
	exitRejected    = 3 // the server refused the request (4xx)
	exitUnreachable = 4 // the server could not be reached
)

// defaultServerURL is where the client looks for the server when neither --url nor
// SLIPWAY_URL says.
const defaultServerURL = "http://127.0.0.1:8080"

// cliEnv is what every client command is given: the process's environment and output,
// and the clock (tests set it to print fixed relative times).
type cliEnv struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
	// listFlags, when set, is given the command's flag set in place of parsing its
	// arguments; the command then returns errFlagsListed (for shell completion).
	listFlags func(*flag.FlagSet)
}

// clientCommand is one client command: what it is called, its synopsis and what it does.
type clientCommand struct {
	synopsis string
	help     string
	run      func(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error
}

// clientCommands are the commands that talk to a slipway server. `token` has its own
// subcommands, named "token create" and so on here.
var clientCommands = map[string]*clientCommand{
	"init": {
		synopsis: "slipway init [--app A] [DIR]",
		help: `Writes DIR/slipway.yaml (DIR default ".", which must hold go.mod), the app's configuration
kept with its source, and makes the app on the server. The app is A, or the module path's
last element made a valid name (example.com/acme/Hello_Svc is hello-svc).

When the server has no such app, it is created with the server's defaults (platforms,
ldflags, base image, channels dev → staging → prod) and the main package found in DIR
(its top, cmd/A, or the one under cmd/); the file holds what the server made. When the
app exists, the file holds its settings and nothing changes on the server. When DIR has
slipway.yaml already, the app is created or updated from it, as slipway build does.
docs/config.md describes the file.`,
		run: cmdInit,
	},
	"build": {
		synopsis: "slipway build [DIR] [--app A] [--no-apply] [--platform P]... [--version V] [--commit C] [--release] [--promote CH] [--follow] [--summary FILE] [--dotenv FILE] [--idempotency-key KEY]",
		help: `Packs the Go module in DIR (default ".", which must hold go.mod) as a tar.gz and builds it.
When DIR holds slipway.yaml (slipway init writes it), the file names the app, and before
the upload the app on the server is created, or updated where a setting the file names
differs (needs the admin scope; --no-apply leaves the app as it is). Without the file,
--app names the app.
The archive leaves out .git and what DIR/.gitignore names (blank and # lines, names, dir/,
globs such as *.ext, leading / to anchor, ** for any directories, ! to re-include; not
.gitignore files in subdirectories, .git/info/exclude or core.excludesFile), and files that
are not regular files (symbolic links). Entries are sorted and carry no owners or times,
so the same tree gives the same archive and a retried command the same Idempotency-Key.

Without --follow, --release or --promote it returns once the build is queued. With them it
streams the build log to stderr and waits for the outcome; --release then releases the
build and --promote CH (which implies --release) moves channel CH to that release.
stdout gets the build id, its status and image digest, the release and the channel move.

For CI jobs (docs/ci.md): --summary FILE appends a Markdown summary (image, platforms,
binary digests and sizes, log) and --dotenv FILE the build's id, version, image digest,
image reference (host/app@sha256:...) and release as SLIPWAY_* lines; both wait for the
build. --idempotency-key KEY (the CI run's id and attempt) is mixed into the upload's
Idempotency-Key: a retry with the same KEY gets the first answer, a new KEY builds again
unless a build with the same inputs is running or succeeded.`,
		run: cmdBuild,
	},
	"apps list": {
		synopsis: "slipway apps [list] [--limit N]",
		help:     "Lists the apps in name order.",
		run:      cmdApps,
	},
	"apps create": {
		synopsis: "slipway apps create A [--main M] [--platforms P,...] [--ldflags F] [--base-image REF] [--channels CHS] [--public] [--auto-promote]",
		help: `Creates app A; a setting left out takes the server's default. It refuses (exit 3) when A
exists: slipway apps update changes an app. --channels lists the channels in order, each
taking releases from the one before it (dev,staging,prod); CH=FROM names another source
and CH= none (dev,staging,prod,hotfix=).`,
		run: cmdAppsCreate,
	},
	"apps show": {
		synopsis: "slipway apps show A",
		help:     "Prints app A's settings, one a line.",
		run:      cmdAppsShow,
	},
	"apps update": {
		synopsis: "slipway apps update A [--main M] [--platforms P,...] [--ldflags F] [--base-image REF] [--channels CHS] [--public[=false]] [--auto-promote[=false]]",
		help: `Changes the settings of app A that the flags name and keeps the others. It reads the app
and writes it back only if nobody changed it since (If-Match); otherwise it changes
nothing, says so, and exits 3: run it again. --channels as for apps create.`,
		run: cmdAppsUpdate,
	},
	"apps delete": {
		synopsis: "slipway apps delete A",
		help:     "Deletes app A's settings. Its builds, releases and channels stay stored, but nothing builds or moves under its name until it is created again.",
		run:      cmdAppsDelete,
	},
	"builds": {
		synopsis: "slipway builds A [--status S] [--limit N]",
		help:     "Lists app A's builds, newest first (--status: only those queued, running, succeeded, failed or canceled).",
		run:      cmdBuilds,
	},
	"logs": {
		synopsis: "slipway logs A BUILD [--follow]",
		help: `Prints build BUILD's log. --follow keeps printing it while the build runs, and exits
with the build's outcome: 0 when it succeeded, 1 when it failed or was canceled.`,
		run: cmdLogs,
	},
	"cancel": {
		synopsis: "slipway cancel A BUILD",
		help: `Cancels build BUILD of app A. A queued build is canceled at once; a running one stops
within seconds; one that has ended cannot be canceled (exit 3).`,
		run: cmdCancel,
	},
	"download": {
		synopsis: "slipway download A (BUILD | --version V | --channel CH) [--platform P]... [-o DIR] [--key FILE | --no-verify]",
		help: `Downloads the binaries of a build of app A — the build named, the one release V was made
from, or the one channel CH holds — into DIR (default .), under the names SHA256SUMS gives
them, and writes SHA256SUMS there, so that sha256sum -c SHA256SUMS checks them. Each file
is checked against SHA256SUMS as it arrives; one that does not match is removed, and the
command fails (exit 1). First, when the server signs builds (or --key FILE names trusted
keys), it verifies the build as slipway verify does, and uses the SHA256SUMS whose
signature it checked; a build that does not verify downloads nothing (exit 1).
--no-verify skips that.`,
		run: cmdDownload,
	},
	"verify": {
		synopsis: "slipway verify (A@DIGEST | A:TAG | A (BUILD | --version V | --channel CH)) [--key FILE]",
		help: `Checks the signatures of a build of app A — the one that made image A@DIGEST or A:TAG (as
a registry client names it: A:prod, A:1.0.0, A:build-<id>; the build is the one its signed
provenance names), the build named, the one release V was made from, or the one channel CH
holds — with the server's public keys (/v1/signing-keys), or only the keys in FILE (--key
slipway.pub): the image index's cosign signature, the SLSA provenance (its signature, and that
its image, source digest and parameters are the build's), and the signature of SHA256SUMS. It
exits 1 when any of them does not verify. See docs/SIGNING.md.`,
		run: cmdVerify,
	},
	"releases": {
		synopsis: "slipway releases A [--channel CH] [--limit N]",
		help:     "Lists app A's releases, newest first (--channel: only those that are or were in CH).",
		run:      cmdReleases,
	},
	"channels": {
		synopsis: "slipway channels A",
		help:     "Lists app A's channels in order, with the release each holds.",
		run:      cmdChannels,
	},
	"history": {
		synopsis: "slipway history A CH [--limit N]",
		help:     "Lists channel CH's events, newest first: the audit trail of promotions, rollbacks and locks.",
		run:      cmdHistory,
	},
	"diff": {
		synopsis: "slipway diff A FROM TO",
		help: `Shows what changes from release FROM of app A to release TO, each named by its version
or by a channel (which stands for the release it holds now): the builds and commits, the Go
version, the modules (+ added, - removed, ~ changed, as go tools show them), the base image,
the linker flags and build settings, each platform's binary size, the licenses the SBOMs
record and, when the server has a vulnerability database, the vulnerabilities fixed and
introduced. --json prints the API's answer. Example: slipway diff hello prod staging.`,
		run: cmdDiff,
	},
	"promote": {
		synopsis: "slipway promote A CH (--version V | --from CH2) --reason R [--override]",
		help: `Points channel CH of app A at release V, or at what channel CH2 holds now. It reads the
channel first and moves it only if nobody else has since (If-Match); otherwise it says
who did, and exits 3. The channel's gates (soak, approvals, windows, checks) must all
pass; a refusal lists each (exit 3). --override moves past them, with the scope
override:CH, and history records every gate it overrode.`,
		run: cmdMove("promote"),
	},
	"unpin": {
		synopsis: "slipway unpin A CH --reason R",
		help:     "Unpins channel CH of app A, which a rollback pinned, so that auto_promote moves it again.",
		run:      cmdMove("unpin"),
	},
	"approve": {
		synopsis: "slipway approve A CH V [--reason R] [--revoke]",
		help: `Approves release V of app A for channel CH, whose gates ask for approvals (scope
approve:CH or approve). --revoke withdraws your approval, until V enters CH.`,
		run: cmdApprove,
	},
	"gates": {
		synopsis: "slipway gates A CH [V]",
		help: `Shows what a promotion of release V (default: what CH's from channel holds) into
channel CH of app A would meet and miss now, gate by gate, without moving anything.
Exits 0 when every gate passes, 3 otherwise.`,
		run: cmdGates,
	},
	"rollback": {
		synopsis: "slipway rollback A CH [--to V] --reason R",
		help: `Points channel CH of app A back at release V, or by default at the release it held
before the current one. Like promote, it fails (exit 3) if someone moved the channel
after it was read.`,
		run: cmdMove("rollback"),
	},
	"lock": {
		synopsis: "slipway lock A CH --reason R",
		help:     "Locks channel CH of app A against promotion; rollback stays allowed.",
		run:      cmdMove("lock"),
	},
	"unlock": {
		synopsis: "slipway unlock A CH --reason R",
		help:     "Unlocks channel CH of app A.",
		run:      cmdMove("unlock"),
	},
	"events": {
		synopsis: "slipway events [--app A] [--type T] [--follow] [--limit N]",
		help: `Lists events — builds, releases and channel moves — newest first; --type takes types
or families, comma-separated (channel.promoted,build.*). --follow prints the events
that happen from now on, as they happen, until interrupted; it reconnects after a
dropped connection without losing any. With --json, each event is one JSON line.`,
		run: cmdEvents,
	},
	"webhooks list": {
		synopsis: "slipway webhooks [list] [--limit N]",
		help:     "Lists the webhook subscriptions, oldest first, never their secrets.",
		run:      cmdWebhooksList,
	},
	"webhooks create": {
		synopsis: "slipway webhooks create URL [--event T]... [--app A]... [--format json|slack]",
		help: `Subscribes URL to events (--event: types or families such as build.*; default all) of
apps (--app; default all). Its signing secret is printed to stdout this once.`,
		run: cmdWebhooksCreate,
	},
	"webhooks delete": {
		synopsis: "slipway webhooks delete ID",
		help:     "Deletes subscription ID: nothing more is sent to it, retries included.",
		run:      cmdWebhooksDelete,
	},
	"webhooks rotate": {
		synopsis: "slipway webhooks rotate ID",
		help: `Makes a new signing secret for subscription ID and prints it to stdout this once; the old
one keeps signing beside it for a grace period (see --json's previous_secret_expires_at).`,
		run: cmdWebhooksRotate,
	},
	"whoami": {
		synopsis: "slipway whoami",
		help:     "Tells who the token is: its name, id, scopes and the apps it is limited to.",
		run:      cmdWhoami,
	},
	"token create": {
		synopsis: "slipway token create NAME --scope S [--scope S]... [--app A]...",
		help: `Makes an API token named NAME (the actor of what it does) with the scopes read, build,
release, promote, promote:<channel> or admin, limited to the --app apps if any are given.
Its secret is printed to stdout this once; slipway keeps only its hash.`,
		run: cmdTokenCreate,
	},
	"token list": {
		synopsis: "slipway token list",
		help: `Lists the API tokens: names, ids (which history and events record beside the name,
and which no later token of the same name shares), scopes, apps and times, never secrets.`,
		run: cmdTokenList,
	},
	"token revoke": {
		synopsis: "slipway token revoke NAME",
		help:     "Revokes the token NAME at once.",
		run:      cmdTokenRevoke,
	},
}

// commandGroup is a command with subcommands, each an entry of clientCommands named
// "GROUP SUB".
type commandGroup struct {
	subs []string // in the order help names them
	// bare is the command `slipway GROUP` runs with no subcommand; "" when it needs one.
	bare string
}

// commandGroups are the commands that have subcommands.
var commandGroups = map[string]commandGroup{
	"apps":     {subs: []string{"list", "create", "show", "update", "delete"}, bare: "apps list"},
	"webhooks": {subs: []string{"list", "create", "delete", "rotate"}, bare: "webhooks list"},
	"token":    {subs: []string{"create", "list", "revoke"}},
}

// runClient runs the client command args[0] (and, for a group, its subcommand args[1]).
// It reports ok false when args[0] is no client command.
func runClient(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (bool, error) {
	name, rest := args[0], args[1:]
	if g, ok := commandGroups[name]; ok {
		if g.bare == "" && len(rest) > 0 && isHelpFlag(rest[0]) {
			fmt.Fprint(stdout, groupUsage(name))
			return true, nil
		}
		key, used, err := g.subcommand(name, rest)
		if err != nil {
			return true, err
		}
		name, rest = key, rest[used:]
	}
	cmd := clientCommands[name]
	if cmd == nil {
		return false, nil
	}
	e := &cliEnv{getenv: getenv, stdout: stdout, stderr: stderr, now: time.Now}
	return true, cmd.run(ctx, e, cmd, rest)
}

// subcommand is the key in clientCommands of the subcommand that args, the arguments
// after the group's name, start with, and how many of args name it: the bare command
// when they start with a flag, or with nothing.
func (g commandGroup) subcommand(group string, args []string) (string, int, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if g.bare == "" {
			return "", 0, &usageError{fmt.Sprintf("%s needs a subcommand: %s (see slipway help)", group, orList(g.subs))}
		}
		return g.bare, 0, nil
	}
	if !slices.Contains(g.subs, args[0]) {
		return "", 0, &usageError{fmt.Sprintf("unknown %s subcommand %q%s (%s takes %s)", group, args[0], didYouMean(args[0], g.subs), group, orList(g.subs))}
	}
	return group + " " + args[0], 1, nil
}

func isHelpFlag(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// groupUsage lists the synopses of a group's subcommands.
func groupUsage(group string) string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, sub := range commandGroups[group].subs {
		if cmd := clientCommands[group+" "+sub]; cmd != nil {
			fmt.Fprintf(&b, "  %s\n", cmd.synopsis)
		}
	}
	return b.String()
}

// orList is "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// clientUsage is the part of `slipway help` about the client commands and exit statuses.
const clientUsage = `
Client commands (each also takes --url, --token and --json; COMMAND --help shows its flags):
  slipway init [--app A] [DIR]
                            write DIR/slipway.yaml and make the app on the server
  slipway build [DIR] [--app A] [--platform P]... [--version V] [--commit C]
                [--release] [--promote CH] [--follow]
                            pack the module in DIR (default .) and build it, applying
                            DIR/slipway.yaml first; see build --help
  slipway apps list         list the apps (also: slipway apps)
  slipway apps create A [--main M] [--platforms P,...] [--ldflags F] [--base-image REF]
                [--channels dev,staging,prod] [--public] [--auto-promote]
  slipway apps show A       print app A's settings
  slipway apps update A [the flags of apps create]
                            change the settings named, keep the others
  slipway apps delete A
  slipway builds A [--status S]
                            list app A's builds, newest first
  slipway logs A BUILD [--follow]
                            print a build's log; --follow until it ends, exit 1 if it failed
  slipway cancel A BUILD    cancel a queued or running build
  slipway download A (BUILD | --version V | --channel CH) [--platform P]... [-o DIR]
                            save a build's binaries and SHA256SUMS, each file verified
                            (and the build's signatures first, unless --no-verify)
  slipway verify (A@DIGEST | A:TAG | A (BUILD | --version V | --channel CH)) [--key FILE]
                            check a build's image signature, provenance and signed
                            SHA256SUMS; exit 1 if one does not verify
  slipway releases A        list app A's releases, newest first
  slipway channels A        list A's channels and the release each holds
  slipway history A CH      list channel CH's events, newest first
  slipway diff A FROM TO    what changes from release FROM to TO (versions or channels)
  slipway promote A CH (--version V | --from CH2) --reason R [--override]
  slipway rollback A CH [--to V] --reason R
                            roll back; the channel is pinned against auto_promote
  slipway unpin A CH --reason R
  slipway lock A CH --reason R
  slipway unlock A CH --reason R
  slipway gates A CH [V]    what a promotion into CH would meet and miss now (dry run)
  slipway approve A CH V [--reason R] [--revoke]
                            approve release V for CH (or withdraw your approval)
  slipway events [--app A] [--type T] [--follow]
                            list events, newest first; --follow prints them as they happen
  slipway webhooks list     list the webhook subscriptions (also: slipway webhooks)
  slipway webhooks create URL [--event T]... [--app A]... [--format json|slack]
  slipway webhooks delete ID
  slipway webhooks rotate ID
  slipway whoami            the token's name, id, scopes and apps
  slipway token create NAME --scope S [--scope S]... [--app A]...
  slipway token list
  slipway token revoke NAME

The client talks to SLIPWAY_URL (default http://127.0.0.1:8080) with the token in
SLIPWAY_TOKEN; --url and --token override them. Output is aligned tables; --json prints
the API's JSON as received (lists: every page's items in one {"items": [...]}). Lists are
read to the end unless --limit N stops them earlier.

Exit status:
  0  success
  1  the build failed or was canceled; or a signature did not verify; or the server
     failed (5xx); or a local error
  2  usage error: unknown command, bad flag or argument, DIR without go.mod
  3  the server refused the request (4xx); its problem's detail, status and kind are
     printed, with what to do next. This includes a channel that someone else moved
     after it was read (412).
  4  the server could not be reached (connection refused, unknown host, timeout)
`

// clientFlags are the flags every client command takes.
type clientFlags struct {
	url, token string
	json       bool
	limit      int
}

// newFlagSet returns a flag set for cmd with the common flags, and --limit when the
// command lists something that pages.
func newFlagSet(cmd *clientCommand, cf *clientFlags, withLimit bool) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd.synopsis, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cf.url, "url", "", "the server's URL (default $SLIPWAY_URL, else "+defaultServerURL+")")
	fs.StringVar(&cf.token, "token", "", "the API token (default $SLIPWAY_TOKEN); prefer the variable, since flags show in ps")
	fs.BoolVar(&cf.json, "json", false, "print the API's JSON instead of a table")
	if withLimit {
		fs.IntVar(&cf.limit, "limit", 0, "stop after N items (default: all of them)")
	}
	return fs
}

// parse parses args as parseArgs does, then makes the client the flags name.
func (cf *clientFlags) parse(fs *flag.FlagSet, e *cliEnv, cmd *clientCommand, args []string, min, max int) ([]string, *client, error) {
	pos, err := parseArgs(fs, e, cmd, args, min, max)
	if err != nil {
		return nil, nil, err
	}
	c, err := cf.client(e)
	return pos, c, err
}

// parseArgs parses flags anywhere among args (slipway build . --app x) and returns the
// positional arguments; "--" ends the flags. It checks there are between min and max
// positional arguments (max -1: any number).
func parseArgs(fs *flag.FlagSet, e *cliEnv, cmd *clientCommand, args []string, min, max int) ([]string, error) {
	if e.listFlags != nil {
		e.listFlags(fs)
		return nil, errFlagsListed
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printCommandHelp(e.stdout, fs, cmd)
				return nil, errHelpShown
			}
			return nil, &usageError{err.Error() + " (see " + commandName(cmd) + " --help)"}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return nil, &usageError{fmt.Sprintf("usage: %s", cmd.synopsis)}
	}
	return pos, nil
}

// commandName is "slipway build" for the build command, "slipway apps create" for a
// subcommand.
func commandName(cmd *clientCommand) string {
	f := strings.Fields(cmd.synopsis)
	if len(f) > 2 && slices.Contains(commandGroups[f[1]].subs, f[2]) {
		return strings.Join(f[:3], " ")
	}
	return strings.Join(f[:2], " ")
}

func printCommandHelp(w io.Writer, fs *flag.FlagSet, cmd *clientCommand) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n", cmd.synopsis, cmd.help)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprint(w, "\nExit status: 0 success, 1 failed, 2 usage, 3 refused by the server, 4 server unreachable (see slipway help).\n")
}

// client returns the API client the flags and environment describe.
func (cf *clientFlags) client(e *cliEnv) (*client, error) {
	raw, from := cf.url, "--url"
	if raw == "" {
		raw, from = e.getenv("SLIPWAY_URL"), "SLIPWAY_URL"
	}
	if raw == "" {
		raw = defaultServerURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &usageError{fmt.Sprintf("%s=%q is not an http:// or https:// URL of a slipway server", from, redactURL(raw))}
	}
	token := cf.token
	if token == "" {
		token = e.getenv("SLIPWAY_TOKEN")
	}
	return newClient(u, token)
}

// stringList is a flag that may be repeated; each value may also hold several,
// comma-separated.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if p := strings.TrimSpace(part); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// isTerminal reports whether w is a terminal, for the upload progress bar.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ago tells how long before now t was, or t in RFC 3339 when that is over a week.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0 || d >= 7*24*time.Hour:
		return t.UTC().Format(time.RFC3339)
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m ago"
	case d < 24*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h ago"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d ago"
}

// orDash is s, or "-" for nothing.
func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// shortDigest abbreviates a digest to its algorithm and 12 hex digits, for tables.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}
