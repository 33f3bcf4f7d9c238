package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/builder/source"
	"github.com/slipway/slipway/store"
)

// AppSettings are the parts of an app's configuration a build uses.
type AppSettings struct {
	Name      string
	Main      string
	Platforms []string
	Ldflags   string
	BaseImage string // "" for the built-in base
}

// Request is a build request, its parameters parsed but not yet checked.
type Request struct {
	App             AppSettings
	Version         string   // "" for 0.0.0-<build id>
	Commit          string   //
	Platforms       []string // nil for the app's
	SourceDateEpoch int64
	Format          source.Format
	// Actor names who asked for the build, for its events.
	Actor string
	// ActorID is the identity behind Actor: a token's id, admin or anonymous.
	ActorID string
}

// Intake turns requests and uploaded sources into queued builds.
type Intake struct {
	builds    *Builds
	queue     *Queue
	blobs     store.Blobs
	toolchain *gobuild.Toolchain
	limits    source.Limits
	spoolDir  string
	now       func() time.Time
}

// IntakeOptions configure an Intake.
type IntakeOptions struct {
	// Limits on source archives. Default source.DefaultLimits().
	Limits source.Limits
	// SpoolDir is where uploads are kept while they are checked. Required.
	SpoolDir string
}

// NewIntake returns the intake that records builds in builds, stores sources in blobs,
// and checks them against the toolchain.
func NewIntake(builds *Builds, blobs store.Blobs, tc *gobuild.Toolchain, opts IntakeOptions) (*Intake, error) {
	if opts.SpoolDir == "" {
		return nil, errors.New("intake needs a spool directory")
	}
	if err := os.MkdirAll(opts.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating spool directory: %w", err)
	}
	if opts.Limits == (source.Limits{}) {
		opts.Limits = source.DefaultLimits()
	}
	return &Intake{
		builds: builds, queue: NewQueue(builds.rdb), blobs: blobs, toolchain: tc, limits: opts.Limits, spoolDir: opts.SpoolDir, now: time.Now,
	}, nil
}

// Spool copies an uploaded archive to a temporary file, refusing more than the
// compressed-size limit (source.ErrTooLarge). The caller removes it.
func (in *Intake) Spool(ctx context.Context, r io.Reader) (*source.Spooled, error) {
	return source.Spool(ctx, r, in.spoolDir, in.limits.MaxCompressed)
}

// Check validates the request's parameters and fills in the app's defaults, before any
// source is read. Problems are an *invalid.Error naming the parameter.
func (in *Intake) Check(req *Request) error {
	if req.Version != "" {
		if err := ValidateVersion(req.Version); err != nil {
			return invalidField("version", err.Error())
		}
	}
	if req.Commit != "" {
		if err := ValidateCommit(req.Commit); err != nil {
			return invalidField("commit", err.Error())
		}
	}
	if req.SourceDateEpoch < 0 {
		return invalidField("source_date_epoch", "must be 0 or more (Unix seconds)")
	}
	if req.Platforms == nil {
		req.Platforms = req.App.Platforms
	}
	if len(req.Platforms) == 0 {
		return invalidField("platforms", "at least one platform is needed")
	}
	norm := make([]string, 0, len(req.Platforms))
	for _, p := range req.Platforms {
		n, err := in.toolchain.CheckPlatform(p)
		if err != nil {
			return invalidField("platforms", err.Error())
		}
		if slices.Contains(norm, n) {
			return invalidField("platforms", fmt.Sprintf("%s is listed twice", p))
		}
		norm = append(norm, n)
	}
	req.Platforms = norm
	if _, err := gobuild.RenderLdflags(req.App.Ldflags, in.ldflagsVars(req, "")); err != nil {
		return invalidField("ldflags", err.Error())
	}
	return nil
}

func (in *Intake) ldflagsVars(req *Request, version string) gobuild.LdflagsVars {
	return gobuild.LdflagsVars{
		Version: version,
		Commit:  req.Commit,
		Date:    time.Unix(req.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
		App:     req.App.Name,
	}
}

// Submit checks the spooled archive and queues a build of it. When a live build with the
// same inputs exists it queues nothing and returns that build with deduplicated true.
// A refused source is a *SourceError; nothing is stored for it.
func (in *Intake) Submit(ctx context.Context, req Request, archive *source.Spooled) (Build, bool, error) {
	// A live build of the same inputs has passed every check below already, so it is
	// looked up first: resubmitting a large module costs one Redis read, not a
	// decompress-and-walk of the whole archive.
	inputHash := in.inputHash(req, archive.Digest)
	if b, ok, err := in.live(ctx, req.App.Name, inputHash); err != nil || ok {
		return b, ok, err
	}
	info, err := source.Inspect(ctx, archive.Path, req.Format, in.limits)
	if err != nil {
		var serr *source.Error
		if errors.As(err, &serr) {
			return Build{}, false, &SourceError{Entry: serr.Entry, Detail: serr.Reason}
		}
		return Build{}, false, fmt.Errorf("inspecting source: %w", err)
	}
	if err := gobuild.CheckGoMod(info.GoMod, in.toolchain.Version()); err != nil {
		return Build{}, false, &SourceError{Entry: info.Root + "go.mod", Detail: err.Error()}
	}

	f, err := os.Open(archive.Path)
	if err != nil {
		return Build{}, false, fmt.Errorf("opening spooled source: %w", err)
	}
	_, err = in.blobs.Put(ctx, store.SourceKey(store.Digest(archive.Digest)), f, store.Digest(archive.Digest))
	f.Close()
	if err != nil && !errors.Is(err, store.ErrExists) {
		return Build{}, false, fmt.Errorf("storing source: %w", err)
	}

	b := in.newBuild(req, inputHash)
	b.SourceDigest = archive.Digest
	return in.enqueue(ctx, b, "")
}

// Existing returns the live build (queued, running or succeeded) of req with the source
// whose digest is sourceDigest, if there is one: what Submit would answer for that source,
// known before the source is read.
func (in *Intake) Existing(ctx context.Context, req Request, sourceDigest string) (Build, bool, error) {
	return in.live(ctx, req.App.Name, in.inputHash(req, sourceDigest))
}

// SubmitURL queues a build of the archive at a source URL, which the worker fetches: the
// request is answered at once, however slow the URL, and a URL that cannot be fetched or
// holds a refused archive fails the build with source_unreachable or source_invalid. A
// URL that is not http(s) is refused here with a *FetchError. Builds of URLs are not
// deduplicated: what a URL holds is known only once it is fetched.
func (in *Intake) SubmitURL(ctx context.Context, req Request, rawURL string) (Build, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Build{}, &FetchError{URL: redact(rawURL), Detail: "source_url must be an http or https URL"}
	}
	b := in.newBuild(req, "")
	shown := *u
	shown.User, shown.RawQuery, shown.Fragment = nil, "", ""
	b.SourceURL = shown.String()
	b, _, err = in.enqueue(ctx, b, rawURL)
	return b, err
}

// newBuild is the queued build a request makes, without its source.
func (in *Intake) newBuild(req Request, inputHash string) Build {
	now := in.now().UTC()
	id := ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()
	version := req.Version
	if version == "" {
		version = "0.0.0-" + id
	}
	format := "tar.gz"
	if req.Format == source.Zip {
		format = "zip"
	}
	return Build{
		ID:              id,
		App:             req.App.Name,
		Status:          StatusQueued,
		Version:         version,
		Commit:          req.Commit,
		Platforms:       req.Platforms,
		Main:            req.App.Main,
		BaseImage:       req.App.BaseImage,
		Ldflags:         req.App.Ldflags,
		SourceFormat:    format,
		SourceDateEpoch: req.SourceDateEpoch,
		GoVersion:       in.toolchain.Version(),
		InputHash:       inputHash,
		CreatedBy:       req.Actor,
		CreatedByID:     req.ActorID,
		CreatedAt:       now,
		Artifacts:       []Artifact{},
	}
}

// enqueue records b as queued and puts it on the queue. When a live build with the same
// inputs exists it returns that build and true instead.
func (in *Intake) enqueue(ctx context.Context, b Build, rawURL string) (Build, bool, error) {
	// The queue entry goes first: if slipway stops before the build is recorded, a
	// worker finds an entry without a build and drops it; the other order could leave a
	// queued build that no worker ever sees.
	entry, err := in.queue.Enqueue(ctx, b.App, b.ID)
	if err != nil {
		return Build{}, false, fmt.Errorf("queueing build: %w", err)
	}
	dup, err := in.builds.create(ctx, b, rawURL)
	if err != nil || dup != "" {
		in.queue.Remove(context.WithoutCancel(ctx), entry)
	}
	if err != nil {
		return Build{}, false, err
	}
	if dup != "" {
		existing, err := in.builds.Get(ctx, b.App, dup)
		return existing, true, err
	}
	return b, false, nil
}

// live returns the queued, running or succeeded build with the input hash, if any.
func (in *Intake) live(ctx context.Context, app, inputHash string) (Build, bool, error) {
	id, err := in.builds.rdb.Get(ctx, store.DedupeKey(app, inputHash)).Result()
	if errors.Is(err, redis.Nil) {
		return Build{}, false, nil
	}
	if err != nil {
		return Build{}, false, fmt.Errorf("looking up identical builds: %w", err)
	}
	b, err := in.builds.Get(ctx, app, id)
	if errors.Is(err, ErrNotFound) {
		return Build{}, false, nil
	}
	if err != nil || b.Status == StatusFailed || b.Status == StatusCanceled {
		return Build{}, false, err
	}
	return b, true, nil
}

// inputHash identifies everything that decides a build's outputs: the same hash, the
// same binaries.
func (in *Intake) inputHash(req Request, sourceDigest string) string {
	ld, _ := gobuild.RenderLdflags(req.App.Ldflags, in.ldflagsVars(&req, req.Version))
	platforms := slices.Sorted(slices.Values(req.Platforms))
	b, _ := json.Marshal(struct {
		Source    string   `json:"source"`
		Platforms []string `json:"platforms"`
		Version   string   `json:"version"`
		Commit    string   `json:"commit"`
		Ldflags   []string `json:"ldflags"`
		Main      string   `json:"main"`
		Date      int64    `json:"date"`
		Go        string   `json:"go"`
		Base      string   `json:"base"`
	}{sourceDigest, platforms, req.Version, req.Commit, ld, req.App.Main, req.SourceDateEpoch, in.toolchain.Version(), req.App.BaseImage})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
