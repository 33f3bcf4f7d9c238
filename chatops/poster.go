package chatops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Poster posts the late answer of a command to the response_url it came with: only to
// URLs under the prefixes it allows, and through the client it is given, which the
// server makes with webhook.NewClient so that no address a webhook may not reach is
// dialled either.
type Poster struct {
	client *http.Client
	allow  []*url.URL
}

// NewPoster returns a poster sending with client to URLs under allow: each an absolute
// http(s) URL whose path ends with "/", such as https://hooks.slack.com/, which
// response_url must match in scheme and host and start with in path.
func NewPoster(client *http.Client, allow []string) (*Poster, error) {
	p := &Poster{client: client}
	for _, a := range allow {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			!strings.HasSuffix(u.Path, "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("response URL prefix %q must be an http(s) URL without a user, query or fragment, its path ending with /, such as https://hooks.slack.com/", a)
		}
		p.allow = append(p.allow, u)
	}
	return p, nil
}

// Allowed reports whether the poster may post to raw.
func (p *Poster) Allowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Fragment != "" {
		return false
	}
	for _, a := range p.allow {
		if u.Scheme == a.Scheme && strings.EqualFold(u.Host, a.Host) && strings.HasPrefix(u.EscapedPath(), a.EscapedPath()) {
			return true
		}
	}
	return false
}

// Post sends m to raw as JSON, once; the answer must be 2xx.
func (p *Poster) Post(ctx context.Context, raw string, m Message) error {
	if !p.Allowed(raw) {
		return fmt.Errorf("%w: it is not under the response URLs the server allows", ErrRefusedURL)
	}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, raw, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: it cannot be requested", ErrRefusedURL)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drops the URL, which is a credential
		}
		return fmt.Errorf("posting to the response_url: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("posting to the response_url: answered %s", resp.Status)
	}
	return nil
}
