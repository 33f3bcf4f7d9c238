package builder

import (
	"time"
)

// Status is where a build is in its life: queued → running → succeeded | failed | canceled.
type Status string

// The statuses of a build.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCanceled  Status = "canceled"
)

// Statuses lists every status.
var Statuses = []Status{StatusQueued, StatusRunning, StatusSucceeded, StatusFailed, StatusCanceled}

// Done reports whether the build has ended.
func (s Status) Done() bool { return s == StatusSucceeded || s == StatusFailed || s == StatusCanceled }

// Reason says why a build did not succeed.
type Reason string

// The reasons a build fails.
const (
	ReasonSourceInvalid Reason = "source_invalid"
	// ReasonSourceUnreachable: the source URL could not be fetched (refused address,
	// no answer, an error status).
	ReasonSourceUnreachable Reason = "source_unreachable"
	ReasonCompileFailed     Reason = "compile_failed"
	ReasonTimeout           Reason = "timeout"
	ReasonImageFailed       Reason = "image_failed"
	ReasonCanceled          Reason = "canceled"
	ReasonInternal          Reason = "internal"
)

// Build is one build: its inputs, its state and, once it succeeded, its artifacts.
type Build struct {
	ID              string      `json:"id"`
	App             string      `json:"app"`
	Status          Status      `json:"status"`
	Version         string      `json:"version"`
	Commit          string      `json:"commit,omitempty"`
	Platforms       []string    `json:"platforms"`
	Main            string      `json:"main"`
	BaseImage       string      `json:"base_image,omitempty"`
	Ldflags         string      `json:"ldflags"`              // the app's template when the build was made
	SourceDigest    string      `json:"source_digest"`        // "" until a source URL is fetched
	SourceURL       string      `json:"source_url,omitempty"` // without credentials or query
	SourceFormat    string      `json:"source_format"`        // "tar.gz" or "zip"
	SourceDateEpoch int64       `json:"source_date_epoch"`
	GoVersion       string      `json:"go_version"`
	InputHash       string      `json:"input_hash"`
	CreatedBy       string      `json:"created_by,omitempty"`
	CreatedByID     string      `json:"created_by_id,omitempty"` // who CreatedBy is: a token's id, admin or anonymous
	CreatedAt       time.Time   `json:"created_at"`
	StartedAt       *time.Time  `json:"started_at,omitempty"`
	FinishedAt      *time.Time  `json:"finished_at,omitempty"`
	Timings         Timings     `json:"timings"`
	Error           *BuildError `json:"error,omitempty"`
	Artifacts       []Artifact  `json:"artifacts"`
	Image           *Image      `json:"image,omitempty"`
	Signing         *Signing    `json:"signing,omitempty"` // nil when the server signs nothing
	Attempts        int         `json:"attempts"`
	Worker          string      `json:"worker,omitempty"`
}

// Timings are the milliseconds spent in each phase of a build.
type Timings struct {
	QueuedMS  *int64 `json:"queued_ms,omitempty"`
	SourceMS  *int64 `json:"source_ms,omitempty"`
	CompileMS *int64 `json:"compile_ms,omitempty"`
	UploadMS  *int64 `json:"upload_ms,omitempty"`
	ImageMS   *int64 `json:"image_ms,omitempty"`
	TotalMS   *int64 `json:"total_ms,omitempty"`
}

// Artifact is the binary built for one platform. It is stored once, in the image layer
// Layer, as /app/<app> (OpenArtifact reads it); a build made before binaries were kept in
// their layers has no Layer and the binary at store.BlobKey(Digest).
type Artifact struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
	Size     int64  `json:"size"`
	Layer    string `json:"layer,omitempty"`
}

// Image is the OCI image made of a build: an index with one manifest per platform.
type Image struct {
	Digest    string          `json:"digest"` // the image index
	Manifests []ImageManifest `json:"manifests"`
	// SBOM is the SPDX document covering every platform, and SBOMReferrer the OCI 1.1
	// artifact manifest attaching it to the index (Digest); both empty for builds made
	// before indexes had SBOMs.
	SBOM         string `json:"sbom,omitempty"`
	SBOMReferrer string `json:"sbom_referrer,omitempty"`
}

// ImageManifest is one platform's image in the index.
type ImageManifest struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
	SBOM     string `json:"sbom,omitempty"` // the SPDX document's blob digest
	// SBOMReferrer is the OCI 1.1 artifact manifest attaching the SBOM to Digest.
	SBOMReferrer string `json:"sbom_referrer,omitempty"`
}

// ImageFor returns the build's image manifest for a platform.
func (b *Build) ImageFor(platform string) (ImageManifest, bool) {
	if b.Image == nil {
		return ImageManifest{}, false
	}
	for _, m := range b.Image.Manifests {
		if m.Platform == platform {
			return m, true
		}
	}
	return ImageManifest{}, false
}

// Artifact returns the build's artifact for a platform (in normal form).
func (b *Build) Artifact(platform string) (Artifact, bool) {
	for _, a := range b.Artifacts {
		if a.Platform == platform {
			return a, true
		}
	}
	return Artifact{}, false
}

func ms(d time.Duration) *int64 {
	v := d.Milliseconds()
	return &v
}
