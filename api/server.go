package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
)

// AppStore is what the API needs of the app registry; *release.Apps implements it.
type AppStore interface {
	Put(ctx context.Context, name string, spec release.AppSpec, pre release.Precondition) (release.App, bool, error)
	Get(ctx context.Context, name string) (release.App, error)
	List(ctx context.Context, after string, limit int) ([]release.App, string, error)
	Delete(ctx context.Context, name string, pre release.Precondition) error
}

var _ AppStore = (*release.Apps)(nil)

// Check is one dependency /readyz asks: Redis, the blob store.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// IdempotencyStore remembers answers to requests with an Idempotency-Key;
// *Idempotency implements it.
type IdempotencyStore interface {
	Begin(ctx context.Context, app, key, head string) (*IdemRecord, error)
	Complete(ctx context.Context, app, key string, rec IdemRecord) error
	Abort(ctx context.Context, app, key string) error
}

var _ IdempotencyStore = (*Idempotency)(nil)

// Deps are the parts the API serves from.
type Deps struct {
	Apps        AppStore
	Releases    ReleaseStore
	Channels    ChannelStore
	Builds      BuildStore
	Intake      BuildIntake
	Blobs       store.Blobs
	Idempotency IdempotencyStore
	Tokens      TokenStore
	// Events, when set, serves GET /v1/events.
	Events EventLog
	// Webhooks, when set, serves /v1/webhooks.
	Webhooks WebhookStore
	// Limiter, when set, limits each token's request rate, and each chat user's.
	Limiter RateLimiter
	// Chat, when set, serves the chat commands and their configuration (/v1/chatops).
	Chat ChatStore
	// ChatPoster, when set, posts the answers of chat commands that take longer than the
	// chat waits (WithChatAnswerWait) to their response_url; without it they are answered
	// when they are done.
	ChatPoster ChatPoster
	// SigningKeys, when set, are the public keys /v1/signing-keys serves: the key that
	// signs new builds first. The API holds no private key.
	SigningKeys []sign.PublicKey
	// Sessions, when set, serves the portal under /ui/, whose sign-in opens a session.
	Sessions SessionStore
	// Vulns, when set, lists a build's known vulnerabilities, which diffs compare;
	// without it a diff says no vulnerability database is configured.
	Vulns VulnLister
	// Verifier, when set, evaluates the gates that need more than Redis (check hooks,
	// signed, provenance, vulns) for promotions and their dry runs; *Verifier implements
	// it. Without one those gates fail, saying so.
	Verifier release.Verifier
	// ChecksSecrets, when set, serves /v1/apps/{app}/checks/secret: the secrets that sign
	// the check gates' requests.
	ChecksSecrets ChecksSecretStore
	// Checks are the dependencies /readyz reports on.
	Checks []Check
	// Metrics is where the API registers its metrics and what /metrics serves.
	Metrics *prometheus.Registry
	Log     *slog.Logger
}

// Server is slipway's HTTP API: an http.Handler serving the routes of openapi.yaml.
type Server struct {
	deps    Deps
	opts    options
	log     *slog.Logger
	echo    *echo.Echo
	metrics *httpMetrics
	pages   pageCache               // answers of ListReleases, re-sent while their app's stamp holds
	reqs    map[string]*requirement // each operation's scope, from openapi.yaml
	ui      uiPages                 // the portal's templates

	stopStreams  chan struct{} // closed by CloseStreams
	closeStreams sync.Once
}

var (
	_ openapi.ServerInterface = (*Server)(nil)
	_ http.Handler            = (*Server)(nil)
)

// New returns the API server for deps.
func New(deps Deps, opts ...Option) (*Server, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if deps.Apps == nil || deps.Releases == nil || deps.Channels == nil || deps.Builds == nil ||
		deps.Intake == nil || deps.Blobs == nil || deps.Idempotency == nil || deps.Tokens == nil {
		return nil, errors.New("api: Deps needs Apps, Releases, Channels, Builds, Intake, Blobs, Idempotency and Tokens")
	}
	if deps.Metrics == nil {
		deps.Metrics = prometheus.NewRegistry()
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{deps: deps, opts: o, log: deps.Log, stopStreams: make(chan struct{})}
	m, err := newHTTPMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	s.metrics = m

	reqs, err := requirements(openapi.Spec)
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = o.ipExtractor() // the client's address in logs: X-Forwarded-For only from trusted proxies
	e.Use(withRequestID, s.observe, s.recoverPanics)
	e.Use(s.limitBodyRate) // a stalled upload times out instead of holding its spool file
	if len(o.corsOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:  o.corsOrigins,
			AllowHeaders:  []string{"Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key", "X-Request-ID"},
			ExposeHeaders: []string{"ETag", "Location", "Retry-After", "X-Request-ID", "Slipway-Build-Status", "Link"},
			MaxAge:        600,
		}))
	}
	e.Use(s.authenticate)
	openapi.RegisterHandlersWithOptions(e, s, openapi.RegisterHandlersOptions{OperationMiddlewares: s.operationMiddlewares(reqs)})
	s.reqs = reqs
	if deps.Sessions != nil {
		if s.ui, err = parseUIPages(); err != nil {
			return nil, err
		}
		s.registerUI(e)
	}
	s.echo = e
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// GetHealth implements openapi.ServerInterface.
func (s *Server) GetHealth(c echo.Context) error {
	return c.JSON(http.StatusOK, openapi.Health{Status: openapi.HealthStatusOk})
}

// GetReadiness implements openapi.ServerInterface: every check must answer within the
// readiness timeout.
func (s *Server) GetReadiness(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.opts.readyTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.deps.Checks))
	for _, ch := range s.deps.Checks {
		go func() { results <- result{ch.Name, ch.Ping(ctx)} }()
	}
	checks := map[string]string{}
	var failed []string
	for range s.deps.Checks {
		r := <-results
		if r.err != nil {
			checks[r.name] = "unavailable"
			failed = append(failed, r.name)
			s.log.WarnContext(ctx, "readiness check failed", "check", r.name, "err", r.err, "request_id", requestID(c))
			continue
		}
		checks[r.name] = "ok"
	}
	if len(failed) > 0 {
		p := newProblem(openapi.ProblemDependencyUnavailable,
			"not ready: %s did not answer; the server log has the cause", joinSorted(failed))
		p.checks = checks
		return p
	}
	return c.JSON(http.StatusOK, openapi.Readiness{Status: openapi.ReadinessStatusOk, Checks: checks})
}

// GetMetrics implements openapi.ServerInterface.
func (s *Server) GetMetrics(c echo.Context) error {
	promhttp.HandlerFor(s.deps.Metrics, promhttp.HandlerOpts{}).ServeHTTP(c.Response(), c.Request())
	return nil
}

// GetSpec implements openapi.ServerInterface: the embedded openapi.yaml.
func (s *Server) GetSpec(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", openapi.Spec)
}
