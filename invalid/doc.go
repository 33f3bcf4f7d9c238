// Package invalid is the error of a request refused for its fields: every field at fault
// and why, found in one pass, with nothing written. The domain packages that check
// requests (release, webhook) return it, and the API turns it into one
// validation-failed problem listing the fields. It also holds the checks of formats that
// more than one of them validates (SemVer versions).
package invalid
