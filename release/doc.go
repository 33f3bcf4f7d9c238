// Package release keeps apps, releases and channels in Redis and enforces their rules:
// what an app's configuration may be, that a release is made once from a succeeded build,
// which channel a release may be promoted from, and how a channel moves (promotion,
// rollback, locks), each move one atomic script that also appends its history and event.
package release
