package openapi_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway/slipway/openapi/openapitest"
)

// TestGeneratedCodeIsFresh regenerates the code from openapi.yaml with the pinned
// oapi-codegen and fails when it differs from the committed openapi.gen.go.
func TestGeneratedCodeIsFresh(t *testing.T) {
	out, err := exec.Command("go", "tool", "-n", "oapi-codegen").Output()
	if err != nil {
		t.Fatalf("finding the pinned oapi-codegen (go tool -n oapi-codegen): %v", err)
	}
	tool := strings.TrimSpace(string(out))
	dir := t.TempDir()
	for _, name := range []string{"oapi-codegen.yaml", "openapi.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(tool, "-config", "oapi-codegen.yaml", "openapi.yaml")
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(filepath.Join(dir, "openapi.gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("openapi.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("openapi.gen.go is stale: run `go generate ./openapi` and commit the result")
	}
}

func TestSpecIsValid(t *testing.T) {
	openapitest.New(t) // fails the test when the document does not validate
}
