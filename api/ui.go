package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/api/portal"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/openapi"
)

// SessionStore keeps the portal's sessions; *auth.Sessions implements it.
type SessionStore interface {
	Create(ctx context.Context, tokenHash string) (string, auth.Session, error)
	Get(ctx context.Context, id string) (auth.Session, error)
	Delete(ctx context.Context, id string) error
}

var _ SessionStore = (*auth.Sessions)(nil)

// The portal's cookie, and the value a session of a server without authentication
// stands for instead of a token's hash.
const (
	sessionCookie  = "slipway_session"
	anonymousToken = "anonymous"
)

// contentSecurityPolicy lets the portal's pages load their own stylesheet and script and
// nothing else: no inline script or style, no other origin, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"

// uiPages are the portal's templates, parsed once, one set a page.
type uiPages map[string]*template.Template

func parseUIPages() (uiPages, error) {
	pages := uiPages{}
	for _, name := range []string{"signin", "apps", "app", "channel", "release", "build", "error"} {
		t, err := template.New(name).Funcs(uiFuncs).ParseFS(portal.Templates(), "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

// registerUI serves the portal under /ui/.
func (s *Server) registerUI(e *echo.Echo) {
	g := e.Group("/ui", s.uiHeaders)
	assets := http.StripPrefix("/ui/assets/", http.FileServer(http.FS(portal.Assets())))
	g.GET("/assets/*", func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "public, max-age=300")
		assets.ServeHTTP(c.Response(), c.Request())
		return nil
	})
	e.GET("/ui", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/ui/") })
	g.GET("/signin", s.uiSignInForm)
	g.POST("/signin", s.uiSignIn)
	g.POST("/signout", s.uiPage(s.uiSignOut))
	g.GET("/", s.uiPage(s.uiApps))
	g.GET("/events", s.uiPage(s.uiEvents))
	g.GET("/apps/:app", s.uiPage(s.uiApp))
	g.GET("/apps/:app/channels/:channel", s.uiPage(s.uiChannel))
	g.POST("/apps/:app/channels/:channel/:action", s.uiPage(s.uiMove))
	g.GET("/apps/:app/releases/:version", s.uiPage(s.uiRelease))
	g.GET("/apps/:app/builds/:id", s.uiPage(s.uiBuild))
	g.GET("/apps/:app/builds/:id/log", s.uiPage(s.uiBuildLog))
	g.GET("/apps/:app/builds/:id/checksums", s.uiPage(s.uiChecksums))
	g.GET("/apps/:app/builds/:id/artifacts/*", s.uiPage(s.uiArtifact))
	g.GET("/apps/:app/blobs/:digest", s.uiPage(s.uiBlob))
}

// uiHeaders sets the portal's security headers on every answer under /ui/.
func (s *Server) uiHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

// uiReq is a signed-in request of the portal.
type uiReq struct {
	sid  string
	sess auth.Session
	p    *principal // nil when the server runs without authentication
}

// uiPage runs h for a signed-in browser: one without a live session is sent to sign in,
// and a POST must carry the session's CSRF token and come from the portal's own origin.
// An error h returns is shown as a page in words.
func (s *Server) uiPage(h func(echo.Context, *uiReq) error) echo.HandlerFunc {
	return func(c echo.Context) error {
		u, err := s.uiSession(c)
		if err != nil {
			return s.uiFail(c, nil, err)
		}
		if u == nil {
			if c.Request().Method != http.MethodGet {
				return s.uiRender(c, http.StatusForbidden, "error", uiData{Title: "Signed out",
					Error: &uiError{Status: http.StatusForbidden, Lead: "Your session has ended.", Detail: "Sign in again; nothing was changed."}})
			}
			return c.Redirect(http.StatusSeeOther, "/ui/signin?next="+url.QueryEscape(c.Request().URL.RequestURI()))
		}
		if c.Request().Method == http.MethodPost {
			if why := s.uiCrossSite(c); why != "" {
				return s.uiRender(c, http.StatusForbidden, "error", uiData{Title: "Refused", User: u,
					Error: &uiError{Status: http.StatusForbidden, Lead: "The form was refused.", Detail: why}})
			}
			if subtle.ConstantTimeCompare([]byte(c.FormValue("csrf")), []byte(u.sess.CSRF)) != 1 {
				return s.uiRender(c, http.StatusForbidden, "error", uiData{Title: "Refused", User: u,
					Error: &uiError{Status: http.StatusForbidden, Lead: "The form was refused.",
						Detail: "It did not carry this session's form token: reload the page and submit it again."}})
			}
		}
		if err := h(c, u); err != nil {
			return s.uiFail(c, u, err)
		}
		return nil
	}
}

// uiSession reads the request's session and makes its token the request's principal,
// through the same lookup as the API's. It answers nil for no live session: none, an
// expired one, or one whose token was revoked (that session is ended).
func (s *Server) uiSession(c echo.Context) (*uiReq, error) {
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	ctx := c.Request().Context()
	sess, err := s.deps.Sessions.Get(ctx, ck.Value)
	if errors.Is(err, auth.ErrSessionUnknown) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u := &uiReq{sid: ck.Value, sess: sess}
	if s.opts.adminToken == "" {
		if sess.TokenHash != anonymousToken {
			return nil, nil
		}
		return u, nil
	}
	p, err := s.sessionPrincipal(ctx, sess.TokenHash)
	if err != nil {
		return nil, err
	}
	if p == nil {
		_ = s.deps.Sessions.Delete(ctx, ck.Value)
		return nil, nil
	}
	u.p = p
	c.Set(ctxPrincipal, p)
	return u, nil
}

// sessionPrincipal is the principal whose secret hashes to h, or nil when that token is
// gone.
func (s *Server) sessionPrincipal(ctx context.Context, h string) (*principal, error) {
	if subtle.ConstantTimeCompare([]byte(h), []byte(auth.HashToken(s.opts.adminToken))) == 1 {
		return &principal{id: adminID, name: adminName, scopes: []string{"admin"}}, nil
	}
	tok, err := s.deps.Tokens.LookupHash(ctx, h)
	if errors.Is(err, auth.ErrTokenUnknown) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p := tokenPrincipal(tok)
	p.tokenHash = h
	return p, nil
}

// uiCrossSite says why a POST did not come from the portal's own pages, or "": a browser
// says where a request comes from in Sec-Fetch-Site and Origin, and either, when sent,
// must name this origin.
func (s *Server) uiCrossSite(c echo.Context) string {
	r := c.Request()
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return "It came from another site (Sec-Fetch-Site: " + site + "); submit it from this portal's own page."
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return "It came from another origin (" + origin + "); submit it from this portal's own page."
		}
	}
	return ""
}

// secureRequest reports whether the browser reached the server over TLS: directly, or
// through a trusted proxy (WithTrustedProxies) that says so in X-Forwarded-Proto.
func (s *Server) secureRequest(c echo.Context) bool {
	r := c.Request()
	if r.TLS != nil {
		return true
	}
	if r.Header.Get("X-Forwarded-Proto") != "https" || len(s.opts.trustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	return slices.ContainsFunc(s.opts.trustedProxies, func(p netip.Prefix) bool { return p.Contains(addr) })
}

func (s *Server) setSessionCookie(c echo.Context, value string, expires time.Time) {
	ck := &http.Cookie{Name: sessionCookie, Value: value, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.secureRequest(c)}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.Expires = expires
	}
	c.SetCookie(ck)
}

// safeNext is where a sign-in goes on to: a path of the portal, nothing else.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/ui/"
	}
	return next
}

func (s *Server) uiSignInForm(c echo.Context) error {
	if u, err := s.uiSession(c); err == nil && u != nil {
		return c.Redirect(http.StatusSeeOther, "/ui/")
	}
	return s.uiRender(c, http.StatusOK, "signin", uiData{Title: "Sign in",
		Body: signinView{Next: safeNext(c.QueryParam("next")), AuthOff: s.opts.adminToken == ""}})
}

// uiSignIn checks a token as the API would and opens a session for it.
func (s *Server) uiSignIn(c echo.Context) error {
	next := safeNext(c.FormValue("next"))
	view := signinView{Next: next, AuthOff: s.opts.adminToken == ""}
	if why := s.uiCrossSite(c); why != "" {
		view.Error = why
		return s.uiRender(c, http.StatusForbidden, "signin", uiData{Title: "Sign in", Body: view})
	}
	ctx := c.Request().Context()
	hash := anonymousToken
	if s.opts.adminToken != "" {
		secret := strings.TrimSpace(c.FormValue("token"))
		p, err := s.lookup(ctx, secret)
		if err != nil {
			return s.uiFail(c, nil, err)
		}
		if secret == "" || p == nil {
			view.Error = "That token is not valid here: it may be mistyped, revoked, or from another server."
			return s.uiRender(c, http.StatusUnauthorized, "signin", uiData{Title: "Sign in", Body: view})
		}
		hash = auth.HashToken(secret)
	}
	id, sess, err := s.deps.Sessions.Create(ctx, hash)
	if err != nil {
		return s.uiFail(c, nil, err)
	}
	if old, err := c.Cookie(sessionCookie); err == nil && old.Value != "" {
		_ = s.deps.Sessions.Delete(ctx, old.Value) // a new sign-in ends the session before it
	}
	s.setSessionCookie(c, id, sess.ExpiresAt)
	return c.Redirect(http.StatusSeeOther, next)
}

// uiSignOut ends the session on the server, so its cookie opens nothing any more.
func (s *Server) uiSignOut(c echo.Context, u *uiReq) error {
	if err := s.deps.Sessions.Delete(c.Request().Context(), u.sid); err != nil {
		return err
	}
	s.setSessionCookie(c, "", time.Time{})
	return c.Redirect(http.StatusSeeOther, "/ui/signin?signed_out=1")
}

// uiFail shows err as a page in words, with its problem's status.
func (s *Server) uiFail(c echo.Context, u *uiReq, err error) error {
	if c.Response().Committed {
		return nil
	}
	p := toProblem(err)
	rid := requestID(c)
	s.logProblem(c, p, err, rid)
	doc := problemDoc(c, p, rid)
	detail := deref(doc.Detail)
	if doc.Status >= 500 {
		detail = "Something went wrong on the server; the request id " + rid + " finds it in the server's log."
	}
	return s.uiRender(c, doc.Status, "error", uiData{Title: doc.Title, User: u,
		Error: &uiError{Status: doc.Status, Lead: doc.Title + ".", Detail: detail}})
}

// uiRender writes a page.
func (s *Server) uiRender(c echo.Context, status int, page string, d uiData) error {
	if d.User != nil {
		d.CSRF = d.User.sess.CSRF
		d.Who = "anonymous"
		if d.User.p != nil {
			d.Who = d.User.p.name
		}
	}
	var b strings.Builder
	if err := s.ui[page].ExecuteTemplate(&b, "layout", d); err != nil {
		s.log.ErrorContext(c.Request().Context(), "rendering a portal page", "page", page, "err", err, "request_id", requestID(c))
		return c.String(http.StatusInternalServerError, "the page could not be rendered; request id "+requestID(c))
	}
	return c.HTML(status, b.String())
}

// uiData is what every page's layout shows around its body.
type uiData struct {
	Title  string
	User   *uiReq
	Who    string
	CSRF   string
	Crumbs []uiCrumb
	// Live names the app whose events the page follows ("*" for every visible app), or "".
	Live  string
	Flash string
	Error *uiError
	Body  any
}

type uiCrumb struct{ Label, Href string }

// uiError is a refusal or a failure, said in words.
type uiError struct {
	Status int
	Lead   string
	Detail string
}

type signinView struct {
	Next    string
	AuthOff bool
	Error   string
}

// uiRead checks that the request may read app (every app, for ""), as the API's read
// operations would.
func (s *Server) uiRead(c echo.Context, app string) error {
	return s.guard(c, requirement{scope: "read"}, app, "")
}

// uiMay reports whether the request may run the API operation op on app's channel: the
// scope op names in openapi.yaml, as the API's guard would judge it (without spending
// the rate).
func (s *Server) uiMay(c echo.Context, op, app, channel string) bool {
	if s.opts.adminToken == "" {
		return true
	}
	req := s.reqs[op]
	p := caller(c)
	return req != nil && p != nil && p.has(req.scope, channel) && p.allowsApp(app)
}

// uiEvents is the event stream of the apps the session may read, as GET /v1/events
// serves it, for the pages' live updates.
func (s *Server) uiEvents(c echo.Context, u *uiReq) error {
	var params openapi.ListEventsParams
	if app := c.QueryParam("app"); app != "" {
		params.App = &app
	}
	if last := c.Request().Header.Get("Last-Event-ID"); last != "" {
		params.LastEventID = &last
	}
	c.Request().Header.Set("Accept", "text/event-stream")
	if err := s.uiRead(c, deref(params.App)); err != nil {
		return err
	}
	return s.ListEvents(c, params)
}

// uiBuildLog is a build's log as GET .../builds/{id}/log serves it, for the follower of
// the build page.
func (s *Server) uiBuildLog(c echo.Context, u *uiReq) error {
	app, id := c.Param("app"), c.Param("id")
	if err := s.uiRead(c, app); err != nil {
		return err
	}
	var params openapi.GetBuildLogParams
	if v := c.QueryParam("offset"); v != "" {
		off, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return newProblem(openapi.ProblemInvalidParameter, "offset %q is not a number", v)
		}
		params.Offset = &off
	}
	if c.QueryParam("follow") == "1" {
		params.Follow = ptr(true)
	}
	return s.GetBuildLog(c, app, id, params)
}

func (s *Server) uiChecksums(c echo.Context, u *uiReq) error {
	app := c.Param("app")
	if err := s.uiRead(c, app); err != nil {
		return err
	}
	return s.GetBuildChecksums(c, app, c.Param("id"))
}

// uiArtifact downloads one platform's binary: .../artifacts/<os>/<arch>[/<variant>].
func (s *Server) uiArtifact(c echo.Context, u *uiReq) error {
	app := c.Param("app")
	if err := s.uiRead(c, app); err != nil {
		return err
	}
	parts := strings.Split(c.Param("*"), "/")
	if len(parts) < 2 || len(parts) > 3 {
		return newProblem(openapi.ProblemNotFound, "an artifact is named <os>/<arch> or <os>/<arch>/<variant>")
	}
	return s.serveArtifact(c, app, c.Param("id"), strings.Join(parts, "/"))
}

// uiBlob serves a blob of app's images (an SBOM), as the registry would.
func (s *Server) uiBlob(c echo.Context, u *uiReq) error {
	app := c.Param("app")
	if err := s.uiRead(c, app); err != nil {
		return err
	}
	return s.serveBlob(c, app, c.Param("digest"))
}

var _ fs.FS = portal.Assets()
