package builder

import "errors"

// ErrPlatform means a platform string is malformed or not one the toolchain builds.
var ErrPlatform = errors.New("unsupported platform")
