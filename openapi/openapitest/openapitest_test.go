package openapitest_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/slipway/slipway/openapi/openapitest"
)

// TestValidateCatchesMismatches makes sure the validator is not vacuous.
func TestValidateCatchesMismatches(t *testing.T) {
	v := openapitest.New(t)
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	probHdr := http.Header{"Content-Type": {"application/problem+json"}}
	for _, tc := range []struct {
		name, method, path string
		status             int
		header             http.Header
		body               string
		ok                 bool
	}{
		{"health ok", "GET", "/healthz", 200, jsonHdr, `{"status":"ok"}`, true},
		{"health wrong enum", "GET", "/healthz", 200, jsonHdr, `{"status":"fine"}`, false},
		{"app missing fields", "GET", "/v1/apps/x", 200, jsonHdr, `{"name":"x"}`, false},
		// OpenAPI 3.1 nullable fields: type [string, "null"].
		{"channel release null", "GET", "/v1/apps/x/channels/prod", 200, jsonHdr, `{"name":"prod","release":null,"image_digest":null,"generation":0,"locked":false}`, true},
		{"channel release string", "GET", "/v1/apps/x/channels/prod", 200, jsonHdr, `{"name":"prod","release":"1.0.0","image_digest":"sha256:ab","generation":1,"locked":false}`, true},
		{"channel release number", "GET", "/v1/apps/x/channels/prod", 200, jsonHdr, `{"name":"prod","release":5,"image_digest":null,"generation":0,"locked":false}`, false},
		{"channel release missing", "GET", "/v1/apps/x/channels/prod", 200, jsonHdr, `{"name":"prod","image_digest":null,"generation":0,"locked":false}`, false},
		{"undeclared status", "GET", "/healthz", 201, jsonHdr, `{"status":"ok"}`, false},
		{"problem ok", "GET", "/v1/apps/x", 404, probHdr, `{"type":"https://slipway.dev/problems/not-found","title":"Not found","status":404}`, true},
		{"problem unknown type", "GET", "/v1/apps/x", 404, probHdr, `{"type":"about:blank","title":"Not found","status":404}`, false},
		{"problem status differs", "GET", "/v1/apps/x", 404, probHdr, `{"type":"https://slipway.dev/problems/not-found","title":"Not found","status":400}`, false},
		{"unknown route needs problem", "GET", "/nope", 404, jsonHdr, `{}`, false},
		{"unknown route problem", "GET", "/nope", 404, probHdr, `{"type":"https://slipway.dev/problems/route-not-found","title":"No such route","status":404}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			err := v.Validate(req, tc.status, tc.header, []byte(tc.body))
			if (err == nil) != tc.ok {
				t.Errorf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
