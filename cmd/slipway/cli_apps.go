package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/slipway/slipway/openapi"
)

// appFlags are the settings apps create and apps update take from flags.
type appFlags struct {
	fs                              *flag.FlagSet
	main, ldflags, baseImage, chans string
	platforms                       stringList
	public, autoPromote             bool
}

// appSettingFlags are the names of the flags newAppFlags defines, in help's order.
var appSettingFlags = []string{"main", "platforms", "ldflags", "base-image", "channels", "public", "auto-promote"}

// newAppFlags defines the app settings' flags on fs.
func newAppFlags(fs *flag.FlagSet) *appFlags {
	f := &appFlags{fs: fs}
	fs.StringVar(&f.main, "main", "", "the main package `M`, a path inside the module (server default .)")
	fs.Var(&f.platforms, "platforms", "the platforms `P` to build, GOOS/GOARCH[/variant]; comma-separated or repeated (server default linux/amd64,linux/arm64)")
	fs.StringVar(&f.ldflags, "ldflags", "", "linker flags `F`, a template over {{.Version}}, {{.Commit}}, {{.Date}} and {{.App}} (server default -X main.version={{.Version}})")
	fs.StringVar(&f.baseImage, "base-image", "", "the image base, a registry reference `REF`; \"\" for slipway's built-in distroless base (the default)")
	fs.StringVar(&f.chans, "channels", "", "the channels `CHS` in order, each taking releases from the one before (dev,staging,prod, the default); CH=FROM takes them from FROM, CH= from anywhere")
	fs.BoolVar(&f.public, "public", false, "let anyone pull the app's images from the registry without a token")
	fs.BoolVar(&f.autoPromote, "auto-promote", false, "send every new release to the first channel")
	return f
}

// given are the names of the settings whose flags were on the command line.
func (f *appFlags) given() []string {
	var names []string
	f.fs.Visit(func(fl *flag.Flag) {
		for _, n := range appSettingFlags {
			if fl.Name == n {
				names = append(names, n)
			}
		}
	})
	return names
}

// apply sets in's fields from the flags that were given.
func (f *appFlags) apply(in *openapi.AppInput) error {
	for _, name := range f.given() {
		switch name {
		case "main":
			in.Main = &f.main
		case "platforms":
			in.Platforms = (*[]string)(&f.platforms)
		case "ldflags":
			in.Ldflags = &f.ldflags
		case "base-image":
			in.BaseImage = &f.baseImage
		case "channels":
			chs, err := parseChannels(f.chans)
			if err != nil {
				return err
			}
			in.Channels = &chs
		case "public":
			in.Public = &f.public
		case "auto-promote":
			in.AutoPromote = &f.autoPromote
		}
	}
	return nil
}

// parseChannels reads --channels: names in order, each taking releases from the one
// before it, unless written CH=FROM (from FROM) or CH= (from anywhere).
func parseChannels(s string) ([]openapi.ChannelSpec, error) {
	var out []openapi.ChannelSpec
	for part := range strings.SplitSeq(s, ",") {
		name, from, explicit := strings.Cut(strings.TrimSpace(part), "=")
		if name == "" {
			return nil, &usageError{fmt.Sprintf("--channels %q names an empty channel; write them as dev,staging,prod", s)}
		}
		ch := openapi.ChannelSpec{Name: name}
		switch {
		case explicit && from != "":
			ch.From = &from
		case !explicit && len(out) > 0:
			prev := out[len(out)-1].Name
			ch.From = &prev
		}
		out = append(out, ch)
	}
	return out, nil
}

// appInputOf is the configuration of a, to write back with some settings changed.
func appInputOf(a *openapi.App) openapi.AppInput {
	return openapi.AppInput{
		Main: &a.Main, Platforms: &a.Platforms, Ldflags: &a.Ldflags, BaseImage: &a.BaseImage,
		Channels: &a.Channels, Public: &a.Public, AutoPromote: &a.AutoPromote,
	}
}

// putApp writes app's configuration: only if it is still at generation gen (If-Match),
// or, for gen 0, only if it does not exist (If-None-Match: *).
func (c *client) putApp(ctx context.Context, app string, gen int64, in openapi.AppInput) (*openapi.PutAppResponse, error) {
	params := &openapi.PutAppParams{IfNoneMatch: ptr("*")}
	if gen > 0 {
		params = &openapi.PutAppParams{IfMatch: ifMatch(gen)}
	}
	r, err := c.api.PutAppWithResponse(ctx, app, params, in)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusPreconditionFailed {
		if gen > 0 {
			return nil, &staleAppError{app: app, read: gen, apiErr: ae}
		}
		ae.next = "slipway apps update " + app + " changes it"
	}
	if err != nil {
		return nil, err
	}
	if r.JSON200 == nil && r.JSON201 == nil {
		return nil, unexpected("writing app "+app, r.HTTPResponse, r.Body)
	}
	return r, nil
}

// readApp reads app; the answer has JSON200; an app that does not exist is an *apiError.
func (c *client) readApp(ctx context.Context, app string) (*openapi.GetAppResponse, error) {
	r, err := c.api.GetAppWithResponse(ctx, app, nil)
	if err != nil {
		return nil, err
	}
	if r.JSON200 == nil {
		return nil, unexpected("reading app "+app, r.HTTPResponse, r.Body)
	}
	return r, nil
}

// cmdAppsCreate is `slipway apps create`.
func cmdAppsCreate(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	af := newAppFlags(fs)
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	var in openapi.AppInput
	if err := af.apply(&in); err != nil {
		return err
	}
	r, err := c.putApp(ctx, pos[0], 0, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "slipway: created app %s\n", pos[0])
	return writeApp(e, cf.json, r.Body, r.JSON201)
}

// cmdAppsUpdate is `slipway apps update`: read the app, change what the flags say, and
// write it back if nobody changed it meanwhile.
func cmdAppsUpdate(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	af := newAppFlags(fs)
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	if len(af.given()) == 0 {
		return &usageError{"apps update needs a setting to change: --" + strings.Join(appSettingFlags, ", --") + " (see slipway apps update --help)"}
	}
	app := pos[0]
	gr, err := c.readApp(ctx, app)
	if err != nil {
		return err
	}
	in := appInputOf(gr.JSON200)
	if err := af.apply(&in); err != nil {
		return err
	}
	r, err := c.putApp(ctx, app, gr.JSON200.Generation, in)
	if err != nil {
		return err
	}
	if r.JSON200.Generation == gr.JSON200.Generation {
		fmt.Fprintf(e.stderr, "slipway: app %s already had these settings; nothing changed\n", app)
	} else {
		fmt.Fprintf(e.stderr, "slipway: updated app %s (generation %d)\n", app, r.JSON200.Generation)
	}
	return writeApp(e, cf.json, r.Body, r.JSON200)
}

// cmdAppsShow is `slipway apps show`.
func cmdAppsShow(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	r, err := c.readApp(ctx, pos[0])
	if err != nil {
		return err
	}
	return writeApp(e, cf.json, r.Body, r.JSON200)
}

// cmdAppsDelete is `slipway apps delete`.
func cmdAppsDelete(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	if _, err := c.api.DeleteAppWithResponse(ctx, pos[0], &openapi.DeleteAppParams{}); err != nil {
		return err
	}
	if cf.json {
		return nil // 204: the API answers nothing
	}
	_, err = fmt.Fprintf(e.stdout, "app %s deleted\n", pos[0])
	return err
}

// writeApp prints an app's settings one a line, or with asJSON the API's answer.
func writeApp(e *cliEnv, asJSON bool, raw []byte, a *openapi.App) error {
	if asJSON {
		return writeJSON(e.stdout, raw)
	}
	base := a.BaseImage
	if base == "" {
		base = "(built-in distroless)"
	}
	out := buildOutput{}
	for _, kv := range [][2]string{
		{"name", a.Name}, {"main", a.Main}, {"platforms", list(a.Platforms, ",")}, {"ldflags", a.Ldflags},
		{"base-image", base}, {"channels", channelSpecs(a.Channels)}, {"public", yesNo(a.Public)},
		{"auto-promote", yesNo(a.AutoPromote)}, {"generation", strconv.FormatInt(a.Generation, 10)},
		{"created", ago(a.CreatedAt, e.now())}, {"updated", ago(a.UpdatedAt, e.now())},
	} {
		out.add(kv[0], kv[1])
	}
	return out.write(e.stdout)
}

// channelSpecs shows an app's channels in order, with where each takes releases from:
// "dev, staging (from dev), prod (from staging)".
func channelSpecs(chs []openapi.ChannelSpec) string {
	parts := make([]string, len(chs))
	for i, ch := range chs {
		parts[i] = ch.Name
		if ch.From != nil && *ch.From != "" {
			parts[i] += " (from " + *ch.From + ")"
		}
	}
	return list(parts, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
