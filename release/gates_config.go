package release

import (
	"fmt"
	"net/url"
	"time"
)

// Limits on a channel's gates.
const (
	MaxApprovals = 10
	MaxChecks    = 16
	MaxWindows   = 16
)

// validateGates checks a channel's gates; field is the channel's path, such as
// "channels[2]".
func validateGates(field string, ch Channel, verr *ValidationError) {
	if ch.AutoPromote && ch.From == "" {
		verr.Add(field+".auto_promote", fmt.Sprintf("channel %q has no from; auto_promote moves what the from channel holds, so name one", ch.Name))
	}
	g := ch.Gates
	if g == nil {
		return
	}
	field += ".gates"
	if g.Soak != "" {
		d, err := time.ParseDuration(g.Soak)
		switch {
		case err != nil:
			verr.Add(field+".soak", fmt.Sprintf("%q is not a duration, such as \"24h\" or \"90m\"", g.Soak))
		case d <= 0:
			verr.Add(field+".soak", "must be longer than 0")
		case d > maxSoak:
			verr.Add(field+".soak", "at most 90 days (2160h)")
		case ch.From == "":
			verr.Add(field+".soak", fmt.Sprintf("channel %q has no from: a soak is time spent in the from channel, so name one", ch.Name))
		}
	}
	if g.Approvals < 0 || g.Approvals > MaxApprovals {
		verr.Add(field+".approvals", fmt.Sprintf("must be from 0 to %d", MaxApprovals))
	}
	if len(g.Checks) > MaxChecks {
		verr.Add(field+".checks", fmt.Sprintf("at most %d checks", MaxChecks))
	}
	names := map[string]int{}
	for i, c := range g.Checks {
		f := fmt.Sprintf("%s.checks[%d]", field, i)
		if err := ValidateName(c.Name); err != nil {
			verr.Add(f+".name", err.Error())
		} else if j, dup := names[c.Name]; dup {
			verr.Add(f+".name", fmt.Sprintf("%q repeats checks[%d]", c.Name, j))
		} else {
			names[c.Name] = i
		}
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			verr.Add(f+".url", fmt.Sprintf("%q is not an absolute http or https URL", c.URL))
		}
		for _, d := range []struct{ name, v string }{{"timeout", c.Timeout}, {"deadline", c.Deadline}} {
			if d.v == "" {
				continue
			}
			if dur, err := time.ParseDuration(d.v); err != nil || dur <= 0 || dur > time.Hour {
				verr.Add(f+"."+d.name, fmt.Sprintf("%q is not a duration from 1ms to 1h, such as \"10s\"", d.v))
			}
		}
	}
	if r := g.Require; r != nil {
		switch r.Vulns {
		case "", "none", "no-critical":
		default:
			verr.Add(field+".require.vulns", fmt.Sprintf("%q is not one of none, no-critical", r.Vulns))
		}
	}
	if len(g.Windows) > MaxWindows {
		verr.Add(field+".windows", fmt.Sprintf("at most %d windows", MaxWindows))
	}
	for i, w := range g.Windows {
		_, errs := compileWindow(w)
		for _, e := range errs {
			verr.Add(fmt.Sprintf("%s.windows[%d].%s", field, i, e.Field), e.Detail)
		}
	}
}
