package store

// The whole storage layout of slipway, in one place.
//
// Blob store (a directory under the data dir, or an S3 bucket), immutable objects:
//
//	blobs/sha256/<hex>          content-addressed bytes: binaries, image layers, configs,
//	                            manifests, SBOMs; stored once, shared by every build and app
//	sources/sha256/<hex>        uploaded source archives, by the digest of the archive
//	logs/<app>/<build id>.log   a build's log, written once when the build ends
//
// Redis, all metadata. Every key of one app carries the hash tag {<app>}, so a script that
// touches several keys of one app runs on Redis Cluster too. The only global key is the
// apps index, written with its own command after the app's keys (a listing skips index
// entries whose app is gone, and every PUT of an app re-adds it).
//
//	slipway:apps                sorted set, score 0, member = app name: the apps index,
//	                            read in name order with ZRANGEBYLEX for cursor pagination
//	slipway:{<app>}:app         hash: spec (the app's JSON configuration), gen (generation,
//	                            the ETag), created_at, updated_at (RFC 3339 UTC)

import "strings"

// BlobKey is the key of content-addressed bytes.
func BlobKey(d Digest) string { return "blobs/sha256/" + d.Hex() }

// SourceKey is the key of an uploaded source archive.
func SourceKey(d Digest) string { return "sources/sha256/" + d.Hex() }

// LogKey is the key of a finished build's log.
func LogKey(app, buildID string) string { return "logs/" + app + "/" + buildID + ".log" }

// AppsIndexKey is the Redis sorted set of all app names.
const AppsIndexKey = "slipway:apps"

// AppKey is the Redis hash holding one app's configuration.
func AppKey(app string) string { return appPrefix(app) + "app" }

// appPrefix is "slipway:{<app>}:", the hash-tagged prefix of every key of one app.
func appPrefix(app string) string {
	var b strings.Builder
	b.Grow(len(app) + 12)
	b.WriteString("slipway:{")
	b.WriteString(app)
	b.WriteString("}:")
	return b.String()
}
