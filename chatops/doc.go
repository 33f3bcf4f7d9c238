// Package chatops takes slipway's commands from chat: it verifies that a slash command
// comes from the chat service (Slack's request signature, Mattermost's command token),
// reads the command, keeps the chat secrets and the mappings from chat users to scopes
// in Redis, writes the answers in the chat's message shape, and posts late answers to a
// command's response_url. It moves nothing itself: the API runs the commands through
// the same channel moves as its own routes, with the scopes a mapping grants.
package chatops
