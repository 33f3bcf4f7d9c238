package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
)

// greetTree is app hello's source, licensed Apache-2.0, with example.com/greet at version,
// kept in the tree (the build sandbox has no network) with greetLicense as its LICENSE.
func greetTree(t *testing.T, version, greetLicense string) string {
	t.Helper()
	return writeTree(t, map[string]string{
		"LICENSE":       buildertest.ApacheLicense,
		"greet/LICENSE": greetLicense,
		"go.mod": "module example.com/hello\n\ngo 1.22\n\nrequire example.com/greet " + version +
			"\n\nreplace example.com/greet => ./greet\n",
		"main.go":        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/greet\"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n",
		"greet/go.mod":   "module example.com/greet\n\ngo 1.22\n",
		"greet/greet.go": "package greet\n\n// Hello greets.\nfunc Hello() string { return \"hello from greet " + version + "\" }\n",
	})
}

// TestCLIDiff: slipway diff prints what changes between two releases named by channel,
// here exactly one dependency bumped, in go mod's style, and its license changed; --json prints the API's answer;
// a name that is nothing is refused (exit 3) with the server's words.
func TestCLIDiff(t *testing.T) {
	p := startServe(t, buildEnv(t))
	call(t, "PUT", p.url+"/v1/apps/hello", "", `{"platforms":["linux/amd64"],"ldflags":"-X main.version=greet"}`, http.StatusCreated, nil)
	cli := []string{"SLIPWAY_URL=" + p.url}
	for _, b := range []struct{ version, commit, greet, license string }{
		{"1.0.0", "c0ffee1", "v1.0.0", buildertest.MITLicense}, {"1.1.0", "c0ffee2", "v1.1.0", buildertest.ApacheLicense},
	} {
		if r := runCLI(t, cli, "build", greetTree(t, b.greet, b.license), "--app", "hello", "--version", b.version, "--commit", b.commit, "--promote", "dev"); r.code != 0 {
			t.Fatalf("build %s: %s", b.version, r)
		}
		if b.version == "1.0.0" {
			call(t, "POST", p.url+"/v1/apps/hello/channels/staging/promote", "", `{"from":"dev","reason":"qa"}`, http.StatusOK, nil)
		}
	}

	r := runCLI(t, cli, "diff", "hello", "staging", "dev", "--json")
	var d openapi.ReleaseDiff
	if err := json.Unmarshal([]byte(r.stdout), &d); r.code != 0 || err != nil || len(d.Sizes) != 1 {
		t.Fatalf("diff --json = %v: %s", err, r)
	}
	s := d.Sizes[0]
	want := fmt.Sprintf(`hello: 1.0.0 (staging) → 1.1.0 (dev)
builds    %s → %s
commits   c0ffee1 → c0ffee2
go        unchanged
modules   1 changed
  ~ example.com/greet v1.0.0 => ./greet → v1.1.0 => ./greet
base      unchanged
ldflags   unchanged
settings  unchanged
sizes     linux/amd64 %d → %d (%+d B)
licenses  1 changed
  example.com/greet: MIT → Apache-2.0
vulns     unknown: the server has no vulnerability database configured
`, d.From.BuildId, d.To.BuildId, s.From, s.To, s.Delta)
	if r := runCLI(t, cli, "diff", "hello", "staging", "dev"); r.code != 0 || r.stdout != want {
		t.Errorf("diff hello staging dev printed\n%s\nwant\n%s", r, want)
	}

	if r := runCLI(t, cli, "diff", "hello", "9.9.9", "dev"); r.code != exitRejected || !strings.Contains(r.stderr, `no channel or release "9.9.9"`) {
		t.Errorf("diff from an unknown release: %s", r)
	}
	if r := runCLI(t, cli, "diff", "hello", "dev"); r.code != exitUsage {
		t.Errorf("diff with two arguments: %s", r)
	}
}
