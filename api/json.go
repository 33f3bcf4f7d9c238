package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/openapi"
)

// decodeJSON reads the request body into v: JSON only, one object, no unknown fields,
// at most maxBytes. Every failure is a problem that says what to fix.
func decodeJSON(c echo.Context, maxBytes int64, v any, readOnly ...string) error {
	_, err := readJSON(c, maxBytes, v, readOnly...)
	return err
}

// readJSON is decodeJSON that also returns the body it read.
func readJSON(c echo.Context, maxBytes int64, v any, readOnly ...string) ([]byte, error) {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		// curl -d sends application/x-www-form-urlencoded unless told otherwise; its body
		// is JSON all the same, so it is read as JSON.
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json") && mt != "application/x-www-form-urlencoded") {
			return nil, newProblem(openapi.ProblemUnsupportedMediaType,
				"Content-Type %q is not accepted here; send a JSON body with Content-Type: application/json", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, maxBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newProblem(openapi.ProblemBodyTooLarge, "the request body is larger than %d bytes", maxBytes)
		}
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, newProblem(openapi.ProblemInvalidJSON, "the request body is empty; send a JSON object, such as {}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, jsonProblem(body, err, readOnly)
	}
	if dec.More() {
		return nil, newProblem(openapi.ProblemInvalidJSON, "the request body holds more than one JSON value; send one object")
	}
	if bytes.Equal(bytes.TrimSpace(body), []byte("null")) {
		return nil, newProblem(openapi.ProblemInvalidJSON, "the request body is null; send a JSON object, such as {}")
	}
	return body, nil
}

func jsonProblem(body []byte, err error, readOnly []string) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(body, syn.Offset)
		return newProblem(openapi.ProblemInvalidJSON, "malformed JSON at line %d, column %d: %s", line, col, syn.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newProblem(openapi.ProblemInvalidJSON, "the JSON ends before it is complete")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return newProblem(openapi.ProblemInvalidJSON, "the request body is a JSON %s; send a JSON object", typ.Value)
		}
		return fieldProblem(typ.Field, fmt.Sprintf("must be %s, not a JSON %s", describeType(typ.Type), typ.Value))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		for _, ro := range readOnly {
			if name == ro {
				return fieldProblem(name, "is read-only and cannot be set; leave it out (to make a change conditional, send If-Match)")
			}
		}
		return fieldProblem(name, "is not a known field; see /openapi.yaml for the fields this request takes")
	}
	return newProblem(openapi.ProblemInvalidJSON, "the request body is not valid JSON")
}

// position returns the 1-based line and column of a byte offset.
func position(b []byte, off int64) (int, int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	before := b[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	if line == 1 {
		col = int(off)
	}
	return line, col
}

func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.Kind().String()
}
