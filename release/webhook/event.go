package webhook

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The event types slipway writes.
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
)

// Types lists every event type.
var Types = []string{
	BuildQueued, BuildSucceeded, BuildFailed, BuildCanceled, ReleaseCreated,
	ChannelPromoted, ChannelRolledBack, ChannelLocked, ChannelUnlocked,
}

// KnownType reports whether t is one of Types.
func KnownType(t string) bool { return slices.Contains(Types, t) }

// Event is one state change of an app, as its events stream holds it.
type Event struct {
	ID      string          `json:"id"` // a ULID
	Type    string          `json:"type"`
	Time    time.Time       `json:"time"`
	App     string          `json:"app"`
	Actor   string          `json:"actor"`
	ActorID string          `json:"actor_id,omitempty"` // who Actor is: a token's id, admin or anonymous; "" on entries written before ids were recorded
	Data    json.RawMessage `json:"data"`               // the resource after the change

	// StreamID is the entry's id in the app's stream ("<ms>-<seq>").
	StreamID string `json:"-"`
	// Cursor, on events Log.Read returns, is the position just after this event:
	// reading from it again yields exactly the events that follow.
	Cursor string `json:"-"`
}

// decodeEvent reads a stream entry as the scripts write it.
func decodeEvent(app string, m redis.XMessage) Event {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	ev := Event{ID: str("id"), Type: str("type"), App: str("app"), Actor: str("actor"), ActorID: str("actor_id"), StreamID: m.ID}
	if ev.App == "" {
		ev.App = app
	}
	if ev.ID == "" {
		ev.ID = app + "-" + m.ID
	}
	ev.Time, _ = time.Parse(time.RFC3339Nano, str("time"))
	data := str("data")
	switch {
	case data == "":
		ev.Data = json.RawMessage("{}")
	case json.Valid([]byte(data)):
		ev.Data = json.RawMessage(data)
	default:
		b, _ := json.Marshal(data)
		ev.Data = b
	}
	return ev
}

// matchType reports whether an event of type t passes a filter of types ("build.*"
// stands for every build event); an empty filter passes everything.
func matchType(filter []string, t string) bool {
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

// MatchType reports whether an event of type t passes a filter of types, each a type
// or a family such as "build.*"; an empty filter passes everything.
func MatchType(filter []string, t string) bool { return matchType(filter, t) }

// ValidTypeFilter reports whether f is an event type or a family of them ("build.*").
func ValidTypeFilter(f string) bool {
	if KnownType(f) {
		return true
	}
	fam, ok := strings.CutSuffix(f, ".*")
	return ok && slices.ContainsFunc(Types, func(t string) bool { return strings.HasPrefix(t, fam+".") })
}

// streamID is a stream entry id, "<ms>-<seq>".
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

func (id streamID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

func (id streamID) less(o streamID) bool {
	return id.ms < o.ms || (id.ms == o.ms && id.seq < o.seq)
}

// next is the smallest id after id.
func (id streamID) next() streamID {
	if id.seq == ^uint64(0) {
		return streamID{id.ms + 1, 0}
	}
	return streamID{id.ms, id.seq + 1}
}
