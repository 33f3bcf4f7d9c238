// Package vulns finds the known vulnerabilities of Go binaries with govulncheck
// (golang.org/x/vuln, which no other package imports), against a vulnerability database
// in the Go database's layout, and keeps what it found per binary and database version.
package vulns
