package source

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxSegment is the longest path segment a file system accepts (NAME_MAX on Linux);
// Inspect refuses longer ones so that it never accepts what Extract cannot write.
const maxSegment = 255

// cleanName checks an entry's name as it appears in the archive and returns it in the
// form it is extracted under: slash-separated, relative, without a leading "./" or a
// trailing slash. skip reports an entry naming the archive root itself ("." or "./"),
// which carries nothing and is ignored. reason is empty when the name is acceptable.
func cleanName(raw string, dir bool, maxLen int) (name string, skip bool, reason string) {
	switch {
	case raw == "":
		return "", false, "the name is empty"
	case len(raw) > maxLen:
		return "", false, fmt.Sprintf("the path is longer than %d bytes", maxLen)
	case !utf8.ValidString(raw):
		return "", false, "the name is not valid UTF-8"
	case strings.IndexFunc(raw, unicode.IsControl) >= 0:
		return "", false, "the name contains a control character"
	case raw[0] == '/' || raw[0] == '\\':
		return "", false, "the path is absolute"
	case len(raw) >= 2 && raw[1] == ':' && ('a' <= raw[0]|0x20 && raw[0]|0x20 <= 'z'):
		return "", false, "the path starts with a drive letter"
	case strings.Contains(raw, `\`):
		return "", false, "the name contains a backslash"
	}
	name = raw
	if strings.HasSuffix(name, "/") {
		if !dir {
			return "", false, "a file's name ends in a slash"
		}
		name = name[:len(name)-1]
	}
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	if name == "." {
		if !dir {
			return "", false, `a file cannot be named "."`
		}
		return "", true, ""
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "":
			return "", false, "the path has an empty segment"
		case seg == "..":
			return "", false, "path leaves the module root"
		case seg == ".":
			return "", false, `the path has a "." segment`
		case len(seg) > maxSegment:
			return "", false, fmt.Sprintf("a path segment is longer than %d bytes", maxSegment)
		}
	}
	return name, false, ""
}

// fold maps s to a form that two names share exactly when strings.EqualFold says they are
// equal, so that names differing only in case (A.go, a.go; K.go with a Kelvin sign, k.go)
// meet in one map key. An ASCII name without capitals is its own form, with no copy.
func fold(s string) string {
	simple := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			simple = false
			break
		}
	}
	if simple {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

// foldRune picks one member of r's simple case-folding orbit (the runes unicode.SimpleFold
// cycles through, which strings.EqualFold treats as equal): the lowercase ASCII letter
// when the orbit has one, otherwise the smallest rune. '/' is alone in its orbit, so
// folding keeps a path's segments where they were.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < utf8.RuneSelf {
			return foldRune(f)
		}
		least = min(least, f)
	}
	return least
}
