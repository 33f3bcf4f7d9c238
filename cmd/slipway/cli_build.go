package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
)

// cmdBuild is `slipway build`.
func cmdBuild(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	f, err := parseBuildFlags(e, cmd, args)
	if err != nil {
		return err
	}
	c, err := f.cf.client(e)
	if err != nil {
		return err
	}
	tree, err := listSource(f.dir)
	if errors.Is(err, errNoGoMod) {
		return &usageError{err.Error()}
	}
	if err != nil {
		return err
	}
	for _, s := range tree.skipped {
		fmt.Fprintf(e.stderr, "slipway: leaving out %s: not a regular file\n", s)
	}
	if err := f.useAppFile(ctx, e, c); err != nil {
		return err
	}
	b, raw, err := f.upload(ctx, e, c, tree)
	if err != nil {
		return err
	}
	out := buildOutput{json: f.cf.json, raw: map[string]json.RawMessage{"build": raw}}
	if f.follow && !terminal(b.Status) {
		b, raw, err = c.followLog(ctx, e.stderr, f.app, b.Id)
		if err != nil {
			return err
		}
		out.raw["build"] = raw
	}
	res := &buildResult{build: b, image: imageRef(c, f.app, b)}
	err = f.finish(ctx, e, c, res, &out)
	if werr := f.writeCIFiles(c, res); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}

// finish prints the build that res holds and, once it succeeded, releases and promotes
// it as the flags say, adding the release and the move to res.
func (f *buildFlags) finish(ctx context.Context, e *cliEnv, c *client, res *buildResult, out *buildOutput) error {
	b := res.build
	out.add("build", b.Id)
	out.add("status", string(b.Status))
	if b.Image != nil {
		out.add("image", b.Image.Digest)
	}
	if terminal(b.Status) && b.Status != openapi.BuildStatusSucceeded {
		if err := out.write(e.stdout); err != nil {
			return err
		}
		return &buildFailedError{build: b, logShown: f.follow}
	}
	if !f.release {
		return out.write(e.stdout)
	}
	rel, err := f.releaseBuild(ctx, e, c, b, out)
	if err != nil {
		return err
	}
	res.release = rel
	if f.promote == "" {
		return out.write(e.stdout)
	}
	if res.move, err = f.promoteRelease(ctx, e, c, rel, out); err != nil {
		return err
	}
	return out.write(e.stdout)
}

// buildFlags are the flags and the argument of `slipway build`.
type buildFlags struct {
	cf                                    clientFlags
	platforms                             stringList
	app, version, commit, promote, reason string
	release, follow, noApply              bool
	dir                                   string // the module's directory
	// idemKey is the caller's key (a CI run and attempt) mixed into the build's
	// Idempotency-Key; summary and dotenv are the files --summary and --dotenv name.
	idemKey, summary, dotenv string
}

// parseBuildFlags reads build's command line; --promote implies --release, which
// implies --follow, as --summary and --dotenv do.
func parseBuildFlags(e *cliEnv, cmd *clientCommand, args []string) (*buildFlags, error) {
	f := &buildFlags{dir: "."}
	fs := newFlagSet(cmd, &f.cf, false)
	fs.StringVar(&f.app, "app", "", "the app to build (default: the app of DIR/slipway.yaml; required without one)")
	fs.BoolVar(&f.noApply, "no-apply", false, "take the app's name from slipway.yaml but leave the app on the server as it is")
	fs.Var(&f.platforms, "platform", "a platform to build, GOOS/GOARCH[/variant]; repeat it or separate with commas (default: the app's)")
	fs.StringVar(&f.version, "version", "", "the build's SemVer version (default 0.0.0-<build id>); also the release's")
	fs.StringVar(&f.commit, "commit", "", "the source's commit, for {{.Commit}} in the app's ldflags")
	fs.BoolVar(&f.release, "release", false, "release the build once it succeeds (implies --follow)")
	fs.StringVar(&f.promote, "promote", "", "promote the release to channel `CH` (implies --release)")
	fs.StringVar(&f.reason, "reason", "", "the reason --promote records in the channel's history (default: slipway build --promote)")
	fs.BoolVar(&f.follow, "follow", false, "stream the build log to stderr and wait for the build to end")
	fs.StringVar(&f.idemKey, "idempotency-key", "", "a `KEY` of the caller's, such as a CI run's id and attempt, mixed into the build's Idempotency-Key: the same key and source get the first answer, another key a new build unless one with the same inputs is running or succeeded")
	fs.StringVar(&f.summary, "summary", "", "append a Markdown summary of the build (image, platforms, digests, sizes, log) to `FILE`, such as $GITHUB_STEP_SUMMARY (implies --follow)")
	fs.StringVar(&f.dotenv, "dotenv", "", "append SLIPWAY_BUILD_ID, SLIPWAY_BUILD_VERSION, SLIPWAY_IMAGE_DIGEST, SLIPWAY_IMAGE and SLIPWAY_RELEASE_VERSION lines to `FILE`, a dotenv file (implies --follow)")
	pos, err := parseArgs(fs, e, cmd, args, 0, 1)
	if err != nil {
		return nil, err
	}
	if len(pos) == 1 {
		f.dir = pos[0]
	}
	f.release = f.release || f.promote != ""
	f.follow = f.follow || f.release || f.summary != "" || f.dotenv != ""
	if f.reason == "" {
		f.reason = "slipway build --promote"
	}
	return f, nil
}

// useAppFile reads DIR/slipway.yaml, if there is one: it names the app when --app does
// not, and unless --no-apply the app on the server is created or updated to match it
// before the upload (applyAppFile). Without the file, --app is required.
func (f *buildFlags) useAppFile(ctx context.Context, e *cliEnv, c *client) error {
	af, found, err := readAppFile(f.dir)
	if err != nil {
		return err
	}
	if !found {
		if f.app == "" {
			return &usageError{fmt.Sprintf("build needs --app, or a %s in %s naming the app (slipway init writes one)", appFileName, f.dir)}
		}
		return nil
	}
	if f.app != "" && f.app != af.App {
		return &usageError{fmt.Sprintf("%s is for app %s, but --app is %s; leave --app out, or edit the file", filepath.Join(f.dir, appFileName), af.App, f.app)}
	}
	f.app = af.App
	if f.noApply {
		return nil
	}
	did, err := c.applyAppFile(ctx, af)
	if did != "" {
		fmt.Fprintln(e.stderr, "slipway: "+did)
	}
	return err
}

// upload packs the module and sends it as a new build, saying what it sends and what the
// server made of it on stderr.
func (f *buildFlags) upload(ctx context.Context, e *cliEnv, c *client, tree *sourceTree) (openapi.Build, []byte, error) {
	// Pack once to learn the archive's digest and size: the digest goes into the
	// Idempotency-Key, which is sent before the body; the upload packs it again.
	h := sha256.New()
	cw := &countingWriter{w: h}
	if err := tree.writeTarGz(cw); err != nil {
		return openapi.Build{}, nil, err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	var bar *progressBar
	if isTerminal(e.stderr) {
		fmt.Fprintf(e.stderr, "slipway: uploading %s to %s: %d files, %s\n", f.dir, c.base.Redacted(), tree.files, humanBytes(cw.n))
		bar = &progressBar{w: e.stderr, total: cw.n}
	}
	b, raw, err := c.uploadSource(ctx, f.app, tree, digest, f.buildParams(digest), bar)
	if err != nil {
		return openapi.Build{}, nil, err
	}
	fmt.Fprintf(e.stderr, "slipway: uploaded %s (%d files, %s): build %s is %s\n", f.dir, tree.files, humanBytes(cw.n), b.Id, b.Status)
	if b.VersionNormalizedFrom != nil {
		fmt.Fprintf(e.stderr, "slipway: version %s is taken as %s\n", *b.VersionNormalizedFrom, b.Version)
	}
	if b.Deduplicated {
		fmt.Fprintf(e.stderr, "slipway: build %s has the same inputs; that build is the answer\n", b.Id)
	}
	return b, raw, nil
}

// buildParams are the query of the build request of the archive with digest.
func (f *buildFlags) buildParams(digest string) *openapi.CreateBuildParams {
	parts := []string{"build", f.app, digest, strings.Join(f.platforms, ","), f.version, f.commit}
	if f.idemKey != "" {
		parts = append(parts, f.idemKey)
	}
	params := &openapi.CreateBuildParams{
		IdempotencyKey: idempotencyKey(parts...),
		Version:        optional(f.version),
		Commit:         optional(f.commit),
		ReprDigest:     reprDigestField(digest),
	}
	if len(f.platforms) > 0 {
		params.Platforms = ptr(strings.Join(f.platforms, ","))
	}
	return params
}

// reprDigestField is the Repr-Digest field (RFC 9530) of the archive with digest
// "sha256:<hex>": sent first, with Expect: 100-continue, it lets the server answer a
// source it has a live build of before the body is sent.
func reprDigestField(digest string) *string {
	d, err := store.ParseDigest(digest)
	if err != nil {
		return nil
	}
	return ptr(d.ReprDigest())
}

// releaseBuild releases build b and adds the release to out; when the request fails, it
// prints out before it returns the error.
func (f *buildFlags) releaseBuild(ctx context.Context, e *cliEnv, c *client, b openapi.Build, out *buildOutput) (*openapi.Release, error) {
	rr, err := c.api.CreateReleaseWithResponse(ctx, f.app,
		&openapi.CreateReleaseParams{IdempotencyKey: idempotencyKey("release", f.app, b.Id, f.version)},
		openapi.ReleaseInput{BuildId: b.Id, Version: optional(f.version)})
	if err != nil {
		return nil, errors.Join(out.write(e.stdout), fmt.Errorf("releasing build %s: %w", b.Id, err))
	}
	rel := rr.JSON201
	if rel == nil {
		rel = rr.JSON200
	}
	if rel == nil {
		return nil, unexpected("releasing", rr.HTTPResponse, rr.Body)
	}
	out.raw["release"] = rr.Body
	out.add("release", rel.Version)
	return rel, nil
}

// promoteRelease promotes rel to the channel of --promote and adds the move to out; when
// that fails, it prints out before it returns the error.
func (f *buildFlags) promoteRelease(ctx context.Context, e *cliEnv, c *client, rel *openapi.Release, out *buildOutput) (*openapi.ChannelMove, error) {
	ch, err := c.getChannel(ctx, f.app, f.promote)
	if err != nil {
		return nil, errors.Join(out.write(e.stdout), fmt.Errorf("reading channel %s: %w", f.promote, err))
	}
	mv, mraw, err := c.move(ctx, f.app, f.promote, ch.Generation, channelAction{
		kind: "promote",
		body: openapi.PromoteInput{Version: &rel.Version, Reason: &f.reason},
	})
	if err != nil {
		return nil, errors.Join(out.write(e.stdout), fmt.Errorf("promoting %s to %s: %w", rel.Version, f.promote, err))
	}
	out.raw["promotion"] = mraw
	out.add("promoted", moveSummary(f.app, "promote", mv))
	return mv, nil
}

// optional is nil for "", else a pointer to s.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// buildOutput is what build prints to stdout: aligned "key value" lines, or with --json
// the API's answers as received in one object (build, release, promotion).
type buildOutput struct {
	json  bool
	lines [][2]string
	raw   map[string]json.RawMessage
}

func (o *buildOutput) add(k, v string) { o.lines = append(o.lines, [2]string{k, v}) }

func (o *buildOutput) write(w io.Writer) error {
	if o.json {
		b, err := json.Marshal(o.raw)
		if err != nil {
			return fmt.Errorf("writing JSON: %w", err)
		}
		return writeJSON(w, b)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range o.lines {
		fmt.Fprintf(tw, "%s\t%s\n", l[0], l[1])
	}
	return tw.Flush()
}

// terminal reports whether a build has ended.
func terminal(s openapi.BuildStatus) bool {
	return s == openapi.BuildStatusSucceeded || s == openapi.BuildStatusFailed || s == openapi.BuildStatusCanceled
}

// uploadSource streams the tree, packed a second time on the way, as the body of
// POST /v1/apps/{app}/builds. If the archive comes out other than the one whose digest
// is in the Idempotency-Key (a file changed meanwhile) the upload is cut short, so that
// the server builds nothing. It returns the build and the answer as received.
func (c *client) uploadSource(ctx context.Context, app string, tree *sourceTree, digest string, params *openapi.CreateBuildParams, bar *progressBar) (openapi.Build, []byte, error) {
	pr, pw := io.Pipe()
	packed := make(chan error, 1)
	go func() {
		h := sha256.New()
		err := tree.writeTarGz(io.MultiWriter(pw, h))
		if err == nil && "sha256:"+hex.EncodeToString(h.Sum(nil)) != digest {
			err = fmt.Errorf("%s changed while it was uploaded; run the command again", tree.dir)
		}
		packed <- err
		pw.CloseWithError(err) // nil: the body ends
	}()
	// Hidden behind a plain Reader so that the transport closing the body does not look
	// like a failed pack: the upload is over only when CloseWithError says so below.
	var body io.Reader = struct{ io.Reader }{pr}
	if bar != nil {
		bar.r = pr
		body = bar
	}
	// Expect: 100-continue lets the server refuse (unknown app, bad version, no token)
	// before the body is sent.
	expect := func(_ context.Context, req *http.Request) error {
		req.Header.Set("Expect", "100-continue")
		return nil
	}
	resp, err := c.api.CreateBuildWithBodyWithResponse(ctx, app, params, "application/gzip", body, expect)
	pr.CloseWithError(errUploadOver)
	if perr := <-packed; perr != nil && !errors.Is(perr, errUploadOver) {
		return openapi.Build{}, nil, fmt.Errorf("packing %s: %w", tree.dir, perr)
	}
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return openapi.Build{}, nil, fmt.Errorf("uploading the source of %s: %w", app, err)
	}
	b := resp.JSON202
	if b == nil {
		b = resp.JSON200
	}
	if b == nil {
		return openapi.Build{}, nil, unexpected("uploading the source", resp.HTTPResponse, resp.Body)
	}
	return *b, resp.Body, nil
}

// followLog copies the build's log to w as it is written and returns the build once it
// has ended. A dropped stream is resumed from the byte it reached.
func (c *client) followLog(ctx context.Context, w io.Writer, app, id string) (openapi.Build, []byte, error) {
	var offset int64
	retries := 0
	follow := true
	for {
		n, streamErr := c.streamLog(ctx, w, app, id, offset, follow)
		offset += n
		if ctx.Err() != nil {
			return openapi.Build{}, nil, ctx.Err()
		}
		var ae *apiError
		if errors.As(streamErr, &ae) {
			return openapi.Build{}, nil, fmt.Errorf("following the log of build %s: %w", id, streamErr)
		}
		if streamErr == nil {
			// The server ends the response when the build ends (or when it cannot read
			// more of the log): ask which.
			r, err := c.api.GetBuildWithResponse(ctx, app, id)
			if err == nil && r.JSON200 != nil && terminal(r.JSON200.Status) {
				if !follow {
					return *r.JSON200, r.Body, nil
				}
				// Read what was written between the stream's end and now, then stop.
				follow = false
				continue
			}
			if err != nil {
				streamErr = err
			}
		}
		if n > 0 {
			retries = 0
		}
		retries++
		if retries > 8 {
			if streamErr == nil {
				streamErr = errors.New("the log stream keeps ending before the build does")
			}
			return openapi.Build{}, nil, fmt.Errorf("following the log of build %s: %w", id, streamErr)
		}
		if streamErr != nil {
			fmt.Fprintf(w, "\nslipway: the log stream dropped (%s); resuming at byte %d\n", networkCause(streamErr), offset)
		}
		select {
		case <-ctx.Done():
			return openapi.Build{}, nil, ctx.Err()
		case <-time.After(time.Duration(retries) * 500 * time.Millisecond):
		}
	}
}

// streamLog copies one response of GET .../log from offset to w and returns how many
// bytes it copied; a nil error means the server ended the response.
func (c *client) streamLog(ctx context.Context, w io.Writer, app, id string, offset int64, follow bool) (int64, error) {
	resp, err := c.api.GetBuildLog(ctx, app, id, &openapi.GetBuildLogParams{Follow: &follow, Offset: &offset})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}

// unexpected is an answer the API does not describe.
func unexpected(what string, resp *http.Response, body []byte) error {
	status := 0
	ct := ""
	if resp != nil {
		status, ct = resp.StatusCode, resp.Header.Get("Content-Type")
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return fmt.Errorf("%s: unexpected answer HTTP %d %s: %q", what, status, ct, body)
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// progressBar draws an upload's progress on a terminal as its body is read.
type progressBar struct {
	r     io.Reader
	w     io.Writer
	total int64
	n     int64
	drawn time.Time
}

func (p *progressBar) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if now := time.Now(); now.Sub(p.drawn) >= 100*time.Millisecond {
		p.drawn = now
		p.draw()
	}
	return n, err
}

func (p *progressBar) draw() {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(p.n)/float64(p.total), 1)
	}
	full := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %s / %s ", strings.Repeat("=", full), strings.Repeat(" ", width-full), frac*100, humanBytes(p.n), humanBytes(p.total))
}

func (p *progressBar) finish() {
	p.draw()
	fmt.Fprintln(p.w)
}

// humanBytes is n in B, KiB, MiB or GiB.
func humanBytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

func ptr[T any](v T) *T { return &v }
