package api

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
)

// releaseGates converts a channel's gates from the API: the two have the same JSON.
func releaseGates(g *openapi.Gates) *release.Gates { return convertJSON[release.Gates](g) }

// apiGates converts a channel's gates to the API.
func apiGates(g *release.Gates) *openapi.Gates { return convertJSON[openapi.Gates](g) }

// convertJSON converts v, a non-nil pointer or nil, to the type T that has the same JSON.
func convertJSON[T any, P interface {
	*openapi.Gates | *release.Gates
}](v P) *T {
	if v == nil {
		return nil
	}
	var out T
	b, _ := json.Marshal(v)
	_ = json.Unmarshal(b, &out)
	return &out
}

func gateStates(states []release.GateState) []openapi.GateState {
	out := make([]openapi.GateState, len(states))
	for i, s := range states {
		out[i] = openapi.GateState{Gate: s.Gate, Status: openapi.GateStateStatus(s.Status), Detail: s.Detail, RetryAt: s.RetryAt, CheckedAt: s.CheckedAt}
	}
	return out
}

func approvalResponse(a release.Approval) openapi.Approval {
	return openapi.Approval{Channel: a.Channel, Version: a.Version, Actor: a.Actor, ActorId: a.ActorID, Reason: a.Reason,
		At: a.At, Counts: a.Counts, Note: nonEmpty(a.Note)}
}

// GetChannelGates implements openapi.ServerInterface.
func (s *Server) GetChannelGates(c echo.Context, app openapi.AppName, channel openapi.ChannelName, params openapi.GetChannelGatesParams) error {
	if err := checkPathName(app); err != nil {
		return err
	}
	version := deref(params.Version)
	normalizeVersion(&version)
	rep, err := s.deps.Channels.Gates(c.Request().Context(), app, channel, release.GateQuery{Version: version, FromChannel: deref(params.From)})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, openapi.GateReport{Channel: rep.Channel, Version: rep.Version, Allowed: rep.Allowed, Gates: gateStates(rep.States)})
}

// ListApprovals implements openapi.ServerInterface.
func (s *Server) ListApprovals(c echo.Context, app openapi.AppName, channel openapi.ChannelName, params openapi.ListApprovalsParams) error {
	if err := checkPathName(app); err != nil {
		return err
	}
	aps, err := s.deps.Channels.Approvals(c.Request().Context(), app, channel, params.Version)
	if err != nil {
		return err
	}
	out := openapi.ApprovalList{Items: make([]openapi.Approval, len(aps))}
	for i, a := range aps {
		out.Items[i] = approvalResponse(a)
	}
	return c.JSON(http.StatusOK, out)
}

// ApproveRelease implements openapi.ServerInterface.
func (s *Server) ApproveRelease(c echo.Context, app openapi.AppName, channel openapi.ChannelName) error {
	if err := checkPathName(app); err != nil {
		return err
	}
	var in openapi.ApprovalInput
	if _, err := readJSON(c, s.opts.maxBodyBytes, &in); err != nil {
		return err
	}
	ap, created, err := s.deps.Channels.Approve(c.Request().Context(), app, channel, release.ApprovalSpec{
		Version: in.Version, Reason: deref(in.Reason), Actor: actor(c), ActorID: actorID(c)})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, approvalResponse(ap))
}

// RevokeApproval implements openapi.ServerInterface.
func (s *Server) RevokeApproval(c echo.Context, app openapi.AppName, channel openapi.ChannelName, version string) error {
	if err := checkPathName(app); err != nil {
		return err
	}
	ap, err := s.deps.Channels.Revoke(c.Request().Context(), app, channel, release.ApprovalSpec{Version: version, Actor: actor(c), ActorID: actorID(c)})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, approvalResponse(ap))
}

// UnpinChannel implements openapi.ServerInterface.
func (s *Server) UnpinChannel(c echo.Context, app openapi.AppName, channel openapi.ChannelName, params openapi.UnpinChannelParams) error {
	var in openapi.ReasonInput
	return s.move(c, app, channel, params.IfMatch, params.IdempotencyKey, &in, func() release.Move {
		return release.Move{Action: release.ActionUnpin, Reason: deref(in.Reason)}
	})
}
