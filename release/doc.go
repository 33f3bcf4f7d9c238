// Package release keeps apps, releases and channels in Redis and enforces their rules:
// what an app's configuration may be, and (as it grows) how releases are made and moved.
package release
