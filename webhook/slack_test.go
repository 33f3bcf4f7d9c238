package webhook

import (
	"encoding/json"
	"testing"

	"github.com/slipway/slipway/events"
)

func TestSlackText(t *testing.T) {
	tests := []struct {
		typ, actor string
		data       string
		want       string
	}{
		{events.ChannelPromoted, "release-bot", `{"channel":"prod","release":"1.4.2","event":{"action":"promote","from_version":"1.4.1","to_version":"1.4.2","reason":"hotfix for login"}}`,
			"hello 1.4.2 promoted to prod by release-bot: hotfix for login"},
		{events.ChannelPromoted, "ci", `{"channel":"dev","event":{"to_version":"1.0.0","reason":""}}`,
			"hello 1.0.0 promoted to dev by ci"},
		{events.ChannelRolledBack, "alice", `{"channel":"prod","event":{"from_version":"1.4.2","to_version":"1.4.1","reason":"errors up"}}`,
			"hello prod rolled back from 1.4.2 to 1.4.1 by alice: errors up"},
		{events.ChannelLocked, "alice", `{"channel":"prod","event":{"reason":"freeze <until> Monday & after"}}`,
			"hello prod locked by alice: freeze &lt;until&gt; Monday &amp; after"},
		{events.ChannelUnlocked, "alice", `{"channel":"prod","event":{}}`, "hello prod unlocked by alice"},
		{events.ChannelPromoted, "boss", `{"channel":"prod","event":{"to_version":"1.4.3","reason":"incident","override":{"gates":[{"gate":"soak","status":"pending","detail":"x"},{"gate":"approvals","status":"failed","detail":"y"}]}}}`,
			"hello 1.4.3 promoted to prod by boss: incident — OVERRIDE of gates that did not pass: soak pending, approvals failed"},
		{events.ChannelRolledBack, "alice", `{"channel":"prod","event":{"from_version":"1.4.2","to_version":"1.4.1","reason":"bad","pinned":true}}`,
			"hello prod rolled back from 1.4.2 to 1.4.1 by alice: bad (pinned: auto_promote leaves it alone until unpinned)"},
		{events.ChannelUnpinned, "alice", `{"channel":"prod","event":{"reason":"fixed"}}`, "hello prod unpinned by alice: fixed"},
		{events.ApprovalGranted, "alice", `{"channel":"prod","version":"1.4.2","approvals":1}`, "hello 1.4.2 approved for prod by alice (1 approvals)"},
		{events.ReleaseCreated, "release-bot", `{"version":"1.4.2","build_id":"01JD3Y7Q9V6K2M8N4P5R7S9T1W","sequence":7}`,
			"hello 1.4.2 released by release-bot from build 01JD3Y7Q9V6K2M8N4P5R7S9T1W"},
		{events.BuildQueued, "ci", `{"id":"01JD3Y7Q9V6K2M8N4P5R7S9T1W","version":"1.4.2","platforms":["linux/amd64","linux/arm64"]}`,
			"hello build 01JD3Y7Q9V6K2M8N4P5R7S9T1W (1.4.2) queued by ci for linux/amd64, linux/arm64"},
		{events.BuildSucceeded, "ci", `{"id":"B1","version":"1.4.2","timings":{"total_ms":42400}}`,
			"hello build B1 (1.4.2) succeeded in 42s"},
		{events.BuildFailed, "ci", `{"id":"B1","version":"1.4.2","error":{"reason":"compile_failed","platform":"linux/arm64","detail":"..."}}`,
			"hello build B1 (1.4.2) failed: compile failed on linux/arm64"},
		{events.BuildCanceled, "ci", `{"id":"B1"}`, "hello build B1 canceled"},
		{"future.thing", "x", `{}`, "hello: future.thing by x"},
		{events.ChannelLocked, "", `not json`, "hello  locked by someone"},
	}
	for _, tc := range tests {
		t.Run(tc.typ+" "+tc.want, func(t *testing.T) {
			ev := events.Event{Type: tc.typ, App: "hello", Actor: tc.actor, Data: json.RawMessage(tc.data)}
			if got := SlackText(ev); got != tc.want {
				t.Errorf("SlackText(%s) = %q, want %q", tc.data, got, tc.want)
			}
		})
	}
}
