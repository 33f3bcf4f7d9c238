// Package source takes an uploaded Go module source archive, which is hostile input, and
// spools it to disk, checks it, and extracts it without ever writing outside the target
// directory, following a link, or letting a compression bomb run.
package source
