package api

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/webhook"
)

// ChecksSecretStore keeps the secrets that sign the requests of each app's check gates;
// *webhook.Checker implements it.
type ChecksSecretStore interface {
	Secret(ctx context.Context, app string) (webhook.ChecksSecret, error)
	RotateSecret(ctx context.Context, app string) (webhook.ChecksSecret, error)
}

var _ ChecksSecretStore = (*webhook.Checker)(nil)

// checksSecrets returns the store of an existing app's checks secret.
func (s *Server) checksSecrets(c echo.Context, app string) (ChecksSecretStore, error) {
	if err := checkPathName(app); err != nil {
		return nil, err
	}
	if _, err := s.deps.Apps.Get(c.Request().Context(), app); err != nil {
		return nil, err
	}
	if s.deps.ChecksSecrets == nil {
		return nil, newProblem(openapi.ProblemNotFound, "this server calls no check gates, so it keeps no checks secret")
	}
	return s.deps.ChecksSecrets, nil
}

func checksSecretResponse(app string, sec webhook.ChecksSecret) openapi.ChecksSecret {
	return openapi.ChecksSecret{App: app, Secret: sec.Secret, PreviousSecretExpiresAt: sec.PreviousExpiresAt}
}

// GetChecksSecret implements openapi.ServerInterface.
func (s *Server) GetChecksSecret(c echo.Context, app openapi.AppName) error {
	store, err := s.checksSecrets(c, app)
	if err != nil {
		return err
	}
	sec, err := store.Secret(c.Request().Context(), app)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, checksSecretResponse(app, sec))
}

// RotateChecksSecret implements openapi.ServerInterface.
func (s *Server) RotateChecksSecret(c echo.Context, app openapi.AppName) error {
	store, err := s.checksSecrets(c, app)
	if err != nil {
		return err
	}
	sec, err := store.RotateSecret(c.Request().Context(), app)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, checksSecretResponse(app, sec))
}
