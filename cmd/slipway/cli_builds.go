package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/slipway/slipway/openapi"
)

// cmdBuilds is `slipway builds A`.
func cmdBuilds(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, true)
	status := fs.String("status", "", "only the builds with status `S`: queued, running, succeeded, failed or canceled")
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	app := pos[0]
	l, err := listAll[openapi.Build](ctx, cf.limit, func(ctx context.Context, n int, cursor *string) ([]byte, error) {
		p := &openapi.ListBuildsParams{Limit: &n, Cursor: cursor}
		if *status != "" {
			p.Status = ptr(openapi.BuildStatus(*status))
		}
		return bodyOf(c.api.ListBuildsWithResponse(ctx, app, p))
	})
	if err != nil {
		return fmt.Errorf("listing the builds of %s: %w", app, err)
	}
	return writeList(e.stdout, cf.json, l, "BUILD\tVERSION\tSTATUS\tPLATFORMS\tIMAGE\tCREATED\tTOOK", func(b openapi.Build) string {
		status := string(b.Status)
		if b.Error != nil {
			status += ": " + string(b.Error.Reason)
		}
		image := "-"
		if b.Image != nil {
			image = shortDigest(b.Image.Digest)
		}
		return strings.Join([]string{b.Id, b.Version, status, list(b.Platforms, ","), image, ago(b.CreatedAt, e.now()), durationMS(b.Timings.TotalMs)}, "\t")
	})
}

// durationMS shows milliseconds as a short duration: 950ms, 12.3s, 2m5s.
func durationMS(ms *int64) string {
	if ms == nil {
		return "-"
	}
	d := time.Duration(*ms) * time.Millisecond
	switch {
	case d < time.Second:
		return d.String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// cmdLogs is `slipway logs A BUILD`.
func cmdLogs(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	follow := fs.Bool("follow", false, "keep printing the log while the build runs; exit 1 if it fails or is canceled")
	pos, c, err := cf.parse(fs, e, cmd, args, 2, 2)
	if err != nil {
		return err
	}
	app, id := pos[0], pos[1]
	if !*follow {
		_, err := c.streamLog(ctx, e.stdout, app, id, 0, false)
		return err
	}
	b, _, err := c.followLog(ctx, e.stdout, app, id)
	if err != nil {
		return err
	}
	if b.Status != openapi.BuildStatusSucceeded {
		return &buildFailedError{build: b, logShown: true}
	}
	return nil
}

// cmdCancel is `slipway cancel A BUILD`.
func cmdCancel(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	pos, c, err := cf.parse(fs, e, cmd, args, 2, 2)
	if err != nil {
		return err
	}
	app, id := pos[0], pos[1]
	r, err := c.api.CancelBuildWithResponse(ctx, app, id)
	if err != nil {
		return err // 409: too late, the build has ended; the detail says how
	}
	if cf.json {
		return writeJSON(e.stdout, r.Body)
	}
	switch r.StatusCode() {
	case http.StatusOK:
		_, err = fmt.Fprintf(e.stdout, "build %s is canceled\n", id)
	case http.StatusAccepted:
		_, err = fmt.Fprintf(e.stdout, "build %s is running; it was asked to stop and stops within seconds (slipway builds %s --status canceled shows it then)\n", id, app)
	default:
		err = unexpected("canceling build "+id, r.HTTPResponse, r.Body)
	}
	return err
}
