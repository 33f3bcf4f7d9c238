package events

import (
	"cmp"
	"encoding/base64"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

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

func (id streamID) compare(o streamID) int {
	if c := cmp.Compare(id.ms, o.ms); c != 0 {
		return c
	}
	return cmp.Compare(id.seq, o.seq)
}

// next is the smallest id after id.
func (id streamID) next() streamID {
	if id.seq == ^uint64(0) {
		return streamID{id.ms + 1, 0}
	}
	return streamID{id.ms, id.seq + 1}
}

// entry is an event with its parsed stream id.
type entry struct {
	ev Event
	id streamID
}

// compare orders entries as the streams interleave: by stream id, then by app.
func (e entry) compare(o entry) int {
	if c := e.id.compare(o.id); c != 0 {
		return c
	}
	return strings.Compare(e.ev.App, o.ev.App)
}

// entries decodes the messages of app's stream, skipping any whose id is not a stream id.
func entries(app string, msgs []redis.XMessage) []entry {
	out := make([]entry, 0, len(msgs))
	for _, m := range msgs {
		if id, ok := parseStreamID(m.ID); ok {
			out = append(out, entry{Decode(app, m), id})
		}
	}
	return out
}

// position is a tail cursor: the last entry read of each stream it names, and the
// time (ms) from which streams it does not name are read.
type position struct {
	since   uint64
	streams map[string]streamID
}

// resume returns the position a read of apps from p begins at (p without the streams of
// other apps), and the id after which the read takes each app's stream.
func (p position) resume(apps []string) (position, []string) {
	next := position{since: p.since, streams: map[string]streamID{}}
	after := make([]string, len(apps))
	for i, app := range apps {
		id, ok := p.streams[app]
		if ok {
			next.streams[app] = id
		} else if p.since > 0 {
			id = streamID{p.since - 1, ^uint64(0)}
		}
		after[i] = id.String()
	}
	return next, after
}

var appName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidApp reports whether s can name an app, and so an events stream: a DNS label.
func ValidApp(s string) bool { return appName.MatchString(s) }

// Cursors are base64url text: a kind ("a" for tails, "b" for pages), then for tails the
// since time, then app=ms-seq entries in app order, separated by ';'.
func encodeCursor(kind string, head string, m map[string]streamID) string {
	var b strings.Builder
	b.WriteString(kind)
	b.WriteString(head)
	for _, app := range slices.Sorted(maps.Keys(m)) {
		b.WriteByte(';')
		b.WriteString(app)
		b.WriteByte('=')
		b.WriteString(m[app].String())
	}
	return base64.RawURLEncoding.EncodeToString([]byte(b.String()))
}

func decodeCursor(kind, s string) (head string, m map[string]streamID, err error) {
	if len(s) > 1<<20 {
		return "", nil, errForeignCursor
	}
	raw, derr := base64.RawURLEncoding.DecodeString(s)
	if derr != nil || !strings.HasPrefix(string(raw), kind) {
		return "", nil, errForeignCursor
	}
	parts := strings.Split(string(raw)[len(kind):], ";")
	m = map[string]streamID{}
	for _, p := range parts[1:] {
		app, id, ok := strings.Cut(p, "=")
		sid, okID := parseStreamID(id)
		if !ok || !okID || !appName.MatchString(app) {
			return "", nil, errForeignCursor
		}
		m[app] = sid
	}
	return parts[0], m, nil
}

func (p position) encode() string {
	return encodeCursor("a", strconv.FormatUint(p.since, 10), p.streams)
}

func decodePosition(s string) (position, error) {
	head, m, err := decodeCursor("a", s)
	if err != nil {
		return position{}, err
	}
	since, perr := strconv.ParseUint(head, 10, 64)
	if perr != nil {
		return position{}, errForeignCursor
	}
	return position{since: since, streams: m}, nil
}

func encodeBounds(m map[string]streamID) string { return encodeCursor("b", "", m) }

func decodeBounds(s string) (map[string]streamID, error) {
	head, m, err := decodeCursor("b", s)
	if err == nil && head != "" {
		err = errForeignCursor
	}
	return m, err
}
