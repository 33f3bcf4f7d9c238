package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// userAgent is the User-Agent of every delivery.
const userAgent = "slipway-webhook/1"

// sender makes one attempt of a delivery over HTTP. Retries are the schedule's, so the
// retryablehttp client makes one request per call; its backoff helper spaces the
// schedule's attempts.
type sender struct {
	client *retryablehttp.Client
	opts   options
}

func newSender(o options) *sender {
	c := retryablehttp.NewClient()
	c.Logger = nil
	c.RetryMax = 0
	c.CheckRetry = func(context.Context, *http.Response, error) (bool, error) { return false, nil }
	c.HTTPClient = newHTTPClient(o)
	return &sender{client: c, opts: o}
}

// NewClient returns an HTTP client that reaches only what a webhook may reach: every
// connection it opens, redirects included, is refused when its address (after DNS) is
// loopback, private, link-local or otherwise special, unless WithAllowNets allows it. It
// uses no proxy, gives up after WithTimeout, and follows at most 3 redirects that keep a
// POST a POST. It heeds WithAllowNets and WithTimeout. Other packages post with it to URLs
// that come from outside, as chat commands' response_url.
func NewClient(opts ...Option) (*http.Client, error) {
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return newHTTPClient(o), nil
}

// newHTTPClient is NewClient's client for o.
func newHTTPClient(o options) *http.Client {
	g := guard{allow: o.allow}
	dialer := &net.Dialer{Timeout: o.timeout, Control: g.control}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the guard
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   o.timeout,
		ResponseHeaderTimeout: o.timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       30 * time.Second,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   o.timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			if req.Method != http.MethodPost {
				// 301, 302 and 303 turn a POST into a GET; only 307 and 308 keep it.
				return http.ErrUseLastResponse
			}
			return nil // the dialer checks the new address
		},
	}
}

// result is what one attempt got.
type result struct {
	status int
	resp   *http.Response // headers only; the body is closed
	err    string         // what went wrong, without the URL (which may hold a token)
	// refused is set when the target resolved into a refused range.
	refused bool
	// body is the start of the answer's body when it is not a 2xx.
	body []byte
}

func (r result) ok() bool { return r.status >= 200 && r.status < 300 }

// send posts body to target once.
func (s *sender) send(ctx context.Context, target string, header http.Header, body []byte) result {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return result{err: "the URL cannot be requested"}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := s.client.Do(req)
	if err != nil {
		return describe(err)
	}
	return answered(resp)
}

// answered reads an attempt's answer: its status, and the start of its body when it is
// not a 2xx; it drains and closes the body, so the connection can be used again.
func answered(resp *http.Response) result {
	r := result{status: resp.StatusCode, resp: resp}
	if !r.ok() {
		r.err = "answered " + resp.Status
		r.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxSnippet))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return r
}

// maxSnippet is how much of a failed answer's body an attempt keeps.
const maxSnippet = 4 << 10

// describe turns a transport error into a short message that names no URL.
func describe(err error) result {
	var refused *RefusedError
	if errors.As(err, &refused) {
		return result{err: refused.Error(), refused: true}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return result{err: "no answer within the timeout"}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drops the URL
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return result{err: "the host name does not resolve: " + dnsErr.Err}
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return result{err: op.Error()}
	}
	return result{err: "the request failed: " + err.Error()}
}

// backoff is the wait before the next attempt after the n-th failed one (from 1):
// exponential from the minimum with jitter, at most the maximum, or what the receiver's
// Retry-After asks for on a 429 or 503 (also at most the maximum).
func (s *sender) backoff(n int, resp *http.Response) time.Duration {
	base := retryablehttp.DefaultBackoff(s.opts.minBackoff, s.opts.maxBackoff, n-1, nil)
	if resp != nil && isRetryAfterStatus(resp.StatusCode) && resp.Header.Get("Retry-After") != "" {
		// DefaultBackoff reads Retry-After on these statuses (seconds or a date).
		return min(retryablehttp.DefaultBackoff(s.opts.minBackoff, s.opts.maxBackoff, n-1, resp), s.opts.maxBackoff)
	}
	// Equal jitter: half the wait is fixed, half random.
	half := base / 2
	return half + rand.N(base-half+1)
}

func isRetryAfterStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
}

// formatMS is a time as unix milliseconds for Redis.
func formatMS(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
