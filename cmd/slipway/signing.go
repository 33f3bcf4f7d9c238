package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/sign"
)

// loadSigningKeys reads the configured signing keys, or returns nil when none is.
func loadSigningKeys(cfg serveConfig, log *slog.Logger) (*sign.Keys, error) {
	if len(cfg.SigningKeys) == 0 {
		return nil, nil
	}
	paths := make([]string, len(cfg.SigningKeys))
	for i, p := range cfg.SigningKeys {
		if !filepath.IsAbs(p) {
			p = filepath.Join(cfg.DataDir, p)
		}
		paths[i] = p
	}
	keys, err := sign.LoadKeys(paths, cfg.SigningKeyGenerate)
	if err != nil {
		return nil, fmt.Errorf("signing keys (SLIPWAY_SIGNING_KEYS): %w", err)
	}
	log.Info("signing builds", "key_id", keys.Signer().KeyID(), "verifying_keys", len(keys.Public()))
	return keys, nil
}

// signer is the key the workers sign with, or nil.
func (s *service) signer() sign.Signer {
	if s.keys == nil {
		return nil
	}
	return s.keys.Signer()
}

// publicKeys are the keys /v1/signing-keys serves.
func (s *service) publicKeys() []sign.PublicKey {
	if s.keys == nil {
		return nil
	}
	return s.keys.Public()
}

// builderID names this slipway in provenance: its signing key, which is what a verifier
// trusts, and its version.
func (s *service) builderID() builder.BuilderID {
	id := "slipway"
	if s.keys != nil {
		id = "slipway:key:" + s.keys.Signer().KeyID()
	}
	return builder.BuilderID{ID: id, Version: version()}
}
