package builder

import (
	"fmt"
	"regexp"
)

// semVer is the regular expression of semver.org for SemVer 2.0.0.
var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// ValidateVersion checks that v is a SemVer 2.0.0 version such as 1.4.2 or 2.0.0-rc.1.
func ValidateVersion(v string) error {
	if len(v) > 128 || !semVer.MatchString(v) {
		return fmt.Errorf("%q is not a SemVer 2.0.0 version such as 1.4.2 or 2.0.0-rc.1 (no leading v)", v)
	}
	return nil
}

var commitRE = regexp.MustCompile(`^[0-9A-Za-z._/-]{1,128}$`)

// ValidateCommit checks a commit identifier: a hash, tag or branch name of at most 128
// letters, digits and . _ / -.
func ValidateCommit(c string) error {
	if !commitRE.MatchString(c) {
		return fmt.Errorf("%q is not a commit: at most 128 letters, digits and . _ / -", c)
	}
	return nil
}
