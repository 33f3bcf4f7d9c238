package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/builder/source"
	"github.com/slipway/slipway/invalid"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
)

// BuildStore is what the API needs of the build records; *builder.Builds implements it.
type BuildStore interface {
	Get(ctx context.Context, app, id string) (builder.Build, error)
	List(ctx context.Context, app string, status builder.Status, after string, limit int) ([]builder.Build, string, error)
	Cancel(ctx context.Context, app, id string) (builder.Build, bool, error)
	ReadLog(ctx context.Context, blobs store.Blobs, app, id string, offset, max int64) (builder.LogChunk, error)
	Referrers(ctx context.Context, app string, subject store.Digest, artifactType string) ([]builder.Referrer, error)
	Imaged(ctx context.Context, app string) ([]string, error)
	Linked(ctx context.Context, blobs store.Blobs, app string, d store.Digest) (bool, error)
	CosignTag(ctx context.Context, app, tag string) (store.Digest, error)
	CosignTags(ctx context.Context, app string) ([]string, error)
	// Facts are what a diff compares of a succeeded build, cached once read.
	Facts(ctx context.Context, blobs store.Blobs, app, id string) (builder.Facts, error)
}

// BuildIntake is what the API needs to accept builds; *builder.Intake implements it.
type BuildIntake interface {
	Check(req *builder.Request) error
	Spool(ctx context.Context, r io.Reader) (*source.Spooled, error)
	Submit(ctx context.Context, req builder.Request, archive *source.Spooled) (builder.Build, bool, error)
	SubmitURL(ctx context.Context, req builder.Request, rawURL string) (builder.Build, error)
	// Existing is the live build Submit would answer for the source with that digest.
	Existing(ctx context.Context, req builder.Request, sourceDigest string) (builder.Build, bool, error)
}

var (
	_ BuildStore  = (*builder.Builds)(nil)
	_ BuildIntake = (*builder.Intake)(nil)
)

// CreateBuild implements openapi.ServerInterface.
func (s *Server) CreateBuild(c echo.Context, app openapi.AppName, params openapi.CreateBuildParams) error {
	ctx := c.Request().Context()
	if err := checkPathName(app); err != nil {
		return err
	}
	a, err := s.deps.Apps.Get(ctx, app)
	if err != nil {
		return err
	}
	req := builder.Request{
		App:     builder.AppSettings{Name: a.Name, Main: a.Main, Platforms: a.Platforms, Ldflags: a.Ldflags, BaseImage: a.BaseImage},
		Actor:   actor(c),
		ActorID: actorID(c),
	}
	fromURL, jsonBody, err := s.readBuildBody(c, params, &req)
	if err != nil {
		return err
	}
	setBuildParams(&req, params, fromURL)
	normalizedFrom := normalizeVersion(&req.Version)
	if err := s.deps.Intake.Check(&req); err != nil {
		return err
	}

	idem := newIdempotent(s, c, app, params.IdempotencyKey)
	rec, err := idem.begin(ctx)
	if err != nil {
		return err
	}
	if rec != nil {
		return s.replayBuild(c, idem, rec, fromURL, jsonBody)
	}
	status, b, dedup, bodyDigest, err := s.createBuild(c, req, fromURL, jsonBody)
	if err != nil {
		idem.abort()
		return err
	}
	resp := buildResponse(b)
	resp.Deduplicated = dedup
	resp.VersionNormalizedFrom = normalizedFrom
	body, err := json.Marshal(resp)
	if err != nil {
		idem.abort()
		return err
	}
	loc := buildPath(b.App, b.ID)
	idem.complete(IdemRecord{BodyDigest: bodyDigest, Status: status, Location: loc, Body: body})
	c.Response().Header().Set(echo.HeaderLocation, loc)
	return c.JSONBlob(status, body)
}

// readBuildBody sets req's source format from the Content-Type: an archive to read from
// the body, or (application/json) a source URL, whose request it reads and returns with
// the body's bytes.
func (s *Server) readBuildBody(c echo.Context, params openapi.CreateBuildParams, req *builder.Request) (*openapi.BuildFromURL, []byte, error) {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	mt, _, _ := mime.ParseMediaType(ct)
	switch mt {
	case "application/gzip", "application/x-gzip", "application/x-tar+gzip":
		req.Format = source.TarGz
	case "application/zip", "application/x-zip-compressed":
		req.Format = source.Zip
	case "application/json":
		if params.Version != nil || params.Commit != nil || params.Platforms != nil || params.SourceDateEpoch != nil {
			return nil, nil, newProblem(openapi.ProblemInvalidParameter,
				"with a JSON body, give version, commit, platforms and source_date_epoch in the body, not the query")
		}
		fromURL := &openapi.BuildFromURL{}
		jsonBody, err := readJSON(c, s.opts.maxBodyBytes, fromURL)
		if err != nil {
			return nil, nil, err
		}
		req.Format = source.TarGz
		return fromURL, jsonBody, nil
	default:
		return nil, nil, newProblem(openapi.ProblemUnsupportedMediaType,
			"Content-Type %q is not accepted here; send the module as application/gzip (tar.gz) or application/zip, or application/json with a source_url", ct)
	}
	return nil, nil, nil
}

// setBuildParams sets the build's parameters from the JSON request of a source URL, or
// else from the query.
func setBuildParams(req *builder.Request, params openapi.CreateBuildParams, fromURL *openapi.BuildFromURL) {
	if fromURL != nil {
		req.Version, req.Commit = deref(fromURL.Version), deref(fromURL.Commit)
		req.SourceDateEpoch = deref(fromURL.SourceDateEpoch)
		if fromURL.Platforms != nil {
			req.Platforms = *fromURL.Platforms
		}
		return
	}
	req.Version, req.Commit = deref(params.Version), deref(params.Commit)
	req.SourceDateEpoch = deref(params.SourceDateEpoch)
	if params.Platforms != nil {
		req.Platforms = splitList(*params.Platforms)
	}
}

// normalizeVersion drops the v of a version in a git tag's form, *v from v1.4.2 to 1.4.2
// (invalid.NormalizeVersion), and returns what the request gave for the answer's
// version_normalized_from; nil when the version needed nothing.
func normalizeVersion(v *string) *string {
	n, changed := invalid.NormalizeVersion(*v)
	if !changed {
		return nil
	}
	from := *v
	*v = n
	return &from
}

// replayBuild answers a retried request from the record of its first answer, once the
// body is known to be the same: the JSON of a source URL, or the archive, read to its
// digest.
func (s *Server) replayBuild(c echo.Context, idem *idempotent, rec *IdemRecord, fromURL *openapi.BuildFromURL, jsonBody []byte) error {
	if fromURL != nil {
		return idem.replay(c, rec, store.DigestBytes(jsonBody).String())
	}
	// With the digest first, the answer (or the refusal of a reused key) needs no body.
	if claimed, err := reprDigest(c.Request().Header.Get("Repr-Digest")); err != nil || claimed != "" {
		if err != nil {
			return err
		}
		return idem.replay(c, rec, claimed)
	}
	sp, err := s.deps.Intake.Spool(c.Request().Context(), c.Request().Body)
	if err != nil {
		return err
	}
	sp.Remove()
	return idem.replay(c, rec, sp.Digest)
}

// createBuild spools the source and submits it, or queues a build of a source URL for
// the worker to fetch.
func (s *Server) createBuild(c echo.Context, req builder.Request, fromURL *openapi.BuildFromURL, jsonBody []byte) (int, builder.Build, bool, string, error) {
	ctx := c.Request().Context()
	if fromURL != nil {
		b, err := s.deps.Intake.SubmitURL(ctx, req, fromURL.SourceUrl)
		if err != nil {
			return 0, builder.Build{}, false, "", err
		}
		return http.StatusAccepted, b, false, store.DigestBytes(jsonBody).String(), nil
	}
	claimed, err := reprDigest(c.Request().Header.Get("Repr-Digest"))
	if err != nil {
		return 0, builder.Build{}, false, "", err
	}
	if claimed != "" {
		// Digest first: a live identical build answers before the body is read, so the
		// client (waiting on Expect: 100-continue) never sends it.
		b, ok, err := s.deps.Intake.Existing(ctx, req, claimed)
		if err != nil || ok {
			return http.StatusOK, b, true, claimed, err
		}
	}
	sp, err := s.deps.Intake.Spool(ctx, c.Request().Body)
	if err != nil {
		return 0, builder.Build{}, false, "", err
	}
	bodyDigest := sp.Digest
	defer sp.Remove()
	if claimed != "" && claimed != bodyDigest {
		return 0, builder.Build{}, false, "", newProblem(openapi.ProblemDigestMismatch,
			"the body's SHA-256 is %s, but Repr-Digest names %s; nothing was kept", bodyDigest, claimed)
	}
	b, dedup, err := s.deps.Intake.Submit(ctx, req, sp)
	if err != nil {
		return 0, builder.Build{}, false, "", err
	}
	status := http.StatusAccepted
	if dedup {
		status = http.StatusOK
	}
	return status, b, dedup, bodyDigest, nil
}

// ListBuilds implements openapi.ServerInterface.
func (s *Server) ListBuilds(c echo.Context, app openapi.AppName, params openapi.ListBuildsParams) error {
	ctx := c.Request().Context()
	if err := checkPathName(app); err != nil {
		return err
	}
	if _, err := s.deps.Apps.Get(ctx, app); err != nil {
		return err
	}
	limit, err := pageLimit(params.Limit)
	if err != nil {
		return err
	}
	var status builder.Status
	if params.Status != nil {
		status = builder.Status(*params.Status)
		if !slices.Contains(builder.Statuses, status) {
			return newProblem(openapi.ProblemInvalidParameter, "status %q is not one of queued, running, succeeded, failed, canceled", *params.Status)
		}
	}
	after := ""
	if params.Cursor != nil && *params.Cursor != "" {
		if after, err = decodeCursor(*params.Cursor); err != nil {
			return err
		}
	}
	builds, next, err := s.deps.Builds.List(ctx, app, status, after, limit)
	if err != nil {
		return err
	}
	out := openapi.BuildList{Items: make([]openapi.Build, 0, len(builds))}
	for _, b := range builds {
		out.Items = append(out.Items, buildResponse(b))
	}
	if next != "" {
		out.NextCursor = ptr(encodeCursor(next))
	}
	return c.JSON(http.StatusOK, out)
}

// GetBuild implements openapi.ServerInterface.
func (s *Server) GetBuild(c echo.Context, app openapi.AppName, id openapi.BuildID) error {
	b, err := s.build(c, app, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, buildResponse(b))
}

func (s *Server) build(c echo.Context, app, id string) (builder.Build, error) {
	if err := checkPathName(app); err != nil {
		return builder.Build{}, err
	}
	return s.deps.Builds.Get(c.Request().Context(), app, id)
}

// CancelBuild implements openapi.ServerInterface.
func (s *Server) CancelBuild(c echo.Context, app openapi.AppName, id openapi.BuildID) error {
	if err := checkPathName(app); err != nil {
		return err
	}
	b, done, err := s.deps.Builds.Cancel(c.Request().Context(), app, id)
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if done {
		status = http.StatusOK
	}
	return c.JSON(status, buildResponse(b))
}

// logWatcher is a BuildStore that can wake a follower of a build's log when the log grows
// or the build's status changes; *builder.Builds is one.
type logWatcher interface {
	WatchLog(ctx context.Context, app, id string) (<-chan struct{}, func())
}

var _ logWatcher = (*builder.Builds)(nil)

// logChunkSize is how much of a log one read takes; logPoll how often a follower looks
// for more when no wake-up (logWatcher) comes.
const (
	logChunkSize = 64 << 10
	logPoll      = 200 * time.Millisecond
)

// GetBuildLog implements openapi.ServerInterface.
func (s *Server) GetBuildLog(c echo.Context, app openapi.AppName, id openapi.BuildID, params openapi.GetBuildLogParams) error {
	ctx := c.Request().Context()
	if err := checkPathName(app); err != nil {
		return err
	}
	offset := deref(params.Offset)
	if offset < 0 {
		return newProblem(openapi.ProblemInvalidParameter, "offset %d is negative", offset)
	}
	follow := deref(params.Follow)
	// A follower watches for changes before its first read, so none is missed; it still
	// polls, in case a wake-up is lost.
	var wake <-chan struct{}
	if lw, ok := s.deps.Builds.(logWatcher); ok && follow {
		var stop func()
		wake, stop = lw.WatchLog(ctx, app, id)
		defer stop()
	}
	first, err := s.deps.Builds.ReadLog(ctx, s.deps.Blobs, app, id, offset, logChunkSize)
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/plain; charset=utf-8")
	w.Header().Set("Slipway-Build-Status", string(first.Status))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Flush() // a follower of a queued build learns at once that the build exists
	revoked, stop := s.watchCredential(c)
	defer stop()
	chunk := first
	for {
		select {
		case <-revoked:
			return nil // the token was revoked: the stream ends
		default:
		}
		if len(chunk.Data) > 0 {
			if _, err := w.Write(chunk.Data); err != nil {
				return nil // the client went away
			}
			w.Flush()
			offset += int64(len(chunk.Data))
		}
		if chunk.Done || (!follow && len(chunk.Data) < logChunkSize) {
			return nil
		}
		if len(chunk.Data) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-revoked:
				return nil
			case <-wake:
			case <-time.After(logPoll):
			}
		}
		chunk, err = s.deps.Builds.ReadLog(ctx, s.deps.Blobs, app, id, offset, logChunkSize)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "following a build log", "build", id, "err", err, "request_id", requestID(c))
			}
			return nil // the response has begun; it can only end
		}
	}
}

// GetBuildChecksums implements openapi.ServerInterface.
func (s *Server) GetBuildChecksums(c echo.Context, app openapi.AppName, id openapi.BuildID) error {
	b, err := s.build(c, app, id)
	if err != nil {
		return err
	}
	if b.Status != builder.StatusSucceeded {
		return newProblem(openapi.ProblemConflict, "build %s is %s; only a succeeded build has checksums", id, b.Status)
	}
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", builder.Checksums(b))
}

// GetArtifact implements openapi.ServerInterface.
func (s *Server) GetArtifact(c echo.Context, app openapi.AppName, id openapi.BuildID, os, arch string) error {
	return s.serveArtifact(c, app, id, os+"/"+arch)
}

// GetArtifactVariant implements openapi.ServerInterface.
func (s *Server) GetArtifactVariant(c echo.Context, app openapi.AppName, id openapi.BuildID, os, arch, variant string) error {
	return s.serveArtifact(c, app, id, os+"/"+arch+"/"+variant)
}

func (s *Server) serveArtifact(c echo.Context, app, id, platform string) error {
	b, err := s.build(c, app, id)
	if err != nil {
		return err
	}
	p, err := gobuild.ParsePlatform(platform)
	if err != nil {
		return newProblem(openapi.ProblemNotFound, "%s", err.Error())
	}
	a, ok := b.Artifact(p.String())
	if !ok {
		if b.Status != builder.StatusSucceeded {
			return newProblem(openapi.ProblemNotFound, "build %s is %s and has no artifacts yet", id, b.Status)
		}
		return newProblem(openapi.ProblemNotFound, "build %s has no %s artifact; it built %s", id, p, strings.Join(b.Platforms, ", "))
	}
	d, err := store.ParseDigest(a.Digest)
	if err != nil {
		return err
	}
	rc, err := builder.OpenArtifact(c.Request().Context(), s.deps.Blobs, b.App, a)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := c.Response().Header()
	h.Set("Repr-Digest", d.ReprDigest())
	h.Set(headerETag, `"`+d.String()+`"`)
	h.Set("Content-Disposition", `attachment; filename="`+artifactName(b.App, a.Platform)+`"`)
	h.Set(echo.HeaderContentLength, fmt.Sprint(a.Size))
	return c.Stream(http.StatusOK, "application/octet-stream", rc)
}

// artifactName is the file name of a platform's binary: hello_linux_arm64 (with .exe
// for windows).
func artifactName(app, platform string) string { return builder.ArtifactName(app, platform) }

func buildPath(app, id string) string { return "/v1/apps/" + app + "/builds/" + id }

func buildResponse(b builder.Build) openapi.Build {
	out := openapi.Build{
		Id:              b.ID,
		App:             b.App,
		Status:          openapi.BuildStatus(b.Status),
		Version:         b.Version,
		Platforms:       b.Platforms,
		Main:            b.Main,
		SourceDigest:    b.SourceDigest,
		SourceUrl:       nonEmpty(b.SourceURL),
		SourceDateEpoch: b.SourceDateEpoch,
		GoVersion:       b.GoVersion,
		CreatedAt:       b.CreatedAt,
		StartedAt:       b.StartedAt,
		FinishedAt:      b.FinishedAt,
		Attempts:        b.Attempts,
		Artifacts:       make([]openapi.Artifact, 0, len(b.Artifacts)),
		Timings: openapi.BuildTimings{
			QueuedMs: b.Timings.QueuedMS, SourceMs: b.Timings.SourceMS, CompileMs: b.Timings.CompileMS,
			UploadMs: b.Timings.UploadMS, ImageMs: b.Timings.ImageMS, TotalMs: b.Timings.TotalMS,
		},
	}
	if b.Commit != "" {
		out.Commit = ptr(b.Commit)
	}
	for _, a := range b.Artifacts {
		out.Artifacts = append(out.Artifacts, openapi.Artifact{Platform: a.Platform, Digest: a.Digest, Size: a.Size})
	}
	if b.Image != nil {
		img := &openapi.BuildImage{Digest: b.Image.Digest, Manifests: make([]openapi.ImageManifest, len(b.Image.Manifests)),
			Sbom: optional(b.Image.SBOM), SbomReferrer: optional(b.Image.SBOMReferrer)}
		for i, m := range b.Image.Manifests {
			img.Manifests[i] = openapi.ImageManifest{Platform: m.Platform, Digest: m.Digest,
				Sbom: optional(m.SBOM), SbomReferrer: optional(m.SBOMReferrer)}
		}
		out.Image = img
	}
	if sg := b.Signing; sg != nil {
		out.Signing = &openapi.BuildSigning{KeyId: sg.KeyID, Signature: sg.Signature,
			Attestation: sg.Attestation, Provenance: sg.Provenance}
	}
	if b.BaseImage != "" {
		out.BaseImage = ptr(b.BaseImage)
	}
	if b.Error != nil {
		out.Error = &openapi.BuildError{Reason: openapi.BuildErrorReason(b.Error.Reason), Detail: b.Error.Detail}
		if b.Error.Platform != "" {
			out.Error.Platform = ptr(b.Error.Platform)
		}
	}
	return out
}

// optional is s, or nil when it is empty: a field the response leaves out.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

// nonEmpty is s, or nil when s is empty (an optional field left out).
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// idempotent carries one request's Idempotency-Key through its handler.
type idempotent struct {
	s   *Server
	app string
	key string
	// head fingerprints the request's method, path, query and media type.
	head  string
	owned bool
	ctx   context.Context
}

func newIdempotent(s *Server, c echo.Context, app string, key *string) *idempotent {
	i := &idempotent{s: s, app: app, ctx: context.WithoutCancel(c.Request().Context())}
	if key == nil || s.deps.Idempotency == nil {
		return i
	}
	i.key = *key
	r := c.Request()
	mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var canon bytes.Buffer
	canon.WriteString(r.Method + " " + r.URL.Path + "\n" + mt + "\n")
	for _, k := range keys {
		vs := q[k]
		slices.Sort(vs)
		for _, v := range vs {
			canon.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(v) + "\n")
		}
	}
	sum := sha256.Sum256(canon.Bytes())
	i.head = hex.EncodeToString(sum[:])
	return i
}

// begin reserves the key. It returns the earlier request's record when there is one, or
// an error problem when the key is in use by a different request or one in flight.
func (i *idempotent) begin(ctx context.Context) (*IdemRecord, error) {
	if i.key == "" {
		return nil, nil
	}
	if len(i.key) > 255 {
		return nil, newProblem(openapi.ProblemInvalidParameter, "Idempotency-Key is longer than 255 characters")
	}
	rec, err := i.s.deps.Idempotency.Begin(ctx, i.app, i.key, i.head)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		i.owned = true
		return nil, nil
	}
	if rec.Head != i.head {
		return nil, newProblem(openapi.ProblemIdempotencyKeyReused,
			"Idempotency-Key %q was used for a different request; use a new key for a new request", i.key)
	}
	if rec.State != IdemDone {
		return nil, newProblem(openapi.ProblemIdempotencyInFlight,
			"a request with Idempotency-Key %q is still being answered; retry in a moment", i.key)
	}
	return rec, nil
}

// replay answers with the first request's answer, if this request's body is the same.
func (i *idempotent) replay(c echo.Context, rec *IdemRecord, bodyDigest string) error {
	if rec.BodyDigest != bodyDigest {
		return newProblem(openapi.ProblemIdempotencyKeyReused,
			"Idempotency-Key %q was used with a different body; use a new key for a new request", i.key)
	}
	if rec.Location != "" {
		c.Response().Header().Set(echo.HeaderLocation, rec.Location)
	}
	c.Response().Header().Set("Idempotent-Replayed", "true")
	return c.JSONBlob(rec.Status, rec.Body)
}

func (i *idempotent) complete(rec IdemRecord) {
	if !i.owned {
		return
	}
	if err := i.s.deps.Idempotency.Complete(i.ctx, i.app, i.key, rec); err != nil {
		i.s.log.Warn("recording an idempotent answer", "err", err)
	}
}

func (i *idempotent) abort() {
	if !i.owned {
		return
	}
	if err := i.s.deps.Idempotency.Abort(i.ctx, i.app, i.key); err != nil {
		i.s.log.Warn("freeing an idempotency key", "err", err)
	}
}
