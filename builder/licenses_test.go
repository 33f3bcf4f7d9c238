package builder_test

import (
	"context"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/store"
)

// licensedModule is app hello's source, licensed Apache-2.0, with two dependencies kept
// in the tree: example.com/greet, licensed MIT, and example.com/plain, with no license
// file.
func licensedModule(t *testing.T) []byte {
	t.Helper()
	return buildertest.Archive(t, map[string]string{
		"go.mod": "module example.com/hello\n\ngo 1.22\n\nrequire (\n\texample.com/greet v1.0.0\n\texample.com/plain v0.1.0\n)\n\n" +
			"replace example.com/greet => ./greet\n\nreplace example.com/plain => ./plain\n",
		"LICENSE": buildertest.ApacheLicense,
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n\t\"example.com/plain\"\n)\n\n" +
			"var version = \"dev\"\n\nfunc main() { fmt.Println(greet.Hello(), plain.Name, version) }\n",
		"greet/go.mod":   "module example.com/greet\n\ngo 1.22\n",
		"greet/LICENSE":  buildertest.MITLicense,
		"greet/greet.go": "package greet\n\n// Hello greets.\nfunc Hello() string { return \"hello\" }\n",
		"plain/go.mod":   "module example.com/plain\n\ngo 1.22\n",
		"plain/plain.go": "package plain\n\n// Name is plain's.\nconst Name = \"plain\"\n",
	})
}

// TestSBOMLicenses builds a module whose in-tree dependency carries an MIT LICENSE, and
// that carries an Apache-2.0 one: every SBOM declares those, NOASSERTION for the
// dependency with no license file, BSD-3-Clause for the Go standard library; the build's
// facts (what release diffs compare) know them.
func TestSBOMLicenses(t *testing.T) {
	blobs := fsBlobs(t)
	r := newRig(t, blobs)
	r.worker(builder.WorkerOptions{})
	b, _, err := r.submit("hello", builder.Request{Version: "1.0.0", Platforms: []string{"linux/amd64", "linux/arm64"}}, licensedModule(t))
	if err != nil {
		t.Fatal(err)
	}
	b = r.wait("hello", b.ID, 5*time.Minute)
	if b.Status != builder.StatusSucceeded || b.Image == nil {
		t.Fatalf("build = %s %+v\nlog:\n%s", b.Status, b.Error, r.log("hello", b.ID))
	}
	want := map[string]string{
		"example.com/hello": "Apache-2.0",
		"example.com/greet": "MIT",
		"example.com/plain": "NOASSERTION",
		"go":                "BSD-3-Clause",
	}
	sboms := []string{b.Image.SBOM}
	for _, m := range b.Image.Manifests {
		sboms = append(sboms, m.SBOM)
	}
	for _, d := range sboms {
		rc, _, err := blobs.Get(context.Background(), store.BlobKey(store.Digest(d)), 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Packages []struct {
				Name      string `json:"name"`
				Concluded string `json:"licenseConcluded"`
				Declared  string `json:"licenseDeclared"`
			} `json:"packages"`
		}
		err = json.NewDecoder(rc).Decode(&doc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, p := range doc.Packages {
			got[p.Name] = p.Declared
			if p.Concluded != "NOASSERTION" {
				t.Errorf("SBOM %s: package %s licenseConcluded = %q, want NOASSERTION", d, p.Name, p.Concluded)
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("SBOM %s licenseDeclared = %v, want %v", d, got, want)
		}
	}

	f, err := r.builds.Facts(context.Background(), blobs, "hello", b.ID)
	if err != nil {
		t.Fatal(err)
	}
	delete(want, "example.com/plain")
	if !maps.Equal(f.Licenses, want) || f.LicensesUnknown != "" {
		t.Errorf("Facts().Licenses = %v (unknown: %q), want %v", f.Licenses, f.LicensesUnknown, want)
	}
}
