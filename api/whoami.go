package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/openapi"
)

// allScopes are the scopes a server without authentication grants everyone.
var allScopes = []string{"read", "build", "release", "promote", "admin"}

// GetWhoami implements openapi.ServerInterface: the request's principal as the token
// guard found it, or anonymous with every scope when authentication is off.
func (s *Server) GetWhoami(c echo.Context) error {
	p := caller(c)
	if p == nil {
		return c.JSON(http.StatusOK, openapi.Whoami{
			Name: anonymousName, Id: anonymousID, Scopes: allScopes, Apps: []string{}, Authenticated: false,
		})
	}
	apps := p.apps
	if apps == nil {
		apps = []string{}
	}
	return c.JSON(http.StatusOK, openapi.Whoami{Name: p.name, Id: p.id, Scopes: p.scopes, Apps: apps, Authenticated: true})
}
