package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/slipway/slipway/openapi"
)

// cmdDiff is `slipway diff A FROM TO`.
func cmdDiff(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	pos, c, err := cf.parse(fs, e, cmd, args, 3, 3)
	if err != nil {
		return err
	}
	app, from, to := pos[0], pos[1], pos[2]
	r, err := c.api.GetDiffWithResponse(ctx, app, &openapi.GetDiffParams{From: from, To: to})
	if err != nil {
		return fmt.Errorf("comparing %s %s with %s: %w", app, from, to, err)
	}
	if r.JSON200 == nil {
		return unexpected("comparing releases", r.HTTPResponse, r.Body)
	}
	if cf.json {
		return writeJSON(e.stdout, r.Body)
	}
	return writeDiff(e.stdout, app, r.JSON200)
}

// writeDiff prints a diff for people: one line per fact, "unchanged" where it did not
// change, and the module changes as go tools show them (+ added, - removed, ~ changed).
func writeDiff(w io.Writer, app string, d *openapi.ReleaseDiff) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s → %s\n", app, diffSideName(d.From), diffSideName(d.To))
	row := func(key, value string) { fmt.Fprintf(&b, "%-9s %s\n", key, value) }
	row("builds", d.From.BuildId+" → "+d.To.BuildId)
	row("commits", orNoCommit(d.From.Commit)+" → "+orNoCommit(d.To.Commit))
	row("go", valueChange(d.GoVersion))
	if d.MainModule != nil {
		row("main", valueChange(d.MainModule))
	}
	row("modules", moduleCounts(d.Modules))
	for _, m := range d.Modules {
		fmt.Fprintf(&b, "  %s\n", moduleLine(m))
	}
	if d.BaseImage != nil {
		row("base ref", valueChange(d.BaseImage))
	}
	row("base", valueChange(d.BaseDigest))
	row("ldflags", valueChange(d.Ldflags))
	if len(d.Settings) == 0 {
		row("settings", "unchanged")
	} else {
		row("settings", fmt.Sprintf("%d changed", len(d.Settings)))
		for _, s := range d.Settings {
			fmt.Fprintf(&b, "  %s %s: %s → %s\n", s.Platform, s.Key, orUnset(s.From), orUnset(s.To))
		}
	}
	for i, s := range d.Sizes {
		key := ""
		if i == 0 {
			key = "sizes"
		}
		row(key, fmt.Sprintf("%s %d → %d (%+d B)", s.Platform, s.From, s.To, s.Delta))
	}
	switch {
	case !d.Licenses.Known:
		row("licenses", "unknown: "+deref(d.Licenses.Reason))
	case len(d.Licenses.Changes) == 0:
		row("licenses", "unchanged")
	default:
		row("licenses", fmt.Sprintf("%d changed", len(d.Licenses.Changes)))
		for _, l := range d.Licenses.Changes {
			fmt.Fprintf(&b, "  %s: %s → %s\n", l.Path, orUnset(l.From), orUnset(l.To))
		}
	}
	switch {
	case !d.Vulns.Available:
		row("vulns", "unknown: "+deref(d.Vulns.Reason))
	case len(idList(d.Vulns.Fixed))+len(idList(d.Vulns.Introduced)) == 0:
		row("vulns", "unchanged")
	default:
		row("vulns", fmt.Sprintf("%d fixed, %d introduced", len(idList(d.Vulns.Fixed)), len(idList(d.Vulns.Introduced))))
		for _, v := range idList(d.Vulns.Fixed) {
			fmt.Fprintf(&b, "  - %s\n", v)
		}
		for _, v := range idList(d.Vulns.Introduced) {
			fmt.Fprintf(&b, "  + %s\n", v)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// diffSideName is a release of a diff: "1.0.0", or "1.0.0 (prod)" when named by its channel.
func diffSideName(s openapi.DiffSide) string {
	if s.Channel != nil && *s.Channel != "" {
		return s.Version + " (" + *s.Channel + ")"
	}
	return s.Version
}

func valueChange(c *openapi.ValueChange) string {
	if c == nil {
		return "unchanged"
	}
	return orUnset(c.From) + " → " + orUnset(c.To)
}

// moduleLine is one module change: "+ path v1", "- path v1", "~ path v1 → v2", with
// " => replacement" after a replaced module's version.
func moduleLine(m openapi.ModuleChange) string {
	side := func(v, r *string) string {
		s := deref(v)
		if r != nil && *r != "" {
			s += " => " + *r
		}
		return s
	}
	switch m.Kind {
	case openapi.Added:
		return "+ " + m.Path + " " + side(m.To, m.ToReplace)
	case openapi.Removed:
		return "- " + m.Path + " " + side(m.From, m.FromReplace)
	}
	return "~ " + m.Path + " " + side(m.From, m.FromReplace) + " → " + side(m.To, m.ToReplace)
}

func moduleCounts(ms []openapi.ModuleChange) string {
	n := map[openapi.ModuleChangeKind]int{}
	for _, m := range ms {
		n[m.Kind]++
	}
	var parts []string
	for _, k := range []openapi.ModuleChangeKind{openapi.Changed, openapi.Added, openapi.Removed} {
		if n[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
		}
	}
	if len(parts) == 0 {
		return "unchanged"
	}
	return strings.Join(parts, ", ")
}

func orUnset(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func orNoCommit(s *string) string {
	if s == nil || *s == "" {
		return "(no commit)"
	}
	return *s
}

func idList(l *[]string) []string {
	if l == nil {
		return nil
	}
	return *l
}
