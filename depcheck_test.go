package slipway_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/slipway/slipway"

// allowed lists, per package tree, the trees of ours it may import (tests included);
// builder and release never import each other, the domain never imports the API, and
// nothing but api and the generated openapi code imports Echo.
var allowed = map[string][]string{
	"store":   {"store"},
	"auth":    {"auth", "store"},
	"openapi": {"openapi"},
	"events":  {"events", "store"},
	"webhook": {"webhook", "events", "store"},
	"builder": {"builder", "events", "store"},
	"release": {"release", "events", "store"},
	"api":     {"api", "openapi", "auth", "builder", "events", "release", "store", "webhook"},
	"cmd":     {"cmd", "api", "openapi", "auth", "builder", "events", "release", "store", "webhook"},
	"<root>":  {},
	"bench":   {"bench", "api", "openapi", "auth", "builder", "events", "release", "store", "webhook"},
}

var echoAllowed = map[string]bool{"api": true, "openapi": true, "cmd": true, "bench": true}

func tree(importPath string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(importPath, module), "/")
	if rel == "" {
		return "<root>"
	}
	first, _, _ := strings.Cut(rel, "/")
	return first
}

func TestImportDirections(t *testing.T) {
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}}|{{join .Imports ","}},{{join .TestImports ","}},{{join .XTestImports ","}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, "|")
		from := tree(pkg)
		may, known := allowed[from]
		if !known {
			t.Errorf("package %s is in a tree (%s) depcheck_test.go does not know; add its rules", pkg, from)
			continue
		}
		for imp := range strings.SplitSeq(imports, ",") {
			switch {
			case imp == "":
			case strings.HasPrefix(imp, "github.com/labstack/echo"):
				if !echoAllowed[from] {
					t.Errorf("%s imports Echo; only api/ may", pkg)
				}
			case imp == module || strings.HasPrefix(imp, module+"/"):
				to := tree(imp)
				ok := false
				for _, m := range may {
					ok = ok || m == to
				}
				if !ok {
					t.Errorf("%s imports %s: %s/ may import only %v", pkg, imp, from, may)
				}
			}
		}
	}
}

// inner lists packages inside a tree that may import less than their tree: of ours, only
// the packages listed (and those below them).
var inner = map[string][]string{
	"builder/gobuild": {"builder/gobuild"}, // the Go toolchain alone
}

func TestInnerImports(t *testing.T) {
	for pkg, may := range inner {
		out, err := exec.Command("go", "list", "-f",
			`{{.ImportPath}}|{{join .Imports ","}},{{join .TestImports ","}},{{join .XTestImports ","}}`, "./"+pkg+"/...").Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			from, imports, _ := strings.Cut(line, "|")
			for imp := range strings.SplitSeq(imports, ",") {
				rel, ours := strings.CutPrefix(imp, module+"/")
				if !ours || imp == from {
					continue
				}
				ok := false
				for _, m := range may {
					ok = ok || rel == m || strings.HasPrefix(rel, m+"/")
				}
				if !ok {
					t.Errorf("%s imports %s: %s may import only %v of ours", from, imp, pkg, may)
				}
			}
		}
	}
}
