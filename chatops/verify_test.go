package chatops

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestVerifySlack(t *testing.T) {
	const secret = "8f742231b10e8888abcd99yyyzzz85a5"
	now := time.Unix(1767225600, 0)
	body := []byte("token=x&team_id=T1&user_id=U123&command=%2Fslipway&text=status+hello")
	ts := strconv.FormatInt(now.Unix(), 10)
	old := strconv.FormatInt(now.Add(-Tolerance-time.Second).Unix(), 10)
	ahead := strconv.FormatInt(now.Add(Tolerance+time.Second).Unix(), 10)
	for _, tc := range []struct {
		name, secret, ts, sig string
		body                  []byte
		want                  error
	}{
		{"valid", secret, ts, SlackSignature(secret, ts, body), body, nil},
		{"valid at the tolerance", secret, strconv.FormatInt(now.Add(-Tolerance).Unix(), 10),
			SlackSignature(secret, strconv.FormatInt(now.Add(-Tolerance).Unix(), 10), body), body, nil},
		{"no secret set", "", ts, SlackSignature(secret, ts, body), body, ErrNotConfigured},
		{"another secret", secret, ts, SlackSignature("another-secret-entirely", ts, body), body, ErrUnverified},
		{"another body", secret, ts, SlackSignature(secret, ts, body), []byte("text=promote"), ErrUnverified},
		{"signed at another time", secret, strconv.FormatInt(now.Unix()-1, 10), SlackSignature(secret, ts, body), body, ErrUnverified},
		{"stale", secret, old, SlackSignature(secret, old, body), body, ErrExpired},
		{"from the future", secret, ahead, SlackSignature(secret, ahead, body), body, ErrExpired},
		{"no timestamp", secret, "", SlackSignature(secret, "", body), body, ErrUnverified},
		{"no signature", secret, ts, "", body, ErrUnverified},
		{"another scheme", secret, ts, "v1=" + SlackSignature(secret, ts, body)[3:], body, ErrUnverified},
		{"short signature", secret, ts, SlackSignature(secret, ts, body)[:40], body, ErrUnverified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifySlack(tc.secret, tc.ts, tc.sig, tc.body, now)
			var ae *AuthError
			switch {
			case tc.want == nil && err != nil:
				t.Errorf("VerifySlack = %v, want nil", err)
			case tc.want != nil && (!errors.Is(err, tc.want) || !errors.As(err, &ae) || ae.Platform != Slack):
				t.Errorf("VerifySlack = %v, want a Slack *AuthError wrapping %v", err, tc.want)
			}
		})
	}
}

// TestSlackSignatureExample checks SlackSignature against the example of Slack's
// documentation ("Verifying requests from Slack").
func TestSlackSignatureExample(t *testing.T) {
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	got := SlackSignature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", []byte(body))
	if want := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"; got != want {
		t.Errorf("SlackSignature(Slack's example) = %s, want %s", got, want)
	}
}

func TestVerifyMattermost(t *testing.T) {
	h := HashToken("xbxecxw3n7y6pke8dgh3kxab4c")
	for _, tc := range []struct {
		name, hash, token string
		want              error
	}{
		{"valid", h, "xbxecxw3n7y6pke8dgh3kxab4c", nil},
		{"no token set", "", "xbxecxw3n7y6pke8dgh3kxab4c", ErrNotConfigured},
		{"no token sent", h, "", ErrUnverified},
		{"another token", h, "xbxecxw3n7y6pke8dgh3kxab4d", ErrUnverified},
	} {
		if err := VerifyMattermost(tc.hash, tc.token); (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: VerifyMattermost = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	r, err := ParseRequest(Slack, []byte("user_id=U123&user_name=alice%3Cscript%3E&text=promote+a+b+1.0.0+x+%26amp%3B+y&trigger_id=t1&team_id=T1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.User() != "slack:U123" || r.Actor() != "slack:U123 (alicescript)" || r.Text != "promote a b 1.0.0 x & y" || r.Command != "/slipway" {
		t.Errorf("ParseRequest = %+v (user %s, actor %s)", r, r.User(), r.Actor())
	}
	if r.RetryKey() != "chatops:slack:trigger:T1:t1" {
		t.Errorf("RetryKey() = %q", r.RetryKey())
	}
	if r, _ := ParseRequest(Mattermost, []byte("user_id=abc&text=x")); r.Actor() != "mattermost:abc" || r.RetryKey() != "" {
		t.Errorf("without a name and a trigger: Actor() = %q, RetryKey() = %q", r.Actor(), r.RetryKey())
	}
	for _, body := range []string{"text=status", "user_id=U%3A1", "user_id=%zz"} {
		if _, err := ParseRequest(Slack, []byte(body)); !errors.Is(err, ErrRequest) {
			t.Errorf("ParseRequest(%q) = %v, want ErrRequest", body, err)
		}
	}
}

func TestMessageEscapes(t *testing.T) {
	if got := Slack.Message(Ephemeral, "a <!channel> & b").Text; got != "a &lt;!channel&gt; &amp; b" {
		t.Errorf("Slack.Message = %q", got)
	}
	if got := Mattermost.Message(InChannel, "ping @channel"); got.Text != "ping @\u2060channel" || got.ResponseType != InChannel {
		t.Errorf("Mattermost.Message = %+v", got)
	}
}

func TestPoster(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Path
	}))
	defer srv.Close()
	p, err := NewPoster(srv.Client(), []string{"https://hooks.slack.com/", srv.URL + "/commands/"})
	if err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]bool{
		"https://hooks.slack.com/commands/T1/2/x":      true,
		"https://HOOKS.slack.com/commands/T1/2/x":      true,
		"http://hooks.slack.com/commands/T1/2/x":       false,
		"https://hooks.slack.com.evil.example/x":       false,
		"https://user@hooks.slack.com/commands/T1/2/x": false,
		"https://hooks.slack.com:444/commands":         false,
		srv.URL + "/commands/1":                        true,
		srv.URL + "/other/1":                           false,
		"not a url\x00":                                false,
	} {
		if p.Allowed(url) != want {
			t.Errorf("Allowed(%q) = %v, want %v", url, !want, want)
		}
	}
	if err := p.Post(t.Context(), srv.URL+"/commands/1", Message{ResponseType: InChannel, Text: "done"}); err != nil {
		t.Fatal(err)
	}
	if path := <-got; path != "/commands/1" {
		t.Errorf("posted to %s", path)
	}
	if err := p.Post(t.Context(), srv.URL+"/other", Message{}); !errors.Is(err, ErrRefusedURL) {
		t.Errorf("Post to a URL not allowed = %v, want ErrRefusedURL", err)
	}
	for _, bad := range []string{"hooks.slack.com", "https://hooks.slack.com", "ftp://x/", "https://u@x/"} {
		if _, err := NewPoster(nil, []string{bad}); err == nil {
			t.Errorf("NewPoster(%q) = nil error, want it refused", bad)
		}
	}
}
