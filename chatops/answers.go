package chatops

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slipway/slipway/release"
)

// The answers to commands, written for the person who typed one. Names, versions and
// reasons come from users; Platform.Message makes them safe to show.

// HelpText lists the commands under command (the slash command, "/slipway").
func HelpText(command string) string {
	var b strings.Builder
	b.WriteString("slipway's commands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "• `%s`: %s\n", Usage(command, c.verb), c.does)
	}
	b.WriteString("Moves need the promote scope (or promote:CH for channel CH) in your chat user's mapping, and say why: " +
		"the reason and your chat user go into the channel's history. Approvals need approve (or approve:CH), " +
		"--override needs override (or override:CH).")
	return b.String()
}

// UsageText says what is wrong with a command that did not parse, and how to write it.
func UsageText(command string, err error) string {
	var u *UsageError
	if !errors.As(err, &u) {
		return err.Error()
	}
	if u.Verb == "" {
		return fmt.Sprintf("%s; `%s help` lists the commands.", u.Problem, command)
	}
	return fmt.Sprintf("%s. Usage: `%s`", u.Problem, Usage(command, u.Verb))
}

// UnmappedText answers a chat user no mapping names.
func UnmappedText(r Request) string {
	return fmt.Sprintf("You are not a slipway user yet: ask an admin to map %s to the scopes you need "+
		"(`PUT /v1/chatops/users/%s`).", r.User(), r.User())
}

// ScopeRefusedText answers a user whose mapping lacks the scope c needs.
func ScopeRefusedText(actor string, c Command, held []string) string {
	need := c.Scope()
	if c.Override {
		need = "override"
	}
	if need == "promote" || need == "approve" || need == "override" {
		need = need + " (or " + need + ":" + c.Channel + ")"
	}
	return fmt.Sprintf("%s may not %s %s %s: that needs the %s scope, and your mapping holds %s.",
		actor, c.Verb, c.App, c.Channel, need, strings.Join(held, ", "))
}

// AppRefusedText answers a user whose mapping is limited to other apps.
func AppRefusedText(actor, app string, apps []string) string {
	return fmt.Sprintf("%s is limited to the apps %s, not %s.", actor, strings.Join(apps, ", "), app)
}

// RateText answers a user over the rate limit.
func RateText(actor string, wait time.Duration) string {
	return fmt.Sprintf("%s sends commands faster than slipway takes them; retry in %d s.", actor, int(wait.Seconds())+1)
}

// StatusText lists an app's channels and what each holds.
func StatusText(app string, chans []release.ChannelState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:", app)
	for _, ch := range chans {
		fmt.Fprintf(&b, "\n• %s: ", ch.Name)
		if ch.Release == "" {
			b.WriteString("no release yet")
		} else {
			b.WriteString(ch.Release)
		}
		if ch.UpdatedBy != "" && ch.UpdatedAt != nil {
			fmt.Fprintf(&b, " (by %s, %s)", ch.UpdatedBy, ch.UpdatedAt.UTC().Format("2006-01-02 15:04 UTC"))
		}
		if ch.Locked {
			fmt.Fprintf(&b, ", locked: %s", ch.LockReason)
		}
	}
	if len(chans) == 0 {
		b.WriteString(" no channels")
	}
	return b.String()
}

// ReleasesText lists an app's newest releases, and the channels each is in.
func ReleasesText(app string, rels []release.Release) string {
	if len(rels) == 0 {
		return app + " has no releases yet."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s's newest releases:", app)
	for _, r := range rels {
		fmt.Fprintf(&b, "\n• %s (build %s, %s, by %s)", r.Version, r.BuildID, r.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"), r.CreatedBy)
		if len(r.Channels) > 0 {
			fmt.Fprintf(&b, " in %s", strings.Join(r.Channels, ", "))
		}
	}
	return b.String()
}

// MovedText says what a move did, and to whom it is shown: everyone in the channel when
// it changed something, the user alone when the channel already was as asked.
func MovedText(c Command, res release.MoveResult) (ResponseType, string) {
	if !res.Changed || res.Event == nil {
		what := "holds " + orNothing(res.Channel.Release)
		if c.Verb == VerbLock || c.Verb == VerbUnlock {
			what = "is " + c.Verb.past() + " already"
		}
		return Ephemeral, fmt.Sprintf("%s %s %s; nothing changed.", c.App, c.Channel, what)
	}
	ev := res.Event
	because := ": " + ev.Reason
	switch c.Verb {
	case VerbPromote:
		text := fmt.Sprintf("%s %s promoted to %s by %s%s (it held %s)", c.App, ev.ToVersion, c.Channel, ev.Actor, because, orNothing(ev.FromVersion))
		if ev.Override != nil {
			var gates []string
			for _, g := range ev.Override.Gates {
				gates = append(gates, g.Gate+" "+g.Status+": "+g.Detail)
			}
			text += "\n⚠ OVERRIDE of the gates that did not pass: " + strings.Join(gates, "; ")
		}
		return InChannel, text
	case VerbRollback:
		return InChannel, fmt.Sprintf("%s %s rolled back from %s to %s by %s%s", c.App, c.Channel, orNothing(ev.FromVersion), ev.ToVersion, ev.Actor, because)
	}
	return InChannel, fmt.Sprintf("%s %s %s by %s%s", c.App, c.Channel, c.Verb.past(), ev.Actor, because)
}

// ApprovedText says what an approval did: shown to everyone when it is new and counts.
func ApprovedText(c Command, ap release.Approval, created bool) (ResponseType, string) {
	switch {
	case !created:
		return Ephemeral, fmt.Sprintf("You approved %s %s for %s already, at %s.", c.App, ap.Version, c.Channel, ap.At.UTC().Format("2006-01-02 15:04 UTC"))
	case !ap.Counts:
		return Ephemeral, fmt.Sprintf("Your approval of %s %s for %s is recorded, but it does not count: %s.", c.App, ap.Version, c.Channel, ap.Note)
	}
	because := ""
	if ap.Reason != "" {
		because = ": " + ap.Reason
	}
	return InChannel, fmt.Sprintf("%s %s approved for %s by %s%s", c.App, ap.Version, c.Channel, ap.Actor, because)
}

// StaleText is the If-Match answer in chat words: the channel moved between the read of
// its generation and the move, so nothing was changed.
func StaleText(command string, c Command, cur release.ChannelState) string {
	by := ""
	if cur.UpdatedBy != "" {
		by = " by " + cur.UpdatedBy
	}
	return fmt.Sprintf("%s %s changed while your %s was on its way: it was moved%s and holds %s now (generation %d). "+
		"Nothing was changed; check `%s status %s` and send the command again if it still stands.",
		c.App, c.Channel, c.Verb, by, orNothing(cur.Release), cur.Generation, command, c.App)
}

// FailedText says why a command was refused or failed; detail is the API's problem
// detail for the error.
func FailedText(c Command, title, detail string) string {
	what := strings.Join(strings.Fields(string(c.Verb)+" "+c.App+" "+c.Channel), " ")
	return fmt.Sprintf("%s failed: %s: %s", what, title, detail)
}

// DiffText answers diff: what changes from the release channel c.Channel holds to the
// one c.Other holds, in a few lines.
func DiffText(c Command, d release.DiffSummary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (%s) → %s (%s):", c.App, c.Channel, d.FromVersion, c.Other, d.ToVersion)
	if d.GoVersion != nil {
		fmt.Fprintf(&b, "\n• Go %s → %s", d.GoVersion.From, d.GoVersion.To)
	}
	fmt.Fprintf(&b, "\n• modules: %s", moduleCounts(d))
	for _, m := range d.Modules {
		fmt.Fprintf(&b, "\n  %s", ModuleLine(m))
	}
	if d.MoreModules > 0 {
		fmt.Fprintf(&b, "\n  and %d more", d.MoreModules)
	}
	if d.BaseDigest != nil {
		fmt.Fprintf(&b, "\n• base image %s → %s", d.BaseDigest.From, d.BaseDigest.To)
	}
	if d.Commits.From != d.Commits.To {
		fmt.Fprintf(&b, "\n• commits %s → %s", orUnknown(d.Commits.From), orUnknown(d.Commits.To))
	}
	return b.String()
}

// DiffLine is what a promotion changes, in one line for its answer.
func DiffLine(d release.DiffSummary) string {
	s := fmt.Sprintf("Changes from %s: modules %s", d.FromVersion, moduleCounts(d))
	if d.GoVersion != nil {
		s += fmt.Sprintf(", Go %s → %s", d.GoVersion.From, d.GoVersion.To)
	}
	if len(d.Modules) > 0 {
		lines := make([]string, len(d.Modules))
		for i, m := range d.Modules {
			lines[i] = ModuleLine(m)
		}
		s += " (" + strings.Join(lines, "; ")
		if d.MoreModules > 0 {
			s += fmt.Sprintf("; and %d more", d.MoreModules)
		}
		s += ")"
	}
	return s
}

// ModuleLine is one module change as go mod tools show it: "+ path v1", "- path v1",
// "~ path v1 → v2".
func ModuleLine(m release.ModuleChange) string {
	switch m.Kind {
	case release.ModuleAdded:
		return "+ " + m.Path + " " + withReplace(m.To, m.ToReplace)
	case release.ModuleRemoved:
		return "- " + m.Path + " " + withReplace(m.From, m.FromReplace)
	}
	return "~ " + m.Path + " " + withReplace(m.From, m.FromReplace) + " → " + withReplace(m.To, m.ToReplace)
}

func withReplace(version, replace string) string {
	if replace == "" {
		return version
	}
	return version + " => " + replace
}

func moduleCounts(d release.DiffSummary) string {
	if d.Added+d.Removed+d.Changed == 0 {
		return "unchanged"
	}
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{d.Changed, "changed"}, {d.Added, "added"}, {d.Removed, "removed"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return strings.Join(parts, ", ")
}

func orUnknown(s string) string {
	if s == "" {
		return "(none recorded)"
	}
	return s
}

// WorkingText answers a move that takes longer than the chat waits: its answer comes
// later.
func WorkingText(c Command) string {
	return fmt.Sprintf("Working on it: %s %s %s. The answer follows here.", c.Verb, c.App, c.Channel)
}

// RetriedText answers the chat service's retry of a command that is still being carried
// out: it is not done twice.
func RetriedText(c Command) string {
	return fmt.Sprintf("Still working on %s %s %s, which was sent again; it is done once, and its answer follows.", c.Verb, c.App, c.Channel)
}

func (v Verb) past() string {
	switch v {
	case VerbLock:
		return "locked"
	case VerbUnlock:
		return "unlocked"
	}
	return string(v) + "d"
}

func orNothing(v string) string {
	if v == "" {
		return "no release"
	}
	return v
}
