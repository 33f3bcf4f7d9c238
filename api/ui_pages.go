package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/api/portal"
	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
)

// The portal's page sizes: each page reads at most this much, whatever the totals.
const (
	uiAppsPage     = 50
	uiReleasesPage = 20
	uiBuildsPage   = 10
	uiHistoryPage  = 20
	uiLogBytes     = 256 << 10
)

var uiFuncs = template.FuncMap{
	"short": shortDigest,
	"ago":   ago,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"ms": func(p *int64) string {
		if p == nil {
			return "—"
		}
		return (time.Duration(*p) * time.Millisecond).String()
	},
	"size": func(n int64) string {
		switch {
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"join":    strings.Join,
	"ptrTime": func(t time.Time) *time.Time { return &t },
	"inc":     func(n int64) int64 { return n + 1 },
	"copyRef": func(id, label, value string) map[string]string {
		return map[string]string{"ID": id, "Label": label, "Value": value}
	},
	"hex": func(d string) string { return strings.TrimPrefix(d, "sha256:") },
}

// shortDigest is the first 12 hex digits of a digest.
func shortDigest(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// ago says how long ago t was, in a word or two.
func ago(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	d := time.Since(*t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	}
	return plural(int(d/(24*time.Hour)), "day") + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// --- the apps grid ---------------------------------------------------------------------

type gridView struct {
	Channels []string
	Rows     []gridRow
	Next     string
}

type gridRow struct {
	App   string
	Cells []gridCell
}

// gridCell is one app's channel in the grid; Present is false where the app has no
// channel of that name.
type gridCell struct {
	App, Channel string
	Present      bool
	Release      string
	Digest       string
	At           *time.Time
	By           string
	Locked       bool
	// Pinned is whether a rollback pinned the channel against auto_promote.
	Pinned bool
}

// uiApps is the grid of the apps the session may read × their channels.
func (s *Server) uiApps(c echo.Context, u *uiReq) error {
	ctx := c.Request().Context()
	if err := s.uiRead(c, ""); err != nil {
		return err
	}
	var apps []release.App
	next := ""
	if p := caller(c); p.limited() {
		names := slices.Sorted(slices.Values(p.apps))
		for _, n := range names {
			a, err := s.deps.Apps.Get(ctx, n)
			if errors.Is(err, release.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			apps = append(apps, a)
		}
	} else {
		var err error
		apps, next, err = s.deps.Apps.List(ctx, c.QueryParam("after"), uiAppsPage)
		if err != nil {
			return err
		}
	}
	v := gridView{Next: next}
	for _, a := range apps {
		for _, ch := range a.Channels {
			if !slices.Contains(v.Channels, ch.Name) {
				v.Channels = append(v.Channels, ch.Name)
			}
		}
	}
	for _, a := range apps {
		states, err := s.deps.Channels.List(ctx, a.Name)
		if err != nil {
			return err
		}
		row := gridRow{App: a.Name}
		for _, name := range v.Channels {
			cell := gridCell{App: a.Name, Channel: name}
			if i := slices.IndexFunc(states, func(st release.ChannelState) bool { return st.Name == name }); i >= 0 {
				st := states[i]
				cell.Present, cell.Release, cell.Digest, cell.At, cell.By, cell.Locked, cell.Pinned = true, st.Release, st.ImageDigest, st.UpdatedAt, st.UpdatedBy, st.Locked, st.Pinned
			}
			row.Cells = append(row.Cells, cell)
		}
		v.Rows = append(v.Rows, row)
	}
	return s.uiRender(c, http.StatusOK, "apps", uiData{Title: "Apps", User: u, Live: "*", Body: v})
}

// --- the app page ----------------------------------------------------------------------

type appView struct {
	App      release.App
	Channels []channelRow
	Filter   string
	Releases []openapi.Release
	Older    string // the query of the next page of releases
	Builds   []builder.Build
	OlderB   string // the query of the next page of builds
}

type channelRow struct {
	State release.ChannelState
	Gates []string // the channel's gates, in words
}

// gateWords says a channel's configured gates in words.
func gateWords(g *release.Gates) []string {
	if g == nil {
		return nil
	}
	var out []string
	if g.Soak != "" {
		out = append(out, "soak "+g.Soak)
	}
	if g.Approvals > 0 {
		out = append(out, plural(g.Approvals, "approval"))
	}
	for _, ch := range g.Checks {
		out = append(out, "check "+ch.Name)
	}
	if r := g.Require; r != nil {
		if r.Signed {
			out = append(out, "signed")
		}
		if r.Provenance {
			out = append(out, "provenance")
		}
		if r.Vulns != "" {
			out = append(out, "vulnerabilities: "+r.Vulns)
		}
	}
	for _, w := range g.Windows {
		out = append(out, w.Kind+" window")
	}
	return out
}

func (s *Server) uiApp(c echo.Context, u *uiReq) error {
	ctx := c.Request().Context()
	name := c.Param("app")
	if err := s.uiRead(c, name); err != nil {
		return err
	}
	if err := checkPathName(name); err != nil {
		return err
	}
	a, err := s.deps.Apps.Get(ctx, name)
	if err != nil {
		return err
	}
	states, err := s.deps.Channels.List(ctx, name)
	if err != nil {
		return err
	}
	v := appView{App: a, Filter: c.QueryParam("channel")}
	for _, st := range states {
		row := channelRow{State: st}
		if i := slices.IndexFunc(a.Channels, func(ch release.Channel) bool { return ch.Name == st.Name }); i >= 0 {
			row.Gates = gateWords(a.Channels[i].Gates)
		}
		v.Channels = append(v.Channels, row)
	}
	if v.Filter != "" && !slices.ContainsFunc(a.Channels, func(ch release.Channel) bool { return ch.Name == v.Filter }) {
		return newProblem(openapi.ProblemInvalidParameter, "app %s has no channel %q", name, v.Filter)
	}
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	items, next, err := s.deps.Releases.Page(ctx, name, v.Filter, max(before, 0), uiReleasesPage)
	if err != nil {
		return err
	}
	for _, it := range items {
		var r openapi.Release
		if err := json.Unmarshal(it.Doc, &r); err != nil {
			return err
		}
		r.Channels = orEmpty(it.Channels)
		v.Releases = append(v.Releases, r)
	}
	if next > 0 {
		q := url.Values{"before": {strconv.FormatInt(next, 10)}}
		if v.Filter != "" {
			q.Set("channel", v.Filter)
		}
		v.Older = q.Encode()
	}
	builds, nextB, err := s.deps.Builds.List(ctx, name, "", c.QueryParam("builds_after"), uiBuildsPage)
	if err != nil {
		return err
	}
	v.Builds = builds
	if nextB != "" {
		v.OlderB = url.Values{"builds_after": {nextB}}.Encode()
	}
	return s.uiRender(c, http.StatusOK, "app", uiData{Title: name, User: u, Live: name,
		Crumbs: []uiCrumb{{"Apps", "/ui/"}}, Body: v})
}

// --- the channel page ------------------------------------------------------------------

type channelView struct {
	App     string
	Channel release.Channel
	State   release.ChannelState
	History []release.Event
	Older   string
	// The promotion on offer: Candidate is the release it would move in ("" for none).
	Candidate     string
	CandidateFrom string // the channel it comes from, when the policy names one
	CandidateRel  *release.Release
	Missing       string // a version asked for that has no release
	CurrentRel    *release.Release
	Diff          *portal.Diff
	DiffNote      string // why there is no Diff
	Gates         []release.GateState
	GatesNote     string // why there are no Gates
	GateWords     []string
	// RollbackTo are the releases a rollback may name: those the channel has held.
	RollbackTo []string
	MayPromote bool
	MayRoll    bool
	MayLock    bool
	MayUnlock  bool
	Reason     string // the reason typed into the form that failed
}

func (s *Server) uiChannel(c echo.Context, u *uiReq) error {
	v, err := s.channelView(c, c.QueryParam("version"))
	if err != nil {
		return err
	}
	d := uiData{Title: v.App + " " + v.Channel.Name, User: u, Live: v.App,
		Crumbs: []uiCrumb{{"Apps", "/ui/"}, {v.App, "/ui/apps/" + v.App}}, Body: v}
	if done := c.QueryParam("done"); done != "" {
		d.Flash = doneWords(done, v)
	}
	return s.uiRender(c, http.StatusOK, "channel", d)
}

func doneWords(action string, v *channelView) string {
	switch action {
	case release.ActionPromote:
		return "Promoted: " + v.Channel.Name + " now holds " + v.State.Release + "."
	case release.ActionRollback:
		return "Rolled back: " + v.Channel.Name + " now holds " + v.State.Release + "."
	case release.ActionLock:
		return v.Channel.Name + " is locked."
	case release.ActionUnlock:
		return v.Channel.Name + " is unlocked."
	case "unchanged":
		return "Nothing changed: the channel already was as asked."
	}
	return ""
}

// channelView reads what the channel page shows; version is the release a promotion
// would move in ("" for the policy's source channel's, or the newest release).
func (s *Server) channelView(c echo.Context, version string) (*channelView, error) {
	ctx := c.Request().Context()
	app, name := c.Param("app"), c.Param("channel")
	if err := s.uiRead(c, app); err != nil {
		return nil, err
	}
	if err := checkPathName(app); err != nil {
		return nil, err
	}
	a, err := s.deps.Apps.Get(ctx, app)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(a.Channels, func(ch release.Channel) bool { return ch.Name == name })
	if i < 0 {
		names := make([]string, len(a.Channels))
		for j, ch := range a.Channels {
			names[j] = ch.Name
		}
		return nil, newProblem(openapi.ProblemNotFound, "app %s has no channel %q; it has %s", app, name, strings.Join(names, ", "))
	}
	st, err := s.deps.Channels.Get(ctx, app, name)
	if err != nil {
		return nil, err
	}
	v := &channelView{App: app, Channel: a.Channels[i], State: st, GateWords: gateWords(a.Channels[i].Gates),
		MayPromote: s.uiMay(c, "promoteChannel", app, name), MayRoll: s.uiMay(c, "rollbackChannel", app, name),
		MayLock: s.uiMay(c, "lockChannel", app, name), MayUnlock: s.uiMay(c, "unlockChannel", app, name)}
	before, _ := strconv.ParseInt(c.QueryParam("before"), 10, 64)
	hist, next, err := s.deps.Channels.History(ctx, app, name, max(before, 0), uiHistoryPage)
	if err != nil {
		return nil, err
	}
	v.History = hist
	if next > 0 {
		v.Older = url.Values{"before": {strconv.FormatInt(next, 10)}}.Encode()
	}
	for _, ev := range hist {
		for _, ver := range []string{ev.ToVersion, ev.FromVersion} {
			if ver != "" && ver != st.Release && !slices.Contains(v.RollbackTo, ver) {
				v.RollbackTo = append(v.RollbackTo, ver)
			}
		}
	}

	// The promotion on offer.
	switch {
	case version != "":
		v.Candidate = version
	case v.Channel.From != "":
		src, err := s.deps.Channels.Get(ctx, app, v.Channel.From)
		if err != nil {
			return nil, err
		}
		v.Candidate, v.CandidateFrom = src.Release, v.Channel.From
	default:
		items, _, err := s.deps.Releases.Page(ctx, app, "", 0, 1)
		if err != nil {
			return nil, err
		}
		if len(items) > 0 {
			v.Candidate = items[0].Version
		}
	}
	if v.Candidate != "" {
		rel, err := s.deps.Releases.Get(ctx, app, v.Candidate)
		if errors.Is(err, release.ErrNotFound) {
			v.Missing, v.Candidate = v.Candidate, ""
			return v, nil
		}
		if err != nil {
			return nil, err
		}
		v.CandidateRel = &rel
		if st.Release != "" {
			if cur, err := s.deps.Releases.Get(ctx, app, st.Release); err == nil {
				v.CurrentRel = &cur
			}
		}
		if d, err := s.portalDiff(ctx, app, st.Release, v.Candidate); err != nil {
			s.log.WarnContext(ctx, "diffing releases for the portal", "app", app, "err", err, "request_id", requestID(c))
			v.DiffNote = "The detailed diff could not be made just now."
		} else {
			v.Diff = &d
		}
		if g, err := s.deps.Channels.Gates(ctx, app, name, release.GateQuery{Version: v.Candidate}); err != nil {
			s.log.WarnContext(ctx, "checking gates for the portal", "app", app, "err", err, "request_id", requestID(c))
			v.GatesNote = "The gates could not be checked just now."
		} else {
			v.Gates = g.States
		}
	}
	return v, nil
}

// uiMove runs a form of the channel page: promote, rollback, lock or unlock, with the
// generation the page was read at as If-Match and a reason. A refusal is shown on the
// channel page, in words.
func (s *Server) uiMove(c echo.Context, u *uiReq) error {
	app, name, action := c.Param("app"), c.Param("channel"), c.Param("action")
	op, ok := map[string]string{release.ActionPromote: "promoteChannel", release.ActionRollback: "rollbackChannel",
		release.ActionLock: "lockChannel", release.ActionUnlock: "unlockChannel"}[action]
	if !ok {
		return newProblem(openapi.ProblemNotFound, "%q is not a channel action: promote, rollback, lock or unlock", action)
	}
	if err := checkPathName(app); err != nil {
		return err
	}
	req := s.reqs[op]
	if req == nil {
		return fmt.Errorf("openapi.yaml has no operation %s", op)
	}
	if err := s.guard(c, *req, app, name); err != nil {
		return err
	}
	reason := strings.TrimSpace(c.FormValue("reason"))
	m := release.Move{Action: action, Reason: reason, Actor: actor(c), ActorID: actorID(c)}
	switch action {
	case release.ActionPromote, release.ActionRollback:
		m.Version = strings.TrimSpace(c.FormValue("version"))
	}
	var fail *uiError
	if reason == "" {
		fail = &uiError{Status: http.StatusUnprocessableEntity, Lead: "A reason is required.",
			Detail: "Say why, in a few words: it goes into the channel's history."}
	} else if gen, err := parseChannelETag(c.FormValue("if_match")); err != nil {
		fail = &uiError{Status: http.StatusBadRequest, Lead: "The form is damaged.", Detail: "Reload the page and try again."}
	} else {
		m.IfGeneration = gen
		res, err := s.moveChannel(c.Request().Context(), app, name, m)
		if err == nil {
			done := action
			if !res.Changed {
				done = "unchanged"
			}
			return c.Redirect(http.StatusSeeOther, "/ui/apps/"+app+"/channels/"+name+"?done="+done)
		}
		fail = moveWords(err, action)
		if fail.Status >= 500 {
			return err
		}
	}
	v, err := s.channelView(c, c.FormValue("version"))
	if err != nil {
		return err
	}
	v.Reason = reason
	return s.uiRender(c, fail.Status, "channel", uiData{Title: app + " " + name, User: u, Live: app,
		Crumbs: []uiCrumb{{"Apps", "/ui/"}, {app, "/ui/apps/" + app}}, Error: fail, Body: v})
}

// moveWords explains a refused move to a person: what happened and what to do.
func moveWords(err error, action string) *uiError {
	p := toProblem(err)
	status := kinds[p.kind].status
	e := &uiError{Status: status, Detail: p.detail}
	var stale *release.ChannelStaleError
	var gates *release.GatesError
	switch {
	case errors.As(err, &gates):
		e.Lead = "Not every gate of this channel passes, so nothing was done."
		var missed []string
		for _, g := range gates.States {
			if g.Status != release.GatePassed {
				missed = append(missed, g.Gate+" ("+g.Status+"): "+g.Detail)
			}
		}
		e.Detail = strings.Join(missed, "; ") + ". The gates below say where each stands; an override needs its own scope and a reason."
	case errors.As(err, &stale):
		cur := stale.Current
		e.Lead = "Someone else changed this channel after this page was loaded, so nothing was done."
		e.Detail = fmt.Sprintf("It now holds %s (moved by %s %s). The page below shows it as it is now: check it, then %s again if you still want to.",
			orNone(cur.Release), orNone(cur.UpdatedBy), ago(cur.UpdatedAt), action)
	case status == http.StatusPreconditionFailed:
		e.Lead = "This channel changed after this page was loaded, so nothing was done."
	case errors.Is(err, release.ErrLocked):
		e.Lead = "The channel is locked, so nothing was done."
		e.Detail = p.detail + " Unlock it first (that needs a reason too), or wait for whoever locked it."
	case errors.Is(err, release.ErrPolicy):
		e.Lead = "The channel's policy does not allow this, so nothing was done."
	case status == http.StatusConflict:
		e.Lead = "This conflicts with the channel's state, so nothing was done."
	case status == http.StatusNotFound:
		e.Lead = "Not found, so nothing was done."
	case status == http.StatusForbidden:
		e.Lead = "Your token may not do this."
	case status >= 500:
		e.Lead = "The server could not do this just now."
	default:
		e.Lead = "This could not be done."
	}
	return e
}

// --- releases and builds ---------------------------------------------------------------

type buildView struct {
	App      string
	Host     string
	Release  *openapi.Release
	Build    *builder.Build
	BuildErr string // why the build could not be read
	Log      string
	LogSize  int64
	LogDone  bool
	Live     bool // the build is not finished: the page follows it
}

func (s *Server) uiRelease(c echo.Context, u *uiReq) error {
	ctx := c.Request().Context()
	app, version := c.Param("app"), c.Param("version")
	if err := s.uiRead(c, app); err != nil {
		return err
	}
	if err := checkPathName(app); err != nil {
		return err
	}
	r, err := s.release(ctx, app, version)
	if err != nil {
		return err
	}
	v := buildView{App: app, Host: c.Request().Host, Release: &r}
	if b, err := s.deps.Builds.Get(ctx, app, r.BuildId); err == nil {
		v.Build = &b
	} else {
		v.BuildErr = "The build of this release could not be read."
	}
	return s.uiRender(c, http.StatusOK, "release", uiData{Title: app + " " + version, User: u, Live: app,
		Crumbs: []uiCrumb{{"Apps", "/ui/"}, {app, "/ui/apps/" + app}}, Body: v})
}

func (s *Server) uiBuild(c echo.Context, u *uiReq) error {
	ctx := c.Request().Context()
	app, id := c.Param("app"), c.Param("id")
	if err := s.uiRead(c, app); err != nil {
		return err
	}
	b, err := s.build(c, app, id)
	if err != nil {
		return err
	}
	v := buildView{App: app, Host: c.Request().Host, Build: &b}
	chunk, err := s.deps.Builds.ReadLog(ctx, s.deps.Blobs, app, id, 0, uiLogBytes)
	if err != nil {
		return err
	}
	v.Log, v.LogSize, v.LogDone = string(chunk.Data), int64(len(chunk.Data)), chunk.Done
	v.Live = !b.Status.Done()
	return s.uiRender(c, http.StatusOK, "build", uiData{Title: app + " build " + id, User: u, Live: app,
		Crumbs: []uiCrumb{{"Apps", "/ui/"}, {app, "/ui/apps/" + app}}, Body: v})
}
