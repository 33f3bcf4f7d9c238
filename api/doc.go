// Package api is slipway's HTTP server: Echo handlers implementing the interface generated
// from openapi.yaml, the middleware around them (request ids, logs, metrics), the answers
// it keeps in Redis for Idempotency-Key retries, and the one place where errors become
// RFC 9457 problem documents.
package api
