package events

import (
	"encoding/json"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"
)

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

// NewID returns a new event id: a ULID with time t, so that ids sort by time.
func NewID(t time.Time) string {
	return ulid.MustNew(ulid.Timestamp(t), ulid.DefaultEntropy()).String()
}

// StreamMS returns the millisecond part of the event's stream id: the Redis time at
// which it was written. It is false when StreamID is not a stream id.
func (e Event) StreamMS() (uint64, bool) {
	id, ok := parseStreamID(e.StreamID)
	return id.ms, ok
}

// The fields of a stream entry, in the order the writer appends them (see Script).
const (
	fieldID      = "id"
	fieldType    = "type"
	fieldApp     = "app"
	fieldActor   = "actor"
	fieldActorID = "actor_id"
	fieldTime    = "time"
	fieldData    = "data"
)

// Decode reads an entry of app's stream as the writer appends it. The event's App is
// always app, since the stream says whose event it is.
func Decode(app string, m redis.XMessage) Event {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	ev := Event{ID: str(fieldID), Type: str(fieldType), App: app, Actor: str(fieldActor), ActorID: str(fieldActorID), StreamID: m.ID}
	if ev.ID == "" {
		ev.ID = app + "-" + m.ID
	}
	ev.Time, _ = time.Parse(time.RFC3339Nano, str(fieldTime))
	data := str(fieldData)
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
