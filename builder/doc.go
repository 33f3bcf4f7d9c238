// Package builder runs builds: intake checks a request and its source and queues the
// build (Queue, a Redis stream); a Worker takes builds off the queue and moves each
// through its states, fetching and extracting the source, compiling every platform with
// a Compiler (the Go toolchain of package gobuild), storing the binaries and assembling
// the image (package image); Builds keeps the build records, logs, links and referrers.
package builder
