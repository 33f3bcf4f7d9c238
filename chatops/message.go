package chatops

import "strings"

// ResponseType says who sees an answer.
type ResponseType string

// The response types Slack and Mattermost both read.
const (
	// Ephemeral answers are shown to the user who sent the command alone: errors and
	// reads.
	Ephemeral ResponseType = "ephemeral"
	// InChannel answers are shown to everyone in the channel: moves.
	InChannel ResponseType = "in_channel"
)

// Message is an answer in the shape Slack and Mattermost both read in the response to a
// slash command and in a post to its response_url.
type Message struct {
	ResponseType ResponseType `json:"response_type"`
	Text         string       `json:"text"`
}

// Message is text as p shows it: on Slack, the three characters its mrkdwn gives meaning
// to are escaped, so no name or reason becomes a mention or a link; on Mattermost, an @
// is followed by a zero-width joiner, so none notifies anyone. The words slipway writes
// itself use none of these.
func (p Platform) Message(rt ResponseType, text string) Message {
	if p == Slack {
		text = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(text)
	} else {
		text = strings.ReplaceAll(text, "@", "@\u2060")
	}
	return Message{ResponseType: rt, Text: text}
}
