// Package openapitest checks HTTP responses against openapi.yaml, so that tests fail
// the moment the server answers something its contract does not allow.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/slipway/slipway/openapi"
)

// Validator checks responses against the spec.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	loadOnce sync.Once
	loaded   *Validator
	loadErr  error
)

// New returns a validator for openapi.yaml; it fails the test if the document is invalid.
func New(t testing.TB) *Validator {
	t.Helper()
	loadOnce.Do(func() {
		openapi3filter.RegisterBodyDecoder("application/yaml", openapi3filter.PlainBodyDecoder)
		openapi3filter.RegisterBodyDecoder("application/x-pem-file", openapi3filter.PlainBodyDecoder)
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(openapi.Spec)
		if err != nil {
			loadErr = fmt.Errorf("loading openapi.yaml: %w", err)
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			loadErr = fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err)
			return
		}
		// Match paths on any host: the servers in the document are relative.
		doc.Servers = nil
		router, err := legacy.NewRouter(doc)
		if err != nil {
			loadErr = fmt.Errorf("routing openapi.yaml: %w", err)
			return
		}
		loaded = &Validator{doc: doc, router: router}
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

// Check fails the test unless the response is one the spec allows for the request.
// Requests to paths or methods the spec does not have must get a problem document.
func (v *Validator) Check(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	if err := v.Validate(req, status, header, body); err != nil {
		t.Errorf("%s %s → %d does not match openapi.yaml: %v\nbody: %.2000s", req.Method, req.URL.RequestURI(), status, err, body)
	}
}

// Validate returns why the response does not match the spec, or nil.
func (v *Validator) Validate(req *http.Request, status int, header http.Header, body []byte) error {
	route, pathParams, err := v.router.FindRoute(req)
	if err != nil {
		// Not in the spec (unknown route or method): the answer must be a problem.
		return v.validateProblem(status, header, body)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: pathParams,
			Route:      route,
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		return err
	}
	// The spec says which error bodies are problems (the registry's are not); where it
	// says so, the problem's own rules apply too.
	if mt, _, _ := mime.ParseMediaType(header.Get("Content-Type")); status >= 400 && mt == "application/problem+json" {
		return v.validateProblem(status, header, body)
	}
	return nil
}

func (v *Validator) validateProblem(status int, header http.Header, body []byte) error {
	if status < 400 {
		return fmt.Errorf("status %d for a request outside the spec, want an error", status)
	}
	if req := header.Get("Content-Type"); req != "" {
		mt, _, _ := mime.ParseMediaType(req)
		if mt != "application/problem+json" {
			return fmt.Errorf("Content-Type %q, want application/problem+json", req)
		}
	} else if len(body) > 0 {
		return fmt.Errorf("no Content-Type on a problem body")
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("problem body is not JSON: %w", err)
	}
	schema := v.doc.Components.Schemas["Problem"].Value
	opts := []openapi3.SchemaValidationOption{openapi3.MultiErrors()}
	if v.doc.IsOpenAPI31OrLater() {
		opts = append(opts, openapi3.EnableJSONSchema2020()) // as openapi3filter does for responses
	}
	if err := schema.VisitJSON(doc, opts...); err != nil {
		return fmt.Errorf("problem body: %w", err)
	}
	if got, _ := doc.(map[string]any)["status"].(float64); int(got) != status {
		return fmt.Errorf("problem status %v, but the response status is %d", got, status)
	}
	return nil
}

// Client returns an HTTP client whose every response is checked against the spec.
func (v *Validator) Client(t testing.TB) *http.Client {
	return v.ClientVia(t, http.DefaultTransport)
}

// ClientVia is Client sending its requests through next.
func (v *Validator) ClientVia(t testing.TB, next http.RoundTripper) *http.Client {
	return &http.Client{Transport: &transport{t: t, v: v, next: next}}
}

type transport struct {
	t    testing.TB
	v    *Validator
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tr.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	// Streams (logs, SSE) are left to the test; everything else is read and checked.
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") {
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	tr.t.Helper()
	tr.v.Check(tr.t, req, resp.StatusCode, resp.Header, body)
	return resp, nil
}
