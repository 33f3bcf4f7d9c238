package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
)

const headerETag = "ETag"

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// appReadOnly are the fields of an app the server sets; a body that sends them is told so.
var appReadOnly = []string{"generation", "created_at", "updated_at"}

// ListApps implements openapi.ServerInterface.
func (s *Server) ListApps(c echo.Context, params openapi.ListAppsParams) error {
	limit, err := pageLimit(params.Limit)
	if err != nil {
		return err
	}
	after := ""
	if params.Cursor != nil && *params.Cursor != "" {
		after, err = decodeCursor(*params.Cursor)
		if err != nil {
			return err
		}
	}
	var apps []release.App
	var next string
	if p := caller(c); p.limited() {
		apps, next, err = s.ownApps(c.Request().Context(), p.apps, after, limit)
	} else {
		apps, next, err = s.deps.Apps.List(c.Request().Context(), after, limit)
	}
	if err != nil {
		return err
	}
	out := openapi.AppList{Items: make([]openapi.App, len(apps))}
	for i, a := range apps {
		out.Items[i] = appResponse(a)
	}
	if next != "" {
		out.NextCursor = ptr(encodeCursor(next))
	}
	return c.JSON(http.StatusOK, out)
}

// ownApps is a page of the apps a limited token may see, as Apps.List pages over every
// app: up to limit of them in name order after the name after, and the name to pass as
// after for the next page ("" on the last). Names the token is limited to that are no
// app (yet, or any more) are skipped, so every page is full and the next one is never
// empty.
func (s *Server) ownApps(ctx context.Context, names []string, after string, limit int) ([]release.App, string, error) {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	i, _ := slices.BinarySearch(names, after)
	if i < len(names) && names[i] == after {
		i++
	}
	var apps []release.App
	for _, n := range names[i:] {
		a, err := s.deps.Apps.Get(ctx, n)
		if errors.Is(err, release.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if len(apps) == limit {
			return apps, apps[limit-1].Name, nil // a page more
		}
		apps = append(apps, a)
	}
	return apps, "", nil
}

// GetApp implements openapi.ServerInterface.
func (s *Server) GetApp(c echo.Context, name openapi.AppName, params openapi.GetAppParams) error {
	if err := checkPathName(name); err != nil {
		return err
	}
	app, err := s.deps.Apps.Get(c.Request().Context(), name)
	if err != nil {
		return err
	}
	etag := formatETag(app.Generation)
	c.Response().Header().Set(headerETag, etag)
	if params.IfNoneMatch != nil && etagListMatches(*params.IfNoneMatch, app.Generation) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.JSON(http.StatusOK, appResponse(app))
}

// PutApp implements openapi.ServerInterface.
func (s *Server) PutApp(c echo.Context, name openapi.AppName, params openapi.PutAppParams) error {
	var pre release.Precondition
	if params.IfMatch != nil {
		gen, star, err := parseETag(*params.IfMatch)
		if err != nil {
			return newProblem(openapi.ProblemInvalidParameter, "If-Match: %s", err.Error())
		}
		pre.Generation, pre.MustExist = gen, star
	}
	if params.IfNoneMatch != nil {
		if strings.TrimSpace(*params.IfNoneMatch) != "*" {
			return newProblem(openapi.ProblemInvalidParameter, "If-None-Match: only * (create, never replace) is supported on PUT")
		}
		pre.MustNotExist = true
	}
	var in openapi.AppInput
	if err := decodeJSON(c, s.opts.maxBodyBytes, &in, appReadOnly...); err != nil {
		return err
	}
	if err := release.ValidateName(name); err != nil {
		return fieldProblem("name", err.Error())
	}
	if in.Name != nil && *in.Name != name {
		return fieldProblem("name", "\""+*in.Name+"\" differs from the name in the path, \""+name+"\"; leave it out or make them equal")
	}
	spec := release.AppSpec{
		Main:        in.Main,
		Platforms:   in.Platforms,
		BaseImage:   in.BaseImage,
		Ldflags:     in.Ldflags,
		AutoPromote: in.AutoPromote,
		Public:      in.Public,
	}
	if in.Channels != nil {
		chs := make([]release.Channel, len(*in.Channels))
		for i, ch := range *in.Channels {
			chs[i] = release.Channel{Name: ch.Name, Gates: releaseGates(ch.Gates), AutoPromote: deref(ch.AutoPromote)}
			if ch.From != nil {
				chs[i].From = *ch.From
			}
		}
		spec.Channels = &chs
	}
	app, created, err := s.deps.Apps.Put(c.Request().Context(), name, spec, pre)
	if err != nil {
		return err
	}
	c.Response().Header().Set(headerETag, formatETag(app.Generation))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		c.Response().Header().Set(echo.HeaderLocation, "/v1/apps/"+name)
	}
	return c.JSON(status, appResponse(app))
}

// DeleteApp implements openapi.ServerInterface.
func (s *Server) DeleteApp(c echo.Context, name openapi.AppName, params openapi.DeleteAppParams) error {
	if err := checkPathName(name); err != nil {
		return err
	}
	var pre release.Precondition
	if params.IfMatch != nil {
		gen, _, err := parseETag(*params.IfMatch)
		if err != nil {
			return newProblem(openapi.ProblemInvalidParameter, "If-Match: %s", err.Error())
		}
		pre.Generation = gen
	}
	if err := s.deps.Apps.Delete(c.Request().Context(), name, pre); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func appResponse(a release.App) openapi.App {
	chs := make([]openapi.ChannelSpec, len(a.Channels))
	for i, ch := range a.Channels {
		chs[i] = openapi.ChannelSpec{Name: ch.Name, Gates: apiGates(ch.Gates)}
		if ch.From != "" {
			chs[i].From = ptr(ch.From)
		}
		if ch.AutoPromote {
			chs[i].AutoPromote = ptr(true)
		}
	}
	return openapi.App{
		Name:        a.Name,
		Main:        a.Main,
		Platforms:   a.Platforms,
		BaseImage:   a.BaseImage,
		Ldflags:     a.Ldflags,
		Channels:    chs,
		AutoPromote: a.AutoPromote,
		Public:      a.Public,
		Generation:  a.Generation,
		CreatedAt:   a.CreatedAt,
		UpdatedAt:   a.UpdatedAt,
	}
}

// checkPathName rejects a path name that cannot be an app's.
func checkPathName(name string) error {
	if err := release.ValidateName(name); err != nil {
		return newProblem(openapi.ProblemInvalidParameter, "app name %s", err.Error())
	}
	return nil
}

func pageLimit(p *int) (int, error) {
	if p == nil {
		return defaultPageSize, nil
	}
	if *p < 1 || *p > maxPageSize {
		return 0, newProblem(openapi.ProblemInvalidParameter, "limit %d is outside 1 to %d", *p, maxPageSize)
	}
	return *p, nil
}

// Cursors are opaque to clients: the base64url of the last key of the previous page.
func encodeCursor(last string) string { return base64.RawURLEncoding.EncodeToString([]byte(last)) }

func decodeCursor(cur string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil || len(b) == 0 {
		return "", newProblem(openapi.ProblemInvalidParameter, "cursor %q is not one this server gave out; start again without a cursor", cur)
	}
	return string(b), nil
}

func formatETag(gen int64) string { return `"` + strconv.FormatInt(gen, 10) + `"` }

// parseETag reads an If-Match value: a quoted generation ("3", also W/"3" and a bare 3)
// or * (any existing generation).
func parseETag(v string) (gen int64, star bool, err error) {
	v = strings.TrimSpace(v)
	if v == "*" {
		return 0, true, nil
	}
	raw := strings.Trim(strings.TrimPrefix(v, "W/"), `"`)
	gen, perr := strconv.ParseInt(raw, 10, 64)
	if perr != nil || gen < 1 {
		return 0, false, &etagError{v}
	}
	return gen, false, nil
}

// etagListMatches reports whether an If-None-Match list names the generation.
func etagListMatches(list string, gen int64) bool {
	for part := range strings.SplitSeq(list, ",") {
		g, star, err := parseETag(part)
		if star || (err == nil && g == gen) {
			return true
		}
	}
	return false
}
