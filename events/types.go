package events

import (
	"slices"
	"strings"
)

// The event types slipway writes. Scripts get them as arguments, never as Lua literals.
const (
	BuildQueued       = "build.queued"
	BuildSucceeded    = "build.succeeded"
	BuildFailed       = "build.failed"
	BuildCanceled     = "build.canceled"
	ReleaseCreated    = "release.created"
	ChannelPromoted   = "channel.promoted"
	ChannelRolledBack = "channel.rolled_back"
	ChannelLocked     = "channel.locked"
	ChannelUnlocked   = "channel.unlocked"
	ChannelUnpinned   = "channel.unpinned"
	ApprovalGranted   = "approval.granted"
	ApprovalRevoked   = "approval.revoked"
)

// Types lists every event type.
var Types = []string{
	BuildQueued, BuildSucceeded, BuildFailed, BuildCanceled, ReleaseCreated,
	ChannelPromoted, ChannelRolledBack, ChannelLocked, ChannelUnlocked, ChannelUnpinned,
	ApprovalGranted, ApprovalRevoked,
}

// MatchType reports whether an event of type t passes a filter of types, each a type
// or a family such as "build.*"; an empty filter passes everything.
func MatchType(filter []string, t string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if f == t || f == "*" {
			return true
		}
		if fam, ok := strings.CutSuffix(f, ".*"); ok && strings.HasPrefix(t, fam+".") {
			return true
		}
	}
	return false
}

// ValidTypeFilter reports whether f is an event type or a family of them ("build.*").
func ValidTypeFilter(f string) bool {
	if slices.Contains(Types, f) {
		return true
	}
	fam, ok := strings.CutSuffix(f, ".*")
	return ok && slices.ContainsFunc(Types, func(t string) bool { return strings.HasPrefix(t, fam+".") })
}
