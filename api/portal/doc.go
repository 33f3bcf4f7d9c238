// Package portal holds the web portal's templates and assets, embedded in the binary, and
// the Diff the channel page lays out; the API serves the pages under /ui/.
package portal
