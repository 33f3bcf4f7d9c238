package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
)

// ReleaseStore is what the API needs of releases; *release.Releases implements it.
type ReleaseStore interface {
	Create(ctx context.Context, app string, spec release.ReleaseSpec) (release.Release, bool, error)
	Get(ctx context.Context, app, version string) (release.Release, error)
	Versions(ctx context.Context, app string) ([]string, error)
	Page(ctx context.Context, app, filter string, before int64, limit int) ([]release.PageItem, int64, error)
	// PageStamped is Page of releases and the app's stamp when it was read; Stamp is
	// the stamp now, which changes with every release, channel move and configuration
	// change of the app ("" when there is no such app).
	PageStamped(ctx context.Context, app, filter string, before int64, limit int) ([]release.PageItem, int64, string, error)
	Stamp(ctx context.Context, app string) (string, error)
}

// ChannelStore is what the API needs of channels; *release.Channels implements it.
type ChannelStore interface {
	Get(ctx context.Context, app, name string) (release.ChannelState, error)
	List(ctx context.Context, app string) ([]release.ChannelState, error)
	Move(ctx context.Context, app, name string, m release.Move) (release.MoveResult, error)
	History(ctx context.Context, app, name string, before int64, limit int) ([]release.Event, int64, error)
	ChannelsOf(ctx context.Context, app string) (map[string][]string, error)
	Gates(ctx context.Context, app, channel string, q release.GateQuery) (release.GateReport, error)
	Approve(ctx context.Context, app, channel string, spec release.ApprovalSpec) (release.Approval, bool, error)
	Revoke(ctx context.Context, app, channel string, spec release.ApprovalSpec) (release.Approval, error)
	Approvals(ctx context.Context, app, channel, version string) ([]release.Approval, error)
}

var (
	_ ReleaseStore = (*release.Releases)(nil)
	_ ChannelStore = (*release.Channels)(nil)
)

// ReleaseBuilds lets releases look builds up in the build store.
func ReleaseBuilds(builds BuildStore) release.BuildLookup { return buildLookup{builds} }

type buildLookup struct{ builds BuildStore }

func (l buildLookup) BuildRef(ctx context.Context, app, id string) (release.BuildRef, error) {
	b, err := l.builds.Get(ctx, app, id)
	if errors.Is(err, builder.ErrNotFound) {
		return release.BuildRef{}, fmt.Errorf("%w: app %s has no build %s", release.ErrNotFound, app, id)
	}
	if err != nil {
		return release.BuildRef{}, err
	}
	ref := release.BuildRef{ID: b.ID, Version: b.Version, Status: string(b.Status), Succeeded: b.Status == builder.StatusSucceeded, CreatedByID: b.CreatedByID}
	if b.Image != nil {
		ref.ImageDigest = b.Image.Digest
	}
	return ref, nil
}

// CreateRelease implements openapi.ServerInterface.
func (s *Server) CreateRelease(c echo.Context, app openapi.AppName, params openapi.CreateReleaseParams) error {
	ctx := c.Request().Context()
	if err := checkPathName(app); err != nil {
		return err
	}
	a, err := s.deps.Apps.Get(ctx, app)
	if err != nil {
		return err
	}
	var in openapi.ReleaseInput
	body, err := readJSON(c, s.opts.maxBodyBytes, &in)
	if err != nil {
		return err
	}
	version := deref(in.Version)
	normalizedFrom := normalizeVersion(&version)
	return s.idempotentJSON(c, app, params.IdempotencyKey, body, func() (int, any, error) {
		rel, created, err := s.deps.Releases.Create(ctx, app, release.ReleaseSpec{
			BuildID: in.BuildId, Version: version, Notes: deref(in.Notes), Actor: actor(c), ActorID: actorID(c),
		})
		if err != nil {
			return 0, nil, err
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
			c.Response().Header().Set(echo.HeaderLocation, "/v1/apps/"+app+"/releases/"+rel.Version)
			if a.AutoPromote && len(a.Channels) > 0 {
				if _, err := s.deps.Channels.Move(ctx, app, a.Channels[0].Name, release.Move{
					Action: release.ActionPromote, Version: rel.Version, Actor: actor(c), ActorID: actorID(c), Reason: "auto_promote",
				}); err != nil {
					s.log.WarnContext(ctx, "auto-promoting a release", "app", app, "version", rel.Version, "err", err)
				}
			}
		}
		on, err := s.deps.Channels.ChannelsOf(ctx, app)
		if err != nil {
			return 0, nil, err
		}
		resp := releaseResponse(rel, on)
		resp.VersionNormalizedFrom = normalizedFrom
		return status, resp, nil
	})
}

// ListReleases implements openapi.ServerInterface.
func (s *Server) ListReleases(c echo.Context, app openapi.AppName, params openapi.ListReleasesParams) error {
	ctx := c.Request().Context()
	if err := checkPathName(app); err != nil {
		return err
	}
	limit, before, err := seqPage(params.Limit, params.Cursor)
	if err != nil {
		return err
	}
	key := pageKey(app, deref(params.Channel), before, limit)
	if p, ok := s.pages.get(key); ok {
		if stamp, err := s.deps.Releases.Stamp(ctx, app); err == nil && stamp == p.stamp {
			return sendJSONBytes(c, p.body)
		}
	}
	rels, next, stamp, err := s.deps.Releases.PageStamped(ctx, app, deref(params.Channel), before, limit)
	if err != nil {
		return err
	}
	// The stored documents are the API's Release without channels, so they are spliced
	// into the answer as they are: a page is neither decoded nor encoded again.
	var buf bytes.Buffer
	buf.WriteString(`{"items":[`)
	for i, it := range rels {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it.Doc[:len(it.Doc)-1])
		buf.WriteString(`,"channels":`)
		chs, _ := json.Marshal(orEmpty(it.Channels))
		buf.Write(chs)
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	if next > 0 {
		cur, _ := json.Marshal(encodeCursor(strconv.FormatInt(next, 10)))
		buf.WriteString(`,"next_cursor":`)
		buf.Write(cur)
	}
	buf.WriteString("}\n")
	s.pages.put(key, stamp, buf.Bytes())
	return sendJSONBytes(c, buf.Bytes())
}

// sendJSONBytes answers 200 with body, a JSON document, and its length.
func sendJSONBytes(c echo.Context, body []byte) error {
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	return c.JSONBlob(http.StatusOK, body)
}

// GetRelease implements openapi.ServerInterface.
func (s *Server) GetRelease(c echo.Context, app openapi.AppName, version string) error {
	ctx := c.Request().Context()
	if err := checkPathName(app); err != nil {
		return err
	}
	r, err := s.release(ctx, app, version)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

// release reads an app's release with the channels that point at it now.
func (s *Server) release(ctx context.Context, app, version string) (openapi.Release, error) {
	rel, err := s.deps.Releases.Get(ctx, app, version)
	if err != nil {
		return openapi.Release{}, err
	}
	on, err := s.deps.Channels.ChannelsOf(ctx, app)
	if err != nil {
		return openapi.Release{}, err
	}
	return releaseResponse(rel, on), nil
}

// ListChannels implements openapi.ServerInterface.
func (s *Server) ListChannels(c echo.Context, app openapi.AppName) error {
	if err := checkPathName(app); err != nil {
		return err
	}
	states, err := s.deps.Channels.List(c.Request().Context(), app)
	if err != nil {
		return err
	}
	out := openapi.ChannelList{Items: make([]openapi.Channel, len(states))}
	for i, st := range states {
		out.Items[i] = channelResponse(st)
	}
	return c.JSON(http.StatusOK, out)
}

// GetChannel implements openapi.ServerInterface.
func (s *Server) GetChannel(c echo.Context, app openapi.AppName, channel openapi.ChannelName) error {
	if err := checkPathName(app); err != nil {
		return err
	}
	st, err := s.deps.Channels.Get(c.Request().Context(), app, channel)
	if err != nil {
		return err
	}
	c.Response().Header().Set(headerETag, formatETag(st.Generation))
	return c.JSON(http.StatusOK, channelResponse(st))
}

// PromoteChannel implements openapi.ServerInterface.
func (s *Server) PromoteChannel(c echo.Context, app openapi.AppName, channel openapi.ChannelName, params openapi.PromoteChannelParams) error {
	var in openapi.PromoteInput
	return s.move(c, app, channel, params.IfMatch, params.IdempotencyKey, &in, func() release.Move {
		return release.Move{Action: release.ActionPromote, Version: deref(in.Version), FromChannel: deref(in.From), Reason: deref(in.Reason),
			Override: deref(in.Override)}
	})
}

// RollbackChannel implements openapi.ServerInterface.
func (s *Server) RollbackChannel(c echo.Context, app openapi.AppName, channel openapi.ChannelName, params openapi.RollbackChannelParams) error {
	var in openapi.RollbackInput
	return s.move(c, app, channel, params.IfMatch, params.IdempotencyKey, &in, func() release.Move {
		return release.Move{Action: release.ActionRollback, Version: deref(in.To), Reason: deref(in.Reason)}
	})
}

// LockChannel implements openapi.ServerInterface.
func (s *Server) LockChannel(c echo.Context, app openapi.AppName, channel openapi.ChannelName, params openapi.LockChannelParams) error {
	var in openapi.ReasonInput
	return s.move(c, app, channel, params.IfMatch, params.IdempotencyKey, &in, func() release.Move {
		return release.Move{Action: release.ActionLock, Reason: deref(in.Reason)}
	})
}

// UnlockChannel implements openapi.ServerInterface.
func (s *Server) UnlockChannel(c echo.Context, app openapi.AppName, channel openapi.ChannelName, params openapi.UnlockChannelParams) error {
	var in openapi.ReasonInput
	return s.move(c, app, channel, params.IfMatch, params.IdempotencyKey, &in, func() release.Move {
		return release.Move{Action: release.ActionUnlock, Reason: deref(in.Reason)}
	})
}

// move reads a move's body into in, builds the move with mk, and applies it, honouring
// If-Match and Idempotency-Key.
func (s *Server) move(c echo.Context, app, channel string, ifMatch, key *string, in any, mk func() release.Move) error {
	ctx := c.Request().Context()
	if err := checkPathName(app); err != nil {
		return err
	}
	body, err := readJSON(c, s.opts.maxBodyBytes, in)
	if err != nil {
		return err
	}
	m := mk()
	m.Actor, m.ActorID = actor(c), actorID(c)
	if m.Override {
		if err := s.mayOverride(c, channel); err != nil {
			return err
		}
	}
	if ifMatch != nil {
		gen, err := parseChannelETag(*ifMatch)
		if err != nil {
			return newProblem(openapi.ProblemInvalidParameter, "If-Match: %s", err.Error())
		}
		m.IfGeneration = gen
	}
	return s.idempotentJSON(c, app, key, body, func() (int, any, error) {
		res, err := s.moveChannel(ctx, app, channel, m)
		if err != nil {
			return 0, nil, err
		}
		c.Response().Header().Set(headerETag, formatETag(res.Channel.Generation))
		out := openapi.ChannelMove{Channel: channelResponse(res.Channel), Changed: res.Changed}
		if res.Event != nil {
			out.Event = ptr(eventResponse(*res.Event))
		}
		if res.Gates != nil {
			out.Gates = ptr(gateStates(res.Gates.States))
		}
		return http.StatusOK, out, nil
	})
}

// moveChannel applies a move of the API or of the portal's forms: the one path both take.
func (s *Server) moveChannel(ctx context.Context, app, channel string, m release.Move) (release.MoveResult, error) {
	return s.deps.Channels.Move(ctx, app, channel, m)
}

// parseChannelETag reads If-Match for a channel: a generation, 0 for a channel never
// moved.
func parseChannelETag(v string) (int64, error) {
	raw := strings.Trim(strings.TrimPrefix(strings.TrimSpace(v), "W/"), `"`)
	if raw == "*" {
		return 0, nil
	}
	gen, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || gen < 0 {
		return 0, &etagError{v}
	}
	if gen == 0 {
		// Generation 0 cannot be told from "no condition" by the store; -1 asks for it.
		return -1, nil
	}
	return gen, nil
}

// GetChannelHistory implements openapi.ServerInterface.
func (s *Server) GetChannelHistory(c echo.Context, app openapi.AppName, channel openapi.ChannelName, params openapi.GetChannelHistoryParams) error {
	if err := checkPathName(app); err != nil {
		return err
	}
	limit, before, err := seqPage(params.Limit, params.Cursor)
	if err != nil {
		return err
	}
	events, next, err := s.deps.Channels.History(c.Request().Context(), app, channel, before, limit)
	if err != nil {
		return err
	}
	out := openapi.ChannelHistory{Items: make([]openapi.ChannelEvent, len(events))}
	for i, ev := range events {
		out.Items[i] = eventResponse(ev)
	}
	if next > 0 {
		out.NextCursor = ptr(encodeCursor(strconv.FormatInt(next, 10)))
	}
	return c.JSON(http.StatusOK, out)
}

// seqPage reads the limit and cursor of a list ordered by sequence number: the cursor
// carries the sequence to continue before (0: from the newest).
func seqPage(limitParam *int, cursor *string) (limit int, before int64, err error) {
	if limit, err = pageLimit(limitParam); err != nil {
		return 0, 0, err
	}
	if cursor != nil && *cursor != "" {
		if before, err = decodeSeqCursor(*cursor); err != nil {
			return 0, 0, err
		}
	}
	return limit, before, nil
}

func decodeSeqCursor(cur string) (int64, error) {
	s, err := decodeCursor(cur)
	if err != nil {
		return 0, err
	}
	n, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil || n < 1 {
		return 0, newProblem(openapi.ProblemInvalidParameter, "cursor %q is not one this server gave out; start again without a cursor", cur)
	}
	return n, nil
}

// idempotentJSON runs do once per Idempotency-Key: a retry with the same request gets the
// first answer.
func (s *Server) idempotentJSON(c echo.Context, app string, key *string, body []byte, do func() (int, any, error)) error {
	idem := newIdempotent(s, c, app, key)
	rec, err := idem.begin(c.Request().Context())
	if err != nil {
		return err
	}
	digest := store.DigestBytes(body).String()
	if rec != nil {
		return idem.replay(c, rec, digest)
	}
	status, resp, err := do()
	if err != nil {
		idem.abort()
		return err
	}
	out, err := json.Marshal(resp)
	if err != nil {
		idem.abort()
		return err
	}
	idem.complete(IdemRecord{BodyDigest: digest, Status: status, Location: c.Response().Header().Get(echo.HeaderLocation), Body: out})
	return c.JSONBlob(status, out)
}

func releaseResponse(r release.Release, on map[string][]string) openapi.Release {
	chs := on[r.Version]
	if chs == nil {
		chs = []string{}
	}
	return openapi.Release{
		App: r.App, Version: r.Version, Sequence: r.Sequence, BuildId: r.BuildID, ImageDigest: r.ImageDigest,
		CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, CreatedById: nonEmpty(r.CreatedByID), Notes: r.Notes, Channels: chs,
	}
}

func channelResponse(st release.ChannelState) openapi.Channel {
	out := openapi.Channel{Name: st.Name, Generation: st.Generation, Locked: st.Locked, UpdatedAt: st.UpdatedAt}
	if st.From != "" {
		out.From = ptr(st.From)
	}
	if st.Release != "" {
		out.Release = ptr(st.Release)
		out.ImageDigest = ptr(st.ImageDigest)
	}
	if st.LockReason != "" {
		out.LockReason = ptr(st.LockReason)
	}
	if st.UpdatedBy != "" {
		out.UpdatedBy = ptr(st.UpdatedBy)
	}
	out.UpdatedById = nonEmpty(st.UpdatedByID)
	out.Since = st.Since
	if st.Pinned {
		out.Pinned = ptr(true)
		out.Pin = &struct {
			At     time.Time `json:"at"`
			By     string    `json:"by"`
			ById   *string   `json:"by_id,omitempty"`
			Reason string    `json:"reason"`
		}{By: st.PinnedBy, ById: nonEmpty(st.PinnedByID), Reason: st.PinReason}
		if st.PinnedAt != nil {
			out.Pin.At = *st.PinnedAt
		}
	}
	return out
}

func eventResponse(ev release.Event) openapi.ChannelEvent {
	out := openapi.ChannelEvent{Seq: ev.Seq, Action: openapi.ChannelEventAction(ev.Action), Actor: ev.Actor,
		ActorId: nonEmpty(ev.ActorID), Reason: ev.Reason, At: ev.At}
	if ev.FromVersion != "" {
		out.FromVersion = ptr(ev.FromVersion)
	}
	if ev.ToVersion != "" {
		out.ToVersion = ptr(ev.ToVersion)
	}
	if ev.Reverts != 0 {
		out.Reverts = ptr(ev.Reverts)
	}
	if ev.Override != nil {
		out.Override = &struct {
			Gates []openapi.GateState `json:"gates"`
		}{Gates: gateStates(ev.Override.Gates)}
	}
	if ev.Pinned {
		out.Pinned = ptr(true)
	}
	if ev.Unpinned {
		out.Unpinned = ptr(true)
	}
	return out
}
