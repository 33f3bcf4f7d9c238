package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// buildVersion and buildCommit name the binary where its build info cannot: a build
// without VCS information (a Docker build, whose context leaves .git out, or
// -buildvcs=false) sets them with -ldflags "-X main.buildVersion=1.4.2 -X
// main.buildCommit=4f1c2a9...". They win over the build info.
var (
	buildVersion string
	buildCommit  string
)

// buildInfo is what the binary knows of how it was built.
type buildInfo struct {
	version  string // the module's version, "(devel)" when unknown
	commit   string // the VCS revision, "" when unknown
	time     string // the revision's commit time, RFC 3339
	modified bool   // the work tree had changes
}

// readBuildInfo is this binary's build info with the -X overrides.
func readBuildInfo() buildInfo {
	info, _ := debug.ReadBuildInfo()
	return describeBuild(info, buildVersion, buildCommit)
}

// describeBuild reads info (nil when the binary has none), then lets version and commit
// replace what it says.
func describeBuild(info *debug.BuildInfo, version, commit string) buildInfo {
	b := buildInfo{version: "(devel)"}
	if info != nil {
		if v := info.Main.Version; v != "" {
			b.version = v
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.commit = s.Value
			case "vcs.time":
				b.time = s.Value
			case "vcs.modified":
				b.modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		b.version = version
	}
	if commit != "" {
		b.commit = commit
	}
	return b
}

// String is the line `slipway version` prints:
//
//	slipway 1.4.2 (commit 4f1c2a9..., 2026-11-30T17:00:00Z, modified) go1.26.8 linux/amd64
func (b buildInfo) String() string {
	var vcs []string
	commit := b.commit
	if commit == "" {
		commit = "unknown"
	}
	vcs = append(vcs, "commit "+commit)
	if b.time != "" {
		vcs = append(vcs, b.time)
	}
	if b.modified {
		vcs = append(vcs, "modified")
	}
	return fmt.Sprintf("slipway %s (%s) %s %s/%s", b.version, strings.Join(vcs, ", "), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// version is the binary's version, for logs and the User-Agent.
func version() string { return readBuildInfo().version }
