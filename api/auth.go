package api

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
)

// TokenStore is what the API needs of the token store; *auth.Tokens implements it.
type TokenStore interface {
	Create(ctx context.Context, name string, scopes, apps []string) (string, auth.Token, error)
	Lookup(ctx context.Context, secret string) (auth.Token, error)
	Get(ctx context.Context, name string) (auth.Token, error)
	List(ctx context.Context) ([]auth.Token, error)
	Delete(ctx context.Context, name string) error
	DeleteIf(ctx context.Context, name, id string) error
	// LookupHash is Lookup by auth.HashToken of the secret, for portal sessions.
	LookupHash(ctx context.Context, hash string) (auth.Token, error)
}

// RateLimiter admits or refuses each caller's requests; *auth.RateLimiter implements it.
type RateLimiter interface {
	Allow(ctx context.Context, caller string) (bool, time.Duration, error)
}

var (
	_ TokenStore  = (*auth.Tokens)(nil)
	_ RateLimiter = (*auth.RateLimiter)(nil)
)

// principal is who makes a request: a token, the admin, or nobody.
type principal struct {
	// id is the principal's identity, which rate limits follow: a token's id, or adminID.
	id string
	// name is how the principal is shown, and the actor of what it does.
	name   string
	scopes []string
	apps   []string // empty: every app
	// secret is a token's secret, to check it again while a response streams; empty for
	// the admin token, which lives as long as the server's configuration.
	secret string
	// tokenHash stands for secret in a portal session, which holds only the hash of its
	// token's secret (auth.HashToken); empty otherwise.
	tokenHash string
}

// The server's admin token (SLIPWAY_ADMIN_TOKEN) has a fixed identity and name, and a
// server without authentication acts as anonymous. No token may take these names, nor
// one shaped like a token id, so that an actor name never stands for two principals.
const (
	adminID       = "admin" // never a token's id, which starts with auth.TokenIDPrefix
	adminName     = "admin"
	anonymousID   = "anonymous"
	anonymousName = "anonymous"
)

// reservedName reports why a token may not be called name, or "".
func reservedName(name string) string {
	switch {
	case name == adminName:
		return "\"admin\" is reserved: it names the server's admin token (SLIPWAY_ADMIN_TOKEN) in history and events"
	case name == anonymousName:
		return "\"anonymous\" is reserved: it names what a server without authentication does"
	case strings.HasPrefix(name, auth.TokenIDPrefix):
		return "names starting " + auth.TokenIDPrefix + " are reserved for token ids"
	}
	return ""
}

const (
	ctxPrincipal     = "slipway.principal"
	ctxBadCredential = "slipway.bad_credential"
)

// has reports whether the principal holds scope; channel is the path's channel, which a
// promote:<channel> scope must match.
func (p *principal) has(scope, channel string) bool {
	return covers(p.scopes, scope) || (channelScopes[scope] && channel != "" && covers(p.scopes, scope+":"+channel))
}

// channelScopes are the scopes that may be held for one channel, as <scope>:<channel>.
var channelScopes = map[string]bool{"promote": true, "approve": true, "override": true}

// covers reports whether the scopes held include want: admin holds every scope, promote
// holds promote:<channel>, and every scope holds read.
func covers(held []string, want string) bool {
	for _, s := range held {
		switch {
		case s == "admin", s == want:
			return true
		case want == "read":
			return true
		case channelScopes[s] && strings.HasPrefix(want, s+":"):
			return true
		}
	}
	return false
}

func (p *principal) allowsApp(app string) bool {
	return len(p.apps) == 0 || slices.Contains(p.apps, app)
}

// limited reports whether the principal is limited to some apps.
func (p *principal) limited() bool { return p != nil && len(p.apps) > 0 }

// within reports whether a token limited to apps is no wider than the principal: any
// token for an unlimited principal (or none, when authentication is off), and for a
// limited one only a token limited to some of its apps.
func (p *principal) within(apps []string) bool {
	if !p.limited() {
		return true
	}
	if len(apps) == 0 {
		return false
	}
	for _, a := range apps {
		if !slices.Contains(p.apps, a) {
			return false
		}
	}
	return true
}

// caller is the request's principal, or nil when authentication is off.
func caller(c echo.Context) *principal {
	p, _ := c.Get(ctxPrincipal).(*principal)
	return p
}

// requirement is the scope one operation needs, from openapi.yaml.
type requirement struct {
	scope string
	// registry operations accept Basic credentials and answer in the registry's format.
	registry bool
	// anonymous operations (an empty alternative, {}, in their security) let a request
	// without credentials through to the handler, which shows it only what is public.
	anonymous bool
}

// requirements reads every operation's security requirement from spec (openapi.yaml). An
// operation that declares none is an error: every route must say what it needs. One whose
// every alternative is a scheme of type apiKey (a chat service's signature or token) is
// verified by its own handler, not by a token, and the token guard lets it through.
func requirements(spec []byte) (map[string]*requirement, error) {
	doc, err := openapi3.NewLoader().LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("loading openapi.yaml: %w", err)
	}
	out := map[string]*requirement{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			req, err := operationRequirement(op, doc.Components.SecuritySchemes)
			if err != nil {
				return nil, fmt.Errorf("openapi.yaml: %s %s: %w", method, path, err)
			}
			out[op.OperationID] = req
		}
	}
	return out, nil
}

// operationRequirement is what one operation's security says it needs: nil when it is
// open (security: []) or verified by its handler (apiKey schemes alone, which name no
// scope), else the one scope each scheme names, and whether {} lets anonymous callers in.
func operationRequirement(op *openapi3.Operation, schemes openapi3.SecuritySchemes) (*requirement, error) {
	if op.Security == nil {
		return nil, errors.New("declares no security")
	}
	if len(*op.Security) == 0 {
		return nil, nil // open
	}
	if verified, err := handlerVerified(*op.Security, schemes); verified || err != nil {
		return nil, err
	}
	req := &requirement{}
	for _, alt := range *op.Security {
		if len(alt) == 0 {
			req.anonymous = true
			continue
		}
		for scheme, scopes := range alt {
			if len(scopes) != 1 {
				return nil, fmt.Errorf("%s must name one scope", scheme)
			}
			req.scope = scopes[0]
			req.registry = req.registry || scheme == "basic"
		}
	}
	if req.scope == "" {
		return nil, errors.New("security has only {}; an open operation says security: []")
	}
	return req, nil
}

// handlerVerified reports whether every alternative of sec is schemes of type apiKey,
// which the operation's handler verifies itself; they name no scope, and may not be mixed
// with the token's schemes.
func handlerVerified(sec openapi3.SecurityRequirements, schemes openapi3.SecuritySchemes) (bool, error) {
	var apiKeys, others int
	for _, alt := range sec {
		for name, scopes := range alt {
			if ref := schemes[name]; ref == nil || ref.Value == nil || ref.Value.Type != "apiKey" {
				others++
				continue
			}
			apiKeys++
			if len(scopes) != 0 {
				return false, fmt.Errorf("%s is verified by the handler and names no scope", name)
			}
		}
		if len(alt) == 0 {
			others++
		}
	}
	if apiKeys > 0 && others > 0 {
		return false, errors.New("mixes schemes its handler verifies (apiKey) with the token's")
	}
	return apiKeys > 0, nil
}

// operationMiddlewares guards each operation with its requirement.
func (s *Server) operationMiddlewares(reqs map[string]*requirement) map[string][]echo.MiddlewareFunc {
	m := map[string][]echo.MiddlewareFunc{}
	for op, req := range reqs {
		if req == nil || (op == "getMetrics" && s.opts.metricsPublic) {
			continue
		}
		m[op] = []echo.MiddlewareFunc{s.require(*req)}
	}
	return m
}

// authenticate finds the request's principal, if any. A credential that is not a
// token is refused at once; no credential leaves the request anonymous for the
// operation's guard to judge.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.opts.adminToken == "" {
			return next(c) // auth is off: the server runs on loopback without an admin token
		}
		secret, scheme := credential(c.Request())
		if secret == "" {
			return next(c)
		}
		p, err := s.lookup(c.Request().Context(), secret)
		if err != nil {
			return err
		}
		if p == nil {
			// Refused by the operation's guard; open operations ignore credentials.
			c.Set(ctxBadCredential, scheme)
			return next(c)
		}
		c.Set(ctxPrincipal, p)
		return next(c)
	}
}

// credential returns the secret of a Bearer header, or the password of a Basic one.
func credential(r *http.Request) (secret, scheme string) {
	h := r.Header.Get("Authorization")
	if v, ok := cutPrefixFold(h, "Bearer "); ok {
		return strings.TrimSpace(v), "bearer"
	}
	if v, ok := cutPrefixFold(h, "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil {
			return "", "basic"
		}
		_, pass, _ := strings.Cut(string(raw), ":")
		return pass, "basic"
	}
	return "", ""
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}

// lookup returns the principal a secret names, or nil.
func (s *Server) lookup(ctx context.Context, secret string) (*principal, error) {
	if subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.adminToken)) == 1 {
		return &principal{id: adminID, name: adminName, scopes: []string{"admin"}}, nil
	}
	if !strings.HasPrefix(secret, auth.TokenPrefix) {
		return nil, nil
	}
	tok, err := s.deps.Tokens.Lookup(ctx, secret)
	if errors.Is(err, auth.ErrTokenUnknown) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p := tokenPrincipal(tok)
	p.secret = secret
	return p, nil
}

// tokenPrincipal is the caller a token stands for.
func tokenPrincipal(tok auth.Token) *principal {
	name := tok.Name
	if reservedName(name) != "" {
		// Made before the name was reserved: shown with its id, so that it never passes
		// for the admin, or for anyone, in history.
		name += " (" + tok.ID + ")"
	}
	return &principal{id: tok.ID, name: name, scopes: tok.Scopes, apps: tok.Apps}
}

// require guards an operation: the principal must hold the scope, be allowed the app in
// the path, and be within its rate.
func (s *Server) require(req requirement) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := s.guard(c, req, c.Param("app"), c.Param("channel")); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// guard is the check of require for one request: the principal must hold req's scope
// (for channel, when it is a promotion's), be allowed app ("" for none), and be within
// its rate. The portal's pages and forms ask it too, so the API and the portal decide
// alike.
func (s *Server) guard(c echo.Context, req requirement, app, channel string) error {
	if s.opts.adminToken == "" {
		return nil
	}
	p, _ := c.Get(ctxPrincipal).(*principal)
	if bad, _ := c.Get(ctxBadCredential).(string); bad != "" {
		return s.unauthorized(c, bad, "the token is not valid (revoked, mistyped, or from another server)")
	}
	if p == nil {
		if req.anonymous || (req.registry && app != "" && s.publicApp(c, app)) {
			return nil
		}
		scheme := "bearer"
		if req.registry {
			scheme = "basic"
		}
		return s.unauthorized(c, scheme, "this needs a token with the "+req.scope+" scope: send Authorization: Bearer <token>")
	}
	if !p.has(req.scope, channel) {
		what := req.scope
		if channelScopes[req.scope] && channel != "" {
			what = req.scope + " (or " + req.scope + ":" + channel + ")"
		}
		return s.forbidden(c, req, "token %s lacks the %s scope; it has %s", p.name, what, strings.Join(p.scopes, ", "))
	}
	if app != "" && !p.allowsApp(app) {
		return s.forbidden(c, req, "token %s is limited to the apps %s, not %s", p.name, strings.Join(p.apps, ", "), app)
	}
	if s.deps.Limiter != nil {
		ok, wait, err := s.deps.Limiter.Allow(c.Request().Context(), p.id)
		if err != nil {
			return err
		}
		if !ok {
			secs := int(wait.Seconds()) + 1
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			if req.registry {
				return regErr(codeTooManyRequests, "token %s is over its rate; retry in %d s", p.name, secs)
			}
			return newProblem(openapi.ProblemRateLimited, "token %s is over its request rate; retry in %d s", p.name, secs)
		}
	}
	return nil
}

func (s *Server) publicApp(c echo.Context, app string) bool {
	a, err := s.appOnce(c, app)
	return err == nil && a.Public
}

// ctxApp holds the app a request has read, so that the guard and the handler read it once.
const ctxApp = "slipway.app"

// appOnce returns the app called name as this request first read it.
func (s *Server) appOnce(c echo.Context, name string) (release.App, error) {
	if a, ok := c.Get(ctxApp).(release.App); ok && a.Name == name {
		return a, nil
	}
	a, err := s.deps.Apps.Get(c.Request().Context(), name)
	if err == nil {
		c.Set(ctxApp, a)
	}
	return a, err
}

func (s *Server) unauthorized(c echo.Context, scheme, detail string) error {
	if scheme == "basic" || strings.HasPrefix(c.Path(), "/v2/") {
		c.Response().Header().Set("WWW-Authenticate", `Basic realm="slipway"`)
		return regErr(codeUnauthorized, "%s", detail)
	}
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="slipway"`)
	return newProblem(openapi.ProblemUnauthorized, "%s", detail)
}

func (s *Server) forbidden(c echo.Context, req requirement, format string, args ...any) error {
	if req.registry {
		return regErr(codeDenied, format, args...)
	}
	return newProblem(openapi.ProblemForbidden, format, args...)
}

// actor names who makes a change, for history and events: the token's name, admin for
// the server's admin token, or anonymous when authentication is off. At any moment a name
// stands for one principal at most (names of live tokens are unique and the other two are
// reserved); actorID tells apart tokens that bore one name at different times.
func actor(c echo.Context) string {
	if p := caller(c); p != nil {
		return p.name
	}
	return anonymousName
}

// actorID is the identity of who makes a request, recorded beside actor: the token's id
// (tok_...), admin for the server's admin token, or anonymous when the request has no
// principal (authentication is off).
func actorID(c echo.Context) string {
	if p := caller(c); p != nil {
		return p.id
	}
	return anonymousID
}

// watchCredential watches the credential of a response that streams (an event stream, a
// followed build log): every WithCredentialCheck period (5s by default) it asks the token
// store again for the request's token, and closes revoked once the token is gone. The
// server's admin token and requests without authentication are never revoked; a check
// that fails (Redis unreachable) is logged and tried again at the next period, since the
// stream's own reads fail then too. Call stop when the response ends.
//
// A streaming loop returns once revoked is closed: it looks before each write and
// selects on it beside its waits:
//
//	revoked, stop := s.watchCredential(c)
//	defer stop()
//	for {
//		select {
//		case <-revoked:
//			return nil
//		default:
//		}
//		... read and write ...
//		select {
//		case <-revoked:
//			return nil
//		case <-ctx.Done():
//			return nil
//		case <-time.After(poll):
//		}
//	}
func (s *Server) watchCredential(c echo.Context) (revoked <-chan struct{}, stop func()) {
	out, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	stop = func() { once.Do(func() { close(done) }) }
	p := caller(c)
	if p == nil || (p.secret == "" && p.tokenHash == "") {
		return out, stop
	}
	ctx := c.Request().Context()
	rid := requestID(c)
	go func() {
		t := time.NewTicker(s.opts.credentialCheck)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var err error
			if p.secret != "" {
				_, err = s.deps.Tokens.Lookup(ctx, p.secret)
			} else {
				_, err = s.deps.Tokens.LookupHash(ctx, p.tokenHash)
			}
			switch {
			case errors.Is(err, auth.ErrTokenUnknown):
				s.log.InfoContext(ctx, "ending a stream: its token was revoked", "actor", p.name, "actor_id", p.id, "request_id", rid)
				close(out)
				return
			case err != nil && ctx.Err() == nil:
				s.log.WarnContext(ctx, "checking the token of a stream", "actor_id", p.id, "err", err, "request_id", rid)
			}
		}
	}()
	return out, stop
}

// visibleApp reports whether the request's principal may see app.
func visibleApp(c echo.Context, app string) bool {
	p, ok := c.Get(ctxPrincipal).(*principal)
	return !ok || p.allowsApp(app)
}

// maxTokenApps is how many apps one token may be limited to.
const maxTokenApps = 1000

// CreateToken implements openapi.ServerInterface. A token never makes a token wider
// than itself: its scopes must cover each scope asked for, and a caller limited to some
// apps makes only tokens limited to some of them.
func (s *Server) CreateToken(c echo.Context) error {
	var in openapi.TokenInput
	if err := decodeJSON(c, s.opts.maxBodyBytes, &in); err != nil {
		return err
	}
	var verr release.ValidationError
	if !tokenName.MatchString(in.Name) {
		verr.Fields = append(verr.Fields, release.FieldError{Field: "name", Detail: "1 to 64 of a-z, 0-9, '-', '_' and '.'"})
	} else if why := reservedName(in.Name); why != "" {
		verr.Fields = append(verr.Fields, release.FieldError{Field: "name", Detail: why + "; pick another name"})
	}
	if len(in.Scopes) == 0 {
		verr.Fields = append(verr.Fields, release.FieldError{Field: "scopes", Detail: "at least one scope: read, build, release, promote, promote:<channel>, approve, approve:<channel>, override, override:<channel> or admin"})
	}
	for i, sc := range in.Scopes {
		if !validScope(sc) {
			verr.Fields = append(verr.Fields, release.FieldError{Field: fmt.Sprintf("scopes[%d]", i),
				Detail: fmt.Sprintf("%q is not read, build, release, promote, promote:<channel>, approve, approve:<channel>, override, override:<channel> or admin", sc)})
		}
	}
	apps := deref(in.Apps)
	if len(apps) > maxTokenApps {
		verr.Fields = append(verr.Fields, release.FieldError{Field: "apps", Detail: fmt.Sprintf("%d apps; a token may be limited to at most %d", len(apps), maxTokenApps)})
	}
	for i, a := range apps {
		if err := release.ValidateName(a); err != nil {
			verr.Fields = append(verr.Fields, release.FieldError{Field: fmt.Sprintf("apps[%d]", i), Detail: err.Error()})
		}
	}
	if len(verr.Fields) > 0 {
		return &verr
	}
	if err := caller(c).mayCreate(in.Scopes, apps); err != nil {
		return err
	}
	secret, tok, err := s.deps.Tokens.Create(c.Request().Context(), in.Name, in.Scopes, apps)
	if errors.Is(err, auth.ErrTokenExists) {
		return newProblem(openapi.ProblemConflict, "%s", err.Error())
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, openapi.TokenCreated{
		Id: tok.ID, Name: tok.Name, Scopes: tok.Scopes, Apps: tok.Apps, CreatedAt: tok.CreatedAt, Token: secret,
	})
}

// mayCreate refuses, with a forbidden problem naming each field, a token wider than the
// principal (nil: authentication is off, anything goes).
func (p *principal) mayCreate(scopes, apps []string) error {
	if p == nil {
		return nil
	}
	var fields []openapi.FieldError
	add := func(field, format string, args ...any) {
		fields = append(fields, openapi.FieldError{Field: field, Pointer: pointer(field), Detail: fmt.Sprintf(format, args...)})
	}
	for i, sc := range scopes {
		if !covers(p.scopes, sc) {
			add(fmt.Sprintf("scopes[%d]", i), "%s is not among the scopes of token %s (%s)", sc, p.name, strings.Join(p.scopes, ", "))
		}
	}
	if p.limited() {
		if len(apps) == 0 {
			add("apps", "token %s is limited to the apps %s, so the tokens it makes must be limited to some of them too: send apps", p.name, strings.Join(p.apps, ", "))
		}
		for i, a := range apps {
			if !slices.Contains(p.apps, a) {
				add(fmt.Sprintf("apps[%d]", i), "%s is not among the apps token %s is limited to (%s)", a, p.name, strings.Join(p.apps, ", "))
			}
		}
	}
	if len(fields) == 0 {
		return nil
	}
	details := make([]string, len(fields))
	for i, f := range fields {
		details[i] = f.Field + ": " + f.Detail
	}
	prob := newProblem(openapi.ProblemForbidden, "a token cannot make a token wider than itself; %s", strings.Join(details, "; "))
	prob.fields = fields
	return prob
}

// ListTokens implements openapi.ServerInterface: a caller limited to some apps sees the
// tokens limited to some of its apps.
func (s *Server) ListTokens(c echo.Context) error {
	toks, err := s.deps.Tokens.List(c.Request().Context())
	if err != nil {
		return err
	}
	p := caller(c)
	out := openapi.TokenList{Items: make([]openapi.Token, 0, len(toks))}
	for _, t := range toks {
		if p.within(t.Apps) {
			out.Items = append(out.Items, openapi.Token{Id: t.ID, Name: t.Name, Scopes: t.Scopes, Apps: t.Apps, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt})
		}
	}
	return c.JSON(http.StatusOK, out)
}

// DeleteToken implements openapi.ServerInterface. A caller limited to some apps revokes
// only the tokens it can list; any other name is answered as an unknown one, so names
// cannot be probed.
func (s *Server) DeleteToken(c echo.Context, name string) error {
	ctx := c.Request().Context()
	var err error
	if p := caller(c); p.limited() {
		var tok auth.Token
		tok, err = s.deps.Tokens.Get(ctx, name)
		if err == nil && !p.within(tok.Apps) {
			err = auth.ErrTokenUnknown
		}
		if err == nil {
			// Revokes the token judged above, not one that took its name since.
			err = s.deps.Tokens.DeleteIf(ctx, name, tok.ID)
		}
	} else {
		err = s.deps.Tokens.Delete(ctx, name)
	}
	if errors.Is(err, auth.ErrTokenUnknown) {
		return newProblem(openapi.ProblemNotFound, "no token named %q; GET /v1/tokens lists the tokens you may revoke", name)
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

var tokenName = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)

func validScope(s string) bool {
	switch s {
	case "read", "build", "release", "promote", "approve", "override", "admin":
		return true
	}
	scope, ch, ok := strings.Cut(s, ":")
	return ok && channelScopes[scope] && release.ValidateName(ch) == nil
}

// mayOverride checks that the caller may override the gates of channel: the scope
// override:<channel>, override or admin.
func (s *Server) mayOverride(c echo.Context, channel string) error {
	if s.opts.adminToken == "" {
		return nil
	}
	p := caller(c)
	if p != nil && p.has("override", channel) {
		return nil
	}
	name := anonymousName
	if p != nil {
		name = p.name
	}
	return newProblem(openapi.ProblemForbidden, "%s may not override the gates of %s: that needs the scope override:%s (or override, or admin)", name, channel, channel)
}
