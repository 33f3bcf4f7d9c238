package api_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// sseEvent is one event of a stream.
type sseEvent struct {
	id, event string
	data      openapi.Event
}

// stream is an open event stream.
type stream struct {
	resp     *http.Response
	events   chan sseEvent
	comments chan string
}

func (e *env) stream(path string, header map[string]string) *stream {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		e.t.Fatalf("GET %s (event stream) = %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{resp: resp, events: make(chan sseEvent, 1000), comments: make(chan string, 1000)}
	e.t.Cleanup(func() { resp.Body.Close() })
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.id != "" {
					s.events <- cur
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, ":"):
				s.comments <- line
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(line[6:]), &cur.data)
			}
		}
		close(s.events)
	}()
	return s
}

func (s *stream) next(t *testing.T) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return sseEvent{}
}

// move locks or unlocks a channel of hello through the API: one event each.
func (e *env) move(i int) {
	e.t.Helper()
	action := "lock"
	if i%2 == 1 {
		action = "unlock"
	}
	if r := e.do("POST", "/v1/apps/hello/channels/dev/"+action, nil, `{"reason":"move `+itoa(int64(i))+`"}`); r.status != 200 {
		e.t.Fatalf("%s = %d %s", action, r.status, r.body)
	}
}

func TestEventStreamResumes(t *testing.T) {
	e := newEventsEnv(t, storetest.Redis(t), nil, api.WithEventPoll(20*time.Millisecond), api.WithEventKeepAlive(200*time.Millisecond))
	if r := e.do("PUT", "/v1/apps/hello", nil, `{}`); r.status != 201 {
		t.Fatalf("PUT app = %d", r.status)
	}
	e.move(0) // before the stream: not in it
	s := e.stream("/v1/events?app=hello", nil)
	for i := 1; i <= 5; i++ {
		e.move(i)
	}
	var first []sseEvent
	for range 5 {
		first = append(first, s.next(t))
	}
	for i, ev := range first {
		want := []string{"channel.unlocked", "channel.locked"}[i%2]
		if ev.event != want || string(ev.data.Type) != want || ev.data.App != "hello" || ev.data.Actor != "anonymous" ||
			ev.data.Data["channel"] != "dev" || ev.data.Id == "" {
			t.Errorf("event %d = %+v, want %s of hello/dev", i+1, ev, want)
		}
	}
	s.resp.Body.Close()

	e.move(6)
	e.move(7)
	again := e.stream("/v1/events?app=hello", map[string]string{"Last-Event-ID": first[1].id})
	var got []string
	for range 5 {
		got = append(got, again.next(t).data.Id)
	}
	want := []string{first[2].data.Id, first[3].data.Id, first[4].data.Id}
	if !slices.Equal(got[:3], want) {
		t.Errorf("resumed after event 2: %v, want %v then events 6 and 7", got, want)
	}
	select {
	case ev := <-again.events:
		t.Errorf("an event more than written: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
	// Nothing happens: keep-alive comments.
	deadline := time.After(10 * time.Second)
	for keepAlive := false; !keepAlive; {
		select {
		case c := <-again.comments:
			keepAlive = c == ": keep-alive"
		case <-deadline:
			t.Fatal("no keep-alive comment")
		}
	}

	// A type filter; a stream over every app.
	all := e.stream("/v1/events?type=channel.locked", nil)
	e.move(8)
	e.move(9)
	e.move(10)
	if a, b := all.next(t), all.next(t); a.event != "channel.locked" || b.event != "channel.locked" {
		t.Errorf("filtered stream = %s, %s, want two channel.locked", a.event, b.event)
	}

	if r := e.do("GET", "/v1/events?app=hello", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "garbage"}, ""); r.status != 400 {
		t.Errorf("bad Last-Event-ID = %d %s, want 400", r.status, r.body)
	}
}

func TestEventListPaginates(t *testing.T) {
	e := newEventsEnv(t, storetest.Redis(t), nil, api.WithAdminToken(adminToken))
	admin := bearer(adminToken)
	for _, app := range []string{"hello", "other"} {
		if r := e.do("PUT", "/v1/apps/"+app, admin, `{}`); r.status != 201 {
			t.Fatalf("PUT app = %d", r.status)
		}
	}
	for i := range 7 {
		e.moveAs(admin, "hello", i)
	}
	e.moveAs(admin, "other", 0)

	var ids []string
	cursor := ""
	for page := 0; ; page++ {
		path := "/v1/events?app=hello&limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := e.do("GET", path, admin, "")
		if r.status != 200 {
			t.Fatalf("GET %s = %d %s", path, r.status, r.body)
		}
		var l openapi.EventList
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Fatal(err)
		}
		if len(l.Items) > 3 {
			t.Fatalf("page of %d", len(l.Items))
		}
		for _, ev := range l.Items {
			ids = append(ids, ev.Id)
			if reason := ev.Data["event"].(map[string]any)["reason"]; reason != "move "+itoa(int64(6-len(ids)+1)) {
				t.Errorf("event %d has reason %v, want newest first", len(ids), reason)
			}
		}
		if l.NextCursor == nil {
			break
		}
		cursor = *l.NextCursor
	}
	if len(ids) != 7 {
		t.Errorf("listed %d events of hello, want 7", len(ids))
	}

	reader := e.token("portal", []string{"read"}, []string{"other"})
	for _, tc := range []struct {
		name, path string
		header     map[string]string
		status     int
		count      int
	}{
		{"locked only", "/v1/events?app=hello&type=channel.locked", admin, 200, 4},
		{"families, every app", "/v1/events?type=channel.*,build.*", admin, 200, 8},
		{"limited token sees its apps", "/v1/events", bearer(reader), 200, 1},
		{"limited token asks for another app", "/v1/events?app=hello", bearer(reader), 403, 0},
		{"unknown type", "/v1/events?type=channel.exploded", admin, 400, 0},
		{"bad cursor", "/v1/events?cursor=nonsense", admin, 400, 0},
		{"unknown app", "/v1/events?app=nope", admin, 404, 0},
		{"no token", "/v1/events", nil, 401, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", tc.path, tc.header, "")
			if r.status != tc.status {
				t.Fatalf("GET %s = %d %s, want %d", tc.path, r.status, r.body, tc.status)
			}
			if tc.status == 200 {
				var l openapi.EventList
				_ = json.Unmarshal(r.body, &l)
				if len(l.Items) != tc.count {
					t.Errorf("GET %s listed %d events, want %d", tc.path, len(l.Items), tc.count)
				}
			}
		})
	}
}

func (e *env) moveAs(header map[string]string, app string, i int) {
	e.t.Helper()
	action := "lock"
	if i%2 == 1 {
		action = "unlock"
	}
	if r := e.do("POST", "/v1/apps/"+app+"/channels/dev/"+action, header, `{"reason":"move `+itoa(int64(i))+`"}`); r.status != 200 {
		e.t.Fatalf("%s = %d %s", action, r.status, r.body)
	}
}

// sseReader reads an event stream message by message.
type sseReader struct {
	msgs chan sseMessage
}

type sseMessage struct{ id, event, data string }

func (e *env) openStream(path, token string) *sseReader {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s (event stream) = %d", path, resp.StatusCode)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	s := &sseReader{msgs: make(chan sseMessage, 100)}
	go func() {
		defer close(s.msgs)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var cur sseMessage
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.event != "" {
					s.msgs <- cur
				}
				cur = sseMessage{}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			}
		}
	}()
	return s
}

// next returns the next message, or ok false once the stream has ended.
func (s *sseReader) next(t *testing.T, within time.Duration) (sseMessage, bool) {
	t.Helper()
	select {
	case m, ok := <-s.msgs:
		return m, ok
	case <-time.After(within):
		t.Fatalf("the stream neither sent nor ended within %s", within)
	}
	return sseMessage{}, false
}

// TestRevokedTokenStreamEnds: an event stream ends, with an error event, once its token
// is revoked, and only that token's stream does.
func TestRevokedTokenStreamEnds(t *testing.T) {
	e := newEventsEnv(t, storetest.Redis(t), nil, api.WithAdminToken(adminToken),
		api.WithEventPoll(20*time.Millisecond), api.WithCredentialCheck(100*time.Millisecond))
	if r := e.do("PUT", "/v1/apps/hello", bearer(adminToken), `{}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	watcher := e.token("watcher", []string{"read"}, []string{"hello"})
	other := e.token("other", []string{"read"}, nil)
	revoked := e.openStream("/v1/events?app=hello", watcher)
	kept := e.openStream("/v1/events?app=hello", other)
	admin := e.openStream("/v1/events?app=hello", adminToken)
	lock := func(action string) {
		t.Helper()
		if r := e.do("POST", "/v1/apps/hello/channels/dev/"+action, bearer(adminToken), `{"reason":"x"}`); r.status != http.StatusOK {
			t.Fatalf("%s = %d %s", action, r.status, r.body)
		}
	}
	lock("lock")
	for name, s := range map[string]*sseReader{"watcher": revoked, "other": kept, "admin": admin} {
		if m, ok := s.next(t, 10*time.Second); !ok || m.event != "channel.locked" {
			t.Fatalf("%s's stream: %+v %v, want channel.locked", name, m, ok)
		}
	}

	if r := e.do("DELETE", "/v1/tokens/watcher", bearer(adminToken), ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE watcher = %d", r.status)
	}
	// The stream ends within a few check periods, its last message an error event
	// carrying the problem, without an id.
	var last sseMessage
	for {
		m, ok := revoked.next(t, 5*time.Second)
		if !ok {
			break
		}
		last = m
	}
	var p openapi.Problem
	if err := json.Unmarshal([]byte(last.data), &p); err != nil || last.event != "error" || last.id != "" ||
		p.Type != openapi.ProblemUnauthorized || p.Status != http.StatusUnauthorized || !strings.Contains(deref(p.Detail), "revoked") {
		t.Errorf("last message of the revoked stream = %+v, want an error event with an unauthorized problem and no id", last)
	}
	// The other streams go on.
	lock("unlock")
	for name, s := range map[string]*sseReader{"other": kept, "admin": admin} {
		if m, ok := s.next(t, 10*time.Second); !ok || m.event != "channel.unlocked" {
			t.Errorf("%s's stream after watcher's revocation: %+v %v, want channel.unlocked", name, m, ok)
		}
	}
}
