package api

import (
	"context"
	"fmt"
	"strings"

	"github.com/slipway/slipway/api/portal"
	"github.com/slipway/slipway/release"
)

// portalDiff is what promoting app's channel from release from to release to changes, in
// the lines of the channel page: the same diff GET /v1/apps/{app}/diff answers.
func (s *Server) portalDiff(ctx context.Context, app, from, to string) (portal.Diff, error) {
	if from == "" {
		return portal.Diff{Summary: "The channel holds no release yet: " + to + " would be its first."}, nil
	}
	if from == to {
		return portal.Diff{Summary: "The channel already holds " + to + "."}, nil
	}
	d, err := s.diff(ctx, app, from, to)
	if err != nil {
		return portal.Diff{}, err
	}
	return portalChanges(d), nil
}

// portalChanges lays out a diff as the channel page's lines, with a one-sentence summary.
func portalChanges(d releaseDiff) portal.Diff {
	var out portal.Diff
	add := func(kind, name, before, after string) {
		out.Changes = append(out.Changes, portal.Change{Kind: kind, Name: name, Before: before, After: after})
	}
	if c := d.Commits; c.From != c.To {
		add("commit", "commit", orDash(c.From), orDash(c.To))
	}
	if c := d.GoVersion; c != nil {
		add("go", "Go", c.From, c.To)
	}
	for _, m := range d.Modules {
		switch m.Kind {
		case release.ModuleAdded:
			add("module", m.Path, "", "added "+m.To)
		case release.ModuleRemoved:
			add("module", m.Path, m.From, "removed")
		default:
			add("module", m.Path, m.From, m.To)
		}
	}
	if c := d.BaseDigest; c != nil {
		add("base", "base image", c.From, c.To)
	}
	if c := d.Ldflags; c != nil {
		add("config", "ldflags", orDash(c.From), orDash(c.To))
	}
	for _, sc := range d.Settings {
		add("config", sc.Platform+" "+sc.Key, orDash(sc.From), orDash(sc.To))
	}
	for _, sz := range d.Sizes {
		if sz.Delta != 0 {
			add("platform", sz.Platform+" size", fmt.Sprint(sz.From), fmt.Sprintf("%d (%+d bytes)", sz.To, sz.Delta))
		}
	}
	for _, v := range d.Vulns.Fixed {
		add("vulnerability", v, "present", "fixed")
	}
	for _, v := range d.Vulns.Introduced {
		add("vulnerability", v, "", "introduced")
	}
	sum := d.Summary(d.From.Version, d.To.Version)
	parts := []string{fmt.Sprintf("modules: %d added, %d removed, %d changed", sum.Added, sum.Removed, sum.Changed)}
	if sum.GoVersion != nil {
		parts = append(parts, "Go "+sum.GoVersion.From+" → "+sum.GoVersion.To)
	}
	if !d.Vulns.Available {
		parts = append(parts, "vulnerabilities not compared ("+d.Vulns.Reason+")")
	}
	out.Summary = fmt.Sprintf("From %s to %s: %s.", d.From.Version, d.To.Version, strings.Join(parts, "; "))
	return out
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
