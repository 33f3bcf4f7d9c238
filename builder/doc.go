// Package builder turns Go source into binaries: it knows the installed Go toolchain and
// the platforms it targets, and (as it grows) takes sources in, compiles them per platform
// and assembles images.
package builder
