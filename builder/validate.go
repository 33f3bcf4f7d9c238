package builder

import (
	"fmt"
	"regexp"

	"github.com/slipway/slipway/invalid"
)

// ValidateVersion checks that v is a SemVer 2.0.0 version such as 1.4.2 or 2.0.0-rc.1.
func ValidateVersion(v string) error { return invalid.CheckVersion(v) }

var commitRE = regexp.MustCompile(`^[0-9A-Za-z._/-]{1,128}$`)

// ValidateCommit checks a commit identifier: a hash, tag or branch name of at most 128
// letters, digits and . _ / -.
func ValidateCommit(c string) error {
	if !commitRE.MatchString(c) {
		return fmt.Errorf("%q is not a commit: at most 128 letters, digits and . _ / -", c)
	}
	return nil
}
