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
	"github.com/slipway/slipway/chatops"
	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/invalid"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/webhook"
)

// errBodyTooSlow means a request body fell behind the minimum upload rate.
var errBodyTooSlow = errors.New("the request body arrived slower than the minimum rate")

// registryCode is an error code of the OCI distribution spec, answered under /v2/.
type registryCode string

// The registry's error codes; each is registered in registryCodes.
const (
	codeBlobUnknown             registryCode = "BLOB_UNKNOWN"
	codeDenied                  registryCode = "DENIED"
	codeDigestInvalid           registryCode = "DIGEST_INVALID"
	codeManifestUnknown         registryCode = "MANIFEST_UNKNOWN"
	codeNameUnknown             registryCode = "NAME_UNKNOWN"
	codePaginationNumberInvalid registryCode = "PAGINATION_NUMBER_INVALID"
	codeRangeInvalid            registryCode = "RANGE_INVALID"
	codeTooManyRequests         registryCode = "TOO_MANY_REQUESTS"
	codeUnauthorized            registryCode = "UNAUTHORIZED"
	codeUnavailable             registryCode = "UNAVAILABLE"
	codeUnknown                 registryCode = "UNKNOWN"
	codeUnsupported             registryCode = "UNSUPPORTED"
)

// The one place where errors meet HTTP: kinds registers every problem type (the RFC 9457
// documents of /v1/) with its HTTP status and title, and registryCodes every error code
// of the OCI registry endpoint (/v2/) with its HTTP status, as distribution's
// registry/api/errcode registers its codes. Which error becomes which problem is
// problemRules, below.
var (
	kinds = map[openapi.ProblemType]struct {
		status int
		title  string
	}{
		openapi.ProblemInvalidJSON:           {http.StatusBadRequest, "Request body is not valid JSON"},
		openapi.ProblemInvalidParameter:      {http.StatusBadRequest, "Invalid parameter"},
		openapi.ProblemDigestMismatch:        {http.StatusBadRequest, "Body does not match its digest"},
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
		openapi.ProblemGatesFailed:           {http.StatusConflict, "Gates not passed"},
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

	registryCodes = map[registryCode]int{
		codeBlobUnknown:             http.StatusNotFound,
		codeDenied:                  http.StatusForbidden,
		codeDigestInvalid:           http.StatusBadRequest,
		codeManifestUnknown:         http.StatusNotFound,
		codeNameUnknown:             http.StatusNotFound,
		codePaginationNumberInvalid: http.StatusBadRequest,
		codeRangeInvalid:            http.StatusRequestedRangeNotSatisfiable,
		codeTooManyRequests:         http.StatusTooManyRequests,
		codeUnauthorized:            http.StatusUnauthorized,
		codeUnavailable:             http.StatusServiceUnavailable,
		codeUnknown:                 http.StatusInternalServerError,
		codeUnsupported:             http.StatusMethodNotAllowed,
	}
)

// registryError is an error of the OCI distribution API, written in its JSON form.
type registryError struct {
	code    registryCode
	message string
}

func (e *registryError) Error() string { return string(e.code) + ": " + e.message }

// status is the HTTP status registered for the error's code.
func (e *registryError) status() int { return registryCodes[e.code] }

func regErr(code registryCode, format string, args ...any) *registryError {
	return &registryError{code: code, message: fmt.Sprintf(format, args...)}
}

// writeRegistryError answers in the distribution spec's error format.
func writeRegistryError(c echo.Context, e *registryError) {
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(e.status())
		return
	}
	body, _ := json.Marshal(map[string]any{"errors": []map[string]any{{"code": e.code, "message": e.message}}})
	_ = c.Blob(e.status(), echo.MIMEApplicationJSON, body)
}

// etagError is an If-Match or If-None-Match value that is not an ETag of this server.
type etagError struct{ v string }

func (e *etagError) Error() string {
	return "\"" + e.v + "\" is not an ETag this server gave out; send the ETag header of a GET, such as \"3\""
}

// problemError is an error that already knows the problem it becomes.
type problemError struct {
	kind    openapi.ProblemType
	detail  string
	fields  []openapi.FieldError
	checks  map[string]string
	channel *openapi.Channel
	gates   []openapi.GateState
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

// problemRule turns the errors it recognises into their problem, and returns nil for
// any other.
type problemRule func(error) *problemError

// problemRules maps the errors of the packages below the API to the problems the client
// sees, in order: the first rule that recognises an error decides. Sentinels are matched
// with errors.Is (is), typed errors with errors.As (as).
var problemRules = []problemRule{
	as(func(p *problemError) *problemError { return p }),
	as(validationProblem),
	as(refusedProblem),
	is(webhook.ErrNotFound, openapi.ProblemNotFound, errText),
	is(chatops.ErrNotFound, openapi.ProblemNotFound, errText),
	as(func(e *chatops.AuthError) *problemError {
		return newProblem(openapi.ProblemUnauthorized, "%s command refused: %s", e.Platform, e.Detail)
	}),
	is(events.ErrBadCursor, openapi.ProblemInvalidParameter, func(err error) string { return "cursor: " + err.Error() }),
	as(sourceProblem),
	asKind[*source.Error](openapi.ProblemSourceInvalid),
	asKind[*builder.FetchError](openapi.ProblemSourceInvalid),
	is(errBodyTooSlow, openapi.ProblemRequestTimeout,
		fixed("the request body arrived slower than the server's minimum rate; send it again over a faster connection")),
	is(source.ErrTooLarge, openapi.ProblemBodyTooLarge, errText),
	is(builder.ErrNotFound, openapi.ProblemNotFound, errText),
	is(builder.ErrConflict, openapi.ProblemConflict, errText),
	as(channelStaleProblem),
	as(gatesProblem),
	is(release.ErrLocked, openapi.ProblemChannelLocked, errText),
	is(release.ErrPolicy, openapi.ProblemPolicyViolation, errText),
	is(release.ErrConflict, openapi.ProblemConflict, errText),
	as(func(e *release.StaleError) *problemError {
		return newProblem(openapi.ProblemPreconditionFailed,
			"If-Match is stale: the current generation is %d; read the resource again and retry with If-Match: \"%d\"",
			e.Current, e.Current)
	}),
	is(release.ErrExists, openapi.ProblemPreconditionFailed, func(err error) string { return err.Error() + "; If-None-Match: * only creates" }),
	is(release.ErrNotFound, openapi.ProblemNotFound, errText),
	as(fromEchoError),
	unavailableProblem,
}

// toProblem turns any error a handler returns into the problem the client sees: the
// first of problemRules that recognises it, or an internal problem.
func toProblem(err error) *problemError {
	for _, rule := range problemRules {
		if p := rule(err); p != nil {
			return p
		}
	}
	return &problemError{kind: openapi.ProblemInternal}
}

// is is the rule for a sentinel: an error that is target becomes a problem of kind with
// the detail detail makes of it, less the sentinel's own words at its start ("not found:
// no app named ..." is "no app named ..."), which the problem's title says already.
func is(target error, kind openapi.ProblemType, detail func(error) string) problemRule {
	return func(err error) *problemError {
		if !errors.Is(err, target) {
			return nil
		}
		return &problemError{kind: kind, detail: strings.TrimPrefix(detail(err), target.Error()+": ")}
	}
}

// as is the rule for a typed error: the first error of type E in the chain becomes the
// problem that problem makes of it.
func as[E error](problem func(E) *problemError) problemRule {
	return func(err error) *problemError {
		var e E
		if !errors.As(err, &e) {
			return nil
		}
		return problem(e)
	}
}

// asKind is the rule for a typed error whose problem is of kind, with the error's text as
// its detail.
func asKind[E error](kind openapi.ProblemType) problemRule {
	return as(func(e E) *problemError { return &problemError{kind: kind, detail: e.Error()} })
}

// errText is the detail of most sentinels: the error's own words.
func errText(err error) string { return err.Error() }

// fixed is a detail that is the same whatever the error says.
func fixed(detail string) func(error) string { return func(error) string { return detail } }

// validationProblem lists every field a domain package (release, webhook) refused.
func validationProblem(verr *invalid.Error) *problemError {
	p := &problemError{kind: openapi.ProblemValidationFailed}
	details := make([]string, 0, len(verr.Fields))
	for _, f := range verr.Fields {
		p.fields = append(p.fields, openapi.FieldError{Field: f.Field, Pointer: pointer(f.Field), Detail: f.Detail})
		details = append(details, f.Field+": "+f.Detail)
	}
	p.detail = strings.Join(details, "; ")
	return p
}

// refusedProblem is a webhook target in a range the server refuses to call.
func refusedProblem(refused *webhook.RefusedError) *problemError {
	p := newProblem(openapi.ProblemTargetRefused, "url: %s; the server's operator can allow the range (SLIPWAY_WEBHOOK_ALLOW_NETS) if the target is meant to be internal", refused.Error())
	p.fields = []openapi.FieldError{{Field: "url", Pointer: "/url", Detail: refused.Error()}}
	return p
}

// sourceProblem is a source the intake refused, naming the archive entry at fault.
func sourceProblem(srcErr *builder.SourceError) *problemError {
	p := newProblem(openapi.ProblemSourceInvalid, "%s", srcErr.Error())
	if srcErr.Entry != "" {
		p.fields = []openapi.FieldError{{Field: "source:" + srcErr.Entry, Pointer: "", Detail: srcErr.Detail}}
	}
	return p
}

// channelStaleProblem is a stale If-Match on a channel move: it carries the channel as it
// is now, and its ETag.
func channelStaleProblem(chStale *release.ChannelStaleError) *problemError {
	p := newProblem(openapi.ProblemPreconditionFailed,
		"If-Match is stale: channel %s is at generation %d now (it holds %s); read it again, decide, and retry with If-Match: \"%d\"",
		chStale.Current.Name, chStale.Current.Generation, orNone(chStale.Current.Release), chStale.Current.Generation)
	ch := channelResponse(chStale.Current)
	p.channel = &ch
	p.header = http.Header{headerETag: {formatETag(chStale.Current.Generation)}}
	return p
}

// gatesProblem is a promotion the channel's gates refused: it lists every gate's state.
func gatesProblem(e *release.GatesError) *problemError {
	p := newProblem(openapi.ProblemGatesFailed, "%s; see gates for every gate's state, or override with a reason (scope override:%s)", e.Error(), e.Channel)
	p.gates = gateStates(e.States)
	return p
}

// unavailableProblem is Redis or the blob store not answering: the client may retry.
func unavailableProblem(err error) *problemError {
	if !store.IsUnavailable(err) {
		return nil
	}
	p := newProblem(openapi.ProblemDependencyUnavailable,
		"Redis or the blob store did not answer, so nothing was recorded; retry in %d s (the same Idempotency-Key is safe)", unavailableRetry)
	p.header = http.Header{"Retry-After": {strconv.Itoa(unavailableRetry)}}
	p.cause = err
	return p
}

// unavailableRetry is the Retry-After, in seconds, of an answer given while a
// dependency is unreachable.
const unavailableRetry = 5

// echoProblems maps the statuses of the errors Echo and the generated wrapper raise to
// their problems; an empty detail is Echo's message.
var echoProblems = map[int]struct {
	kind   openapi.ProblemType
	detail string
}{
	http.StatusNotFound:              {openapi.ProblemRouteNotFound, "no route matches this path; see /openapi.yaml for the API"},
	http.StatusMethodNotAllowed:      {openapi.ProblemMethodNotAllowed, "this path does not accept this method; see /openapi.yaml for the API"},
	http.StatusRequestEntityTooLarge: {openapi.ProblemBodyTooLarge, "the request body is too large"},
	http.StatusUnsupportedMediaType:  {openapi.ProblemUnsupportedMediaType, ""},
	// The generated wrapper's parameter errors ("Invalid format for parameter limit: ...").
	http.StatusBadRequest: {openapi.ProblemInvalidParameter, ""},
}

// fromEchoError translates the errors Echo and the generated wrapper raise.
func fromEchoError(he *echo.HTTPError) *problemError {
	e, ok := echoProblems[he.Code]
	if !ok {
		return &problemError{kind: openapi.ProblemInternal}
	}
	if e.detail == "" {
		return &problemError{kind: e.kind, detail: fmt.Sprint(he.Message)}
	}
	return &problemError{kind: e.kind, detail: e.detail}
}

// handleError is Echo's error handler: it writes every error as a problem document (or,
// under /v2/, in the registry's error format) and logs the ones that are the server's
// fault.
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
	if strings.HasPrefix(c.Path(), "/v2/") && s.registryFault(c, p, err) {
		return
	}
	rid := requestID(c)
	s.logProblem(c, p, err, rid)
	if p.kind == openapi.ProblemRouteNotFound || p.kind == openapi.ProblemMethodNotAllowed {
		c.Set(ctxUnmatched, true)
	}
	if p.kind == openapi.ProblemMethodNotAllowed && c.Response().Header().Get(echo.HeaderAllow) == "" {
		c.Response().Header().Set(echo.HeaderAllow, allowedMethods(c))
	}
	for name, vals := range p.header {
		for _, v := range vals {
			c.Response().Header().Add(name, v)
		}
	}
	writeProblem(c, problemDoc(c, p, rid))
}

// registryFault answers, in the registry's error format, a problem under /v2/ that is
// the server's: a dependency that did not answer, or an internal error. It reports
// whether it answered.
func (s *Server) registryFault(c echo.Context, p *problemError, err error) bool {
	ctx, path := c.Request().Context(), c.Request().URL.Path
	switch p.kind {
	case openapi.ProblemDependencyUnavailable:
		s.log.WarnContext(ctx, "a dependency is unavailable", "err", err, "request_id", requestID(c), "path", path)
		c.Response().Header().Set("Retry-After", strconv.Itoa(unavailableRetry))
		writeRegistryError(c, regErr(codeUnavailable, "the registry's storage did not answer; retry in %d s", unavailableRetry))
	case openapi.ProblemInternal:
		rid := requestID(c)
		s.log.ErrorContext(ctx, "registry request failed", "err", err, "request_id", rid, "path", path)
		writeRegistryError(c, regErr(codeUnknown, "the server failed; report request id %s", rid))
	default:
		return false
	}
	return true
}

// logProblem logs a problem that is the server's fault, and replaces an internal error's
// detail with the request id to report: the client never sees err's text.
func (s *Server) logProblem(c echo.Context, p *problemError, err error, rid string) {
	ctx, method, path := c.Request().Context(), c.Request().Method, c.Request().URL.Path
	if p.cause != nil {
		s.log.WarnContext(ctx, "a dependency is unavailable", "err", p.cause, "request_id", rid, "method", method, "path", path)
	}
	if p.kind != openapi.ProblemInternal {
		return
	}
	p.detail = fmt.Sprintf("the server failed to handle this request; report request id %s", rid)
	if !errors.Is(err, context.Canceled) {
		s.log.ErrorContext(ctx, "request failed", "err", err, "request_id", rid, "method", method, "path", path)
	}
}

// problemDoc is the RFC 9457 document of p, with its registered status and title.
func problemDoc(c echo.Context, p *problemError, rid string) openapi.Problem {
	k := kinds[p.kind]
	doc := openapi.Problem{
		Type:      p.kind,
		Title:     k.title,
		Status:    k.status,
		Detail:    &p.detail,
		Instance:  ptr(c.Request().URL.Path),
		RequestId: &rid,
		Channel:   p.channel,
	}
	if len(p.fields) > 0 {
		doc.Errors = &p.fields
	}
	if len(p.checks) > 0 {
		doc.Checks = &p.checks
	}
	if p.gates != nil {
		doc.Gates = &p.gates
	}
	return doc
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
