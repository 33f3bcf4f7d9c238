package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/slipway/slipway/openapi"
)

// client talks to one slipway server. Every request, whether made by the generated
// client or streamed by hand, goes through Do, which adds the token and User-Agent and
// turns failures into the errors that decide the exit status.
type client struct {
	base  *url.URL
	token string
	http  *http.Client
	api   *openapi.ClientWithResponses
}

var _ openapi.HttpRequestDoer = (*client)(nil)

// newClient returns a client for the server at base that sends token, if any.
func newClient(base *url.URL, token string) (*client, error) {
	c := &client{
		base:  base,
		token: token,
		http: &http.Client{
			// No overall timeout: uploads and followed logs take as long as they take.
			Transport: &http.Transport{
				DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				TLSHandshakeTimeout:   10 * time.Second,
				ResponseHeaderTimeout: 2 * time.Minute,
				ExpectContinueTimeout: 2 * time.Second,
				IdleConnTimeout:       90 * time.Second,
				ForceAttemptHTTP2:     true,
			},
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				// The token goes only to the server named; a redirect elsewhere would carry it.
				if req.URL.Host != base.Host || req.URL.Scheme != base.Scheme {
					return &redirectError{fmt.Sprintf("the server redirected to %s, another server; not following it with the token", req.URL.Redacted())}
				}
				if len(via) >= 5 {
					return &redirectError{"the server redirected more than 5 times"}
				}
				return nil
			},
		},
	}
	api, err := openapi.NewClientWithResponses(base.String(), openapi.WithHTTPClient(c))
	if err != nil {
		return nil, fmt.Errorf("making the API client: %w", err)
	}
	c.api = api
	return c, nil
}

// userAgent is the User-Agent of every request, slipway/<version>.
func userAgent() string {
	return "slipway/" + strings.Trim(version(), "()")
}

// Do sends req with the token and User-Agent. A response with a status of 400 or more is
// read and returned as an *apiError; a request that reaches no server is an
// *unreachableError. Either way the token is in no message.
func (c *client) Do(req *http.Request) (*http.Response, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", userAgent())
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var redirect *redirectError
		if errors.As(err, &redirect) {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, redirect)
		}
		return nil, &unreachableError{url: c.base.Redacted(), err: err}
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ae := &apiError{method: req.Method, path: req.URL.Path, status: resp.StatusCode, body: body, hadToken: c.token != ""}
	if err := json.Unmarshal(body, &ae.problem); err != nil || ae.problem.Title == "" {
		ae.problem = openapi.Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	}
	if ae.problem.RequestId == nil {
		if id := resp.Header.Get("X-Request-ID"); id != "" {
			ae.problem.RequestId = &id
		}
	}
	return nil, ae
}

// networkCause is the short reason a request got no answer, on one line.
func networkCause(err error) string {
	var dns *net.DNSError
	var op *net.OpError
	var to interface{ Timeout() bool }
	switch {
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "unknown host " + dns.Name
		}
		return "DNS: " + dns.Err
	case errors.As(err, &to) && to.Timeout():
		return "timed out"
	case errors.As(err, &op):
		cause := op.Err.Error()
		if i := strings.LastIndex(cause, ": "); i >= 0 {
			cause = cause[i+2:]
		}
		return cause
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// ifMatch is the If-Match value for a generation.
func ifMatch(gen int64) *string {
	s := fmt.Sprintf("%q", fmt.Sprint(gen))
	return &s
}

// idempotencyKey derives a key from a request's parts, so that running the same command
// again sends the same key and the server answers it once.
func idempotencyKey(parts ...string) *string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	k := "slipway-cli-" + hex.EncodeToString(h.Sum(nil))[:40]
	return &k
}

// pageSize is the most items the client asks for in one page.
const pageSize = 1000

// listed is a list read page by page: each item as received, and decoded.
type listed[T any] struct {
	raw   []json.RawMessage
	items []T
	// next is the cursor of the rest when limit stopped the list early.
	next *string
}

// listAll reads a cursor-paginated list to its end, or until limit items (0: no limit).
// get fetches one page of at most n items from cursor and returns its body.
func listAll[T any](ctx context.Context, limit int, get func(ctx context.Context, n int, cursor *string) ([]byte, error)) (*listed[T], error) {
	out := &listed[T]{raw: []json.RawMessage{}}
	var cursor *string
	for {
		n := pageSize
		if limit > 0 && limit-len(out.raw) < n {
			n = limit - len(out.raw)
		}
		body, err := get(ctx, n, cursor)
		if err != nil {
			return nil, err
		}
		var page struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor *string           `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("reading a page of the list: %w", err)
		}
		for _, raw := range page.Items {
			var it T
			if err := json.Unmarshal(raw, &it); err != nil {
				return nil, fmt.Errorf("reading a list item: %w", err)
			}
			out.raw = append(out.raw, raw)
			out.items = append(out.items, it)
		}
		if page.NextCursor == nil || *page.NextCursor == "" || len(page.Items) == 0 {
			return out, nil
		}
		if limit > 0 && len(out.raw) >= limit {
			out.next = page.NextCursor
			return out, nil
		}
		cursor = page.NextCursor
	}
}

// bodyOf is the body of a generated client's answer, for listAll.
func bodyOf[R interface{ GetBody() []byte }](r R, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	return r.GetBody(), nil
}

// writeList prints a list listAll read: with asJSON as writeListJSON does, else as a
// table of header and one row per item, its columns separated by tabs.
func writeList[T any](w io.Writer, asJSON bool, l *listed[T], header string, row func(T) string) error {
	if asJSON {
		return writeListJSON(w, l)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range l.items {
		fmt.Fprintln(tw, row(it))
	}
	return tw.Flush()
}

// writeJSON prints a response body as received, ending it with a newline.
func writeJSON(w io.Writer, body []byte) error {
	body = bytes.TrimRight(body, "\n")
	_, err := fmt.Fprintf(w, "%s\n", body)
	return err
}

// writeListJSON prints a list's items as received in one {"items": [...]} document, with
// next_cursor when --limit stopped it before the end.
func writeListJSON[T any](w io.Writer, l *listed[T]) error {
	doc := struct {
		Items      []json.RawMessage `json:"items"`
		NextCursor *string           `json:"next_cursor,omitempty"`
	}{l.raw, l.next}
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return writeJSON(w, b)
}
