package slipway_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDeployFilesParse reads every YAML file in deploy/ and checks that kustomize's
// resources exist.
func TestDeployFilesParse(t *testing.T) {
	files, _ := filepath.Glob("deploy/*.yaml")
	more, _ := filepath.Glob("deploy/kubernetes/*.yaml")
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no YAML files in deploy/")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("%s: %v", f, err)
				break
			}
			if filepath.Base(f) == "kustomization.yaml" {
				for _, r := range doc["resources"].([]any) {
					if _, err := os.Stat(filepath.Join(filepath.Dir(f), r.(string))); err != nil {
						t.Errorf("%s names resource %s: %v", f, r, err)
					}
				}
			}
		}
	}
}

// TestExampleConfigListsEverySetting keeps deploy/slipway.env.example in step with the
// settings `slipway serve` reads.
func TestExampleConfigListsEverySetting(t *testing.T) {
	src, err := os.ReadFile("cmd/slipway/config.go")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("deploy/slipway.env.example")
	if err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`env: "(SLIPWAY_[A-Z0-9_]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(vars) == 0 {
		t.Fatal("found no settings in cmd/slipway/config.go")
	}
	for _, v := range vars {
		if !strings.Contains(string(example), v[1]) {
			t.Errorf("deploy/slipway.env.example does not mention %s", v[1])
		}
	}
}
