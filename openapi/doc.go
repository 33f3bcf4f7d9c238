// Package openapi holds slipway's HTTP API contract: openapi.yaml, the source of truth,
// and the Echo server interface, types and Go client generated from it. The document is
// embedded and served at /openapi.yaml.
package openapi

import _ "embed"

//go:generate go tool oapi-codegen -config oapi-codegen.yaml openapi.yaml

// Spec is openapi.yaml as written.
//
//go:embed openapi.yaml
var Spec []byte
