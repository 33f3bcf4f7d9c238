// Package api is slipway's HTTP server: Echo handlers implementing the interface generated
// from openapi.yaml (the /v1 API and the read-only OCI registry under /v2/), the middleware
// around them (authentication, request ids, limits, logs, metrics), the answers it keeps in
// Redis for Idempotency-Key retries, and the one table where errors meet HTTP: every
// problem type and registry error code with its status, and which error becomes which. It
// also serves the web portal under /ui/ (ui.go, ui_pages.go; templates and assets in
// api/portal), whose pages read the same stores and pass the same scope checks.
package api
