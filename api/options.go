package api

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

type options struct {
	maxBodyBytes  int64
	readyTimeout  time.Duration
	adminToken    string
	metricsPublic bool
	corsOrigins   []string
	bodyMinRate   int64 // bytes a second, 0 for no limit (WithBodyMinRate)
	bodyGrace     time.Duration
	events        eventOptions
	// credentialCheck is how often a streaming response checks its token again.
	credentialCheck time.Duration
	// trustedProxies may say who the client is in X-Forwarded-For.
	trustedProxies []netip.Prefix
	// chatAnswerWait is how long a chat command's move may take before its answer goes
	// to the response_url instead (WithChatAnswerWait).
	chatAnswerWait time.Duration
}

func defaultOptions() options {
	return options{maxBodyBytes: 1 << 20, readyTimeout: 2 * time.Second, credentialCheck: 5 * time.Second,
		bodyMinRate: 10 << 10, bodyGrace: 10 * time.Second, chatAnswerWait: 2 * time.Second}
}

// Option configures the API server.
type Option func(*options) error

// WithMaxBodyBytes caps JSON request bodies; larger ones get 413. Default 1 MiB.
func WithMaxBodyBytes(n int64) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("max body bytes %d must be positive", n)
		}
		o.maxBodyBytes = n
		return nil
	}
}

// WithBodyMinRate makes every request body keep up an average of bytesPerSec after the
// first grace: byte n is due by grace + n/bytesPerSec from the start of the request. A body
// that falls behind gets 408 request-timeout, and what the handler kept of it is removed.
// 0 bytesPerSec turns the limit off. Default 10 KiB/s after 10s.
func WithBodyMinRate(bytesPerSec int64, grace time.Duration) Option {
	return func(o *options) error {
		if bytesPerSec < 0 || grace < 0 {
			return fmt.Errorf("minimum body rate %d bytes/s after %s: neither may be negative", bytesPerSec, grace)
		}
		o.bodyMinRate, o.bodyGrace = bytesPerSec, grace
		return nil
	}
}

// WithReadyTimeout bounds how long /readyz waits for each dependency. Default 2s.
func WithReadyTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("ready timeout %s must be positive", d)
		}
		o.readyTimeout = d
		return nil
	}
}

// WithAdminToken turns authentication on: secret is the admin token, and every other
// caller needs a token from the token store. Default: off, for a server on loopback.
func WithAdminToken(secret string) Option {
	return func(o *options) error {
		if len(secret) < 16 {
			return fmt.Errorf("the admin token must be at least 16 characters")
		}
		o.adminToken = secret
		return nil
	}
}

// WithMetricsPublic serves /metrics without a token. Default: /metrics needs read.
func WithMetricsPublic(public bool) Option {
	return func(o *options) error { o.metricsPublic = public; return nil }
}

// WithCORSOrigins lets browser pages from these origins call the API. Default: none.
func WithCORSOrigins(origins []string) Option {
	return func(o *options) error {
		for _, origin := range origins {
			if origin != "*" && !strings.HasPrefix(origin, "http://") && !strings.HasPrefix(origin, "https://") {
				return fmt.Errorf("CORS origin %q is not * or an http(s) origin", origin)
			}
		}
		o.corsOrigins = origins
		return nil
	}
}

// WithCredentialCheck is how often a response that streams (an event stream, a followed
// build log) checks that its token still stands; a revoked token's streams end within
// this. Default 5s.
func WithCredentialCheck(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("credential check period %s must be positive", d)
		}
		o.credentialCheck = d
		return nil
	}
}

// WithChatAnswerWait is how long a chat command's move may take before the command is
// answered that it is under way, and the move's result is posted to the command's
// response_url when it is done: Slack shows an error for a command not answered within 3
// seconds. Default 2s.
func WithChatAnswerWait(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("chat answer wait %s must be positive", d)
		}
		o.chatAnswerWait = d
		return nil
	}
}

// WithTrustedProxies names the reverse proxies and load balancers in front of the server.
// A request whose TCP peer is in one of these ranges is logged as coming from the address
// its X-Forwarded-For gives: the nearest one, reading from the right, that is not itself
// in a trusted range. Any other request is logged as its TCP peer, whatever its headers
// say. Loopback, link-local and private addresses are trusted only when listed. Default:
// none, so every request is its TCP peer.
func WithTrustedProxies(prefixes []netip.Prefix) Option {
	return func(o *options) error {
		for _, p := range prefixes {
			if !p.IsValid() {
				return fmt.Errorf("trusted proxy range %q is not a CIDR", p)
			}
		}
		o.trustedProxies = slices.Clone(prefixes)
		return nil
	}
}

// ipExtractor finds the client's address as WithTrustedProxies says.
func (o options) ipExtractor() echo.IPExtractor {
	if len(o.trustedProxies) == 0 {
		return echo.ExtractIPDirect()
	}
	trust := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range o.trustedProxies {
		p = p.Masked()
		trust = append(trust, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(trust...)
}

func joinSorted(s []string) string {
	s = slices.Clone(s)
	slices.Sort(s)
	return strings.Join(s, ", ")
}
