// Package gobuild is the Go toolchain alone: the installed go command and the platforms
// it targets, ldflags templates, go.mod checks, and one compile of one platform in a clean
// environment and a sandbox. It knows nothing of Redis, HTTP or the rest of slipway.
package gobuild
