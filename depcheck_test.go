package slipway_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/slipway/slipway"

// allowed lists, per package tree, the trees of ours it may import (tests included);
// builder and release never import each other, and the domain never imports the API.
// thirdParty, below, pins the dependencies that must stay in their rooms.
var allowed = map[string][]string{
	"store":   {"store"},
	"auth":    {"auth", "store"},
	"openapi": {"openapi"},
	"events":  {"events", "store"},
	"webhook": {"webhook", "events", "invalid", "store"},
	"invalid": {"invalid"},
	"builder": {"builder", "events", "invalid", "store"},
	"release": {"release", "events", "invalid", "store"},
	// chatops reads commands and writes answers about release's channels and moves; the
	// API runs the moves, so chatops never imports it, nor webhook (cmd hands it
	// webhook's guarded HTTP client).
	"chatops": {"chatops", "release", "invalid", "store"},
	"api":     {"api", "openapi", "auth", "builder", "chatops", "events", "invalid", "release", "store", "webhook"},
	"cmd":     {"cmd", "api", "openapi", "auth", "builder", "chatops", "events", "invalid", "release", "store", "webhook"},
	"<root>":  {},
	"bench":   {"bench", "api", "openapi", "auth", "builder", "events", "invalid", "release", "store", "webhook"},
}

// thirdParty pins each of these dependencies to the trees that may import it: in any
// file (trees), or in tests alone (testTrees).
var thirdParty = []struct {
	name, prefix     string
	trees, testTrees []string
}{
	// Echo is the HTTP server: api/ is written on it, and the server interface generated
	// into openapi/ is Echo's; cmd/ may construct it, and the benchmarks drive the API.
	{name: "Echo", prefix: "github.com/labstack/echo/", trees: []string{"api", "openapi", "cmd"}, testTrees: []string{"bench"}},
	// aws-sdk is the S3 blob store's: store/ adapts it, and cmd/ constructs its clients.
	{name: "aws-sdk", prefix: "github.com/aws/", trees: []string{"store", "cmd"}},
	// go-containerregistry makes and pulls images in builder/, and api/ serves them as a
	// registry (today its tests alone import it, as a client); the end-to-end tests of
	// cmd/ and the benchmarks pull and validate what the registry serves.
	{name: "go-containerregistry", prefix: "github.com/google/go-containerregistry/", trees: []string{"builder", "api"},
		testTrees: []string{"cmd", "bench"}},
	// chromedp drives the system's Chromium in the portal's browser test; the product
	// never imports it.
	{name: "chromedp", prefix: "github.com/chromedp/", testTrees: []string{"api"}},
	// The Kubernetes API's types decode deploy/kubernetes strictly in deploy/'s tests, a
	// module of its own; nothing of slipway's module imports them.
	{name: "the Kubernetes API", prefix: "k8s.io/"},
	{name: "the Kubernetes API", prefix: "sigs.k8s.io/"},
	{name: "KEDA's API", prefix: "github.com/kedacore/"},
	// golang.org/x/vuln (govulncheck) scans binaries in builder/vulns, which the API's gates call.
	{name: "golang.org/x/vuln", prefix: "golang.org/x/vuln/", trees: []string{"builder"}},
	// licensecheck classifies modules' license files for the SBOMs, in builder/licenses.
	{name: "licensecheck", prefix: "github.com/google/licensecheck", trees: []string{"builder"}},
}

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
	// files on disk alone (its tests use buildertest's license texts)
	"builder/licenses": {"builder/licenses", "builder/buildertest"},
	// the go command's cache program: the standard library alone, so that it starts at once
	"builder/gocache/cacheprog": {"builder/gocache/cacheprog"},
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

func TestThirdPartyImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}}|{{join .Imports ","}}|{{join .TestImports ","}},{{join .XTestImports ","}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		pkg, from := parts[0], tree(parts[0])
		for i, imports := range parts[1:] {
			inTests := i == 1
			for imp := range strings.SplitSeq(imports, ",") {
				for _, dep := range thirdParty {
					if !strings.HasPrefix(imp+"/", dep.prefix) {
						continue
					}
					if slices.Contains(dep.trees, from) || (inTests && slices.Contains(dep.testTrees, from)) {
						continue
					}
					where := ""
					if inTests {
						where = " in its tests"
					}
					var rooms []string
					if len(dep.trees) > 0 {
						rooms = append(rooms, strings.Join(dep.trees, "/, ")+"/")
					}
					if len(dep.testTrees) > 0 {
						rooms = append(rooms, "the tests of "+strings.Join(dep.testTrees, "/, ")+"/")
					}
					t.Errorf("%s imports %s%s; %s belongs in %s only", pkg, imp, where, dep.name, strings.Join(rooms, " and "))
				}
			}
		}
	}
}
