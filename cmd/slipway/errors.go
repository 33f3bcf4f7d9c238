package main

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/slipway/slipway/openapi"
)

// Sentinels the commands branch on.
var (
	// errHelpShown tells that a command printed its help; run exits 0 for it.
	errHelpShown = errors.New("help shown")
	// errFlagsListed tells that a command gave its flag set to cliEnv.listFlags instead of
	// running.
	errFlagsListed = errors.New("flags listed")
	// errUploadOver tells the packer that the request is over, answered before it read the
	// whole body or failed.
	errUploadOver = errors.New("the upload is over")
	// errNoGoMod is a directory without go.mod at its top.
	errNoGoMod = errors.New("no go.mod")
	// errChanged is a file whose size changed between listing and packing.
	errChanged = errors.New("the file changed while it was packed; run the command again")
	// errRedisExited is a private redis-server that exited as it started.
	errRedisExited = errors.New("the private redis-server exited at start")
)

// redisUnreachableError is a Redis that did not answer at start, for as long as serve
// waited, or that refused slipway (answered).
type redisUnreachableError struct {
	url      string
	wait     time.Duration
	err      error
	answered bool
}

func (e *redisUnreachableError) Unwrap() error { return e.err }

func (e *redisUnreachableError) Error() string {
	if e.answered {
		return fmt.Sprintf("Redis at %s refused slipway (%s); check SLIPWAY_REDIS_URL (--redis-url), its password and database", redactURL(e.url), oneLine(e.err))
	}
	waited := ""
	if e.wait > 0 {
		waited = fmt.Sprintf(", waited %s (SLIPWAY_REDIS_WAIT)", e.wait)
	}
	return fmt.Sprintf("cannot reach Redis at %s (%s%s); start redis-server there, or set SLIPWAY_REDIS_URL (--redis-url) to a Redis that is running",
		redactURL(e.url), oneLine(e.err), waited)
}

// usageError is a mistake in the command line; main exits with status 2 for it.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// buildFailedError is a build that ended failed or canceled.
type buildFailedError struct {
	build openapi.Build
	// logShown tells that the build's log, which holds the compiler's output, was
	// streamed already; the message then does not repeat it.
	logShown bool
}

// ExitCode is 1.
func (e *buildFailedError) ExitCode() int { return exitFailed }

func (e *buildFailedError) Error() string {
	b := e.build
	msg := fmt.Sprintf("build %s %s", b.Id, b.Status)
	if be := b.Error; be != nil {
		msg += ": " + string(be.Reason)
		if be.Platform != nil {
			msg += " on " + *be.Platform
		}
		if d := strings.TrimSpace(be.Detail); d != "" && !e.logShown {
			msg += "\n" + d
		} else if d != "" {
			msg += " (the log above has the details)"
		}
	}
	return msg
}

// staleChannelError is a move refused because someone changed the channel after this
// command read it.
type staleChannelError struct {
	app    string
	read   int64
	now    openapi.Channel
	apiErr *apiError
}

// ExitCode is 3, as for every refused request.
func (e *staleChannelError) ExitCode() int { return exitRejected }

func (e *staleChannelError) Unwrap() error { return e.apiErr }

func (e *staleChannelError) Error() string {
	ch := e.now
	who := "someone else"
	if ch.UpdatedBy != nil && *ch.UpdatedBy != "" {
		who = *ch.UpdatedBy
	}
	when := ""
	if ch.UpdatedAt != nil {
		when = " (" + ago(*ch.UpdatedAt, time.Now()) + ")"
	}
	holds := "no release"
	if ch.Release != nil {
		holds = *ch.Release
	}
	locked := ""
	if ch.Locked {
		locked = ", locked"
	}
	return fmt.Sprintf("%s moved channel %s of %s first%s: it now holds %s (generation %d%s); this command read generation %d and changed nothing. "+
		"See slipway history %s %s, and run the command again if it still makes sense.",
		who, ch.Name, e.app, when, holds, ch.Generation, locked, e.read, e.app, ch.Name)
}

// staleAppError is an apps update refused because someone changed the app after this
// command read it.
type staleAppError struct {
	app    string
	read   int64
	apiErr *apiError
}

// ExitCode is 3, as for every refused request.
func (e *staleAppError) ExitCode() int { return exitRejected }

func (e *staleAppError) Unwrap() error { return e.apiErr }

func (e *staleAppError) Error() string {
	return fmt.Sprintf("someone changed app %s after this command read it (generation %d), so it changed nothing; "+
		"run the command again: it reads the app afresh (slipway apps show %s shows it now)", e.app, e.read, e.app)
}

// checksumError is a downloaded file whose digest is not the one SHA256SUMS gives; the
// file is removed.
type checksumError struct{ name, got, want string }

func (e *checksumError) Error() string {
	return fmt.Sprintf("%s has sha256 %s, but %s says %s: refused it and removed it; download it again, and if it still differs, report it",
		e.name, e.got, sumsName, e.want)
}

// redirectError is a redirect the client refuses to follow.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

// apiError is a response with an error status and the problem document it carried.
type apiError struct {
	method, path string
	status       int
	problem      openapi.Problem
	body         []byte
	hadToken     bool
	// next is what to do about it, when the command knows better than nextSteps.
	next string
	// command is the command line that does what the problem says to do next: the one
	// that unlocks the channel, say.
	command string
}

// ExitCode is 3 for a refused request (4xx) and 1 for a failed server (5xx).
func (e *apiError) ExitCode() int {
	if e.status >= 500 {
		return exitFailed
	}
	return exitRejected
}

// Error is the problem's detail once, with its status and kind, then what to do next:
// no app named "x" (404 not-found). A problem with fields lists them, one a line.
func (e *apiError) Error() string {
	p := e.problem
	var fields []openapi.FieldError
	if p.Errors != nil {
		fields = *p.Errors
	}
	msg := p.Title
	switch {
	case len(fields) > 0:
		msg = "refused" // the detail joins the fields, which follow
	case p.Detail != nil && *p.Detail != "":
		msg = *p.Detail
	}
	if e.status >= 500 && !strings.HasPrefix(msg, "the server failed") {
		msg = "the server failed: " + msg
	}
	kind := fmt.Sprintf("HTTP %d", e.status)
	if p.Type != "" {
		kind = fmt.Sprintf("%d %s", e.status, path.Base(string(p.Type)))
	}
	var b strings.Builder
	if p.Gates != nil {
		msg = "the channel's gates refuse it"
	}
	fmt.Fprintf(&b, "%s (%s)%s", msg, kind, e.hint(msg))
	for _, f := range fields {
		fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Detail)
	}
	if p.Gates != nil {
		b.WriteString("\n" + gatesText(*p.Gates, "  "))
	}
	return b.String()
}

// hint is what to do next about the problem, unless msg says it already, and the
// command that does it: "; unlock it first: slipway unlock ...".
func (e *apiError) hint(msg string) string {
	p := e.problem
	next := e.next
	switch {
	case next != "":
	case e.status == http.StatusUnauthorized && e.hadToken && strings.Contains(msg, "revoked"):
		next = "check SLIPWAY_TOKEN or --token"
	case e.status == http.StatusUnauthorized && e.hadToken:
		next = "check SLIPWAY_TOKEN or --token (the token may be revoked)"
	case e.status == http.StatusUnauthorized:
		next = "set SLIPWAY_TOKEN or --token"
	case e.status >= 500 && p.RequestId != nil && !strings.Contains(msg, *p.RequestId):
		next = "quote request id " + *p.RequestId + " when reporting it"
	default:
		if n, ok := nextSteps[p.Type]; ok && !strings.Contains(msg, n.said) {
			next = n.do
		}
	}
	switch {
	case next != "" && e.command != "":
		return "; " + next + ": " + e.command
	case e.command != "":
		return ": " + e.command
	case next != "":
		return "; " + next
	}
	return ""
}

// nextSteps are what to do after a refusal of each kind that a retry alone does not
// fix; said is a word of a detail that tells it already.
var nextSteps = map[openapi.ProblemType]struct{ do, said string }{
	openapi.ProblemPreconditionFailed:  {"someone changed it after it was read: read it again and retry with its generation", "again"},
	openapi.ProblemChannelLocked:       {"unlock it first, or roll back", "unlock"},
	openapi.ProblemPolicyViolation:     {"promote the release to the channel this one takes releases from first", "first"},
	openapi.ProblemGatesFailed:         {"wait for what is pending, get what failed (slipway approve), or override with a reason (--override --reason R)", "override"},
	openapi.ProblemIdempotencyInFlight: {"the same request is still being answered; run the command again in a moment", "still"},
}

// unreachableError is a request that got no answer: the connection was refused, the host
// is unknown, or it timed out.
type unreachableError struct {
	url string
	err error
}

// ExitCode is 4.
func (e *unreachableError) ExitCode() int { return exitUnreachable }

func (e *unreachableError) Unwrap() error { return e.err }

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the slipway server at %s (%s); check SLIPWAY_URL or --url", e.url, networkCause(e.err))
}

// gatesText lists gates one a line, each with its status and what it meets or misses:
// "  ✗ approvals  failed   0 of 1 approvals ...".
func gatesText(gates []openapi.GateState, indent string) string {
	var b strings.Builder
	for i, g := range gates {
		mark := "✓"
		switch g.Status {
		case openapi.GateStateStatusFailed:
			mark = "✗"
		case openapi.GateStateStatusPending:
			mark = "…"
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s%s %-10s %-7s %s", indent, mark, g.Gate, g.Status, g.Detail)
	}
	return b.String()
}
