package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/slipway/slipway/events"
)

// SlackText is the sentence a Slack-format subscription posts for ev, such as
// "hello 1.4.2 promoted to prod by release-bot: hotfix for login".
func SlackText(ev events.Event) string {
	var d slackData
	_ = json.Unmarshal(ev.Data, &d) // a field that does not decode stays empty
	actor := ev.Actor
	if actor == "" {
		actor = "someone"
	}
	var s string
	switch ev.Type {
	case events.BuildQueued, events.BuildSucceeded, events.BuildFailed, events.BuildCanceled:
		s = buildText(ev.Type, ev.App, actor, d)
	case events.ReleaseCreated:
		s = fmt.Sprintf("%s %s released by %s from build %s", ev.App, d.Version, actor, d.BuildID)
	case events.ChannelPromoted, events.ChannelRolledBack, events.ChannelLocked, events.ChannelUnlocked, events.ChannelUnpinned:
		s = channelText(ev.Type, ev.App, actor, d)
	case events.ApprovalGranted:
		s = fmt.Sprintf("%s %s approved for %s by %s (%d approvals)", ev.App, d.Version, d.Channel, actor, d.Approvals)
	case events.ApprovalRevoked:
		s = fmt.Sprintf("%s %s: %s revoked the approval for %s (%d approvals)", ev.App, d.Version, actor, d.Channel, d.Approvals)
	default:
		s = fmt.Sprintf("%s: %s by %s", ev.App, ev.Type, actor)
	}
	return slackEscape(s)
}

// slackData is what SlackText reads of an event's data: the resource after the change.
type slackData struct {
	// builds
	ID        string   `json:"id"`
	Version   string   `json:"version"`
	Platforms []string `json:"platforms"`
	Error     *struct {
		Reason   string `json:"reason"`
		Platform string `json:"platform"`
	} `json:"error"`
	Timings struct {
		TotalMS *int64 `json:"total_ms"`
	} `json:"timings"`
	// releases
	BuildID string `json:"build_id"`
	// channels
	Channel string `json:"channel"`
	Event   struct {
		FromVersion string `json:"from_version"`
		ToVersion   string `json:"to_version"`
		Reason      string `json:"reason"`
		Pinned      bool   `json:"pinned"`
		Override    *struct {
			Gates []struct {
				Gate   string `json:"gate"`
				Status string `json:"status"`
			} `json:"gates"`
		} `json:"override"`
	} `json:"event"`
	// approvals
	Approvals int `json:"approvals"`
}

// buildText is the sentence of a build event of type typ.
func buildText(typ, app, actor string, d slackData) string {
	build := fmt.Sprintf("%s build %s", app, d.ID)
	if d.Version != "" {
		build += " (" + d.Version + ")"
	}
	switch typ {
	case events.BuildQueued:
		s := fmt.Sprintf("%s queued by %s", build, actor)
		if len(d.Platforms) > 0 {
			s += " for " + strings.Join(d.Platforms, ", ")
		}
		return s
	case events.BuildSucceeded:
		s := build + " succeeded"
		if d.Timings.TotalMS != nil {
			s += " in " + (time.Duration(*d.Timings.TotalMS) * time.Millisecond).Round(time.Second).String()
		}
		return s
	case events.BuildFailed:
		s := build + " failed"
		if d.Error != nil {
			s += ": " + strings.ReplaceAll(d.Error.Reason, "_", " ")
			if d.Error.Platform != "" {
				s += " on " + d.Error.Platform
			}
		}
		return s
	}
	return build + " canceled"
}

// channelText is the sentence of a channel event of type typ, ending with the reason
// given for the move.
func channelText(typ, app, actor string, d slackData) string {
	because := ""
	if r := strings.TrimSpace(d.Event.Reason); r != "" {
		because = ": " + r
	}
	switch typ {
	case events.ChannelPromoted:
		s := fmt.Sprintf("%s %s promoted to %s by %s%s", app, d.Event.ToVersion, d.Channel, actor, because)
		if o := d.Event.Override; o != nil {
			var gates []string
			for _, g := range o.Gates {
				gates = append(gates, g.Gate+" "+g.Status)
			}
			s += " — OVERRIDE of gates that did not pass: " + strings.Join(gates, ", ")
		}
		return s
	case events.ChannelRolledBack:
		s := fmt.Sprintf("%s %s rolled back", app, d.Channel)
		if d.Event.FromVersion != "" {
			s += " from " + d.Event.FromVersion
		}
		s += fmt.Sprintf(" to %s by %s%s", d.Event.ToVersion, actor, because)
		if d.Event.Pinned {
			s += " (pinned: auto_promote leaves it alone until unpinned)"
		}
		return s
	case events.ChannelUnpinned:
		return fmt.Sprintf("%s %s unpinned by %s%s", app, d.Channel, actor, because)
	case events.ChannelLocked:
		return fmt.Sprintf("%s %s locked by %s%s", app, d.Channel, actor, because)
	}
	return fmt.Sprintf("%s %s unlocked by %s%s", app, d.Channel, actor, because)
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// body returns what a subscription in format f sends for ev, and its content type.
func body(f Format, ev events.Event) ([]byte, error) {
	if f == FormatSlack {
		b, err := json.Marshal(map[string]string{"text": SlackText(ev)})
		return b, err
	}
	b, err := json.Marshal(ev)
	return b, err
}
