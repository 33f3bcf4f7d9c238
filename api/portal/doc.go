// Package portal holds the web portal's templates and assets, embedded in the binary, and
// the small interfaces through which the portal shows what other parts of slipway know:
// what a promotion would change (Differ) and where its gates stand (GateChecker). The
// API serves the pages under /ui/.
package portal
