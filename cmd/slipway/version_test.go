package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribeBuild(t *testing.T) {
	vcs := &debug.BuildInfo{Main: debug.Module{Version: "v1.4.2"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "4f1c2a9d"}, {Key: "vcs.time", Value: "2026-11-30T17:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	tail := " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	for _, tc := range []struct {
		name            string
		info            *debug.BuildInfo
		version, commit string
		want            string
	}{
		{"no build info", nil, "", "", "slipway (devel) (commit unknown)"},
		{"devel", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "", "", "slipway (devel) (commit unknown)"},
		{"vcs", vcs, "", "", "slipway v1.4.2 (commit 4f1c2a9d, 2026-11-30T17:00:00Z, modified)"},
		{"ldflags", nil, "1.4.2", "abc123", "slipway 1.4.2 (commit abc123)"},
		{"ldflags over vcs", vcs, "1.5.0", "beef", "slipway 1.5.0 (commit beef, 2026-11-30T17:00:00Z, modified)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeBuild(tc.info, tc.version, tc.commit).String(); got != tc.want+tail {
				t.Errorf("describeBuild = %q, want %q", got, tc.want+tail)
			}
		})
	}
}

// versionLine is the shape of what `slipway version` prints.
var versionLine = regexp.MustCompile(`^slipway \S+ \(commit \S+(, \d{4}-\d\d-\d\dT\S+)?(, modified)?\) go\S+ \w+/\w+\n$`)

// TestVersionCommand runs `slipway version` of the test's binary and of one linked as the
// Dockerfile links it, with -X main.buildVersion and main.buildCommit.
func TestVersionCommand(t *testing.T) {
	r := runCLI(t, nil, "version")
	if r.code != 0 || !versionLine.MatchString(r.stdout) {
		t.Errorf("slipway version = %s; want a line shaped as %s", r, versionLine)
	}
	bin := filepath.Join(t.TempDir(), "slipway")
	out, err := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.buildVersion=1.4.2 -X main.buildCommit=4f1c2a9d", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "version").Output()
	if want := regexp.MustCompile(`^slipway 1\.4\.2 \(commit 4f1c2a9d[,)]`); err != nil || !versionLine.Match(out) || !want.Match(out) {
		t.Errorf("slipway version of a binary linked with -X = %q, %v; want %s", out, err, want)
	}
}

// TestDockerfileSetsVersion checks that the Dockerfile links the variables version.go
// reads, from its VERSION and COMMIT build arguments.
func TestDockerfileSetsVersion(t *testing.T) {
	df, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ARG VERSION", "ARG COMMIT", "-X main.buildVersion=${VERSION}", "-X main.buildCommit=${COMMIT}"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}
