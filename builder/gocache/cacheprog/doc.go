// Package cacheprog is the program the go command runs as its GOCACHEPROG in slipway's
// builds (Run): it relays the go command's cache protocol to the worker's build cache
// server (package gocache) over a unix socket, answering the local tier's hits itself. It
// also holds what the program and the server share: the protocol's messages, the entry
// format and the local tier's layout. It imports only the standard library, so that the
// program starts at once: the go command waits for it.
package cacheprog
