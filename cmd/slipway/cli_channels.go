package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/slipway/slipway/openapi"
)

// channelAction is one change of a channel: promote, rollback, lock or unlock, with the
// body the API takes for it.
type channelAction struct {
	kind string
	body any // openapi.PromoteInput, openapi.RollbackInput or openapi.ReasonInput
}

// getChannel reads a channel, for the generation a move is conditioned on.
func (c *client) getChannel(ctx context.Context, app, channel string) (*openapi.Channel, error) {
	r, err := c.api.GetChannelWithResponse(ctx, app, channel)
	if err != nil {
		return nil, err
	}
	if r.JSON200 == nil {
		return nil, unexpected("reading channel "+channel, r.HTTPResponse, r.Body)
	}
	return r.JSON200, nil
}

// move applies act to the channel if it is still at generation gen (If-Match), with an
// Idempotency-Key derived from the move and gen, so that a retry of the same command is
// answered once. A channel that moved since is a *staleChannelError.
func (c *client) move(ctx context.Context, app, channel string, gen int64, act channelAction) (*openapi.ChannelMove, []byte, error) {
	body, err := json.Marshal(act.body)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the %s: %w", act.kind, err)
	}
	key := idempotencyKey(act.kind, app, channel, strconv.FormatInt(gen, 10), string(body))
	const ct = "application/json"
	var (
		mv  *openapi.ChannelMove
		raw []byte
	)
	switch act.kind {
	case "promote":
		var r *openapi.PromoteChannelResponse
		r, err = c.api.PromoteChannelWithBodyWithResponse(ctx, app, channel, &openapi.PromoteChannelParams{IfMatch: ifMatch(gen), IdempotencyKey: key}, ct, bytes.NewReader(body))
		if err == nil {
			mv, raw = r.JSON200, r.Body
		}
	case "rollback":
		var r *openapi.RollbackChannelResponse
		r, err = c.api.RollbackChannelWithBodyWithResponse(ctx, app, channel, &openapi.RollbackChannelParams{IfMatch: ifMatch(gen), IdempotencyKey: key}, ct, bytes.NewReader(body))
		if err == nil {
			mv, raw = r.JSON200, r.Body
		}
	case "lock":
		var r *openapi.LockChannelResponse
		r, err = c.api.LockChannelWithBodyWithResponse(ctx, app, channel, &openapi.LockChannelParams{IfMatch: ifMatch(gen), IdempotencyKey: key}, ct, bytes.NewReader(body))
		if err == nil {
			mv, raw = r.JSON200, r.Body
		}
	case "unlock":
		var r *openapi.UnlockChannelResponse
		r, err = c.api.UnlockChannelWithBodyWithResponse(ctx, app, channel, &openapi.UnlockChannelParams{IfMatch: ifMatch(gen), IdempotencyKey: key}, ct, bytes.NewReader(body))
		if err == nil {
			mv, raw = r.JSON200, r.Body
		}
	case "unpin":
		var r *openapi.UnpinChannelResponse
		r, err = c.api.UnpinChannelWithBodyWithResponse(ctx, app, channel, &openapi.UnpinChannelParams{IfMatch: ifMatch(gen), IdempotencyKey: key}, ct, bytes.NewReader(body))
		if err == nil {
			mv, raw = r.JSON200, r.Body
		}
	default:
		return nil, nil, fmt.Errorf("unknown channel action %q", act.kind)
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusPreconditionFailed && ae.problem.Channel != nil {
		return nil, nil, &staleChannelError{app: app, read: gen, now: *ae.problem.Channel, apiErr: ae}
	}
	c.suggestNext(ctx, err, app, channel, act)
	if err != nil {
		return nil, nil, err
	}
	if mv == nil {
		return nil, nil, unexpected(act.kind, nil, raw)
	}
	return mv, raw, nil
}

// suggestNext says, in a refused move's error, the command that gets past it: unlocking
// a locked channel, or promoting first to the channel this one takes releases from.
func (c *client) suggestNext(ctx context.Context, err error, app, channel string, act channelAction) {
	var ae *apiError
	if !errors.As(err, &ae) {
		return
	}
	switch ae.problem.Type {
	case openapi.ProblemChannelLocked:
		ae.command = fmt.Sprintf("slipway unlock %s %s --reason R, or slipway rollback %s %s --reason R", app, channel, app, channel)
	case openapi.ProblemPolicyViolation:
		in, ok := act.body.(openapi.PromoteInput)
		ch, err := c.getChannel(ctx, app, channel)
		if !ok || err != nil || ch.From == nil {
			return
		}
		what := "--version " + orNone(in.Version)
		if in.From != nil {
			what = "--from " + *in.From
		}
		ae.command = fmt.Sprintf("slipway promote %s %s %s --reason R", app, *ch.From, what)
	}
}

// moveSummary is one line about a channel move: "dev: 1.0.0 → 1.2.3".
func moveSummary(app, kind string, mv *openapi.ChannelMove) string {
	ch := mv.Channel
	name := app + "/" + ch.Name
	switch kind {
	case "lock":
		if !mv.Changed {
			return name + " was already locked"
		}
		return name + " locked"
	case "unlock":
		if !mv.Changed {
			return name + " was not locked"
		}
		return name + " unlocked"
	case "unpin":
		if !mv.Changed {
			return name + " was not pinned"
		}
		return name + " unpinned: auto_promote may move it again"
	}
	if !mv.Changed {
		return fmt.Sprintf("%s already holds %s; nothing changed", name, orNone(ch.Release))
	}
	from := "(none)"
	if mv.Event != nil && mv.Event.FromVersion != nil {
		from = *mv.Event.FromVersion
	}
	line := fmt.Sprintf("%s: %s → %s (generation %d)", name, from, orNone(ch.Release), ch.Generation)
	if ev := mv.Event; ev != nil && ev.Override != nil {
		line += "\nOVERRIDE: these gates did not pass, and history records it:\n" + gatesText(ev.Override.Gates, "  ")
	}
	if ev := mv.Event; ev != nil && ev.Pinned != nil && *ev.Pinned {
		line += fmt.Sprintf("\n%s is pinned: auto_promote leaves it alone until slipway unpin %s %s", name, app, ch.Name)
	}
	return line
}

func orNone(s *string) string {
	if s == nil || *s == "" {
		return "(none)"
	}
	return *s
}

// cmdMove returns the command that applies channel actions of kind.
func cmdMove(kind string) func(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	return func(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
		var cf clientFlags
		fs := newFlagSet(cmd, &cf, false)
		mf := newMoveFlags(fs, kind)
		pos, err := parseArgs(fs, e, cmd, args, 2, 2)
		if err != nil {
			return err
		}
		act, err := mf.action(kind)
		if err != nil {
			return err
		}
		c, err := cf.client(e)
		if err != nil {
			return err
		}
		app, channel := pos[0], pos[1]
		ch, err := c.getChannel(ctx, app, channel)
		if err != nil {
			return fmt.Errorf("reading channel %s of %s: %w", channel, app, err)
		}
		mv, raw, err := c.move(ctx, app, channel, ch.Generation, act)
		if err != nil {
			var stale *staleChannelError
			if errors.As(err, &stale) {
				return err
			}
			return fmt.Errorf("%s %s/%s: %w", kind, app, channel, err)
		}
		if cf.json {
			return writeJSON(e.stdout, raw)
		}
		_, err = fmt.Fprintln(e.stdout, moveSummary(app, kind, mv))
		return err
	}
}

// moveFlags are the flags of a channel action: a reason, and what promote and rollback
// move the channel to.
type moveFlags struct {
	reason, version, from, to string
	override                  bool
}

// newMoveFlags defines on fs the flags of the channel actions of kind.
func newMoveFlags(fs *flag.FlagSet, kind string) *moveFlags {
	mf := &moveFlags{}
	fs.StringVar(&mf.reason, "reason", "", "why, for the channel's history (required)")
	switch kind {
	case "promote":
		fs.StringVar(&mf.version, "version", "", "the release `V` to promote")
		fs.StringVar(&mf.from, "from", "", "promote what channel `CH2` holds now")
		fs.BoolVar(&mf.override, "override", false, "move past the gates that do not pass (scope override:CH); history records it")
	case "rollback":
		fs.StringVar(&mf.to, "to", "", "the release `V` to go back to (default: the one before the current)")
	}
	return mf
}

// action checks the flags and returns the channel action of kind they ask for.
func (mf *moveFlags) action(kind string) (channelAction, error) {
	if mf.reason == "" {
		return channelAction{}, &usageError{kind + " needs --reason: it goes into the channel's history"}
	}
	act := channelAction{kind: kind}
	switch kind {
	case "promote":
		if (mf.version == "") == (mf.from == "") {
			return channelAction{}, &usageError{"promote needs one of --version V or --from CH2"}
		}
		in := openapi.PromoteInput{Reason: &mf.reason}
		if mf.override {
			in.Override = &mf.override
		}
		if mf.version != "" {
			in.Version = &mf.version
		} else {
			in.From = &mf.from
		}
		act.body = in
	case "rollback":
		in := openapi.RollbackInput{Reason: &mf.reason}
		if mf.to != "" {
			in.To = &mf.to
		}
		act.body = in
	default:
		act.body = openapi.ReasonInput{Reason: &mf.reason}
	}
	return act, nil
}

// cmdChannels is `slipway channels A`.
func cmdChannels(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	pos, c, err := cf.parse(fs, e, cmd, args, 1, 1)
	if err != nil {
		return err
	}
	r, err := c.api.ListChannelsWithResponse(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("listing the channels of %s: %w", pos[0], err)
	}
	if r.JSON200 == nil {
		return unexpected("listing channels", r.HTTPResponse, r.Body)
	}
	if cf.json {
		return writeJSON(e.stdout, r.Body)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANNEL\tRELEASE\tFROM\tLOCKED\tGENERATION\tUPDATED\tBY")
	for _, ch := range r.JSON200.Items {
		locked := "no"
		if ch.Locked {
			locked = "yes"
			if ch.LockReason != nil && *ch.LockReason != "" {
				locked += ": " + *ch.LockReason
			}
		}
		updated := "-"
		if ch.UpdatedAt != nil {
			updated = ago(*ch.UpdatedAt, e.now())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", ch.Name, orDash(ch.Release), orDash(ch.From), locked, ch.Generation, updated, orDash(ch.UpdatedBy))
	}
	return tw.Flush()
}

// cmdHistory is `slipway history A CH`.
func cmdHistory(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, true)
	pos, c, err := cf.parse(fs, e, cmd, args, 2, 2)
	if err != nil {
		return err
	}
	app, channel := pos[0], pos[1]
	l, err := listAll[openapi.ChannelEvent](ctx, cf.limit, func(ctx context.Context, n int, cursor *string) ([]byte, error) {
		r, err := c.api.GetChannelHistoryWithResponse(ctx, app, channel, &openapi.GetChannelHistoryParams{Limit: &n, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		return r.Body, nil
	})
	if err != nil {
		return fmt.Errorf("reading the history of %s/%s: %w", app, channel, err)
	}
	if cf.json {
		return writeListJSON(e.stdout, l)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tACTION\tFROM\tTO\tBY\tWHEN\tREASON")
	for _, ev := range l.items {
		action := string(ev.Action)
		if ev.Reverts != nil {
			action += " (reverts " + strconv.FormatInt(*ev.Reverts, 10) + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, action, orDash(ev.FromVersion), orDash(ev.ToVersion), ev.Actor, ago(ev.At, e.now()), flatText(ev.Reason))
	}
	return tw.Flush()
}

// flatText keeps a free-text field from breaking a table row.
func flatText(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Join(strings.Fields(s), " ")
}

// cmdApprove is `slipway approve A CH V`.
func cmdApprove(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	var reason string
	var revoke bool
	fs.StringVar(&reason, "reason", "", "why, for the channel's history")
	fs.BoolVar(&revoke, "revoke", false, "withdraw your approval instead")
	pos, c, err := cf.parse(fs, e, cmd, args, 3, 3)
	if err != nil {
		return err
	}
	app, channel, version := pos[0], pos[1], pos[2]
	var ap *openapi.Approval
	var raw []byte
	if revoke {
		r, err := c.api.RevokeApprovalWithResponse(ctx, app, channel, version)
		if err != nil {
			return fmt.Errorf("revoking the approval of %s for %s/%s: %w", version, app, channel, err)
		}
		ap, raw = r.JSON200, r.Body
	} else {
		in := openapi.ApprovalInput{Version: version}
		if reason != "" {
			in.Reason = &reason
		}
		r, err := c.api.ApproveReleaseWithResponse(ctx, app, channel, in)
		if err != nil {
			return fmt.Errorf("approving %s for %s/%s: %w", version, app, channel, err)
		}
		ap, raw = r.JSON201, r.Body
		if ap == nil {
			ap = r.JSON200
		}
	}
	if ap == nil {
		return unexpected("approve", nil, raw)
	}
	if cf.json {
		return writeJSON(e.stdout, raw)
	}
	switch {
	case revoke:
		_, err = fmt.Fprintf(e.stdout, "%s/%s: your approval of %s is revoked\n", app, channel, version)
	case !ap.Counts:
		_, err = fmt.Fprintf(e.stdout, "%s/%s: your approval of %s is recorded but does not count: %s\n", app, channel, version, deref(ap.Note))
	default:
		_, err = fmt.Fprintf(e.stdout, "%s/%s: %s approved by %s; slipway gates %s %s %s shows what is still missing\n", app, channel, version, ap.Actor, app, channel, version)
	}
	return err
}

// gatesRefused is a dry run whose gates do not all pass: exit 3, the table said it.
type gatesRefused struct{}

func (gatesRefused) Error() string { return "not every gate passes" }
func (gatesRefused) ExitCode() int { return exitRejected }

// cmdGates is `slipway gates A CH [V]`.
func cmdGates(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	pos, c, err := cf.parse(fs, e, cmd, args, 2, 3)
	if err != nil {
		return err
	}
	app, channel := pos[0], pos[1]
	params := &openapi.GetChannelGatesParams{}
	if len(pos) == 3 {
		params.Version = &pos[2]
	} else {
		ch, err := c.getChannel(ctx, app, channel)
		if err != nil {
			return fmt.Errorf("reading channel %s of %s: %w", channel, app, err)
		}
		if ch.From == nil {
			return &usageError{fmt.Sprintf("channel %s takes releases from no other channel: name the release, slipway gates %s %s V", channel, app, channel)}
		}
		params.From = ch.From
	}
	r, err := c.api.GetChannelGatesWithResponse(ctx, app, channel, params)
	if err != nil {
		return fmt.Errorf("reading the gates of %s/%s: %w", app, channel, err)
	}
	if r.JSON200 == nil {
		return unexpected("gates", r.HTTPResponse, r.Body)
	}
	rep := r.JSON200
	if cf.json {
		if err := writeJSON(e.stdout, r.Body); err != nil {
			return err
		}
	} else {
		verdict := "may enter now"
		if !rep.Allowed {
			verdict = "may not enter now"
		}
		fmt.Fprintf(e.stdout, "%s %s %s\n", rep.Version, verdict, app+"/"+channel)
		if len(rep.Gates) == 0 {
			fmt.Fprintln(e.stdout, "  (the channel has no gates)")
		} else {
			fmt.Fprintln(e.stdout, gatesText(rep.Gates, "  "))
		}
	}
	if !rep.Allowed {
		return gatesRefused{}
	}
	return nil
}
