package main

import (
	"testing"

	"github.com/slipway/slipway/openapi"
)

// TestCLIErrorMessage checks that a refused request says the problem's detail once, with
// its status and kind, and what to do next unless the detail says it.
func TestCLIErrorMessage(t *testing.T) {
	detail := func(s string) *string { return &s }
	for _, tc := range []struct {
		name string
		err  *apiError
		want string
	}{
		{"not found", &apiError{status: 404, problem: openapi.Problem{Type: openapi.ProblemNotFound, Title: "Not found", Detail: detail(`no app named "x"`)}},
			`no app named "x" (404 not-found)`},
		{"fields", &apiError{status: 422, problem: openapi.Problem{Type: openapi.ProblemValidationFailed, Title: "Validation failed", Detail: detail("version: bad"),
			Errors: &[]openapi.FieldError{{Field: "version", Detail: "bad"}}}},
			"refused (422 validation-failed)\n  version: bad"},
		{"locked, said", &apiError{status: 423, problem: openapi.Problem{Type: openapi.ProblemChannelLocked, Detail: detail("dev is locked (x); unlock it first, or roll back")}},
			"dev is locked (x); unlock it first, or roll back (423 channel-locked)"},
		{"locked, not said", &apiError{status: 423, problem: openapi.Problem{Type: openapi.ProblemChannelLocked, Detail: detail("dev is locked")}},
			"dev is locked (423 channel-locked); unlock it first, or roll back"},
		{"locked, with the command", &apiError{status: 423, command: "slipway unlock a dev --reason R", problem: openapi.Problem{Type: openapi.ProblemChannelLocked, Detail: detail("dev is locked")}},
			"dev is locked (423 channel-locked); unlock it first, or roll back: slipway unlock a dev --reason R"},
		{"stale", &apiError{status: 412, problem: openapi.Problem{Type: openapi.ProblemPreconditionFailed, Detail: detail("If-Match is stale")}},
			"If-Match is stale (412 precondition-failed); someone changed it after it was read: read it again and retry with its generation"},
		{"no token", &apiError{status: 401, problem: openapi.Problem{Type: openapi.ProblemUnauthorized, Detail: detail("this needs a token")}},
			"this needs a token (401 unauthorized); set SLIPWAY_TOKEN or --token"},
		{"revoked token", &apiError{status: 401, hadToken: true, problem: openapi.Problem{Type: openapi.ProblemUnauthorized, Detail: detail("the token is not valid (revoked)")}},
			"the token is not valid (revoked) (401 unauthorized); check SLIPWAY_TOKEN or --token"},
		{"server failed", &apiError{status: 500, problem: openapi.Problem{Type: openapi.ProblemInternal, Detail: detail("the server failed to handle this request; report request id r1"), RequestId: detail("r1")}},
			"the server failed to handle this request; report request id r1 (500 internal)"},
		{"no problem document", &apiError{status: 502, problem: openapi.Problem{Status: 502, Title: "Bad Gateway"}},
			"the server failed: Bad Gateway (HTTP 502)"},
		{"gates", &apiError{status: 409, problem: openapi.Problem{Type: openapi.ProblemGatesFailed, Detail: detail("1.0.0 cannot enter prod yet: ..."),
			Gates: &[]openapi.GateState{
				{Gate: "soak", Status: openapi.GateStateStatusPending, Detail: "1.0.0 has been current in staging for 1h of the 24h soak"},
				{Gate: "approvals", Status: openapi.GateStateStatusFailed, Detail: "0 of 1 approvals"},
				{Gate: "windows", Status: openapi.GateStateStatusPassed, Detail: "prod may change now"},
			}}},
			"the channel's gates refuse it (409 gates-failed); wait for what is pending, get what failed (slipway approve), or override with a reason (--override --reason R)\n" +
				"  … soak       pending 1.0.0 has been current in staging for 1h of the 24h soak\n" +
				"  ✗ approvals  failed  0 of 1 approvals\n" +
				"  ✓ windows    passed  prod may change now"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%s: Error() = %q, want %q", tc.name, got, tc.want)
		}
	}
}
