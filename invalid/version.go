package invalid

import (
	"fmt"
	"regexp"
	"strings"
)

// semVer is semver.org's regular expression for SemVer 2.0.0.
var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// CheckVersion checks that v is a SemVer 2.0.0 version such as 1.4.2 or 2.0.0-rc.1, of at
// most 128 bytes: the versions of builds and of releases alike.
func CheckVersion(v string) error {
	if len(v) > 128 || !semVer.MatchString(v) {
		return fmt.Errorf("%q is not a SemVer 2.0.0 version such as 1.4.2 or 2.0.0-rc.1 (v1.4.2, a git tag, is taken as 1.4.2)", v)
	}
	return nil
}

// NormalizeVersion drops the leading v of a version in a git tag's form (v1.4.2 becomes
// 1.4.2) and reports whether it did; it leaves alone anything that is not a SemVer
// version once the v is gone, for CheckVersion to refuse.
func NormalizeVersion(v string) (string, bool) {
	rest, ok := strings.CutPrefix(v, "v")
	if !ok || CheckVersion(rest) != nil {
		return v, false
	}
	return rest, true
}
