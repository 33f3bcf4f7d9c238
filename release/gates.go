package release

import (
	"context"
	"time"
)

// Gates are the conditions a release must meet to enter a channel. All of a channel's
// gates are evaluated together and reported together; a promotion moves the pointer only
// when every one passes (or an override names a reason).
type Gates struct {
	// Soak is how long the release must have been current in the channel's From, as a
	// Go duration ("24h"); "" for none.
	Soak string `json:"soak,omitempty"`
	// Approvals is how many distinct approvals (scope approve:<channel> or approve) the
	// release needs for this channel; the release's and its build's own actor do not count.
	Approvals int `json:"approvals,omitempty"`
	// Checks are HTTP verification hooks called before the move.
	Checks []Check `json:"checks,omitempty"`
	// Require asks for facts of the release's build: a signature, provenance, no known
	// vulnerabilities.
	Require *Require `json:"require,omitempty"`
	// Windows are the times the channel may (allow) or may not (deny) change.
	Windows []Window `json:"windows,omitempty"`
}

// Check is an HTTP verification hook: slipway POSTs the release and channel to URL, signed
// like a webhook delivery, and the check passes on 2xx and fails on 4xx, 5xx or when no
// answer came within Deadline.
type Check struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Timeout bounds one attempt ("10s"); Deadline bounds all attempts ("1m"). "" takes
	// the defaults.
	Timeout  string `json:"timeout,omitempty"`
	Deadline string `json:"deadline,omitempty"`
}

// Require lists the facts of a release's build a channel insists on.
type Require struct {
	Signed     bool `json:"signed,omitempty"`
	Provenance bool `json:"provenance,omitempty"`
	// Vulns is "none" (no known vulnerability reachable in the binaries), "no-critical",
	// or "" for no requirement.
	Vulns string `json:"vulns,omitempty"`
}

// Window is a recurring span of time in a time zone: Kind "deny" freezes the channel
// during it; "allow" permits moves only during allow windows. A window starts at each
// occurrence of its rule (RRule, an RFC 5545 recurrence rule, or Cron, a five-field cron
// expression) and lasts Duration.
type Window struct {
	Kind     string `json:"kind"`
	RRule    string `json:"rrule,omitempty"`
	Cron     string `json:"cron,omitempty"`
	Duration string `json:"duration"`
	TimeZone string `json:"time_zone,omitempty"` // IANA name; "" is UTC
	Reason   string `json:"reason,omitempty"`
}

// The outcomes of a gate.
const (
	GatePassed  = "passed"
	GateFailed  = "failed"
	GatePending = "pending" // not yet: it may pass later without anyone acting (soak, a window)
)

// GateState is one gate's state for a candidate move.
type GateState struct {
	// Gate names it: soak, approvals, windows, pinned, signed, provenance, vulns, or
	// check:<name>.
	Gate   string `json:"gate"`
	Status string `json:"status"`
	// Detail says in words what is met or missing.
	Detail string `json:"detail"`
	// RetryAt is when the gate may pass by itself (the soak ends, a window opens).
	RetryAt *time.Time `json:"retry_at,omitempty"`
	// CheckedAt is when an external gate (a check, a scan) was evaluated.
	CheckedAt *time.Time `json:"checked_at,omitempty"`
}

// Candidate is a release a promotion would move into a channel.
type Candidate struct {
	App     App
	Channel Channel
	Release Release
}

// Verifier evaluates the gates that need more than Redis: the checks (HTTP hooks) and
// the require gates (signature, provenance, vulnerabilities). It returns one state per
// gate the channel declares among those, and none for the rest. The API wires in the
// implementation, so release/ imports neither builder/ nor webhook/.
type Verifier interface {
	Verify(ctx context.Context, c Candidate) []GateState
}
