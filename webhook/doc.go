// Package webhook keeps webhook subscriptions and delivers each event of the apps' streams
// (package events), signed, to every subscriber that wants it, at least once: dispatchers
// in any number of processes fan the per-app streams out into a persistent schedule in
// Redis, send each delivery with go-retryablehttp, retry with exponential backoff and
// jitter up to a horizon, and take over what a dispatcher that died was doing once its
// lease runs out. Its Checker calls the channels' check gates (HTTP hooks asked before a
// promotion) with the same client and the same signatures, under a secret per app.
//
// # Signatures
//
// Every request carries
//
//	Slipway-Event: channel.promoted
//	Slipway-Delivery: 01JD3Y7Q9V6K2M8N4P5R7S9T1W    (the same on every retry)
//	Slipway-Signature: t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// where v1 is the hex HMAC-SHA256, keyed with the subscription's secret (the whole
// string, whsec_ included), of the timestamp, a dot and the raw body. While a rotated
// secret is in its grace period the header holds two v1 entries, one per secret.
// Receivers in Go call Verify; elsewhere the check is a line of openssl:
//
//	t=1767225600                    # the t= of the header
//	{ printf '%s.' "$t"; cat body.json; } |
//	  openssl dgst -sha256 -hmac "$SLIPWAY_WEBHOOK_SECRET" | awk '{print $NF}'
//
// The output must equal one of the v1 entries, and t must be within five minutes of now.
package webhook
