// Package store keeps slipway's bytes and names its keys: the blob store (a local
// directory or an S3 bucket) holds sources, binaries, image blobs and logs, and paths.go
// documents every blob key and Redis key in one place.
package store
