// Package store is slipway's storage: the blob stores (an S3 bucket, or a local directory
// as the embedded default) with content digests and verified reads, the per-process
// scratch directories, the helpers every Redis user shares (id pagination, telling an
// unavailable backend from an answer), and paths.go, the whole key layout: every blob key
// and every Redis key in one place. It keeps no records of its own: the packages that own
// them (tokens in auth, builds in builder, releases in release, ...) write them under the
// keys named here.
package store
