package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/openapi"
)

// EventLog is what the API needs of the events streams; *events.Log implements it.
type EventLog interface {
	Apps(ctx context.Context) ([]string, error)
	List(ctx context.Context, apps, types []string, cursor string, limit int) ([]events.Event, string, error)
	Start(ctx context.Context, apps []string) (string, error)
	Read(ctx context.Context, apps []string, cursor string, block time.Duration, count int) ([]events.Event, string, error)
}

var _ EventLog = (*events.Log)(nil)

// eventOptions time the event streams.
type eventOptions struct {
	keepAlive time.Duration // between comments when nothing happens; 0 for 15s
	poll      time.Duration // between reads of the streams; 0 for 250ms
}

// WithEventKeepAlive is how long an event stream stays silent before it sends a
// keep-alive comment. Default 15s.
func WithEventKeepAlive(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errNonPositive("event keep-alive", d)
		}
		o.events.keepAlive = d
		return nil
	}
}

// WithEventPoll is how often an event stream looks for new events. Streams poll rather
// than block in Redis so that each holds a connection of the shared pool only for a
// moment. Default 250ms.
func WithEventPoll(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errNonPositive("event poll interval", d)
		}
		o.events.poll = d
		return nil
	}
}

func errNonPositive(what string, d time.Duration) error {
	return fmt.Errorf("%s %s must be positive", what, d)
}

// appsRefresh is how often a stream over every app looks for new apps.
const appsRefresh = 5 * time.Second

// eventBody is openapi.Event with data kept as the raw JSON it is stored as.
type eventBody struct {
	ID      string            `json:"id"`
	Type    openapi.EventType `json:"type"`
	Time    time.Time         `json:"time"`
	App     string            `json:"app"`
	Actor   string            `json:"actor"`
	ActorID string            `json:"actor_id,omitempty"` // absent from entries written before actor ids were
	Data    json.RawMessage   `json:"data"`
}

func eventJSON(ev events.Event) eventBody {
	return eventBody{ID: ev.ID, Type: openapi.EventType(ev.Type), Time: ev.Time, App: ev.App, Actor: ev.Actor, ActorID: ev.ActorID, Data: ev.Data}
}

// ListEvents implements openapi.ServerInterface: a page of events, or a stream of them
// for Accept: text/event-stream.
func (s *Server) ListEvents(c echo.Context, params openapi.ListEventsParams) error {
	if s.deps.Events == nil {
		return newProblem(openapi.ProblemDependencyUnavailable, "this server has no event log configured")
	}
	types, err := parseTypes(params.Type)
	if err != nil {
		return err
	}
	apps, fixed, err := s.eventApps(c, params.App)
	if err != nil {
		return err
	}
	if wantsEventStream(c.Request()) {
		return s.streamEvents(c, apps, fixed, types, deref(params.LastEventID))
	}
	limit, err := pageLimit(params.Limit)
	if err != nil {
		return err
	}
	evs, next, err := s.deps.Events.List(c.Request().Context(), apps, types, deref(params.Cursor), limit)
	if err != nil {
		return err
	}
	out := struct {
		Items      []eventBody `json:"items"`
		NextCursor string      `json:"next_cursor,omitempty"`
	}{Items: make([]eventBody, len(evs)), NextCursor: next}
	for i, ev := range evs {
		out.Items[i] = eventJSON(ev)
	}
	return c.JSON(http.StatusOK, out)
}

func parseTypes(p *string) ([]string, error) {
	var types []string
	for _, t := range splitList(deref(p)) {
		if !events.ValidTypeFilter(t) {
			return nil, newProblem(openapi.ProblemInvalidParameter,
				"type %q is not an event type (%s) or a family such as build.*", t, strings.Join(events.Types, ", "))
		}
		types = append(types, t)
	}
	return types, nil
}

// eventApps returns the apps whose events the request reads: the one asked for, or
// every app the principal may see. fixed is true for the former.
func (s *Server) eventApps(c echo.Context, app *string) (apps []string, fixed bool, err error) {
	ctx := c.Request().Context()
	if app != nil && *app != "" {
		if err := checkPathName(*app); err != nil {
			return nil, false, err
		}
		if !visibleApp(c, *app) {
			p := c.Get(ctxPrincipal).(*principal)
			return nil, false, newProblem(openapi.ProblemForbidden, "token %s is limited to the apps %s, not %s",
				p.name, strings.Join(p.apps, ", "), *app)
		}
		if _, err := s.deps.Apps.Get(ctx, *app); err != nil {
			return nil, false, err
		}
		return []string{*app}, true, nil
	}
	apps, err = s.visibleApps(c)
	return apps, false, err
}

func (s *Server) visibleApps(c echo.Context) ([]string, error) {
	all, err := s.deps.Events.Apps(c.Request().Context())
	if err != nil {
		return nil, err
	}
	apps := all[:0]
	for _, a := range all {
		if visibleApp(c, a) {
			apps = append(apps, a)
		}
	}
	return apps, nil
}

func wantsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/event-stream") {
			return true
		}
	}
	return false
}

// streamEvents answers with Server-Sent Events until the client goes, the server shuts
// down or the token is revoked. Each event's id is the cursor just after it, so a client
// that reconnects with Last-Event-ID misses nothing and sees nothing twice.
func (s *Server) streamEvents(c echo.Context, apps []string, fixed bool, types []string, last string) error {
	cursor, err := s.tailCursor(c.Request().Context(), apps, last)
	if err != nil {
		return err
	}
	if !beginEventStream(c.Response()) {
		return nil
	}
	revoked, stopWatch := s.watchCredential(c)
	defer stopWatch()
	t := &eventTail{apps: apps, fixed: fixed, types: types, cursor: cursor, lastWrite: time.Now(), refreshed: time.Now()}
	for s.streamGoesOn(c, revoked) {
		s.refreshApps(c, t)
		read, ok := s.sendEvents(c, t)
		if !ok {
			return nil
		}
		if read == 0 && !s.waitForEvents(c, revoked) {
			return nil
		}
	}
	return nil
}

// eventTail is where an event stream is.
type eventTail struct {
	apps      []string // the apps it reads
	fixed     bool     // apps was asked for; else it is every app the caller may see
	types     []string // the filter of event types
	cursor    string   // the tail cursor after the last event read
	lastWrite time.Time
	refreshed time.Time // when apps was last listed
}

// tailCursor is where a stream begins: after Last-Event-ID last, or at the end of the
// apps' streams without one.
func (s *Server) tailCursor(ctx context.Context, apps []string, last string) (string, error) {
	if last == "" {
		return s.deps.Events.Start(ctx, apps)
	}
	if err := events.CheckTailCursor(last); err != nil {
		return "", newProblem(openapi.ProblemInvalidParameter, "Last-Event-ID is not an event id of this server; reconnect without it")
	}
	return last, nil
}

// beginEventStream sends the headers of an event stream and its first comment; false
// when the client is gone.
func beginEventStream(w *echo.Response) bool {
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte(": slipway events\n\n")); err != nil {
		return false
	}
	w.Flush()
	return true
}

// streamGoesOn reports whether a stream may go on: not when the server is shutting
// down, nor once its token is revoked (the stream then gets its last, error event).
func (s *Server) streamGoesOn(c echo.Context, revoked <-chan struct{}) bool {
	select {
	case <-s.stopStreams:
		return false
	case <-revoked:
		s.endRevoked(c)
		return false
	default:
		return true
	}
}

// refreshApps lists again, now and then, the apps a stream over every app the caller may
// see reads, so that it takes in new ones.
func (s *Server) refreshApps(c echo.Context, t *eventTail) {
	if t.fixed || time.Since(t.refreshed) < appsRefresh {
		return
	}
	if more, err := s.visibleApps(c); err == nil {
		t.apps = more
	}
	t.refreshed = time.Now()
}

// sendEvents reads the events after t's cursor and sends those t's filter passes, or a
// keep-alive comment once the stream has been silent long enough. It returns how many
// events it read, and false when the stream has ended: the client went away, or reading
// failed (the client reconnects with its Last-Event-ID).
func (s *Server) sendEvents(c echo.Context, t *eventTail) (int, bool) {
	ctx := c.Request().Context()
	evs, next, err := s.deps.Events.Read(ctx, t.apps, t.cursor, 0, 100)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "streaming events", "err", err, "request_id", requestID(c))
		}
		return 0, false
	}
	t.cursor = next
	msg := eventMessages(evs, t.types)
	if msg == "" && time.Since(t.lastWrite) >= s.eventKeepAlive() {
		msg = ": keep-alive\n\n"
	}
	if msg != "" {
		w := c.Response()
		if _, err := w.Write([]byte(msg)); err != nil {
			return 0, false // the client went away
		}
		w.Flush()
		t.lastWrite = time.Now()
	}
	return len(evs), true
}

// eventMessages are the Server-Sent Events of the events types passes, each with the
// cursor after it as its id.
func eventMessages(evs []events.Event, types []string) string {
	var b strings.Builder
	for _, ev := range evs {
		if !events.MatchType(types, ev.Type) {
			continue
		}
		data, err := json.Marshal(eventJSON(ev))
		if err != nil {
			continue
		}
		b.WriteString("id: " + ev.Cursor + "\nevent: " + ev.Type + "\ndata: ")
		b.Write(data)
		b.WriteString("\n\n")
	}
	return b.String()
}

// waitForEvents waits one poll interval before the next read; false when the stream
// ends meanwhile.
func (s *Server) waitForEvents(c echo.Context, revoked <-chan struct{}) bool {
	poll := s.opts.events.poll
	if poll == 0 {
		poll = 250 * time.Millisecond
	}
	t := time.NewTimer(poll)
	defer t.Stop()
	select {
	case <-c.Request().Context().Done():
		return false
	case <-s.stopStreams:
		return false
	case <-revoked:
		s.endRevoked(c)
		return false
	case <-t.C:
		return true
	}
}

// eventKeepAlive is how long a stream stays silent before it sends a comment.
func (s *Server) eventKeepAlive() time.Duration {
	if s.opts.events.keepAlive == 0 {
		return 15 * time.Second
	}
	return s.opts.events.keepAlive
}

// endRevoked writes the last message of an event stream whose token was revoked: an
// error event whose data is the problem a new request with the token gets. It has no id,
// so Last-Event-ID still names the last event delivered.
func (s *Server) endRevoked(c echo.Context) {
	kind := openapi.ProblemUnauthorized
	doc := openapi.Problem{
		Type:      kind,
		Title:     kinds[kind].title,
		Status:    kinds[kind].status,
		Detail:    ptr("the token of this stream was revoked; the stream has ended. Reconnect with a valid token (and Last-Event-ID to resume)"),
		Instance:  ptr(c.Request().URL.Path),
		RequestId: ptr(requestID(c)),
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return
	}
	w := c.Response()
	if _, err := w.Write([]byte("event: error\ndata: " + string(data) + "\n\n")); err == nil {
		w.Flush()
	}
}

// CloseStreams ends every event stream, now and from now on; call it when the server
// shuts down so that open streams do not hold the shutdown back.
func (s *Server) CloseStreams() {
	s.closeStreams.Do(func() { close(s.stopStreams) })
}
