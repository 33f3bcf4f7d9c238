package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/source"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/release/webhook"
	"github.com/slipway/slipway/store"
)

// kinds registers every problem type with its HTTP status and title: the one place where
// errors meet HTTP.
var kinds = map[openapi.ProblemType]struct {
	status int
	title  string
}{
	openapi.ProblemInvalidJSON:           {http.StatusBadRequest, "Request body is not valid JSON"},
	openapi.ProblemInvalidParameter:      {http.StatusBadRequest, "Invalid parameter"},
	openapi.ProblemUnauthorized:          {http.StatusUnauthorized, "Authentication required"},
	openapi.ProblemForbidden:             {http.StatusForbidden, "Not allowed"},
	openapi.ProblemRateLimited:           {http.StatusTooManyRequests, "Too many requests"},
	openapi.ProblemNotFound:              {http.StatusNotFound, "Not found"},
	openapi.ProblemRouteNotFound:         {http.StatusNotFound, "No such route"},
	openapi.ProblemMethodNotAllowed:      {http.StatusMethodNotAllowed, "Method not allowed"},
	openapi.ProblemRequestTimeout:        {http.StatusRequestTimeout, "Request body too slow"},
	openapi.ProblemConflict:              {http.StatusConflict, "Conflict"},
	openapi.ProblemIdempotencyInFlight:   {http.StatusConflict, "Idempotency-Key in use"},
	openapi.ProblemPolicyViolation:       {http.StatusConflict, "Promotion policy violated"},
	openapi.ProblemChannelLocked:         {http.StatusLocked, "Channel locked"},
	openapi.ProblemSourceInvalid:         {http.StatusUnprocessableEntity, "Source refused"},
	openapi.ProblemTargetRefused:         {http.StatusUnprocessableEntity, "Webhook target refused"},
	openapi.ProblemIdempotencyKeyReused:  {http.StatusUnprocessableEntity, "Idempotency-Key reused"},
	openapi.ProblemPreconditionFailed:    {http.StatusPreconditionFailed, "Precondition failed"},
	openapi.ProblemBodyTooLarge:          {http.StatusRequestEntityTooLarge, "Request body too large"},
	openapi.ProblemUnsupportedMediaType:  {http.StatusUnsupportedMediaType, "Unsupported media type"},
	openapi.ProblemValidationFailed:      {http.StatusUnprocessableEntity, "Validation failed"},
	openapi.ProblemInternal:              {http.StatusInternalServerError, "Internal server error"},
	openapi.ProblemDependencyUnavailable: {http.StatusServiceUnavailable, "Dependency unavailable"},
}

// problemError is an error that already knows the problem it becomes.
type problemError struct {
	kind    openapi.ProblemType
	detail  string
	fields  []openapi.FieldError
	checks  map[string]string
	channel *openapi.Channel
	header  http.Header
	// cause is the error behind a problem that is the server's, for its log.
	cause error
}

func (p *problemError) Error() string { return string(p.kind) + ": " + p.detail }

func newProblem(kind openapi.ProblemType, format string, args ...any) *problemError {
	return &problemError{kind: kind, detail: fmt.Sprintf(format, args...)}
}

// fieldProblem is a validation problem with one field.
func fieldProblem(field, detail string) *problemError {
	return &problemError{
		kind:   openapi.ProblemValidationFailed,
		detail: field + ": " + detail,
		fields: []openapi.FieldError{{Field: field, Pointer: pointer(field), Detail: detail}},
	}
}

// pointer turns a field path such as "channels[2].from" into the JSON pointer
// "/channels/2/from".
func pointer(field string) string {
	if field == "" {
		return ""
	}
	r := strings.NewReplacer("~", "~0", "/", "~1", "[", "/", "]", "", ".", "/")
	return "/" + r.Replace(field)
}

// toProblem turns any error a handler returns into the problem the client sees.
func toProblem(err error) *problemError {
	var p *problemError
	if errors.As(err, &p) {
		return p
	}
	var verr *release.ValidationError
	if errors.As(err, &verr) {
		p := &problemError{kind: openapi.ProblemValidationFailed}
		details := make([]string, 0, len(verr.Fields))
		for _, f := range verr.Fields {
			p.fields = append(p.fields, openapi.FieldError{Field: f.Field, Pointer: pointer(f.Field), Detail: f.Detail})
			details = append(details, f.Field+": "+f.Detail)
		}
		p.detail = strings.Join(details, "; ")
		return p
	}
	var refused *webhook.RefusedError
	if errors.As(err, &refused) {
		p := newProblem(openapi.ProblemTargetRefused, "url: %s; the server's operator can allow the range (SLIPWAY_WEBHOOK_ALLOW_NETS) if the target is meant to be internal", refused.Error())
		p.fields = []openapi.FieldError{{Field: "url", Pointer: "/url", Detail: refused.Error()}}
		return p
	}
	if errors.Is(err, webhook.ErrNotFound) {
		return newProblem(openapi.ProblemNotFound, "%s", err.Error())
	}
	if errors.Is(err, webhook.ErrBadCursor) {
		return newProblem(openapi.ProblemInvalidParameter, "cursor: %s", err.Error())
	}
	var inErr *builder.InputError
	if errors.As(err, &inErr) {
		return fieldProblem(inErr.Field, inErr.Detail)
	}
	var srcErr *builder.SourceError
	if errors.As(err, &srcErr) {
		p := newProblem(openapi.ProblemSourceInvalid, "%s", srcErr.Error())
		if srcErr.Entry != "" {
			p.fields = []openapi.FieldError{{Field: "source:" + srcErr.Entry, Pointer: "", Detail: srcErr.Detail}}
		}
		return p
	}
	var archErr *source.Error
	if errors.As(err, &archErr) {
		return newProblem(openapi.ProblemSourceInvalid, "%s", archErr.Error())
	}
	var fetchErr *builder.FetchError
	if errors.As(err, &fetchErr) {
		return newProblem(openapi.ProblemSourceInvalid, "%s", fetchErr.Error())
	}
	if errors.Is(err, errBodyTooSlow) {
		return newProblem(openapi.ProblemRequestTimeout, "the request body arrived slower than the server's minimum rate; send it again over a faster connection")
	}
	if errors.Is(err, source.ErrTooLarge) {
		return newProblem(openapi.ProblemBodyTooLarge, "%s", err.Error())
	}
	if errors.Is(err, builder.ErrNotFound) {
		return newProblem(openapi.ProblemNotFound, "%s", err.Error())
	}
	if errors.Is(err, builder.ErrConflict) {
		return newProblem(openapi.ProblemConflict, "%s", err.Error())
	}
	var chStale *release.ChannelStaleError
	if errors.As(err, &chStale) {
		p := newProblem(openapi.ProblemPreconditionFailed,
			"If-Match is stale: channel %s is at generation %d now (it holds %s); read it again, decide, and retry with If-Match: \"%d\"",
			chStale.Current.Name, chStale.Current.Generation, orNone(chStale.Current.Release), chStale.Current.Generation)
		ch := channelResponse(chStale.Current)
		p.channel = &ch
		p.header = http.Header{headerETag: {formatETag(chStale.Current.Generation)}}
		return p
	}
	if errors.Is(err, release.ErrLocked) {
		return newProblem(openapi.ProblemChannelLocked, "%s", err.Error())
	}
	if errors.Is(err, release.ErrPolicy) {
		return newProblem(openapi.ProblemPolicyViolation, "%s", err.Error())
	}
	if errors.Is(err, release.ErrConflict) {
		return newProblem(openapi.ProblemConflict, "%s", err.Error())
	}
	var stale *release.StaleError
	if errors.As(err, &stale) {
		return newProblem(openapi.ProblemPreconditionFailed,
			"If-Match is stale: the current generation is %d; read the resource again and retry with If-Match: \"%d\"",
			stale.Current, stale.Current)
	}
	if errors.Is(err, release.ErrExists) {
		return newProblem(openapi.ProblemPreconditionFailed, "%s; If-None-Match: * only creates", err.Error())
	}
	if errors.Is(err, release.ErrNotFound) {
		return newProblem(openapi.ProblemNotFound, "%s", err.Error())
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return fromEchoError(he)
	}
	if store.IsUnavailable(err) {
		p := newProblem(openapi.ProblemDependencyUnavailable,
			"Redis or the blob store did not answer, so nothing was recorded; retry in %d s (the same Idempotency-Key is safe)", unavailableRetry)
		p.header = http.Header{"Retry-After": {strconv.Itoa(unavailableRetry)}}
		p.cause = err
		return p
	}
	return &problemError{kind: openapi.ProblemInternal}
}

// unavailableRetry is the Retry-After, in seconds, of an answer given while a
// dependency is unreachable.
const unavailableRetry = 5

// fromEchoError translates the errors Echo and the generated wrapper raise.
func fromEchoError(he *echo.HTTPError) *problemError {
	msg := fmt.Sprint(he.Message)
	switch he.Code {
	case http.StatusNotFound:
		return newProblem(openapi.ProblemRouteNotFound, "no route matches this path; see /openapi.yaml for the API")
	case http.StatusMethodNotAllowed:
		return newProblem(openapi.ProblemMethodNotAllowed, "this path does not accept this method; see /openapi.yaml for the API")
	case http.StatusRequestEntityTooLarge:
		return newProblem(openapi.ProblemBodyTooLarge, "the request body is too large")
	case http.StatusUnsupportedMediaType:
		return newProblem(openapi.ProblemUnsupportedMediaType, "%s", msg)
	case http.StatusBadRequest:
		// The generated wrapper's parameter errors ("Invalid format for parameter limit: ...").
		return newProblem(openapi.ProblemInvalidParameter, "%s", msg)
	}
	return &problemError{kind: openapi.ProblemInternal}
}

// handleError is Echo's error handler: it writes every error as a problem document and
// logs the ones that are the server's fault.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var re *registryError
	if errors.As(err, &re) {
		writeRegistryError(c, re)
		return
	}
	p := toProblem(err)
	if p.kind == openapi.ProblemDependencyUnavailable && strings.HasPrefix(c.Path(), "/v2/") {
		s.log.WarnContext(c.Request().Context(), "a dependency is unavailable", "err", err, "request_id", requestID(c), "path", c.Request().URL.Path)
		c.Response().Header().Set("Retry-After", strconv.Itoa(unavailableRetry))
		writeRegistryError(c, regErr(http.StatusServiceUnavailable, "UNAVAILABLE", "the registry's storage did not answer; retry in %d s", unavailableRetry))
		return
	}
	if p.kind == openapi.ProblemInternal && strings.HasPrefix(c.Path(), "/v2/") {
		rid := requestID(c)
		s.log.ErrorContext(c.Request().Context(), "registry request failed", "err", err, "request_id", rid, "path", c.Request().URL.Path)
		writeRegistryError(c, regErr(http.StatusInternalServerError, "UNKNOWN", "the server failed; report request id %s", rid))
		return
	}
	k := kinds[p.kind]
	rid := requestID(c)
	if p.kind == openapi.ProblemRouteNotFound || p.kind == openapi.ProblemMethodNotAllowed {
		c.Set(ctxUnmatched, true)
	}
	if p.cause != nil {
		s.log.WarnContext(c.Request().Context(), "a dependency is unavailable", "err", p.cause, "request_id", rid,
			"method", c.Request().Method, "path", c.Request().URL.Path)
	}
	if k.status >= 500 && p.kind == openapi.ProblemInternal {
		p.detail = fmt.Sprintf("the server failed to handle this request; report request id %s", rid)
		if !errors.Is(err, context.Canceled) {
			s.log.ErrorContext(c.Request().Context(), "request failed", "err", err, "request_id", rid,
				"method", c.Request().Method, "path", c.Request().URL.Path)
		}
	}
	if k.status == http.StatusMethodNotAllowed {
		if allow := c.Response().Header().Get(echo.HeaderAllow); allow == "" {
			c.Response().Header().Set(echo.HeaderAllow, allowedMethods(c))
		}
	}
	for name, vals := range p.header {
		for _, v := range vals {
			c.Response().Header().Add(name, v)
		}
	}
	doc := openapi.Problem{
		Type:      p.kind,
		Title:     k.title,
		Status:    k.status,
		Detail:    &p.detail,
		Instance:  ptr(c.Request().URL.Path),
		RequestId: &rid,
	}
	if len(p.fields) > 0 {
		doc.Errors = &p.fields
	}
	if len(p.checks) > 0 {
		doc.Checks = &p.checks
	}
	doc.Channel = p.channel
	writeProblem(c, doc)
}

func writeProblem(c echo.Context, doc openapi.Problem) {
	body, err := json.Marshal(doc)
	if err != nil {
		body = []byte(`{"type":"` + string(openapi.ProblemInternal) + `","title":"Internal server error","status":500}`)
		doc.Status = http.StatusInternalServerError
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(doc.Status)
		return
	}
	_ = c.Blob(doc.Status, "application/problem+json", body)
}

// allowedMethods lists the methods the router has for the request's path.
func allowedMethods(c echo.Context) string {
	var methods []string
	for _, r := range c.Echo().Routes() {
		if routeMatches(r.Path, c.Request().URL.Path) {
			methods = append(methods, r.Method)
		}
	}
	return strings.Join(methods, ", ")
}

// routeMatches reports whether an Echo route pattern (":param" segments) matches path.
func routeMatches(pattern, path string) bool {
	ps := strings.Split(pattern, "/")
	xs := strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if !strings.HasPrefix(ps[i], ":") && ps[i] != xs[i] {
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }

func orNone(s string) string {
	if s == "" {
		return "no release"
	}
	return s
}
