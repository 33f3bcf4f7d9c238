// Package gocache is the Go build cache every worker shares through the blob store: a
// GOCACHEPROG program (RunProg, run by the go command as `slipway gocacheprog`) that
// relays the go command's cache protocol over a private unix socket to the worker's
// Server, which keeps a local tier on disk and the shared tier in the blob store.
package gocache
