package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/openapi"
)

// limitBodyRate holds every request body to the minimum average rate of WithBodyMinRate:
// byte n must have arrived by start + grace + n/rate, or the read waiting for it fails.
// Before each read of the body it sets the connection's read deadline to that instant, so
// a client that stalls is cut off at once rather than when it sends again, and the
// handler's own error path removes what it had kept (a spooled upload). The client gets a
// 408 request-timeout problem, and the connection is closed after it.
//
// The deadline is cleared when the body ends; a body the handler leaves unread stays
// under the rule while the server discards it. It applies to HTTP/1 and HTTP/2 alike;
// where the connection has no deadlines (a ResponseRecorder), bodies are not limited.
func (s *Server) limitBodyRate(next echo.HandlerFunc) echo.HandlerFunc {
	if s.opts.bodyMinRate == 0 {
		return next
	}
	return func(c echo.Context) error {
		req := c.Request()
		if req.Body == nil || req.Body == http.NoBody {
			return next(c)
		}
		b := &rateBody{
			body:  req.Body,
			rc:    http.NewResponseController(c.Response()),
			start: time.Now(),
			grace: s.opts.bodyGrace,
			rate:  s.opts.bodyMinRate,
		}
		// The server's own ReadTimeout, if it has one, still bounds the request.
		if srv, ok := req.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.ReadTimeout > 0 {
			b.limit = b.start.Add(srv.ReadTimeout)
		}
		// A copy of the request: net/http keeps its own, whose body it drains after the
		// handler, and that one must stay its own type.
		r := *req
		r.Body = b
		c.SetRequest(&r)
		err := next(c)
		if b.timedOut {
			// The rest of the body will not come in time: do not wait for it after the reply.
			c.Response().Header().Set(echo.HeaderConnection, "close")
			if !c.Response().Committed {
				return newProblem(openapi.ProblemRequestTimeout,
					"the request body fell behind the minimum rate of %d bytes a second (after the first %s): %d bytes arrived in %s; send it again over a faster connection",
					b.rate, b.grace, b.n, b.at.Sub(b.start).Round(time.Millisecond))
			}
		}
		return err
	}
}

// rateBody is a request body whose reads fail once it falls behind the minimum rate.
type rateBody struct {
	body     io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	rate     int64     // bytes a second
	limit    time.Time // the server's ReadTimeout deadline, zero if none
	n        int64     // bytes read so far
	off      bool      // the body has ended, or the connection has no deadlines
	timedOut bool
	at       time.Time // when it timed out
}

// Read implements io.Reader.
func (b *rateBody) Read(p []byte) (int, error) {
	if !b.off {
		if err := b.rc.SetReadDeadline(b.deadline()); err != nil {
			b.off = true // not a connection with deadlines: nothing to enforce with
		}
	}
	n, err := b.body.Read(p)
	b.n += int64(n)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrDeadlineExceeded) && !b.off:
		b.timedOut, b.at = true, time.Now()
		return n, fmt.Errorf("%w: %d bytes in %s: %w", errBodyTooSlow, b.n, b.at.Sub(b.start).Round(time.Millisecond), err)
	case errors.Is(err, io.EOF) && !b.off:
		// The body is done: nothing else on this connection runs under its deadline.
		b.off = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// deadline is when the next byte, the n-th with n = b.n+1, is due: start + grace + n/rate.
func (b *rateBody) deadline() time.Time {
	n := b.n + 1
	due := b.grace + time.Duration(n/b.rate)*time.Second + time.Duration(n%b.rate)*time.Second/time.Duration(b.rate)
	d := b.start.Add(due)
	if !b.limit.IsZero() && b.limit.Before(d) {
		return b.limit
	}
	return d
}

// Close implements io.Closer.
func (b *rateBody) Close() error { return b.body.Close() }
