package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/slipway/slipway/openapi"
)

// buildResult is what one `slipway build` made: the build as it ended (or as queued),
// its image's reference, and the release and channel move when it made them.
type buildResult struct {
	build   openapi.Build
	image   string // host/app@sha256:..., "" without an image
	release *openapi.Release
	move    *openapi.ChannelMove
}

// imageRef is the reference of build b's image in the registry of the server c talks to,
// host/app@sha256:...; "" while the build has no image.
func imageRef(c *client, app string, b openapi.Build) string {
	if b.Image == nil || b.Image.Digest == "" {
		return ""
	}
	return c.base.Host + "/" + app + "@" + b.Image.Digest
}

// writeCIFiles appends the build's summary to --summary's file and its variables to
// --dotenv's, for a CI job's later steps and its page.
func (f *buildFlags) writeCIFiles(c *client, res *buildResult) error {
	if f.summary != "" {
		if err := appendFile(f.summary, buildSummary(c, res)); err != nil {
			return err
		}
	}
	if f.dotenv != "" {
		return appendFile(f.dotenv, buildDotenv(res))
	}
	return nil
}

// appendFile appends text to the file name, creating it if need be.
func appendFile(name, text string) error {
	file, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	_, err = file.WriteString(text)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// buildDotenv is the build as dotenv lines: SLIPWAY_BUILD_ID and SLIPWAY_BUILD_VERSION,
// SLIPWAY_IMAGE_DIGEST and SLIPWAY_IMAGE once it has an image, SLIPWAY_RELEASE_VERSION
// once it is released. None of the names is one of the inputs the CI templates take
// (SLIPWAY_VERSION, SLIPWAY_RELEASE), which a later job may read this file into.
func buildDotenv(res *buildResult) string {
	b := res.build
	var s strings.Builder
	fmt.Fprintf(&s, "SLIPWAY_BUILD_ID=%s\nSLIPWAY_BUILD_VERSION=%s\n", b.Id, b.Version)
	if res.image != "" {
		fmt.Fprintf(&s, "SLIPWAY_IMAGE_DIGEST=%s\nSLIPWAY_IMAGE=%s\n", b.Image.Digest, res.image)
	}
	if res.release != nil {
		fmt.Fprintf(&s, "SLIPWAY_RELEASE_VERSION=%s\n", res.release.Version)
	}
	return s.String()
}

// buildSummary is the build in Markdown: a heading with its outcome, its image, release,
// channel move and log, and a table of its platforms with each binary's digest and size
// and each image manifest's digest.
func buildSummary(c *client, res *buildResult) string {
	b := res.build
	var s strings.Builder
	fmt.Fprintf(&s, "### slipway: %s %s, build %s %s\n\n", b.App, b.Version, b.Id, b.Status)
	if e := b.Error; e != nil {
		where := ""
		if e.Platform != nil {
			where = " on " + *e.Platform
		}
		fmt.Fprintf(&s, "- error: %s%s\n", e.Reason, where)
	}
	if res.image != "" {
		fmt.Fprintf(&s, "- image: `%s`\n", res.image)
	}
	if res.release != nil {
		fmt.Fprintf(&s, "- release: %s\n", res.release.Version)
	}
	if res.move != nil {
		fmt.Fprintf(&s, "- channel: %s\n", moveSummary(b.App, "promote", res.move))
	}
	logURL := c.base.JoinPath("v1", "apps", b.App, "builds", b.Id, "log").String()
	fmt.Fprintf(&s, "- log: <%s> (with a slipway token), or `slipway logs %s %s`\n\n", logURL, b.App, b.Id)
	s.WriteString("| platform | binary | size | image manifest |\n| --- | --- | --- | --- |\n")
	for _, p := range b.Platforms {
		binary, size, manifest := "-", "-", "-"
		for _, a := range b.Artifacts {
			if a.Platform == p {
				binary, size = "`"+a.Digest+"`", humanBytes(a.Size)
			}
		}
		if b.Image != nil {
			for _, m := range b.Image.Manifests {
				if m.Platform == p {
					manifest = "`" + m.Digest + "`"
				}
			}
		}
		fmt.Fprintf(&s, "| %s | %s | %s | %s |\n", p, binary, size, manifest)
	}
	return s.String() + "\n"
}
