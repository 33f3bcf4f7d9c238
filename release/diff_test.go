package release_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/slipway/slipway/release"
)

func baseFacts() release.Facts {
	return release.Facts{
		BuildID: "b1", Commit: "aaa", GoVersion: "go1.26.0",
		Main: release.Module{Path: "example.com/hello", Version: "(devel)"},
		Modules: []release.Module{
			{Path: "example.com/greet", Version: "v1.0.0"},
			{Path: "golang.org/x/text", Version: "v0.14.0"},
		},
		Ldflags: "-s -w -X main.version=1.0.0", BaseDigest: "sha256:b1",
		Platforms: []release.PlatformFacts{
			{Platform: "linux/amd64", Size: 1000, Settings: map[string]string{"CGO_ENABLED": "0", "GOARCH": "amd64"}},
			{Platform: "linux/arm/v7", Size: 900, Settings: map[string]string{"CGO_ENABLED": "0", "GOARM": "7"}},
		},
	}
}

func TestDiff(t *testing.T) {
	sizes := []release.SizeChange{{Platform: "linux/amd64", From: 1000, To: 1000}, {Platform: "linux/arm/v7", From: 900, To: 900}}
	noLicenses := release.Licenses{Reason: "the SBOM of build b1 records no licenses", Changes: []release.LicenseChange{}}
	for _, tc := range []struct {
		name string
		edit func(*release.Facts)
		want release.Changes
	}{
		{"same", func(*release.Facts) {}, release.Changes{}},
		{"bumped", func(f *release.Facts) { f.Modules[0].Version = "v1.1.0" }, release.Changes{
			Modules: []release.ModuleChange{{Kind: release.ModuleChanged, Path: "example.com/greet", From: "v1.0.0", To: "v1.1.0"}},
		}},
		{"added and removed", func(f *release.Facts) {
			f.Modules = []release.Module{{Path: "example.com/greet", Version: "v1.0.0"}, {Path: "golang.org/x/sync", Version: "v0.6.0"}}
		}, release.Changes{Modules: []release.ModuleChange{
			{Kind: release.ModuleAdded, Path: "golang.org/x/sync", To: "v0.6.0"},
			{Kind: release.ModuleRemoved, Path: "golang.org/x/text", From: "v0.14.0"},
		}}},
		{"replaced", func(f *release.Facts) { f.Modules[1].Replace = "example.com/fork v0.14.1" }, release.Changes{
			Modules: []release.ModuleChange{{Kind: release.ModuleChanged, Path: "golang.org/x/text", From: "v0.14.0", To: "v0.14.0", ToReplace: "example.com/fork v0.14.1"}},
		}},
		{"toolchain, base, ldflags", func(f *release.Facts) {
			f.GoVersion, f.BaseDigest, f.Ldflags = "go1.26.1", "sha256:b2", "-s -w -X main.version=1.1.0"
		}, release.Changes{
			GoVersion:  &release.Change{From: "go1.26.0", To: "go1.26.1"},
			BaseDigest: &release.Change{From: "sha256:b1", To: "sha256:b2"},
			Ldflags:    &release.Change{From: "-s -w -X main.version=1.0.0", To: "-s -w -X main.version=1.1.0"},
		}},
		{"settings and sizes", func(f *release.Facts) {
			f.Platforms[0].Size = 1100
			f.Platforms[1].Settings = map[string]string{"CGO_ENABLED": "0", "GOARM": "6", "-tags": "netgo"}
		}, release.Changes{
			Settings: []release.SettingChange{
				{Platform: "linux/arm/v7", Key: "-tags", From: "", To: "netgo"},
				{Platform: "linux/arm/v7", Key: "GOARM", From: "7", To: "6"},
			},
			Sizes: []release.SizeChange{{Platform: "linux/amd64", From: 1000, To: 1100, Delta: 100}, {Platform: "linux/arm/v7", From: 900, To: 900}},
		}},
		{"platform added", func(f *release.Facts) {
			f.Platforms = append(f.Platforms, release.PlatformFacts{Platform: "linux/arm64", Size: 950})
		}, release.Changes{
			Sizes: []release.SizeChange{{Platform: "linux/amd64", From: 1000, To: 1000}, {Platform: "linux/arm/v7", From: 900, To: 900},
				{Platform: "linux/arm64", To: 950, Delta: 950}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := baseFacts(), baseFacts()
			to.BuildID, to.Commit = "b2", "bbb"
			tc.edit(&to)
			want := tc.want
			if want.Modules == nil {
				want.Modules = []release.ModuleChange{}
			}
			if want.Settings == nil {
				want.Settings = []release.SettingChange{}
			}
			if want.Sizes == nil {
				want.Sizes = sizes
			}
			want.Commits = release.Change{From: "aaa", To: "bbb"}
			want.Licenses = noLicenses
			if got := release.Diff(from, to); !reflect.DeepEqual(got, want) {
				t.Errorf("Diff() =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestDiffLicenses(t *testing.T) {
	from, to := baseFacts(), baseFacts()
	to.BuildID = "b2"
	to.LicensesUnknown = "build b2 has no SBOM"
	from.Licenses = map[string]string{"example.com/greet": "MIT"}
	if got := release.Diff(from, to).Licenses; got.Known || got.Reason != "build b2 has no SBOM" {
		t.Errorf("licenses with one side unknown = %+v, want unknown with its reason", got)
	}
	to.Licenses = map[string]string{"example.com/greet": "Apache-2.0", "golang.org/x/text": "BSD-3-Clause"}
	want := release.Licenses{Known: true, Changes: []release.LicenseChange{
		{Path: "example.com/greet", From: "MIT", To: "Apache-2.0"},
		{Path: "golang.org/x/text", From: "", To: "BSD-3-Clause"},
	}}
	if got := release.Diff(from, to).Licenses; !reflect.DeepEqual(got, want) {
		t.Errorf("licenses = %+v, want %+v", got, want)
	}
}

func TestDiffVulns(t *testing.T) {
	fixed, introduced := release.DiffVulns([]string{"GO-2024-2", "GO-2024-1", "GO-2024-1"}, []string{"GO-2025-9", "GO-2024-2"})
	if !reflect.DeepEqual(fixed, []string{"GO-2024-1"}) || !reflect.DeepEqual(introduced, []string{"GO-2025-9"}) {
		t.Errorf("DiffVulns() = %v, %v; want [GO-2024-1], [GO-2025-9]", fixed, introduced)
	}
	fixed, introduced = release.DiffVulns(nil, nil)
	if fixed == nil || introduced == nil || len(fixed)+len(introduced) != 0 {
		t.Errorf("DiffVulns(nil, nil) = %#v, %#v; want two empty lists", fixed, introduced)
	}
}

func TestSummary(t *testing.T) {
	from, to := baseFacts(), baseFacts()
	from.Modules, to.Modules = nil, nil
	for i := range 12 {
		from.Modules = append(from.Modules, release.Module{Path: fmt.Sprintf("example.com/m%02d", i), Version: "v1.0.0"})
		to.Modules = append(to.Modules, release.Module{Path: fmt.Sprintf("example.com/m%02d", i), Version: "v1.0.1"})
	}
	to.Modules = append(to.Modules, release.Module{Path: "example.com/new", Version: "v0.1.0"})
	s := release.Diff(from, to).Summary("1.0.0", "1.1.0")
	if s.Changed != 12 || s.Added != 1 || s.Removed != 0 || len(s.Modules) != release.MaxSummaryModules || s.MoreModules != 3 ||
		s.FromVersion != "1.0.0" || s.ToVersion != "1.1.0" || s.Modules[0].Path != "example.com/m00" {
		t.Errorf("Summary() = %+v, want 12 changed, 1 added, the first 10 listed and 3 more", s)
	}
}

// fakeReleases and fakeFacts are releases and facts in memory, for Differ.
type fakeReleases map[string]release.Release

func (f fakeReleases) Get(_ context.Context, app, version string) (release.Release, error) {
	r, ok := f[version]
	if !ok {
		return release.Release{}, fmt.Errorf("%w: release %s of %s", release.ErrNotFound, version, app)
	}
	return r, nil
}

type fakeFacts map[string]release.Facts

func (f fakeFacts) Facts(_ context.Context, _, id string) (release.Facts, error) {
	return f[id], nil
}

func TestMoveSummary(t *testing.T) {
	from, to := baseFacts(), baseFacts()
	to.BuildID = "b2"
	to.Modules[0].Version = "v1.1.0"
	d := release.NewDiffer(fakeReleases{"1.0.0": {Version: "1.0.0", BuildID: "b1"}, "1.1.0": {Version: "1.1.0", BuildID: "b2"}},
		fakeFacts{"b1": from, "b2": to})
	ctx := context.Background()
	s, err := d.MoveSummary(ctx, "hello", "1.0.0", "1.1.0")
	if err != nil || s == nil || s.Changed != 1 || s.Modules[0].Path != "example.com/greet" {
		t.Errorf("MoveSummary(1.0.0, 1.1.0) = %+v, %v; want example.com/greet changed", s, err)
	}
	if s, err := d.MoveSummary(ctx, "hello", "", "1.1.0"); s != nil || err != nil {
		t.Errorf("MoveSummary of a first promotion = %+v, %v; want none", s, err)
	}
	if _, err := d.MoveSummary(ctx, "hello", "0.9.0", "1.1.0"); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("MoveSummary from an unknown release: %v, want ErrNotFound", err)
	}
}
