package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/slipway/slipway/openapi"
)

// cmdApps is `slipway apps`.
func cmdApps(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, true)
	_, c, err := cf.parse(fs, e, cmd, args, 0, 0)
	if err != nil {
		return err
	}
	l, err := listAll[openapi.App](ctx, cf.limit, func(ctx context.Context, n int, cursor *string) ([]byte, error) {
		r, err := c.api.ListAppsWithResponse(ctx, &openapi.ListAppsParams{Limit: &n, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		return r.Body, nil
	})
	if err != nil {
		return fmt.Errorf("listing apps: %w", err)
	}
	if cf.json {
		return writeListJSON(e.stdout, l)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tMAIN\tPLATFORMS\tCHANNELS\tPUBLIC\tUPDATED")
	for _, a := range l.items {
		chans := make([]string, len(a.Channels))
		for i, ch := range a.Channels {
			chans[i] = ch.Name
		}
		public := "no"
		if a.Public {
			public = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.Main, list(a.Platforms, ","), list(chans, " → "), public, ago(a.UpdatedAt, e.now()))
	}
	return tw.Flush()
}

// cmdReleases is `slipway releases A`.
func cmdReleases(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, true)
	channel := fs.String("channel", "", "only the releases that are or have been in channel `CH`")
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	app := pos[0]
	l, err := listAll[openapi.Release](ctx, cf.limit, func(ctx context.Context, n int, cursor *string) ([]byte, error) {
		p := &openapi.ListReleasesParams{Limit: &n, Cursor: cursor}
		if *channel != "" {
			p.Channel = channel
		}
		r, err := c.api.ListReleasesWithResponse(ctx, app, p)
		if err != nil {
			return nil, err
		}
		return r.Body, nil
	})
	if err != nil {
		return fmt.Errorf("listing the releases of %s: %w", app, err)
	}
	if cf.json {
		return writeListJSON(e.stdout, l)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSEQ\tBUILD\tIMAGE\tCHANNELS\tCREATED\tBY")
	for _, r := range l.items {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Version, r.Sequence, r.BuildId, shortDigest(r.ImageDigest), list(r.Channels, ","), ago(r.CreatedAt, e.now()), r.CreatedBy)
	}
	return tw.Flush()
}

// cmdTokenCreate is `slipway token create`.
func cmdTokenCreate(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	var scopes, apps stringList
	fs.Var(&scopes, "scope", "a scope `S`: read, build, release, promote, promote:<channel> or admin; repeat for more (at least one)")
	fs.Var(&apps, "app", "limit the token to app `A`; repeat for more (default: every app)")
	pos, err := parseArgs(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	if len(scopes) == 0 {
		return &usageError{"token create needs at least one --scope"}
	}
	c, err := cf.client(e)
	if err != nil {
		return err
	}
	in := openapi.TokenInput{Name: pos[0], Scopes: scopes}
	if len(apps) > 0 {
		in.Apps = (*[]string)(&apps)
	}
	r, err := c.api.CreateTokenWithResponse(ctx, in)
	if err != nil {
		return fmt.Errorf("creating token %s: %w", pos[0], err)
	}
	if r.JSON201 == nil {
		return unexpected("creating a token", r.HTTPResponse, r.Body)
	}
	if cf.json {
		return writeJSON(e.stdout, r.Body)
	}
	t := r.JSON201
	fmt.Fprintf(e.stderr, "slipway: token %s has scopes %s for %s; this is the only time its secret is shown:\n",
		t.Name, list(t.Scopes, ","), appsOf(t.Apps))
	_, err = fmt.Fprintln(e.stdout, t.Token)
	return err
}

// cmdTokenList is `slipway token list`.
func cmdTokenList(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	_, c, err := cf.parse(fs, e, cmd, args, 0, 0)
	if err != nil {
		return err
	}
	r, err := c.api.ListTokensWithResponse(ctx)
	if err != nil {
		return fmt.Errorf("listing tokens: %w", err)
	}
	if r.JSON200 == nil {
		return unexpected("listing tokens", r.HTTPResponse, r.Body)
	}
	if cf.json {
		return writeJSON(e.stdout, r.Body)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tSCOPES\tAPPS\tCREATED\tLAST USED")
	for _, t := range r.JSON200.Items {
		used := "never"
		if t.LastUsedAt != nil {
			used = ago(*t.LastUsedAt, e.now())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Id, list(t.Scopes, ","), appsOf(t.Apps), ago(t.CreatedAt, e.now()), used)
	}
	return tw.Flush()
}

// cmdTokenRevoke is `slipway token revoke`.
func cmdTokenRevoke(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	if _, err := c.api.DeleteTokenWithResponse(ctx, pos[0]); err != nil {
		return fmt.Errorf("revoking token %s: %w", pos[0], err)
	}
	if cf.json {
		return nil // 204: the API answers nothing
	}
	_, err = fmt.Fprintf(e.stdout, "token %s revoked\n", pos[0])
	return err
}

// list joins a table cell's values, or is "-" for none.
func list(vs []string, sep string) string {
	if len(vs) == 0 {
		return "-"
	}
	return strings.Join(vs, sep)
}

// appsOf names the apps a token is limited to.
func appsOf(apps []string) string {
	if len(apps) == 0 {
		return "every app"
	}
	return strings.Join(apps, ",")
}
