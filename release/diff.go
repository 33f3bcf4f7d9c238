package release

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/sync/errgroup"
)

// Facts are what a diff compares of a release's build: its toolchain, its modules, how
// it was linked, what it was built on and how big it came out. A build is immutable, so
// its facts never change; the API reads them from the build's binaries and images.
type Facts struct {
	BuildID   string `json:"build_id"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"go_version"`
	// Main is the main module; Modules every dependency linked into any of the
	// binaries, each once, in path order.
	Main    Module   `json:"main"`
	Modules []Module `json:"modules"`
	// Ldflags is the linker flags as rendered for the build (the app's template with
	// the build's version, commit and date).
	Ldflags string `json:"ldflags"`
	// BaseImage is the base as configured ("" for the built-in one), BaseDigest the
	// digest it resolved to.
	BaseImage  string `json:"base_image,omitempty"`
	BaseDigest string `json:"base_digest,omitempty"`
	// Platforms are the binaries, in platform order.
	Platforms []PlatformFacts `json:"platforms"`
	// Licenses maps module paths to their SPDX license expressions; nil when the
	// build's SBOM records no licenses (LicensesUnknown says why).
	Licenses        map[string]string `json:"licenses,omitempty"`
	LicensesUnknown string            `json:"licenses_unknown,omitempty"`
}

// Module is a Go module at a version; Replace, when set, is what replaced it
// ("path version", or a directory).
type Module struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Replace string `json:"replace,omitempty"`
}

// String is "path version", with " => replacement" when replaced.
func (m Module) String() string {
	s := m.Path + " " + m.Version
	if m.Replace != "" {
		s += " => " + m.Replace
	}
	return s
}

// PlatformFacts are one platform's binary: its size and the build settings its build
// info records (CGO_ENABLED, GOOS, GOARCH, GOARM, -trimpath, -tags and the like).
type PlatformFacts struct {
	Platform string            `json:"platform"`
	Size     int64             `json:"size"`
	Settings map[string]string `json:"settings,omitempty"`
}

// Change is a value that differs between two releases; a nil *Change means none did.
type Change struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// The kinds of a module change.
const (
	ModuleAdded   = "added"
	ModuleRemoved = "removed"
	ModuleChanged = "changed"
)

// ModuleChange is a module that is new, gone, or at another version (or replacement).
// From is empty for an added module, To for a removed one.
type ModuleChange struct {
	Kind        string `json:"kind"`
	Path        string `json:"path"`
	From        string `json:"from,omitempty"`
	To          string `json:"to,omitempty"`
	FromReplace string `json:"from_replace,omitempty"`
	ToReplace   string `json:"to_replace,omitempty"`
}

// SizeChange is one platform's binary size in each release; From or To is 0 when the
// release has no binary for the platform.
type SizeChange struct {
	Platform string `json:"platform"`
	From     int64  `json:"from"`
	To       int64  `json:"to"`
	Delta    int64  `json:"delta"`
}

// SettingChange is a build setting of one platform that differs ("" where it is unset).
type SettingChange struct {
	Platform string `json:"platform"`
	Key      string `json:"key"`
	From     string `json:"from"`
	To       string `json:"to"`
}

// LicenseChange is a module whose license differs, or that is new or gone with its
// license ("" on the side without it).
type LicenseChange struct {
	Path string `json:"path"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Licenses are the license changes, when both builds' SBOMs record licenses: Known is
// false otherwise, and Reason says why.
type Licenses struct {
	Known   bool            `json:"known"`
	Reason  string          `json:"reason,omitempty"`
	Changes []LicenseChange `json:"changes"`
}

// Diff compares the facts of two builds: from is the one a channel holds (or the older
// release), to the one that would replace it.
func Diff(from, to Facts) Changes {
	return Changes{
		GoVersion:  change(from.GoVersion, to.GoVersion),
		MainModule: change(from.Main.String(), to.Main.String()),
		Modules:    diffModules(from.Modules, to.Modules),
		BaseImage:  change(from.BaseImage, to.BaseImage),
		BaseDigest: change(from.BaseDigest, to.BaseDigest),
		Ldflags:    change(from.Ldflags, to.Ldflags),
		Settings:   diffSettings(from.Platforms, to.Platforms),
		Sizes:      diffSizes(from.Platforms, to.Platforms),
		Commits:    Change{From: from.Commit, To: to.Commit},
		Licenses:   diffLicenses(from, to),
	}
}

// Changes is what changes from one release's build to another's. Pointer fields left
// nil and lists left empty did not change; Sizes and Commits are always given.
type Changes struct {
	GoVersion  *Change         `json:"go_version,omitempty"`
	MainModule *Change         `json:"main_module,omitempty"`
	Modules    []ModuleChange  `json:"modules"`
	BaseImage  *Change         `json:"base_image,omitempty"`
	BaseDigest *Change         `json:"base_digest,omitempty"`
	Ldflags    *Change         `json:"ldflags,omitempty"`
	Settings   []SettingChange `json:"settings"`
	Sizes      []SizeChange    `json:"sizes"`
	Commits    Change          `json:"commits"`
	Licenses   Licenses        `json:"licenses"`
}

func change(from, to string) *Change {
	if from == to {
		return nil
	}
	return &Change{From: from, To: to}
}

// diffModules lists the modules added, removed and changed, in path order.
func diffModules(from, to []Module) []ModuleChange {
	old := map[string]Module{}
	for _, m := range from {
		old[m.Path] = m
	}
	out := []ModuleChange{}
	seen := map[string]bool{}
	for _, m := range to {
		seen[m.Path] = true
		o, ok := old[m.Path]
		switch {
		case !ok:
			out = append(out, ModuleChange{Kind: ModuleAdded, Path: m.Path, To: m.Version, ToReplace: m.Replace})
		case o.Version != m.Version || o.Replace != m.Replace:
			out = append(out, ModuleChange{Kind: ModuleChanged, Path: m.Path, From: o.Version, To: m.Version,
				FromReplace: o.Replace, ToReplace: m.Replace})
		}
	}
	for _, m := range from {
		if !seen[m.Path] {
			out = append(out, ModuleChange{Kind: ModuleRemoved, Path: m.Path, From: m.Version, FromReplace: m.Replace})
		}
	}
	slices.SortFunc(out, func(a, b ModuleChange) int { return cmp.Compare(a.Path, b.Path) })
	return out
}

// platforms is the union of both sides' platforms, in order.
func platforms(from, to []PlatformFacts) []string {
	var ps []string
	for _, p := range append(slices.Clone(from), to...) {
		if !slices.Contains(ps, p.Platform) {
			ps = append(ps, p.Platform)
		}
	}
	slices.Sort(ps)
	return ps
}

func platformOf(ps []PlatformFacts, name string) PlatformFacts {
	for _, p := range ps {
		if p.Platform == name {
			return p
		}
	}
	return PlatformFacts{Platform: name}
}

// diffSizes gives every platform's size on both sides.
func diffSizes(from, to []PlatformFacts) []SizeChange {
	out := []SizeChange{}
	for _, name := range platforms(from, to) {
		f, t := platformOf(from, name).Size, platformOf(to, name).Size
		out = append(out, SizeChange{Platform: name, From: f, To: t, Delta: t - f})
	}
	return out
}

// diffSettings lists the build settings that differ, by platform and key. A platform
// only one side has is told by its size, not its settings.
func diffSettings(from, to []PlatformFacts) []SettingChange {
	out := []SettingChange{}
	for _, name := range platforms(from, to) {
		f, t := platformOf(from, name), platformOf(to, name)
		if f.Size == 0 || t.Size == 0 {
			continue
		}
		for _, k := range unionKeys(f.Settings, t.Settings) {
			if f.Settings[k] != t.Settings[k] {
				out = append(out, SettingChange{Platform: name, Key: k, From: f.Settings[k], To: t.Settings[k]})
			}
		}
	}
	return out
}

// unionKeys are the keys of a and b together, sorted.
func unionKeys(a, b map[string]string) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// diffLicenses compares the licenses of every module either side has, when both
// sides know them.
func diffLicenses(from, to Facts) Licenses {
	for _, f := range []Facts{from, to} {
		if f.Licenses == nil {
			reason := f.LicensesUnknown
			if reason == "" {
				reason = "the SBOM of build " + f.BuildID + " records no licenses"
			}
			return Licenses{Reason: reason, Changes: []LicenseChange{}}
		}
	}
	out := Licenses{Known: true, Changes: []LicenseChange{}}
	for _, p := range unionKeys(from.Licenses, to.Licenses) {
		if from.Licenses[p] != to.Licenses[p] {
			out.Changes = append(out.Changes, LicenseChange{Path: p, From: from.Licenses[p], To: to.Licenses[p]})
		}
	}
	return out
}

// DiffVulns compares two builds' vulnerability ids: those only from has are fixed,
// those only to has are introduced; both sorted.
func DiffVulns(from, to []string) (fixed, introduced []string) {
	fixed, introduced = []string{}, []string{}
	for _, v := range from {
		if !slices.Contains(to, v) && !slices.Contains(fixed, v) {
			fixed = append(fixed, v)
		}
	}
	for _, v := range to {
		if !slices.Contains(from, v) && !slices.Contains(introduced, v) {
			introduced = append(introduced, v)
		}
	}
	slices.Sort(fixed)
	slices.Sort(introduced)
	return fixed, introduced
}

// DiffSummary is a diff in brief, for the channel.promoted event and chat answers: the
// versions it compares, the counts of module changes and the first MaxSummaryModules of
// them.
type DiffSummary struct {
	FromVersion string         `json:"from_version"`
	ToVersion   string         `json:"to_version"`
	GoVersion   *Change        `json:"go_version,omitempty"`
	Added       int            `json:"modules_added"`
	Removed     int            `json:"modules_removed"`
	Changed     int            `json:"modules_changed"`
	Modules     []ModuleChange `json:"modules,omitempty"`
	// MoreModules counts the module changes left out of Modules.
	MoreModules int     `json:"more_modules,omitempty"`
	BaseDigest  *Change `json:"base_digest,omitempty"`
	Commits     Change  `json:"commits"`
}

// MaxSummaryModules is how many module changes a DiffSummary lists.
const MaxSummaryModules = 10

// Summary is d in brief, between the releases fromVersion and toVersion.
func (d Changes) Summary(fromVersion, toVersion string) DiffSummary {
	s := DiffSummary{FromVersion: fromVersion, ToVersion: toVersion, GoVersion: d.GoVersion,
		BaseDigest: d.BaseDigest, Commits: d.Commits, Modules: []ModuleChange{}}
	for _, m := range d.Modules {
		switch m.Kind {
		case ModuleAdded:
			s.Added++
		case ModuleRemoved:
			s.Removed++
		default:
			s.Changed++
		}
	}
	n := min(len(d.Modules), MaxSummaryModules)
	s.Modules = append(s.Modules, d.Modules[:n]...)
	s.MoreModules = len(d.Modules) - n
	return s
}

// FactsSource gives the facts of an app's build; the API wires the builder's in.
type FactsSource interface {
	Facts(ctx context.Context, app, buildID string) (Facts, error)
}

// ReleaseGetter reads a release; *Releases implements it.
type ReleaseGetter interface {
	Get(ctx context.Context, app, version string) (Release, error)
}

var _ ReleaseGetter = (*Releases)(nil)

// Differ compares releases by their builds' facts.
type Differ struct {
	releases ReleaseGetter
	facts    FactsSource
}

// NewDiffer returns a Differ reading releases from releases and their builds' facts
// from facts.
func NewDiffer(releases ReleaseGetter, facts FactsSource) *Differ {
	return &Differ{releases: releases, facts: facts}
}

// Releases is the diff from release fromVersion of app to release toVersion, with the
// releases themselves.
func (d *Differ) Releases(ctx context.Context, app, fromVersion, toVersion string) (Changes, Release, Release, error) {
	// The two sides are read side by side: a promotion waits for this (WithMoveSummary).
	var rels [2]Release
	var facts [2]Facts
	g, gctx := errgroup.WithContext(ctx)
	for i, v := range []string{fromVersion, toVersion} {
		g.Go(func() error {
			rel, err := d.releases.Get(gctx, app, v)
			if err != nil {
				return err
			}
			f, err := d.facts.Facts(gctx, app, rel.BuildID)
			if err != nil {
				return fmt.Errorf("the facts of release %s: %w", v, err)
			}
			rels[i], facts[i] = rel, f
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Changes{}, Release{}, Release{}, err
	}
	return Diff(facts[0], facts[1]), rels[0], rels[1], nil
}

// MoveSummary is the summary of what a promotion from release fromVersion to toVersion
// changes, for the channel.promoted event; nil when the channel held nothing (fromVersion
// "") or the versions are the same.
func (d *Differ) MoveSummary(ctx context.Context, app, fromVersion, toVersion string) (*DiffSummary, error) {
	if fromVersion == "" || fromVersion == toVersion {
		return nil, nil
	}
	diff, _, _, err := d.Releases(ctx, app, fromVersion, toVersion)
	if err != nil {
		return nil, err
	}
	s := diff.Summary(fromVersion, toVersion)
	return &s, nil
}
