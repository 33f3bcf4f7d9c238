package chatops

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Platform is a chat service slipway takes commands from.
type Platform string

// The chat platforms.
const (
	Slack      Platform = "slack"
	Mattermost Platform = "mattermost"
)

// Platforms are the chat platforms, in the order they are listed.
var Platforms = []Platform{Slack, Mattermost}

// Valid reports whether p is a platform slipway knows.
func (p Platform) Valid() bool { return p == Slack || p == Mattermost }

// Request is a slash command as the chat service posts it (form-encoded); fields it does
// not name are ignored.
type Request struct {
	Platform Platform
	// Token is Mattermost's command token (the token field). Slack's verification token,
	// deprecated for signatures, is ignored.
	Token       string
	TeamID      string
	ChannelID   string
	UserID      string // as the chat service names the user: U0123ABCD
	UserName    string
	Command     string // the slash command as typed: /slipway
	Text        string // what follows the command
	ResponseURL string
	TriggerID   string
}

// chatUserID is what follows "<platform>:" in a chat user's id: Slack's (U0123ABCD,
// W0123ABCD) and Mattermost's (26 lowercase letters and digits) ids both fit.
var chatUserID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ValidUserID reports why id is not a chat user's id ("<platform>:<user id>"), or "".
func ValidUserID(id string) string {
	p, u, ok := strings.Cut(id, ":")
	if !ok || !Platform(p).Valid() || !chatUserID.MatchString(u) {
		return fmt.Sprintf("%q is not a chat user: write slack:<user id> or mattermost:<user id>, the id being 1 to 64 of A-Z, a-z, 0-9, '.', '_' and '-'", id)
	}
	return ""
}

// ParseRequest reads a slash command's form body.
func ParseRequest(p Platform, body []byte) (Request, error) {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return Request{}, fmt.Errorf("%w: the body is not form-encoded", ErrRequest)
	}
	r := Request{
		Platform: p, Token: v.Get("token"), TeamID: v.Get("team_id"), ChannelID: v.Get("channel_id"),
		UserID: v.Get("user_id"), UserName: v.Get("user_name"), Command: v.Get("command"), Text: v.Get("text"),
		ResponseURL: v.Get("response_url"), TriggerID: v.Get("trigger_id"),
	}
	if !chatUserID.MatchString(r.UserID) {
		return Request{}, fmt.Errorf("%w: user_id %q is not a chat user id", ErrRequest, r.UserID)
	}
	if p == Slack {
		// Slack writes &, < and > in the text as HTML entities.
		r.Text = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(r.Text)
	}
	if r.Command == "" {
		r.Command = "/slipway"
	}
	return r, nil
}

// User is the chat user's id in slipway, the id of their mapping and the actor_id of
// what they do: slack:U0123ABCD.
func (r Request) User() string { return string(r.Platform) + ":" + r.UserID }

// Actor is the name history records for what the chat user does: "slack:U0123ABCD
// (alice)", the user name as the chat service sent it (letters, digits, '.', '_' and '-'
// only), or the id alone without one. No token can take such a name.
func (r Request) Actor() string {
	name := strings.Map(func(c rune) rune {
		if c < 128 && (c == '.' || c == '_' || c == '-' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
			return c
		}
		return -1
	}, r.UserName)
	if name == "" {
		return r.User()
	}
	return r.User() + " (" + name[:min(len(name), 64)] + ")"
}

// RetryKey identifies the command across the chat service's retries of it: the trigger
// id it carries (one per invocation), or its response_url, or "" when it has neither.
func (r Request) RetryKey() string {
	switch {
	case r.TriggerID != "":
		return "chatops:" + string(r.Platform) + ":trigger:" + r.TeamID + ":" + r.TriggerID
	case r.ResponseURL != "":
		return "chatops:" + string(r.Platform) + ":response:" + r.ResponseURL
	}
	return ""
}
