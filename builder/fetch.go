package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/slipway/slipway/builder/source"
)

// refusedNets are addresses a source URL may not reach unless the server allows them:
// link-local (cloud metadata lives there) and the other well-known metadata addresses.
var refusedNets = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
	netip.MustParsePrefix("100.100.100.200/32"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
}

// Fetcher downloads source archives over HTTP with retries and backoff.
type Fetcher struct {
	client *retryablehttp.Client
	allow  []netip.Prefix
}

// NewFetcher returns a fetcher whose requests may reach the refused ranges only where
// allow says so. timeout bounds each attempt.
func NewFetcher(allow []netip.Prefix, timeout time.Duration) *Fetcher {
	f := &Fetcher{allow: allow}
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: f.control}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          10,
		IdleConnTimeout:       30 * time.Second,
	}
	c := retryablehttp.NewClient()
	c.Logger = nil
	c.RetryMax = 3
	c.RetryWaitMin = 500 * time.Millisecond
	c.RetryWaitMax = 5 * time.Second
	c.HTTPClient = &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			return nil
		},
	}
	// Refused addresses and bad URLs do not get better with retries.
	c.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		var refused *refusedError
		if errors.As(err, &refused) {
			return false, err
		}
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	}
	f.client = c
	return f
}

// control runs after DNS resolution, for every connection (redirects included), and
// refuses the protected ranges.
func (f *Fetcher) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	ip := ap.Addr().Unmap()
	for _, p := range f.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	for _, p := range refusedNets {
		if p.Contains(ip) {
			return &refusedError{ip}
		}
	}
	return nil
}

// Fetch downloads the archive at rawURL into a spooled file in dir, at most max bytes.
func (f *Fetcher) Fetch(ctx context.Context, rawURL, dir string, max int64) (*source.Spooled, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &FetchError{URL: redact(rawURL), Detail: "source_url must be an http or https URL"}
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, &FetchError{URL: u.Redacted(), Detail: err.Error()}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		var refused *refusedError
		if errors.As(err, &refused) {
			return nil, &FetchError{URL: u.Redacted(), Detail: refused.Error()}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &FetchError{URL: u.Redacted(), Detail: "the server could not be reached after retries"}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &FetchError{URL: u.Redacted(), Detail: fmt.Sprintf("the server answered %s", resp.Status)}
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%w: %s is %d bytes, over the limit of %d", source.ErrTooLarge, u.Redacted(), resp.ContentLength, max)
	}
	return source.Spool(ctx, resp.Body, dir, max)
}

func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}
