package chatops

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Tolerance is how far a Slack request's timestamp may be from the server's clock.
const Tolerance = 5 * time.Minute

// SlackSignature is the X-Slack-Signature Slack sends with body at timestamp ts (the
// X-Slack-Request-Timestamp, unix seconds as sent): "v0=" and the hex HMAC-SHA256, keyed
// with the app's signing secret, of "v0:<ts>:<body>".
func SlackSignature(secret, ts string, body []byte) string {
	return "v0=" + hex.EncodeToString(slackMAC(secret, ts, body))
}

func slackMAC(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + ts + ":"))
	m.Write(body)
	return m.Sum(nil)
}

// VerifySlack checks a Slack request: its timestamp within Tolerance of now, and its
// signature the HMAC of the raw body under secret, compared in constant time. It returns
// nil or an *AuthError.
func VerifySlack(secret, ts, signature string, body []byte, now time.Time) error {
	refuse := Slack.refuse
	if secret == "" {
		return refuse(ErrNotConfigured, "no Slack signing secret is set; an admin sets it with PUT /v1/chatops/secrets/slack")
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return refuse(ErrUnverified, "X-Slack-Request-Timestamp must be the unix time Slack signed the request at")
	}
	age := now.Sub(time.Unix(unix, 0))
	if age > Tolerance || age < -Tolerance {
		return refuse(ErrExpired, "X-Slack-Request-Timestamp is more than "+Tolerance.String()+" from the server's clock; a replayed request, or a clock that is wrong")
	}
	got, err := hex.DecodeString(strings.TrimPrefix(signature, "v0="))
	if !strings.HasPrefix(signature, "v0=") || err != nil || len(got) != sha256.Size {
		return refuse(ErrUnverified, "X-Slack-Signature must be v0= and 64 hex digits")
	}
	if !hmac.Equal(got, slackMAC(secret, ts, body)) {
		return refuse(ErrUnverified, "X-Slack-Signature does not match the body under the configured signing secret")
	}
	return nil
}

// HashToken is what the store keeps of a Mattermost command token: its SHA-256, hex.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// VerifyMattermost checks a Mattermost command's token against the hash the store keeps
// (HashToken), in constant time. It returns nil or an *AuthError.
func VerifyMattermost(tokenHash, token string) error {
	refuse := Mattermost.refuse
	if tokenHash == "" {
		return refuse(ErrNotConfigured, "no Mattermost command token is set; an admin sets it with PUT /v1/chatops/secrets/mattermost")
	}
	if token == "" {
		return refuse(ErrUnverified, "the command's token is missing: Mattermost sends it as Authorization: Token <token> and in the token field")
	}
	if subtle.ConstantTimeCompare([]byte(HashToken(token)), []byte(tokenHash)) != 1 {
		return refuse(ErrUnverified, "the command's token is not the configured Mattermost command token")
	}
	return nil
}

// refuse is an *AuthError of p.
func (p Platform) refuse(err error, detail string) error {
	return &AuthError{Platform: p, Err: err, Detail: detail}
}
