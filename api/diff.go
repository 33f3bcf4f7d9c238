package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
)

// VulnLister lists the ids of the known vulnerabilities in the binaries of an app's build
// (OSV ids, such as GO-2024-2687), for diffs; nil when the server has no vulnerability
// database.
type VulnLister func(ctx context.Context, app, buildID string) ([]string, error)

// FactSource lets release diffs read the facts of builds from the build store and the
// blob store (release.NewDiffer takes it, for the summary of a promotion).
func FactSource(builds BuildStore, blobs store.Blobs) release.FactsSource {
	return factSource{builds, blobs}
}

type factSource struct {
	builds BuildStore
	blobs  store.Blobs
}

func (f factSource) Facts(ctx context.Context, app, id string) (release.Facts, error) {
	bf, err := f.builds.Facts(ctx, f.blobs, app, id)
	if errors.Is(err, builder.ErrNotFound) {
		return release.Facts{}, fmt.Errorf("%w: app %s has no build %s", release.ErrNotFound, app, id)
	}
	if err != nil {
		return release.Facts{}, err
	}
	return releaseFacts(bf), nil
}

// releaseFacts converts the builder's facts of a build into the release package's.
func releaseFacts(bf builder.Facts) release.Facts {
	mod := func(m builder.FactModule) release.Module {
		return release.Module{Path: m.Path, Version: m.Version, Replace: m.Replace}
	}
	f := release.Facts{
		BuildID: bf.BuildID, Commit: bf.Commit, GoVersion: bf.GoVersion, Main: mod(bf.Main),
		Ldflags: bf.Ldflags, BaseImage: bf.BaseImage, BaseDigest: bf.BaseDigest,
		Licenses: bf.Licenses, LicensesUnknown: bf.LicensesUnknown,
	}
	for _, m := range bf.Modules {
		f.Modules = append(f.Modules, mod(m))
	}
	for _, p := range bf.Platforms {
		f.Platforms = append(f.Platforms, release.PlatformFacts{Platform: p.Platform, Size: p.Size, Settings: p.Settings})
	}
	return f
}

// diffSide is one release of a diff, as the name it was given resolved.
type diffSide struct {
	Version string `json:"version"`
	Channel string `json:"channel,omitempty"`
	BuildID string `json:"build_id"`
	Commit  string `json:"commit,omitempty"`
}

// diffVulns are the vulnerabilities a diff fixes and introduces.
type diffVulns struct {
	Available  bool     `json:"available"`
	Reason     string   `json:"reason,omitempty"`
	Fixed      []string `json:"fixed,omitempty"`
	Introduced []string `json:"introduced,omitempty"`
}

// releaseDiff is openapi.ReleaseDiff: the sides, the changes and the vulnerabilities.
type releaseDiff struct {
	From diffSide `json:"from"`
	To   diffSide `json:"to"`
	release.Changes
	Vulns diffVulns `json:"vulns"`
}

// GetDiff implements openapi.ServerInterface.
func (s *Server) GetDiff(c echo.Context, app openapi.AppName, params openapi.GetDiffParams) error {
	if err := checkPathName(app); err != nil {
		return err
	}
	d, err := s.diff(c.Request().Context(), app, params.From, params.To)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

// diff compares the releases that from and to name (each a channel or a version) of app.
func (s *Server) diff(ctx context.Context, app, from, to string) (releaseDiff, error) {
	a, err := s.deps.Apps.Get(ctx, app)
	if err != nil {
		return releaseDiff{}, err
	}
	var sides [2]diffSide
	for i, name := range []string{from, to} {
		if sides[i], err = s.diffSide(ctx, a, name); err != nil {
			return releaseDiff{}, err
		}
	}
	var facts [2]release.Facts
	for i := range sides {
		bf, err := s.deps.Builds.Facts(ctx, s.deps.Blobs, app, sides[i].BuildID)
		if err != nil {
			return releaseDiff{}, fmt.Errorf("reading the facts of build %s: %w", sides[i].BuildID, err)
		}
		facts[i] = releaseFacts(bf)
		sides[i].Commit = bf.Commit
	}
	out := releaseDiff{From: sides[0], To: sides[1]}
	out.Changes = release.Diff(facts[0], facts[1])
	out.Vulns = s.diffVulns(ctx, app, out.From.BuildID, out.To.BuildID)
	return out, nil
}

// diffSide resolves a name of a diff: a channel of a stands for the release it holds, any
// other name is a version.
func (s *Server) diffSide(ctx context.Context, a release.App, name string) (diffSide, error) {
	version := name
	var channel string
	for _, ch := range a.Channels {
		if ch.Name != name {
			continue
		}
		st, err := s.deps.Channels.Get(ctx, a.Name, name)
		if err != nil {
			return diffSide{}, err
		}
		if st.Release == "" {
			return diffSide{}, newProblem(openapi.ProblemConflict,
				"channel %s of app %s holds no release yet, so there is nothing to compare; promote a release to it first", name, a.Name)
		}
		version, channel = st.Release, name
		break
	}
	rel, err := s.deps.Releases.Get(ctx, a.Name, version)
	if errors.Is(err, release.ErrNotFound) && channel == "" {
		return diffSide{}, s.unknownDiffName(ctx, a, name)
	}
	if err != nil {
		return diffSide{}, err
	}
	return diffSide{Version: rel.Version, Channel: channel, BuildID: rel.BuildID}, nil
}

// maxNamedVersions is how many of the newest versions a 404 of diff names.
const maxNamedVersions = 5

// unknownDiffName is the 404 of a name that is neither a channel nor a release of a: it
// names the channels and the newest releases.
func (s *Server) unknownDiffName(ctx context.Context, a release.App, name string) error {
	chans := make([]string, len(a.Channels))
	for i, ch := range a.Channels {
		chans[i] = ch.Name
	}
	versions, err := s.deps.Releases.Versions(ctx, a.Name)
	if err != nil {
		return err
	}
	slices.Reverse(versions) // newest first
	what := "no releases yet"
	switch {
	case len(versions) > maxNamedVersions:
		what = "the releases " + strings.Join(versions[:maxNamedVersions], ", ") + fmt.Sprintf(" and %d older", len(versions)-maxNamedVersions)
	case len(versions) > 0:
		what = "the releases " + strings.Join(versions, ", ")
	}
	return newProblem(openapi.ProblemNotFound, "app %s has no channel or release %q: it has the channels %s and %s",
		a.Name, name, strings.Join(chans, ", "), what)
}

// diffVulns compares the vulnerabilities of two builds, when the server has a database.
func (s *Server) diffVulns(ctx context.Context, app, from, to string) diffVulns {
	if s.deps.Vulns == nil {
		return diffVulns{Reason: "the server has no vulnerability database configured"}
	}
	fv, err := s.deps.Vulns(ctx, app, from)
	if err == nil {
		var tv []string
		if tv, err = s.deps.Vulns(ctx, app, to); err == nil {
			fixed, introduced := release.DiffVulns(fv, tv)
			return diffVulns{Available: true, Fixed: fixed, Introduced: introduced}
		}
	}
	s.log.WarnContext(ctx, "listing vulnerabilities for a diff", "app", app, "err", err)
	return diffVulns{Reason: "the vulnerability scan failed; the server log has the cause"}
}
