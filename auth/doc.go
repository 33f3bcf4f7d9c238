// Package auth keeps who may call slipway and how often: API tokens (stored hashed in
// Redis, each with an id, scopes and apps) and the per-caller rate limiter (GCRA in one
// Lua script), both on the Redis keys that store/paths.go documents.
package auth
