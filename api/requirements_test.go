package api

import (
	"strings"
	"testing"

	"github.com/slipway/slipway/openapi"
)

// TestRequirements reads each operation's scope from its security requirement: one scope
// per scheme, {} letting anonymous callers through, security: [] open, apiKey schemes
// left to the handler, and an operation that declares nothing refused.
func TestRequirements(t *testing.T) {
	const head = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\n" +
		"components:\n  securitySchemes:\n    bearer: {type: http, scheme: bearer}\n    basic: {type: http, scheme: basic}\n" +
		"    signature: {type: apiKey, in: header, name: X-Signature}\n" +
		"paths:\n  /x:\n    get:\n      operationId: x\n      responses: {'200': {description: ok}}\n"
	for _, tc := range []struct {
		name, security string
		want           *requirement
		err            string
	}{
		{"scope", "[{bearer: [build]}]", &requirement{scope: "build"}, ""},
		{"registry", "[{bearer: [read]}, {basic: [read]}]", &requirement{scope: "read", registry: true}, ""},
		{"anonymous", "[{bearer: [read]}, {basic: [read]}, {}]", &requirement{scope: "read", registry: true, anonymous: true}, ""},
		{"open", "[]", nil, ""},
		{"none", "", nil, "GET /x: declares no security"},
		{"only anonymous", "[{}]", nil, "only {}"},
		{"two scopes", "[{bearer: [read, build]}]", nil, "bearer must name one scope"},
		{"verified by the handler", "[{signature: []}]", nil, ""},
		{"handler's scheme with a scope", "[{signature: [admin]}]", nil, "signature is verified by the handler and names no scope"},
		{"handler's scheme beside a token", "[{signature: []}, {bearer: [read]}]", nil, "mixes schemes"},
		{"handler's scheme or anyone", "[{signature: []}, {}]", nil, "mixes schemes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := head
			if tc.security != "" {
				spec += "      security: " + tc.security + "\n"
			}
			reqs, err := requirements([]byte(spec))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("requirements(security: %s) = %v, want an error with %q", tc.security, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, ok := reqs["x"]
			if !ok || (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Errorf("requirements(security: %s) = %+v, want %+v", tc.security, got, tc.want)
			}
		})
	}
	// openapi.yaml itself: the catalog lets anonymous callers in, nothing else does.
	reqs, err := requirements(openapi.Spec)
	if err != nil {
		t.Fatal(err)
	}
	for op, req := range reqs {
		if req != nil && req.anonymous != (op == "listCatalog") {
			t.Errorf("openapi.yaml: %s anonymous = %v", op, req.anonymous)
		}
	}
}
