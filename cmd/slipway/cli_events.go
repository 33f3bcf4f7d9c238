package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/slipway/slipway/openapi"
)

// cmdEvents is `slipway events`.
func cmdEvents(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, true)
	app := fs.String("app", "", "only app `A`'s events (default: every app the token may see)")
	types := fs.String("type", "", "only events of the types `T`, comma-separated; a family such as build.* stands for its types")
	follow := fs.Bool("follow", false, "print the events from now on as they happen, until interrupted")
	_, c, err := cf.parse(fs, e, cmd, args, 0, 0)
	if err != nil {
		return err
	}
	params := openapi.ListEventsParams{App: optional(*app), Type: optional(*types)}
	if *follow {
		return c.followEvents(ctx, e, params, cf.json)
	}
	l, err := listAll[openapi.Event](ctx, cf.limit, func(ctx context.Context, n int, cursor *string) ([]byte, error) {
		p := params
		p.Limit, p.Cursor = &n, cursor
		return bodyOf(c.api.ListEventsWithResponse(ctx, &p))
	})
	if err != nil {
		return fmt.Errorf("listing events: %w", err)
	}
	return writeList(e.stdout, cf.json, l, "WHEN\tAPP\tTYPE\tBY\tWHAT", func(ev openapi.Event) string {
		return strings.Join([]string{ago(ev.Time, e.now()), ev.App, string(ev.Type), ev.Actor, eventSummary(ev)}, "\t")
	})
}

// eventSummary tells in a few words what an event changed, from its data.
func eventSummary(ev openapi.Event) string {
	var d struct {
		ID      string `json:"id"`
		Version string `json:"version"`
		BuildID string `json:"build_id"`
		Channel string `json:"channel"`
		Error   *struct {
			Reason string `json:"reason"`
		} `json:"error"`
		Event *openapi.ChannelEvent `json:"event"`
	}
	raw, _ := json.Marshal(ev.Data)
	_ = json.Unmarshal(raw, &d)
	switch {
	case strings.HasPrefix(string(ev.Type), "build."):
		s := "build " + d.ID + " " + d.Version
		if d.Error != nil {
			s += ": " + d.Error.Reason
		}
		return s
	case ev.Type == openapi.ReleaseCreated:
		return d.Version + " from build " + d.BuildID
	case d.Event != nil && (d.Event.ToVersion != nil || d.Event.FromVersion != nil):
		return fmt.Sprintf("%s: %s → %s: %s", d.Channel, orNone(d.Event.FromVersion), orNone(d.Event.ToVersion), flatText(d.Event.Reason))
	case d.Event != nil:
		return d.Channel + ": " + flatText(d.Event.Reason)
	}
	return "-"
}

// sseEvent is one message of a Server-Sent Events stream.
type sseEvent struct {
	id, event string
	data      strings.Builder
}

// followEvents prints the events written from now on, as they come, until ctx ends.
// A stream that ends or drops is resumed after the last event printed (Last-Event-ID).
func (c *client) followEvents(ctx context.Context, e *cliEnv, params openapi.ListEventsParams, asJSON bool) error {
	tail := &eventFollower{e: e, asJSON: asJSON}
	for failures := 0; ; {
		p := params
		p.LastEventID = optional(tail.last)
		printed, err := tail.stream(ctx, c, &p)
		var ae *apiError
		switch {
		case ctx.Err() != nil:
			return nil // interrupted: the way a follow ends
		case errors.As(err, &ae), !tail.announced:
			return err // refused, or no stream to resume
		case printed > 0:
			failures = 0
		}
		if failures++; failures > 8 {
			return fmt.Errorf("following events: the stream keeps ending: %w", err)
		}
		cause := "the server ended it"
		if err != nil {
			cause = networkCause(err)
		}
		fmt.Fprintf(e.stderr, "slipway: the event stream dropped (%s); resuming after the last event shown\n", cause)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(failures) * 500 * time.Millisecond):
		}
	}
}

// eventFollower prints the events of a followed stream and remembers the last one's id.
type eventFollower struct {
	e         *cliEnv
	asJSON    bool
	last      string // the id of the last event printed
	announced bool
}

// stream reads one event stream response to its end and returns how many events it
// printed. An error event ends it with the problem it carries.
func (t *eventFollower) stream(ctx context.Context, c *client, p *openapi.ListEventsParams) (int, error) {
	accept := func(_ context.Context, req *http.Request) error {
		req.Header.Set("Accept", "text/event-stream")
		return nil
	}
	resp, err := c.api.ListEvents(ctx, p, accept)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if !t.announced {
		t.announced = true
		what := "every app's events"
		if p.App != nil {
			what = *p.App + "'s events"
		}
		fmt.Fprintf(t.e.stderr, "slipway: following %s as they happen; interrupt (Ctrl-C) to stop\n", what)
	}
	return t.read(resp.Body)
}

// read prints each event of a Server-Sent Events body; comments are skipped.
func (t *eventFollower) read(body io.Reader) (int, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	printed := 0
	ev := &sseEvent{}
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.id = value
			case "event":
				ev.event = value
			case "data":
				if ev.data.Len() > 0 {
					ev.data.WriteByte('\n')
				}
				ev.data.WriteString(value)
			}
			continue
		}
		if ev.data.Len() > 0 {
			if err := t.print(ev); err != nil {
				return printed, err
			}
			printed++
		}
		ev = &sseEvent{}
	}
	return printed, sc.Err()
}

// print writes one event: its JSON on a line, or a row like the table's. An error event
// is the problem that ended the stream.
func (t *eventFollower) print(ev *sseEvent) error {
	data := ev.data.String()
	if ev.event == "error" {
		ae := &apiError{status: http.StatusUnauthorized, hadToken: true}
		if err := json.Unmarshal([]byte(data), &ae.problem); err != nil || ae.problem.Title == "" {
			return fmt.Errorf("the event stream ended with an error: %s", data)
		}
		ae.status = ae.problem.Status
		return ae
	}
	t.last = ev.id
	if t.asJSON {
		_, err := fmt.Fprintln(t.e.stdout, data)
		return err
	}
	var oe openapi.Event
	if err := json.Unmarshal([]byte(data), &oe); err != nil {
		return fmt.Errorf("reading an event: %w", err)
	}
	_, err := fmt.Fprintf(t.e.stdout, "%s  %s  %s  %s  %s\n", oe.Time.Local().Format(time.TimeOnly), oe.App, oe.Type, oe.Actor, eventSummary(oe))
	return err
}
