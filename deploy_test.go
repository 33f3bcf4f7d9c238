package slipway_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDeployFilesParse reads every YAML file in deploy/ and checks that the resources,
// components and patches each kustomization names exist. (deploy/'s own tests decode the
// Kubernetes objects strictly.)
func TestDeployFilesParse(t *testing.T) {
	var files []string
	err := filepath.WalkDir("deploy", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".yaml") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
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
			var doc any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("%s: %v", f, err)
				break
			}
			if filepath.Base(f) != "kustomization.yaml" {
				continue
			}
			var k struct {
				Resources  []string `yaml:"resources"`
				Components []string `yaml:"components"`
				Patches    []struct {
					Path string `yaml:"path"`
				} `yaml:"patches"`
			}
			if err := yaml.Unmarshal(b, &k); err != nil {
				t.Errorf("%s: %v", f, err)
				break
			}
			names := slices.Concat(k.Resources, k.Components)
			for _, p := range k.Patches {
				if p.Path != "" {
					names = append(names, p.Path)
				}
			}
			for _, r := range names {
				if _, err := os.Stat(filepath.Join(filepath.Dir(f), r)); err != nil {
					t.Errorf("%s names %s: %v", f, r, err)
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
