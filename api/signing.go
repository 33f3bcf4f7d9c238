package api

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
)

const (
	mimePEM  = "application/x-pem-file"
	mimeDSSE = "application/vnd.dsse.envelope.v1+json"
	// maxEnvelope bounds a provenance envelope read from the blob store.
	maxEnvelope = 8 << 20
)

// GetSigningKeys implements openapi.ServerInterface.
func (s *Server) GetSigningKeys(c echo.Context) error {
	keys := s.deps.SigningKeys
	if len(keys) == 0 {
		return newProblem(openapi.ProblemNotFound, "this server signs nothing: it has no signing key (SLIPWAY_SIGNING_KEYS)")
	}
	if strings.Contains(c.Request().Header.Get(echo.HeaderAccept), mimePEM) {
		pem, err := sign.PublicPEM(keys[0].Key)
		if err != nil {
			return err
		}
		c.Response().Header().Set("Slipway-Key-Id", keys[0].ID)
		return c.Blob(http.StatusOK, mimePEM, pem)
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": sign.JWKS(keys)})
}

// signedBuild returns a build's signing record: a build that has not succeeded is a
// conflict, one signed by nothing is not found.
func (s *Server) signedBuild(c echo.Context, app, id, what string) (builder.Build, *builder.Signing, error) {
	b, err := s.build(c, app, id)
	if err != nil {
		return b, nil, err
	}
	if b.Status != builder.StatusSucceeded {
		return b, nil, newProblem(openapi.ProblemConflict, "build %s is %s; only a succeeded build has %s", id, b.Status, what)
	}
	if b.Signing == nil {
		return b, nil, newProblem(openapi.ProblemNotFound, "build %s has no %s: the server had no signing key when it was built", id, what)
	}
	return b, b.Signing, nil
}

// GetBuildChecksumsSignature implements openapi.ServerInterface.
func (s *Server) GetBuildChecksumsSignature(c echo.Context, app openapi.AppName, id openapi.BuildID) error {
	_, sg, err := s.signedBuild(c, app, id, "signed checksums")
	if err != nil {
		return err
	}
	c.Response().Header().Set("Slipway-Key-Id", sg.KeyID)
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(sg.Checksums+"\n"))
}

// GetBuildProvenance implements openapi.ServerInterface.
func (s *Server) GetBuildProvenance(c echo.Context, app openapi.AppName, id openapi.BuildID) error {
	_, sg, err := s.signedBuild(c, app, id, "provenance")
	if err != nil {
		return err
	}
	d, err := store.ParseDigest(sg.Provenance)
	if err != nil {
		return err
	}
	rc, _, err := s.deps.Blobs.Get(c.Request().Context(), store.BlobKey(d), 0, -1)
	if errors.Is(err, store.ErrNotFound) {
		return newProblem(openapi.ProblemNotFound, "the provenance of build %s is not stored", id)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, maxEnvelope))
	if err != nil {
		return err
	}
	c.Response().Header().Set(headerETag, `"`+d.String()+`"`)
	return c.Blob(http.StatusOK, mimeDSSE, body)
}
