package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/slipway/slipway/openapi"
)

// cmdWebhooksList is `slipway webhooks list`.
func cmdWebhooksList(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, true)
	_, c, err := cf.parse(fs, e, cmd, args, 0, 0)
	if err != nil {
		return err
	}
	l, err := listAll[openapi.Webhook](ctx, cf.limit, func(ctx context.Context, n int, cursor *string) ([]byte, error) {
		return bodyOf(c.api.ListWebhooksWithResponse(ctx, &openapi.ListWebhooksParams{Limit: &n, Cursor: cursor}))
	})
	if err != nil {
		return fmt.Errorf("listing webhooks: %w", err)
	}
	return writeList(e.stdout, cf.json, l, "ID\tURL\tEVENTS\tAPPS\tFORMAT\tCREATED\tBY", func(w openapi.Webhook) string {
		return strings.Join([]string{w.Id, w.Url, eventsOf(w.Events), appsOf(w.Apps), string(w.Format), ago(w.CreatedAt, e.now()), w.CreatedBy}, "\t")
	})
}

// eventsOf names the event types a subscription sends.
func eventsOf(types []string) string {
	if len(types) == 0 {
		return "every event"
	}
	return strings.Join(types, ",")
}

// cmdWebhooksCreate is `slipway webhooks create URL`.
func cmdWebhooksCreate(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	var events, apps stringList
	fs.Var(&events, "event", "send events of type `T` (or a family such as build.*); repeat for more (default: every type)")
	fs.Var(&apps, "app", "send app `A`'s events; repeat for more (default: every app)")
	format := fs.String("format", "json", "what is posted: json (the event) or slack (a Slack-compatible {\"text\": ...})")
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	in := openapi.WebhookInput{Url: pos[0], Format: ptr(openapi.WebhookFormat(*format))}
	if len(events) > 0 {
		in.Events = (*[]string)(&events)
	}
	if len(apps) > 0 {
		in.Apps = (*[]string)(&apps)
	}
	r, err := c.api.CreateWebhookWithResponse(ctx, in)
	if err != nil {
		return fmt.Errorf("subscribing %s: %w", pos[0], err)
	}
	if r.JSON201 == nil {
		return unexpected("subscribing a webhook", r.HTTPResponse, r.Body)
	}
	w := r.JSON201
	return writeSecret(e, cf.json, r.Body, w.Secret,
		fmt.Sprintf("webhook %s posts %s of %s to %s, signed with a secret shown this once", w.Id, eventsOf(w.Events), appsOf(w.Apps), w.Url))
}

// cmdWebhooksDelete is `slipway webhooks delete ID`.
func cmdWebhooksDelete(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	if _, err := c.api.DeleteWebhookWithResponse(ctx, pos[0]); err != nil {
		return err
	}
	if cf.json {
		return nil // 204: the API answers nothing
	}
	_, err = fmt.Fprintf(e.stdout, "webhook %s deleted\n", pos[0])
	return err
}

// cmdWebhooksRotate is `slipway webhooks rotate ID`.
func cmdWebhooksRotate(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	r, err := c.api.RotateWebhookSecretWithResponse(ctx, pos[0])
	if err != nil {
		return err
	}
	if r.JSON200 == nil {
		return unexpected("rotating the secret of webhook "+pos[0], r.HTTPResponse, r.Body)
	}
	w := r.JSON200
	until := "a grace period"
	if w.PreviousSecretExpiresAt != nil {
		until = w.PreviousSecretExpiresAt.Local().Format("2006-01-02 15:04 MST")
	}
	return writeSecret(e, cf.json, r.Body, w.Secret,
		fmt.Sprintf("webhook %s has a new signing secret, shown this once; the old one signs beside it until %s", w.Id, until))
}

// writeSecret prints a secret shown once: what it is on stderr and the secret alone on
// stdout, or with asJSON the API's answer.
func writeSecret(e *cliEnv, asJSON bool, raw []byte, secret, about string) error {
	if asJSON {
		return writeJSON(e.stdout, raw)
	}
	fmt.Fprintf(e.stderr, "slipway: %s:\n", about)
	_, err := fmt.Fprintln(e.stdout, secret)
	return err
}

// cmdWhoami is `slipway whoami`.
func cmdWhoami(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	_, c, err := cf.parse(fs, e, cmd, args, 0, 0)
	if err != nil {
		return err
	}
	r, err := c.api.GetWhoamiWithResponse(ctx)
	if err != nil {
		return err
	}
	if r.JSON200 == nil {
		return unexpected("asking who the token is", r.HTTPResponse, r.Body)
	}
	if cf.json {
		return writeJSON(e.stdout, r.Body)
	}
	w := r.JSON200
	out := buildOutput{}
	out.add("name", w.Name)
	out.add("id", w.Id)
	out.add("scopes", list(w.Scopes, ","))
	out.add("apps", appsOf(w.Apps))
	server := c.base.Redacted()
	if !w.Authenticated {
		server += " (without authentication: anyone may do anything)"
	}
	out.add("server", server)
	return out.write(e.stdout)
}
