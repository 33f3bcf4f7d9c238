package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/chatops"
	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/openapi/openapitest"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

const (
	slackSecret     = "8f742231b10e8888abcd99yyyzzz85a5"
	mattermostToken = "xbxecxw3n7y6pke8dgh3kxab4c"
)

// succeededBuilds answers every build id as a succeeded build with an image: the chat
// tests move channels between releases, and need no compiler to make them.
type succeededBuilds struct{}

func (succeededBuilds) BuildRef(_ context.Context, _, id string) (release.BuildRef, error) {
	return release.BuildRef{ID: id, Status: "succeeded", Succeeded: true,
		ImageDigest: store.DigestBytes([]byte(id)).String()}, nil
}

// gatedChannels holds chat users' moves (those whose actor id is a chat user's) at the
// gate while it is shut: each one that arrives is announced on reached and waits for
// resume. The API's own moves pass.
type gatedChannels struct {
	api.ChannelStore
	shut    atomic.Bool
	reached chan struct{}
	resume  chan struct{}
}

func (g *gatedChannels) Move(ctx context.Context, app, name string, m release.Move) (release.MoveResult, error) {
	if g.shut.Load() && chatops.ValidUserID(m.ActorID) == "" {
		g.reached <- struct{}{}
		<-g.resume
	}
	return g.ChannelStore.Move(ctx, app, name, m)
}

// chatUsersLimited limits chat users alone, so that the tests' admin may set up what it
// needs at any rate.
type chatUsersLimited struct{ api.RateLimiter }

func (l chatUsersLimited) Allow(ctx context.Context, caller string) (bool, time.Duration, error) {
	if chatops.ValidUserID(caller) != "" {
		return true, 0, nil
	}
	return l.RateLimiter.Allow(ctx, caller)
}

// chatEnv is an API with authentication, chat commands and S3 blobs; hello has the
// releases 1.0.0 and 2.0.0, dev holds 1.0.0, Slack's signing secret and Mattermost's
// token are set, and posts to its response_url arrive on posted.
type chatEnv struct {
	*env
	gate        *gatedChannels
	responseURL string
	posted      chan chatops.Message
	logs        *logBuffer
	trigger     atomic.Int64
}

// newChatEnv makes a chatEnv whose users may send rate commands a second (burst at
// once), or any number when rate is 0.
func newChatEnv(t *testing.T, rate float64, burst int, opts ...api.Option) *chatEnv {
	t.Helper()
	rdb := storetest.Redis(t)
	var limiter api.RateLimiter
	if rate > 0 {
		limiter = chatUsersLimited{auth.NewRateLimiter(rdb, rate, burst)}
	}
	client, cfg := storetest.S3(t)
	blobs, err := store.NewS3(client, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	builds := builder.NewBuilds(rdb)
	intake, err := builder.NewIntake(builds, blobs, loadToolchain(t), builder.IntakeOptions{SpoolDir: filepath.Join(data, "spool")})
	if err != nil {
		t.Fatal(err)
	}
	posted := make(chan chatops.Message, 10)
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m chatops.Message
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil || r.URL.Path != "/commands/T1/1" {
			t.Errorf("response_url got %s: %v", r.URL.Path, err)
		}
		posted <- m
	}))
	t.Cleanup(hooks.Close)
	poster, err := chatops.NewPoster(hooks.Client(), []string{hooks.URL + "/commands/"})
	if err != nil {
		t.Fatal(err)
	}
	apps := release.NewApps(rdb, builder.AppChecker{Toolchain: loadToolchain(t)})
	gate := &gatedChannels{ChannelStore: release.NewChannels(rdb, apps), reached: make(chan struct{}), resume: make(chan struct{})}
	logs := &logBuffer{}
	srv, err := api.New(api.Deps{
		Apps:        apps,
		Releases:    release.NewReleases(rdb, blobs, succeededBuilds{}),
		Channels:    gate,
		Builds:      builds,
		Intake:      intake,
		Blobs:       blobs,
		Idempotency: api.NewIdempotency(rdb, 0),
		Tokens:      auth.NewTokens(rdb),
		Limiter:     limiter,
		Events:      events.NewLog(rdb),
		Chat:        chatops.NewStore(rdb),
		ChatPoster:  poster,
		Metrics:     prometheus.NewRegistry(),
		Log:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, append([]api.Option{api.WithAdminToken(adminToken), api.WithChatAnswerWait(time.Minute)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	e := &chatEnv{
		env:  &env{t: t, url: ts.URL, client: openapitest.New(t).Client(t), rdb: rdb, builds: builds, data: data},
		gate: gate, responseURL: hooks.URL + "/commands/T1/1", posted: posted, logs: logs,
	}
	admin := bearer(adminToken)
	for _, s := range []struct{ method, path, body string }{
		{"PUT", "/v1/apps/hello", `{"platforms":["linux/amd64"]}`},
		{"PUT", "/v1/apps/other", `{"platforms":["linux/amd64"]}`},
		{"POST", "/v1/apps/hello/releases", `{"build_id":"b1","version":"1.0.0"}`},
		{"POST", "/v1/apps/hello/releases", `{"build_id":"b2","version":"2.0.0"}`},
		{"POST", "/v1/apps/hello/channels/dev/promote", `{"version":"1.0.0","reason":"first"}`},
		{"PUT", "/v1/chatops/secrets/slack", `{"secret":"` + slackSecret + `"}`},
		{"PUT", "/v1/chatops/secrets/mattermost", `{"secret":"` + mattermostToken + `"}`},
	} {
		if r := e.do(s.method, s.path, admin, s.body); r.status/100 != 2 {
			t.Fatalf("%s %s = %d %s", s.method, s.path, r.status, r.body)
		}
	}
	return e
}

// mapUser maps a chat user as the admin.
func (e *chatEnv) mapUser(id, body string) {
	e.t.Helper()
	if r := e.do("PUT", "/v1/chatops/users/"+id, bearer(adminToken), body); r.status != http.StatusCreated && r.status != http.StatusOK {
		e.t.Fatalf("PUT chat user %s = %d %s", id, r.status, r.body)
	}
}

// slackForm is a slash command as Slack posts it, from user U with name name; each
// has a trigger id of its own.
func (e *chatEnv) slackForm(user, name, text string) string {
	return url.Values{
		"token": {"deprecated"}, "team_id": {"T1"}, "channel_id": {"C1"}, "user_id": {user}, "user_name": {name},
		"command": {"/slipway"}, "text": {text}, "response_url": {e.responseURL},
		"trigger_id": {strconv.FormatInt(e.trigger.Add(1), 10) + ".2.abc"},
	}.Encode()
}

// sendSlack posts body with the timestamp and signature given.
func (e *chatEnv) sendSlack(body, ts, sig string, extra ...string) response {
	e.t.Helper()
	h := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return e.do("POST", "/v1/chatops/slack", h, body)
}

// slack sends body signed now, as Slack signs it.
func (e *chatEnv) slack(body string, extra ...string) response {
	e.t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	return e.sendSlack(body, ts, chatops.SlackSignature(slackSecret, ts, []byte(body)), extra...)
}

func (r response) message(t *testing.T) chatops.Message {
	t.Helper()
	var m chatops.Message
	if r.status != http.StatusOK || json.Unmarshal(r.body, &m) != nil || m.Text == "" {
		t.Fatalf("chat answer = %d %s, want 200 and a message", r.status, r.body)
	}
	return m
}

// channel reads a channel of hello and its history.
func (e *chatEnv) channel(name string) (openapi.Channel, []openapi.ChannelEvent) {
	e.t.Helper()
	var ch openapi.Channel
	var hist openapi.ChannelHistory
	if r := e.do("GET", "/v1/apps/hello/channels/"+name, bearer(adminToken), ""); json.Unmarshal(r.body, &ch) != nil {
		e.t.Fatalf("GET channel %s = %d %s", name, r.status, r.body)
	}
	if r := e.do("GET", "/v1/apps/hello/channels/"+name+"/history", bearer(adminToken), ""); json.Unmarshal(r.body, &hist) != nil {
		e.t.Fatalf("GET history %s = %d %s", name, r.status, r.body)
	}
	return ch, hist.Items
}

// TestChatSlackCommands: signed as Slack signs them, a mapped user's commands read and
// move hello's channels. A move is in the channel for everyone, and history, the channel
// and the event stream name the chat user; reads and help are the user's alone; diff
// of a channel that holds nothing says so (api/diff_test.go has its answers); Slack's
// retry of a move gets the first answer and moves nothing twice.
func TestChatSlackCommands(t *testing.T) {
	e := newChatEnv(t, 1000, 1000)
	e.mapUser("slack:U123", `{"scopes":["promote:dev"],"apps":["hello"]}`)

	promote := e.slackForm("U123", "alice", "promote hello dev 2.0.0 ships the <new> login & more")
	m := e.slack(promote).message(t)
	if m.ResponseType != chatops.InChannel || !strings.Contains(m.Text, "hello 2.0.0 promoted to dev by slack:U123 (alice): ships the &lt;new&gt; login &amp; more (it held 1.0.0)") {
		t.Errorf("promote answered %+v, want it in the channel, escaped for Slack", m)
	}
	ch, hist := e.channel("dev")
	if deref(ch.Release) != "2.0.0" || deref(ch.UpdatedBy) != "slack:U123 (alice)" || deref(ch.UpdatedById) != "slack:U123" {
		t.Errorf("dev = %+v, want 2.0.0 updated by slack:U123 (alice)", ch)
	}
	if len(hist) != 2 || hist[0].Actor != "slack:U123 (alice)" || deref(hist[0].ActorId) != "slack:U123" ||
		hist[0].Reason != "ships the <new> login & more" || deref(hist[0].ToVersion) != "2.0.0" {
		t.Fatalf("dev history = %+v, want the promotion by slack:U123 (alice) on top", hist)
	}
	var evs openapi.EventList
	_ = json.Unmarshal(e.do("GET", "/v1/events?app=hello&type=channel.promoted", bearer(adminToken), "").body, &evs)
	if len(evs.Items) == 0 || evs.Items[0].Actor != "slack:U123 (alice)" || deref(evs.Items[0].ActorId) != "slack:U123" {
		t.Errorf("channel.promoted events = %+v, want the newest by slack:U123 (alice)", evs.Items)
	}

	// Slack sends the same command again (same trigger id), signed anew.
	again := e.slack(promote, "X-Slack-Retry-Num", "1", "X-Slack-Retry-Reason", "http_timeout").message(t)
	if again != m {
		t.Errorf("the retry answered %+v, want the first answer %+v", again, m)
	}
	if _, h := e.channel("dev"); len(h) != 2 {
		t.Errorf("after the retry dev has %d events, want 2: moved once", len(h))
	}

	for _, tc := range []struct {
		text string
		rt   chatops.ResponseType
		want []string
	}{
		{"status hello", chatops.Ephemeral, []string{"hello:", "• dev: 2.0.0 (by slack:U123 (alice),", "• prod: no release yet"}},
		{"releases hello", chatops.Ephemeral, []string{"hello's newest releases:", "• 2.0.0 (build b2,", "in dev", "• 1.0.0 (build b1"}},
		{"help", chatops.Ephemeral, []string{"`/slipway promote APP CH [--override] VERSION|--from CH REASON...`"}},
		{"", chatops.Ephemeral, []string{"`/slipway status APP`"}},
		{"diff hello dev prod", chatops.Ephemeral, []string{"diff hello dev failed: Conflict: channel prod of app hello holds no release yet"}},
		{"promote hello dev", chatops.Ephemeral, []string{"Usage: `/slipway promote APP CH [--override] VERSION|--from CH REASON...`"}},
		{"promote hello dev 9.9.9 nope", chatops.Ephemeral, []string{"promote hello dev failed: Not found:", "9.9.9"}},
		{"status nowhere", chatops.Ephemeral, []string{"is limited to the apps hello, not nowhere"}},
		{"lock hello dev freeze", chatops.InChannel, []string{"hello dev locked by slack:U123 (alice): freeze"}},
		{"lock hello dev freeze", chatops.Ephemeral, []string{"hello dev is locked already; nothing changed."}},
		{"promote hello dev 1.0.0 during the freeze", chatops.Ephemeral, []string{"failed: Channel locked"}},
		{"unlock hello dev thaw", chatops.InChannel, []string{"hello dev unlocked by slack:U123 (alice): thaw"}},
		{"rollback hello dev broken", chatops.InChannel, []string{"hello dev rolled back from 2.0.0 to 1.0.0 by slack:U123 (alice): broken"}},
		{"promote hello dev --from staging why", chatops.Ephemeral, []string{"staging holds no release yet"}},
	} {
		t.Run(tc.text, func(t *testing.T) {
			m := e.slack(e.slackForm("U123", "alice", tc.text)).message(t)
			if m.ResponseType != tc.rt {
				t.Errorf("%q answered %s, want %s: %s", tc.text, m.ResponseType, tc.rt, m.Text)
			}
			for _, w := range tc.want {
				if !strings.Contains(m.Text, w) {
					t.Errorf("%q answered %q, want %q in it", tc.text, m.Text, w)
				}
			}
		})
	}
	if ch, hist := e.channel("dev"); deref(ch.Release) != "1.0.0" || len(hist) != 5 {
		t.Errorf("dev = %s with %d events, want 1.0.0 after promote, lock, unlock, rollback", deref(ch.Release), len(hist))
	}
}

// TestChatSlackRefusals: a command that is not Slack's (another secret, a stale
// timestamp, a body replayed with another timestamp, no signature) is refused with 401
// before it is read; one from a user with no mapping, without the channel's scope, or
// limited to another app is refused in an ephemeral answer. Each leaves Redis exactly as
// it was: nothing moved, nothing recorded.
func TestChatSlackRefusals(t *testing.T) {
	e := newChatEnv(t, 1000, 1000)
	e.mapUser("slack:UREAD", `{"scopes":["read"]}`)
	e.mapUser("slack:USTAGE", `{"scopes":["promote:staging"]}`)
	e.mapUser("slack:UOTHER", `{"scopes":["promote"],"apps":["other"]}`)
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	old := strconv.FormatInt(now-int64(chatops.Tolerance/time.Second)-60, 10)
	for _, tc := range []struct {
		name       string
		send       func(body string) response
		user, want string
		unverified bool // refused with 401, not answered in chat
	}{
		{"another secret", func(b string) response {
			return e.sendSlack(b, ts, chatops.SlackSignature("another-signing-secret", ts, []byte(b)))
		}, "U123", "does not match", true},
		{"stale timestamp", func(b string) response {
			return e.sendSlack(b, old, chatops.SlackSignature(slackSecret, old, []byte(b)))
		}, "U123", "more than 5m0s from the server's clock", true},
		{"replayed with another timestamp", func(b string) response {
			return e.sendSlack(b, ts, chatops.SlackSignature(slackSecret, old, []byte(b)))
		}, "U123", "does not match", true},
		{"another body", func(b string) response {
			return e.sendSlack(strings.Replace(b, "dev", "prod", 1), ts, chatops.SlackSignature(slackSecret, ts, []byte(b)))
		}, "U123", "does not match", true},
		{"no signature", func(b string) response { return e.sendSlack(b, ts, "") }, "U123", "must be v0=", true},
		{"no timestamp", func(b string) response { return e.sendSlack(b, "", chatops.SlackSignature(slackSecret, "", []byte(b))) }, "U123", "X-Slack-Request-Timestamp", true},
		{"unmapped user", func(b string) response { return e.slack(b) }, "U123", "You are not a slipway user yet: ask an admin to map slack:U123", false},
		{"read only", func(b string) response { return e.slack(b) }, "UREAD", "slack:UREAD (mallory) may not promote hello dev: that needs the promote (or promote:dev) scope, and your mapping holds read.", false},
		{"another channel's scope", func(b string) response { return e.slack(b) }, "USTAGE", "that needs the promote (or promote:dev) scope, and your mapping holds promote:staging", false},
		{"limited to another app", func(b string) response { return e.slack(b) }, "UOTHER", "slack:UOTHER (mallory) is limited to the apps other, not hello.", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, e.rdb)
			r := tc.send(e.slackForm(tc.user, "mallory", "promote hello dev 2.0.0 sneaky"))
			if after := snapshot(t, e.rdb); after != before {
				t.Errorf("Redis changed: the refused command moved or recorded something")
			}
			if tc.unverified {
				if p := r.problem(t); r.status != http.StatusUnauthorized || p.Type != openapi.ProblemUnauthorized || !strings.Contains(deref(p.Detail), tc.want) {
					t.Errorf("refused with %d %+v, want 401 with %q", r.status, p, tc.want)
				}
				return
			}
			if m := r.message(t); m.ResponseType != chatops.Ephemeral || !strings.Contains(m.Text, tc.want) {
				t.Errorf("answered %+v, want ephemeral with %q", m, tc.want)
			}
		})
	}
	if ch, hist := e.channel("dev"); deref(ch.Release) != "1.0.0" || len(hist) != 1 {
		t.Errorf("dev = %s with %d events, want 1.0.0 as it was", deref(ch.Release), len(hist))
	}

	// Without a signing secret, nothing is verified, so nothing is run.
	if r := e.do("DELETE", "/v1/chatops/secrets/slack", bearer(adminToken), ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE slack secret = %d %s", r.status, r.body)
	}
	if r := e.slack(e.slackForm("UREAD", "bob", "status hello")); r.status != http.StatusUnauthorized ||
		!strings.Contains(deref(r.problem(t).Detail), "no Slack signing secret is set") {
		t.Errorf("without a secret: %d %s, want 401", r.status, r.body)
	}
	big := strings.Repeat("x", 70<<10)
	if r := e.slack(big); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 70 KiB command = %d %s, want 413", r.status, r.body)
	}
}

// TestChatStalePromote: a promote that races another move (here an API lock that lands
// between the command's read of dev and its move) is refused with the If-Match answer in
// chat words, and changes nothing.
func TestChatStalePromote(t *testing.T) {
	e := newChatEnv(t, 0, 0)
	e.mapUser("slack:U123", `{"scopes":["promote"]}`)
	e.gate.shut.Store(true)
	answer := make(chan response, 1)
	go func() { answer <- e.slack(e.slackForm("U123", "alice", "promote hello dev 2.0.0 racing")) }()
	<-e.gate.reached // the command read dev at generation 1 and is about to move it
	if r := e.do("POST", "/v1/apps/hello/channels/dev/lock", bearer(adminToken), `{"reason":"freeze"}`); r.status != http.StatusOK {
		t.Fatalf("lock = %d %s", r.status, r.body)
	}
	e.gate.shut.Store(false)
	close(e.gate.resume)
	m := (<-answer).message(t)
	want := "hello dev changed while your promote was on its way: it was moved by admin and holds 1.0.0 now (generation 2). " +
		"Nothing was changed; check `/slipway status hello`"
	if m.ResponseType != chatops.Ephemeral || !strings.Contains(m.Text, want) {
		t.Errorf("racing promote answered %+v, want %q", m, want)
	}
	if ch, hist := e.channel("dev"); deref(ch.Release) != "1.0.0" || !ch.Locked || len(hist) != 2 || hist[0].Actor != "admin" {
		t.Errorf("dev = %+v with %+v, want 1.0.0 locked by admin, the promote not applied", ch, hist)
	}
}

// TestChatSlowMoveAnswersLate: a move that takes longer than the chat waits is answered
// at once that it is under way, and its result is posted to the response_url when it is
// done; a retry meanwhile is told it is done once.
func TestChatSlowMoveAnswersLate(t *testing.T) {
	e := newChatEnv(t, 0, 0, api.WithChatAnswerWait(10*time.Millisecond))
	e.mapUser("slack:U123", `{"scopes":["promote:dev"]}`)
	e.gate.shut.Store(true)
	form := e.slackForm("U123", "alice", "promote hello dev 2.0.0 slow")
	answer := make(chan response, 1)
	go func() { answer <- e.slack(form) }()
	<-e.gate.reached // the move is held until the answer has come
	m := (<-answer).message(t)
	if m.ResponseType != chatops.Ephemeral || !strings.HasPrefix(m.Text, "Working on it: promote hello dev.") {
		t.Errorf("slow move answered %+v, want WorkingText", m)
	}
	if r := e.slack(form, "X-Slack-Retry-Num", "1"); !strings.Contains(r.message(t).Text, "it is done once") {
		t.Errorf("retry while the move runs answered %s, want RetriedText", r.body)
	}
	e.gate.shut.Store(false)
	close(e.gate.resume)
	select {
	case late := <-e.posted:
		if late.ResponseType != chatops.InChannel || !strings.Contains(late.Text, "hello 2.0.0 promoted to dev by slack:U123 (alice): slow") {
			t.Errorf("response_url got %+v, want the promotion in the channel", late)
		}
	case <-time.After(time.Minute):
		t.Fatal("nothing was posted to the response_url")
	}
	if ch, hist := e.channel("dev"); deref(ch.Release) != "2.0.0" || len(hist) != 2 || hist[0].Actor != "slack:U123 (alice)" {
		t.Errorf("dev = %+v with %+v, want 2.0.0 by slack:U123 (alice)", ch, hist)
	}
}

// TestChatMattermost: a Mattermost command with the configured token, in the
// Authorization header or the form, runs as the mapped Mattermost user; another token or
// none is refused with 401 and moves nothing.
func TestChatMattermost(t *testing.T) {
	e := newChatEnv(t, 0, 0)
	e.mapUser("mattermost:k3x9abc", `{"scopes":["promote"]}`)
	form := func(token, text string) string {
		return url.Values{"token": {token}, "team_id": {"t1"}, "user_id": {"k3x9abc"}, "user_name": {"carol"},
			"command": {"/deploy"}, "text": {text}, "response_url": {e.responseURL}}.Encode()
	}
	send := func(auth, body string) response {
		h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		if auth != "" {
			h["Authorization"] = auth
		}
		return e.do("POST", "/v1/chatops/mattermost", h, body)
	}
	if m := send("Token "+mattermostToken, form("", "status hello")).message(t); m.ResponseType != chatops.Ephemeral || !strings.Contains(m.Text, "• dev: 1.0.0") {
		t.Errorf("status answered %+v", m)
	}
	m := send("", form(mattermostToken, "promote hello dev 2.0.0 ping @channel")).message(t)
	if m.ResponseType != chatops.InChannel || !strings.Contains(m.Text, "by mattermost:k3x9abc (carol): ping @\u2060channel") {
		t.Errorf("promote answered %+v, want it in the channel without a mention", m)
	}
	if ch, hist := e.channel("dev"); deref(ch.Release) != "2.0.0" || hist[0].Actor != "mattermost:k3x9abc (carol)" || deref(hist[0].ActorId) != "mattermost:k3x9abc" {
		t.Errorf("dev = %+v, %+v, want 2.0.0 by mattermost:k3x9abc (carol)", ch, hist[0])
	}
	for _, tc := range []struct{ name, auth, token string }{
		{"another token in the header", "Token " + mattermostToken + "x", ""},
		{"another token in the form", "", mattermostToken + "x"},
		{"no token", "", ""},
	} {
		before := snapshot(t, e.rdb)
		r := send(tc.auth, form(tc.token, "rollback hello dev nope"))
		if r.status != http.StatusUnauthorized || r.problem(t).Type != openapi.ProblemUnauthorized {
			t.Errorf("%s: %d %s, want 401", tc.name, r.status, r.body)
		}
		if snapshot(t, e.rdb) != before {
			t.Errorf("%s: Redis changed", tc.name)
		}
	}
}

// TestChatRateLimit: a chat user over the rate is told when to retry, and nothing runs.
func TestChatRateLimit(t *testing.T) {
	e := newChatEnv(t, 0.001, 1)
	e.mapUser("slack:U123", `{"scopes":["promote"]}`)
	if m := e.slack(e.slackForm("U123", "alice", "lock hello dev one")).message(t); m.ResponseType != chatops.InChannel {
		t.Fatalf("first command answered %+v", m)
	}
	m := e.slack(e.slackForm("U123", "alice", "unlock hello dev two")).message(t)
	if m.ResponseType != chatops.Ephemeral || !strings.Contains(m.Text, "slack:U123 (alice) sends commands faster than slipway takes them; retry in") {
		t.Errorf("second command answered %+v, want RateText", m)
	}
	if ch, _ := e.channel("dev"); !ch.Locked {
		t.Errorf("dev unlocked by a command over the rate")
	}
}

// TestChatAdminRoutes: the chat configuration needs the admin scope; the secrets are
// write-only (no answer, list or log shows them); mappings are checked as tokens are,
// and never wider than their maker; every refusal is a problem.
func TestChatAdminRoutes(t *testing.T) {
	e := newChatEnv(t, 0, 0)
	admin := bearer(adminToken)
	reader := bearer(e.token("reader", []string{"read"}, nil))
	limited := bearer(e.token("hello-admin", []string{"admin"}, []string{"hello"}))

	r := e.do("GET", "/v1/chatops", admin, "")
	var st openapi.Chatops
	if err := json.Unmarshal(r.body, &st); r.status != http.StatusOK || err != nil || len(st.Platforms) != 2 ||
		!st.Platforms[0].SecretSet || st.Platforms[0].Platform != "slack" || deref(st.Platforms[0].SetBy) != "admin" ||
		st.Platforms[1].Url != "/v1/chatops/mattermost" {
		t.Errorf("GET /v1/chatops = %d %s", r.status, r.body)
	}
	r = e.do("PUT", "/v1/chatops/secrets/slack", admin, `{"secret":"a-new-signing-secret-0042"}`)
	if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("PUT secret = %d %s", r.status, r.body)
	}
	e.mapUser("slack:U123", `{"scopes":["promote:prod","read"],"apps":["hello"]}`)
	e.mapUser("slack:UALL", `{"scopes":["read"]}`)
	r = e.do("GET", "/v1/chatops/users/slack:U123", admin, "")
	var u openapi.ChatUser
	if err := json.Unmarshal(r.body, &u); err != nil || r.status != http.StatusOK || u.Id != "slack:U123" ||
		strings.Join(u.Scopes, ",") != "promote:prod,read" || strings.Join(u.Apps, ",") != "hello" || u.CreatedBy != "admin" {
		t.Errorf("GET chat user = %d %s", r.status, r.body)
	}
	// A limited admin sees and maps only users limited to its apps.
	var list openapi.ChatUserList
	if r := e.do("GET", "/v1/chatops/users", limited, ""); json.Unmarshal(r.body, &list) != nil || len(list.Items) != 1 || list.Items[0].Id != "slack:U123" {
		t.Errorf("GET users as hello-admin = %d %s, want slack:U123 alone", r.status, r.body)
	}
	if r := e.do("PUT", "/v1/chatops/users/slack:U9", limited, `{"scopes":["promote"],"apps":["hello"]}`); r.status != http.StatusCreated {
		t.Errorf("PUT user as hello-admin = %d %s", r.status, r.body)
	}

	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
		body               string
		status             int
		kind               openapi.ProblemType
	}{
		{"no token", "GET", "/v1/chatops", nil, "", 401, openapi.ProblemUnauthorized},
		{"read token", "GET", "/v1/chatops", reader, "", 403, openapi.ProblemForbidden},
		{"read token sets a secret", "PUT", "/v1/chatops/secrets/slack", reader, `{"secret":"0123456789abcdef"}`, 403, openapi.ProblemForbidden},
		{"limited admin sets a secret", "PUT", "/v1/chatops/secrets/slack", limited, `{"secret":"0123456789abcdef"}`, 403, openapi.ProblemForbidden},
		{"limited admin removes a secret", "DELETE", "/v1/chatops/secrets/mattermost", limited, "", 403, openapi.ProblemForbidden},
		{"unknown platform", "PUT", "/v1/chatops/secrets/irc", admin, `{"secret":"0123456789abcdef"}`, 404, openapi.ProblemNotFound},
		{"short secret", "PUT", "/v1/chatops/secrets/slack", admin, `{"secret":"short"}`, 422, openapi.ProblemValidationFailed},
		{"secret with a space", "PUT", "/v1/chatops/secrets/slack", admin, `{"secret":"has a space inside"}`, 422, openapi.ProblemValidationFailed},
		{"no secret", "PUT", "/v1/chatops/secrets/slack", admin, `{}`, 422, openapi.ProblemValidationFailed},
		{"unknown field", "PUT", "/v1/chatops/secrets/slack", admin, `{"secret":"0123456789abcdef","x":1}`, 422, openapi.ProblemValidationFailed},
		{"not JSON", "PUT", "/v1/chatops/secrets/slack", admin, `secret=0123456789abcdef`, 400, openapi.ProblemInvalidJSON},
		{"bad scope", "PUT", "/v1/chatops/users/slack:U1", admin, `{"scopes":["deploy"]}`, 422, openapi.ProblemValidationFailed},
		{"no scopes", "PUT", "/v1/chatops/users/slack:U1", admin, `{"scopes":[]}`, 422, openapi.ProblemValidationFailed},
		{"bad app", "PUT", "/v1/chatops/users/slack:U1", admin, `{"scopes":["read"],"apps":["Bad_App"]}`, 422, openapi.ProblemValidationFailed},
		{"not a chat user", "PUT", "/v1/chatops/users/irc:bob", admin, `{"scopes":["read"]}`, 404, openapi.ProblemNotFound},
		{"wider than the maker", "PUT", "/v1/chatops/users/slack:U1", limited, `{"scopes":["promote"]}`, 403, openapi.ProblemForbidden},
		{"another app than the maker's", "PUT", "/v1/chatops/users/slack:U1", limited, `{"scopes":["read"],"apps":["other"]}`, 403, openapi.ProblemForbidden},
		{"replacing a wider mapping", "PUT", "/v1/chatops/users/slack:UALL", limited, `{"scopes":["read"],"apps":["hello"]}`, 404, openapi.ProblemNotFound},
		{"reading a wider mapping", "GET", "/v1/chatops/users/slack:UALL", limited, "", 404, openapi.ProblemNotFound},
		{"removing a wider mapping", "DELETE", "/v1/chatops/users/slack:UALL", limited, "", 404, openapi.ProblemNotFound},
		{"unknown user", "GET", "/v1/chatops/users/slack:UNONE", admin, "", 404, openapi.ProblemNotFound},
		{"removing an unknown user", "DELETE", "/v1/chatops/users/slack:UNONE", admin, "", 404, openapi.ProblemNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.header, tc.body)
			if r.status != tc.status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") || r.problem(t).Type != tc.kind {
				t.Errorf("%s %s = %d %s, want %d %s", tc.method, tc.path, r.status, r.body, tc.status, tc.kind)
			}
		})
	}

	if r := e.do("DELETE", "/v1/chatops/users/slack:U123", admin, ""); r.status != http.StatusNoContent {
		t.Errorf("DELETE chat user = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/chatops/users/slack:U123", admin, ""); r.status != http.StatusNotFound {
		t.Errorf("GET after DELETE = %d, want 404", r.status)
	}

	// No answer and no log line holds a secret.
	var all strings.Builder
	for _, p := range []string{"/v1/chatops", "/v1/chatops/users"} {
		all.Write(e.do("GET", p, admin, "").body)
	}
	all.WriteString(e.logs.String())
	for _, secret := range []string{slackSecret, mattermostToken, "a-new-signing-secret-0042", "0123456789abcdef", chatops.HashToken(mattermostToken)} {
		if strings.Contains(all.String(), secret) {
			t.Errorf("a response or the log holds the secret %q", secret)
		}
	}
	if !strings.Contains(e.logs.String(), `"path":"/v1/chatops/secrets/slack"`) {
		t.Errorf("the log has no request to set the secret: %.500s", e.logs.String())
	}
}

// TestChatApproveAndOverride approves a release for a gated channel from chat, and
// overrides the gates of another, each with the scope it needs; the override is said
// loudly in the answer.
func TestChatApproveAndOverride(t *testing.T) {
	e := newChatEnv(t, 1000, 1000)
	if r := e.do("PUT", "/v1/apps/hello", bearer(adminToken), `{"platforms":["linux/amd64"],"channels":[{"name":"dev"},{"name":"prod","from":"dev","gates":{"approvals":1}}]}`); r.status != http.StatusOK {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	e.mapUser("slack:U9", `{"scopes":["approve:prod"],"apps":["hello"]}`)
	e.mapUser("slack:U8", `{"scopes":["promote"],"apps":["hello"]}`)
	e.mapUser("slack:U7", `{"scopes":["promote","override:prod"],"apps":["hello"]}`)
	for _, tc := range []struct {
		user, text string
		rt         chatops.ResponseType
		want       string
	}{
		{"U8", "approve hello prod 1.0.0", chatops.Ephemeral, "needs the approve (or approve:prod) scope"},
		{"U8", "promote hello prod 1.0.0 ship", chatops.Ephemeral, "approvals failed: 0 of 1 approvals"},
		{"U9", "approve hello prod 1.0.0 canary is clean", chatops.InChannel, "hello 1.0.0 approved for prod by slack:U9 (carol): canary is clean"},
		{"U9", "approve hello prod 1.0.0", chatops.Ephemeral, "You approved hello 1.0.0 for prod already"},
		{"U8", "promote hello prod 1.0.0 ship", chatops.InChannel, "hello 1.0.0 promoted to prod by slack:U8 (carol)"},
		{"U8", "promote hello dev 2.0.0 next", chatops.InChannel, "promoted to dev"},
		{"U8", "promote hello prod --override 2.0.0 hotfix", chatops.Ephemeral, "needs the override (or override:prod) scope"},
		{"U7", "promote hello prod --override 2.0.0 hotfix", chatops.InChannel, "OVERRIDE of the gates that did not pass: approvals failed"},
	} {
		m := e.slack(e.slackForm(tc.user, "carol", tc.text)).message(t)
		if m.ResponseType != tc.rt || !strings.Contains(m.Text, tc.want) {
			t.Errorf("%s %q answered %s %q, want %s with %q", tc.user, tc.text, m.ResponseType, m.Text, tc.rt, tc.want)
		}
	}
	ch, hist := e.channel("prod")
	if deref(ch.Release) != "2.0.0" || len(hist) != 3 || hist[0].Override == nil || hist[2].Action != "approve" || deref(hist[2].ActorId) != "slack:U9" {
		t.Errorf("prod = %s, history %+v", deref(ch.Release), hist)
	}
}
