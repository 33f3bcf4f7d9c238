package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"

	"github.com/slipway/slipway/invalid"
)

// special are the ranges a webhook may not reach unless allowed, with what each is.
// Go's netip predicates cover loopback, private (RFC 1918, fc00::/7), link-local,
// multicast and unspecified; these are the rest.
var special = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (shared)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "link-local (cloud metadata)"},
}

// guard decides which addresses webhooks may reach.
type guard struct {
	allow []netip.Prefix
}

// check returns a *RefusedError for an address in a refused range that allow does
// not cover.
func (g guard) check(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	reason := ""
	switch {
	case ip.IsLoopback():
		reason = "loopback"
	case ip.IsPrivate():
		reason = "private"
	case ip.IsLinkLocalUnicast():
		reason = "link-local (cloud metadata)"
	case ip.IsUnspecified():
		reason = "unspecified"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		reason = "multicast"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		reason = "broadcast"
	}
	for _, s := range special {
		if reason == "" && s.prefix.Contains(ip) {
			reason = s.reason
		}
	}
	if reason == "" {
		return nil
	}
	return &RefusedError{Addr: ip, Reason: reason}
}

// control runs after DNS resolution for every connection a delivery opens, redirects
// included, and refuses the protected ranges.
func (g guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", address, err)
	}
	return g.check(ap.Addr())
}

// checkURL validates a target URL and the addresses its host resolves to now. A host
// that does not resolve passes: the dial checks again, every time.
func (g guard) checkURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return &invalid.Error{Fields: []invalid.Field{{Field: "url", Detail: "is not a URL"}}}
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := g.check(ip); err != nil {
			var re *RefusedError
			errors.As(err, &re)
			re.Host = host
			return re
		}
		return nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := g.check(a); err != nil {
			var re *RefusedError
			errors.As(err, &re)
			re.Host = host
			return re
		}
	}
	return nil
}
