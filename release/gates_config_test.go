package release_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipway/slipway/release"
)

func TestResolveGates(t *testing.T) {
	ok := release.Gates{
		Soak: "24h", Approvals: 1,
		Checks:  []release.Check{{Name: "smoke", URL: "https://ci.example/smoke", Timeout: "10s", Deadline: "1m"}},
		Require: &release.Require{Signed: true, Vulns: "no-critical"},
		Windows: []release.Window{
			{Kind: "deny", RRule: "FREQ=WEEKLY;BYDAY=FR;BYHOUR=12", Duration: "60h", TimeZone: "Europe/Berlin"},
			{Kind: "allow", Cron: "0 9 * * 1-5", Duration: "8h"},
			{Kind: "deny", RRule: "RRULE:FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24", Duration: "72h"},
		},
	}
	for _, tc := range []struct {
		name  string
		gates release.Gates
		first bool // on the first channel, which has no from
		auto  bool
		want  string // "field: words" of the first problem; "" for none
	}{
		{name: "all valid", gates: ok},
		{name: "soak not a duration", gates: release.Gates{Soak: "a day"}, want: "channels[1].gates.soak: \"a day\" is not a duration"},
		{name: "soak zero", gates: release.Gates{Soak: "0s"}, want: "channels[1].gates.soak: must be longer than 0"},
		{name: "soak too long", gates: release.Gates{Soak: "2400h"}, want: "channels[1].gates.soak: at most 90 days"},
		{name: "soak without from", gates: release.Gates{Soak: "1h"}, first: true, want: "channels[0].gates.soak: channel \"dev\" has no from"},
		{name: "auto_promote without from", first: true, auto: true, want: "channels[0].auto_promote: channel \"dev\" has no from"},
		{name: "approvals", gates: release.Gates{Approvals: 11}, want: "channels[1].gates.approvals: must be from 0 to 10"},
		{name: "check name", gates: release.Gates{Checks: []release.Check{{Name: "Smoke", URL: "https://x.example"}}}, want: "channels[1].gates.checks[0].name:"},
		{name: "check names repeat", gates: release.Gates{Checks: []release.Check{{Name: "a", URL: "https://x.example"}, {Name: "a", URL: "https://x.example"}}}, want: "channels[1].gates.checks[1].name: \"a\" repeats checks[0]"},
		{name: "check url", gates: release.Gates{Checks: []release.Check{{Name: "a", URL: "ftp://x.example"}}}, want: "channels[1].gates.checks[0].url:"},
		{name: "check url relative", gates: release.Gates{Checks: []release.Check{{Name: "a", URL: "/smoke"}}}, want: "channels[1].gates.checks[0].url:"},
		{name: "check timeout", gates: release.Gates{Checks: []release.Check{{Name: "a", URL: "http://x.example", Timeout: "soon"}}}, want: "channels[1].gates.checks[0].timeout:"},
		{name: "vulns", gates: release.Gates{Require: &release.Require{Vulns: "few"}}, want: "channels[1].gates.require.vulns: \"few\" is not one of none, no-critical"},
		{name: "window kind", gates: release.Gates{Windows: []release.Window{{Kind: "freeze", Cron: "0 0 * * *", Duration: "1h"}}}, want: "channels[1].gates.windows[0].kind:"},
		{name: "window both rules", gates: release.Gates{Windows: []release.Window{{Kind: "deny", Cron: "0 0 * * *", RRule: "FREQ=DAILY", Duration: "1h"}}}, want: "channels[1].gates.windows[0].rrule: give exactly one"},
		{name: "window no rule", gates: release.Gates{Windows: []release.Window{{Kind: "deny", Duration: "1h"}}}, want: "channels[1].gates.windows[0].rrule: give exactly one"},
		{name: "window bad rrule", gates: release.Gates{Windows: []release.Window{{Kind: "deny", RRule: "FREQ=WEEKLY;BYDAY=XX", Duration: "1h"}}}, want: "channels[1].gates.windows[0].rrule:"},
		{name: "window unsupported rrule part", gates: release.Gates{Windows: []release.Window{{Kind: "deny", RRule: "FREQ=DAILY;COUNT=3", Duration: "1h"}}}, want: "COUNT is not supported"},
		{name: "window bad cron", gates: release.Gates{Windows: []release.Window{{Kind: "deny", Cron: "0 25 * * *", Duration: "1h"}}}, want: "channels[1].gates.windows[0].cron:"},
		{name: "window duration", gates: release.Gates{Windows: []release.Window{{Kind: "deny", Cron: "0 0 * * *", Duration: "-1h"}}}, want: "channels[1].gates.windows[0].duration: must be longer than 0"},
		{name: "window zone", gates: release.Gates{Windows: []release.Window{{Kind: "deny", Cron: "0 0 * * *", Duration: "1h", TimeZone: "Mars/Olympus"}}}, want: "channels[1].gates.windows[0].time_zone: \"Mars/Olympus\" is not a known IANA time zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.gates
			chs := []release.Channel{{Name: "dev"}, {Name: "prod", From: "dev", Gates: &g, AutoPromote: tc.auto}}
			if tc.first {
				chs = []release.Channel{{Name: "dev", Gates: &g, AutoPromote: tc.auto}, {Name: "prod", From: "dev"}}
			}
			_, err := release.AppSpec{Channels: &chs}.Resolve(fakeChecker{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Resolve = %v, want no error", err)
				}
				return
			}
			var verr *release.ValidationError
			if !errors.As(err, &verr) || len(verr.Fields) == 0 {
				t.Fatalf("Resolve = %v, want a validation error", err)
			}
			got := verr.Fields[0].Field + ": " + verr.Fields[0].Detail
			if !strings.Contains(got, tc.want) {
				t.Errorf("Resolve = %q, want %q", got, tc.want)
			}
		})
	}
}
