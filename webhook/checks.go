package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// EventCheck is the Slipway-Event header of a check gate's request.
const EventCheck = "gate.check"

// The outcomes of a check (the same words as release.GatePassed and GateFailed).
const (
	CheckPassed = "passed"
	CheckFailed = "failed"
)

// checkRetention is how long a check's last result is kept.
const checkRetention = 7 * 24 * time.Hour

// maxCheckTimeout bounds the one attempt of any check, whatever it asks for.
const maxCheckTimeout = 10 * time.Minute

// maxDetailBody is how many bytes of a refusing answer's body a result quotes.
const maxDetailBody = 200

// Candidate is the release a check gate asks about: the move of Version into Channel.
type Candidate struct {
	App         string
	Channel     string
	Version     string
	ImageDigest string
	BuildID     string
	// Current is the release the channel points at now; nil before its first promotion.
	Current *CurrentRelease
}

// CurrentRelease is a channel's release before the move.
type CurrentRelease struct {
	Version     string `json:"version"`
	ImageDigest string `json:"image_digest"`
}

// CheckRequest is the JSON body a check gate posts to its hook.
type CheckRequest struct {
	// CheckID names this evaluation of the check; every retry of it sends the same, and it
	// is the Slipway-Delivery header too.
	CheckID     string          `json:"check_id"`
	Check       string          `json:"check"`
	App         string          `json:"app"`
	Channel     string          `json:"channel"`
	Version     string          `json:"version"`
	ImageDigest string          `json:"image_digest"`
	BuildID     string          `json:"build_id"`
	Current     *CurrentRelease `json:"current"`
	Time        time.Time       `json:"time"`
}

// CheckSpec is one check gate to evaluate: POST to URL, each attempt bounded by Timeout
// and all of them by Deadline (0 for the Checker's defaults).
type CheckSpec struct {
	Name     string
	URL      string
	Timeout  time.Duration
	Deadline time.Duration
}

// CheckResult is what a check gate came to.
type CheckResult struct {
	Name     string
	Status   string // CheckPassed or CheckFailed
	Detail   string
	At       time.Time // when it was decided
	Attempts int
	CheckID  string
	// Cached is set when the result is a recent one read back instead of calling the hook.
	Cached bool
}

// Checker calls the check gates' hooks: signed as webhook deliveries are, through the
// same guarded client, retried within each check's deadline, with results recorded in
// Redis (see store/paths.go). Each app has its own signing secret, made at first use.
type Checker struct {
	rdb    redis.UniversalClient
	opts   options
	client *retryablehttp.Client
	now    func() time.Time
}

// NewChecker returns a Checker. It heeds WithAllowNets, WithSecretGrace, WithBackoff
// (here by default 500ms to 10s), WithCheckTimeouts, WithCheckFreshness and WithLogger.
func NewChecker(rdb redis.UniversalClient, opts ...Option) (*Checker, error) {
	o := defaultOptions()
	o.minBackoff, o.maxBackoff = 500*time.Millisecond, 10*time.Second
	o, err := buildOptionsFrom(o, opts)
	if err != nil {
		return nil, err
	}
	ho := o
	ho.timeout = maxCheckTimeout // each attempt's context bounds it
	return &Checker{rdb: rdb, opts: o, client: newSender(ho).client, now: time.Now}, nil
}

// Run evaluates every check of c concurrently and returns their results in the order of
// specs. A check evaluated for the same release, channel and URL within the freshness
// is not called again. No lock is held while a hook is called: two evaluations at once
// may each call it, and the later result is the one kept.
func (k *Checker) Run(ctx context.Context, c Candidate, specs []CheckSpec) []CheckResult {
	out := make([]CheckResult, len(specs))
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Go(func() { out[i] = k.one(ctx, c, spec) })
	}
	wg.Wait()
	return out
}

func urlHash(u string) string {
	h := sha256.Sum256([]byte(u))
	return hex.EncodeToString(h[:])
}

func (k *Checker) one(ctx context.Context, c Candidate, spec CheckSpec) CheckResult {
	key := store.CheckResultKey(c.App, c.Channel, c.Version, spec.Name)
	if r, ok := k.recent(ctx, key, spec); ok {
		return r
	}
	r := k.evaluate(ctx, c, spec)
	r.At = k.now().UTC().Truncate(time.Millisecond) // fresh from when it was decided
	if ctx.Err() != nil {
		return r // the caller went away: nothing is recorded
	}
	_, err := k.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "status", r.Status, "detail", r.Detail, "at", formatMS(r.At),
			"attempts", r.Attempts, "check_id", r.CheckID, "url", urlHash(spec.URL))
		p.PExpire(ctx, key, checkRetention)
		return nil
	})
	if err != nil {
		k.opts.log.WarnContext(ctx, "recording a check result", "app", c.App, "check", spec.Name, "error", err)
	}
	return r
}

// recent returns the recorded result of spec when it is fresh.
func (k *Checker) recent(ctx context.Context, key string, spec CheckSpec) (CheckResult, bool) {
	if k.opts.checkFresh <= 0 {
		return CheckResult{}, false
	}
	vals, err := k.rdb.HMGet(ctx, key, "status", "detail", "at", "attempts", "check_id", "url").Result()
	if err != nil {
		return CheckResult{}, false // evaluated again
	}
	str := func(i int) string { s, _ := vals[i].(string); return s }
	ms, err := strconv.ParseInt(str(2), 10, 64)
	status := str(0)
	if err != nil || (status != CheckPassed && status != CheckFailed) || str(5) != urlHash(spec.URL) {
		return CheckResult{}, false
	}
	at := time.UnixMilli(ms).UTC()
	if age := k.now().Sub(at); age < 0 || age >= k.opts.checkFresh {
		return CheckResult{}, false
	}
	attempts, _ := strconv.Atoi(str(3))
	return CheckResult{Name: spec.Name, Status: status, Detail: str(1), At: at, Attempts: attempts,
		CheckID: str(4), Cached: true}, true
}

// evaluate calls the hook until it answers 2xx (passed) or 4xx (failed), the deadline
// passes, or its address is refused.
func (k *Checker) evaluate(ctx context.Context, c Candidate, spec CheckSpec) CheckResult {
	start := k.now().UTC().Truncate(time.Millisecond)
	id := "chk_" + ulid.MustNew(ulid.Timestamp(start), ulid.DefaultEntropy()).String()
	res := CheckResult{Name: spec.Name, Status: CheckFailed, At: start, CheckID: id}
	timeout, deadline := spec.Timeout, spec.Deadline
	if timeout <= 0 {
		timeout = k.opts.checkTimeout
	}
	if deadline <= 0 {
		deadline = k.opts.checkDeadline
	}
	timeout = min(timeout, deadline, maxCheckTimeout)

	secrets, err := k.Secrets(ctx, c.App)
	if err != nil {
		res.Detail = "the check was not called: its signing secret could not be read"
		k.opts.log.WarnContext(ctx, "reading the checks secret", "app", c.App, "error", err)
		return res
	}
	body, err := json.Marshal(CheckRequest{CheckID: id, Check: spec.Name, App: c.App, Channel: c.Channel,
		Version: c.Version, ImageDigest: c.ImageDigest, BuildID: c.BuildID, Current: c.Current, Time: start})
	if err != nil {
		res.Detail = "the check's request could not be encoded"
		return res
	}
	dctx, cancel := context.WithDeadline(ctx, start.Add(deadline))
	defer cancel()
	last := ""
	for {
		res.Attempts++
		a := k.attempt(dctx, spec.URL, timeout, id, secrets, body)
		switch {
		case a.ok():
			res.Status = CheckPassed
			res.Detail = fmt.Sprintf("the hook answered %d", a.status)
			return res
		case a.refused:
			res.Detail = a.err
			return res
		case a.status >= 400 && a.status < 500 && a.status != http.StatusTooManyRequests:
			res.Detail = fmt.Sprintf("the hook answered %d", a.status)
			if q := Snippet(a.body, maxDetailBody); q != "" {
				res.Detail += ": " + q
			}
			return res
		case a.status == 0 && a.err == "":
			res.Detail = "the check's URL cannot be requested"
			return res
		}
		last = a.err
		if a.status != 0 {
			last = fmt.Sprintf("answered %d", a.status)
		}
		if ctx.Err() != nil {
			res.Detail = "the evaluation was canceled"
			return res
		}
		if dctx.Err() != nil {
			res.Detail = fmt.Sprintf("no passing answer within the deadline %s (%s; last: %s)", deadline, attempts(res.Attempts), last)
			return res
		}
		wait, asked := k.backoff(res.Attempts, a.resp)
		left := time.Until(start.Add(deadline))
		if asked && wait > left {
			res.Detail = fmt.Sprintf("the hook asked to retry after %s, past the deadline %s (%s; last: %s)",
				wait.Round(time.Millisecond), deadline, attempts(res.Attempts), last)
			return res
		}
		t := time.NewTimer(min(wait, max(left, 0)))
		select {
		case <-t.C:
		case <-dctx.Done():
			t.Stop()
		}
		if ctx.Err() != nil {
			res.Detail = "the evaluation was canceled"
			return res
		}
		if dctx.Err() != nil {
			res.Detail = fmt.Sprintf("no passing answer within the deadline %s (%s; last: %s)", deadline, attempts(res.Attempts), last)
			return res
		}
	}
}

func attempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}

// attempt posts body once, signed at the time it is sent.
func (k *Checker) attempt(ctx context.Context, target string, timeout time.Duration, id string, secrets []string, body []byte) result {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := retryablehttp.NewRequestWithContext(actx, http.MethodPost, target, body)
	if err != nil {
		return result{}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderEvent, EventCheck)
	req.Header.Set(HeaderDelivery, id)
	req.Header.Set(HeaderSignature, Sign(secrets, k.now(), body))
	resp, err := k.client.Do(req)
	if err != nil {
		r := describe(err)
		switch {
		case ctx.Err() != nil:
			r.err = "no answer before the deadline"
		case actx.Err() != nil:
			r.err = fmt.Sprintf("no answer within the timeout %s", timeout)
		}
		if r.err == "" {
			r.err = "the request failed"
		}
		return r
	}
	return answered(resp)
}

// backoff is the wait before the next attempt after the n-th failed one, and whether the
// hook asked for it (Retry-After on a 429 or 503, which is not capped).
func (k *Checker) backoff(n int, resp *http.Response) (time.Duration, bool) {
	if resp != nil && isRetryAfterStatus(resp.StatusCode) && resp.Header.Get("Retry-After") != "" {
		d := retryablehttp.DefaultBackoff(k.opts.minBackoff, k.opts.maxBackoff, n-1, resp)
		return d, true
	}
	base := retryablehttp.DefaultBackoff(k.opts.minBackoff, k.opts.maxBackoff, n-1, nil)
	half := base / 2
	return half + rand.N(base-half+1), false
}

// Snippet is up to n bytes of b a person can read: printable ASCII, with every run of
// other bytes (control characters, line breaks, UTF-8) made one space, trimmed, and "..."
// after it when it was cut.
func Snippet(b []byte, n int) string {
	var sb strings.Builder
	space := false
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == ' ' {
			space = sb.Len() > 0
			continue
		}
		if space {
			if sb.Len()+1 >= n {
				break
			}
			sb.WriteByte(' ')
			space = false
		}
		if sb.Len() >= n {
			break
		}
		sb.WriteByte(c)
	}
	out := sb.String()
	if len(out) >= n && len(strings.TrimSpace(string(b))) > len(out) {
		out += "..."
	}
	return out
}

// Secrets returns the secrets that sign app's check requests now: the current one (made
// now if the app has none yet), and the previous one during its grace.
func (k *Checker) Secrets(ctx context.Context, app string) ([]string, error) {
	s, err := k.Secret(ctx, app)
	if err != nil {
		return nil, err
	}
	out := []string{s.Secret}
	if s.PreviousSecret != "" {
		out = append(out, s.PreviousSecret)
	}
	return out, nil
}

// ChecksSecret is what signs an app's check requests.
type ChecksSecret struct {
	Secret string
	// PreviousSecret, while a rotated-out secret still signs, is that secret, until
	// PreviousExpiresAt.
	PreviousSecret    string
	PreviousExpiresAt *time.Time
}

// Secret returns app's checks secret, made now if it has none yet.
func (k *Checker) Secret(ctx context.Context, app string) (ChecksSecret, error) {
	key := store.ChecksSecretKey(app)
	if err := k.rdb.HSetNX(ctx, key, "secret", newSecret()).Err(); err != nil {
		return ChecksSecret{}, fmt.Errorf("making the checks secret of %s: %w", app, err)
	}
	vals, err := k.rdb.HMGet(ctx, key, "secret", "prev_secret", "prev_expires").Result()
	if err != nil {
		return ChecksSecret{}, fmt.Errorf("reading the checks secret of %s: %w", app, err)
	}
	cur, _ := vals[0].(string)
	if cur == "" {
		return ChecksSecret{}, errors.New("the checks secret of " + app + " vanished")
	}
	out := ChecksSecret{Secret: cur}
	prev, _ := vals[1].(string)
	exp, _ := vals[2].(string)
	if n, err := strconv.ParseInt(exp, 10, 64); err == nil && prev != "" && n > k.now().UnixMilli() {
		t := time.UnixMilli(n).UTC()
		out.PreviousSecret, out.PreviousExpiresAt = prev, &t
	}
	return out, nil
}

// rotateChecksScript makes a new checks secret current and keeps the old one until a
// time; an app without a secret gets the new one alone.
//
//	KEYS  checks secret hash
//	ARGV  new secret, when the old one expires (ms)
var rotateChecksScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'secret')
if cur then
  redis.call('HSET', KEYS[1], 'prev_secret', cur, 'prev_expires', ARGV[2], 'secret', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'secret', ARGV[1])
end
return 1
`)

// RotateSecret gives app a new checks secret and returns it. The old one keeps signing,
// next to the new, for the secret grace; a second rotation within the grace ends the
// oldest at once.
func (k *Checker) RotateSecret(ctx context.Context, app string) (ChecksSecret, error) {
	secret := newSecret()
	expires := k.now().Add(k.opts.grace).UnixMilli()
	if err := rotateChecksScript.Run(ctx, k.rdb, []string{store.ChecksSecretKey(app)}, secret, expires).Err(); err != nil {
		return ChecksSecret{}, fmt.Errorf("rotating the checks secret of %s: %w", app, err)
	}
	return k.Secret(ctx, app)
}
