// Package licenses tells the license of each module a Go binary was built with, from the
// license files at the module's root in the build's source tree or the module cache.
package licenses
