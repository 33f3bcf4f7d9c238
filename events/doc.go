// Package events owns the apps' event streams: the event types, the one shape in which
// every Lua script appends an entry (Script), and the one reader of the streams (Log),
// which lists them newest first in pages and tails them, resuming exactly, for
// Server-Sent Events. Webhook dispatchers read the same entries through Decode.
package events
