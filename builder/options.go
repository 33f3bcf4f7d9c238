package builder

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/builder/source"
)

// WorkerOptions configure a worker; the zero value of each field means its default,
// which DefaultWorkerOptions returns (or, for ID, WorkDir and the Go caches, the field's
// comment gives).
type WorkerOptions struct {
	// ID names the worker in the queue's consumer group and in build records. Default:
	// host name, process id and a random suffix.
	ID string
	// DataDir holds the worker's scratch space (<DataDir>/work, unless WorkDir is set)
	// and the Go caches (<DataDir>/cache). Required.
	DataDir string
	// WorkDir is where each build gets its own work directory. Default <DataDir>/work.
	WorkDir string
	// Concurrency is how many platforms of one build compile at once. Default: the
	// number of CPUs.
	Concurrency int
	// Timeout bounds each compile. Default 10 minutes.
	Timeout time.Duration
	// Visibility is how long a build's queue entry may go without a heartbeat before
	// another worker takes the build over. Default 1 minute; heartbeats come every quarter.
	Visibility time.Duration
	// MaxAttempts is how many workers may start a build before it fails. Default 3.
	MaxAttempts int
	// MaxBinary is the largest binary accepted. Default 512 MiB.
	MaxBinary int64
	// MaxLog is the most log kept per build; more is cut. Default 16 MiB.
	MaxLog int64
	// Go is the environment of every compile.
	Go gobuild.Env
	// CacheProg, when set, gives the GOCACHEPROG of a compile of an app
	// (gocache.Server.Command): the go command keeps its build cache through that
	// program, and Go.Cache holds only the little it keeps outside. Default: none, the go
	// command's own cache in Go.Cache.
	CacheProg func(app string) string
	// BuildCache, when set, chooses the build cache of each compile of an app whose
	// module is in dir, for platform ("linux/arm64", gocache.Server.Compile): a GOCACHE
	// to use instead of Go.Cache (goCache), or a GOCACHEPROG (prog), or neither; done is
	// called when the compile ends, ok when it succeeded. It takes precedence over
	// CacheProg.
	BuildCache func(app, dir, platform string) (goCache, prog string, done func(ok bool))
	// CachePerBuild gives each build an empty GOCACHE of its own in its work directory,
	// removed with it: no build reuses another's work. Ignored with CacheProg and BuildCache.
	// Default false.
	CachePerBuild bool
	// Limits are the source archive limits, applied again as the source is extracted.
	Limits source.Limits
	// BaseImageOptions configure pulls of apps' base images (credentials, transport).
	// Default: anonymous pulls.
	BaseImageOptions []remote.Option
	// SourceAllowNets are address ranges source URLs may reach although link-local or
	// metadata addresses. Default none.
	SourceAllowNets []netip.Prefix
	// FetchTimeout bounds each attempt to fetch a source URL. Default 5 minutes.
	FetchTimeout time.Duration
	// CancelPoll is how often a running build looks for a cancel request. Default
	// 500ms, so a cancel stops the compile within a second.
	CancelPoll time.Duration
	// RetryMin and RetryMax bound the wait before a build that hit a fault of the
	// infrastructure (Redis or the blob store unreachable, a full disk) runs again;
	// the wait doubles from RetryMin up to RetryMax. Defaults 1s and 30s.
	RetryMin, RetryMax time.Duration
	// RetryHorizon is how long after its first fault a build keeps being retried before
	// it fails with reason internal. Default 5 minutes.
	RetryHorizon time.Duration
	// Once makes Run return after the first build this worker runs (whatever its end),
	// for a process that lives for one build, as a Kubernetes Job does.
	Once bool
	// IdleExit makes Run return once the worker has had no build to run for this long
	// (counted from its start and from the end of its last build), so a fleet scaled on
	// the queue's lag can shrink to zero. Zero: never.
	IdleExit time.Duration
	// Log receives the worker's own log.
	Log *slog.Logger
	// Signer signs every build's image, provenance and SHA256SUMS. Default: none, and
	// builds are not signed.
	Signer sign.Signer
	// Builder names this builder in provenance. Default: ID "slipway", no version.
	Builder BuilderID
}

// DefaultWorkerOptions returns the settings a worker uses for the fields of WorkerOptions
// left zero, all in one place: ID, DataDir, WorkDir and the Go caches are left out, as
// they depend on the process and on DataDir.
func DefaultWorkerOptions() WorkerOptions {
	return WorkerOptions{
		Concurrency:  runtime.NumCPU(),
		Timeout:      10 * time.Minute,
		Visibility:   time.Minute,
		MaxAttempts:  3,
		MaxBinary:    512 << 20,
		MaxLog:       16 << 20,
		Limits:       source.DefaultLimits(),
		FetchTimeout: 5 * time.Minute,
		CancelPoll:   500 * time.Millisecond,
		RetryMin:     time.Second,
		RetryMax:     30 * time.Second,
		RetryHorizon: 5 * time.Minute,
		Log:          slog.New(slog.DiscardHandler),
	}
}

// withDefaults returns o with every field left zero (or negative) set to its default.
func (o WorkerOptions) withDefaults() (WorkerOptions, error) {
	if o.DataDir == "" {
		return o, errors.New("worker needs a data directory")
	}
	d := DefaultWorkerOptions()
	if o.ID == "" {
		o.ID = randomWorkerID()
	}
	orDefault(&o.WorkDir, filepath.Join(o.DataDir, "work"))
	orDefault(&o.Go.Cache, filepath.Join(o.DataDir, "cache", "go-build"))
	orDefault(&o.Go.ModCache, filepath.Join(o.DataDir, "cache", "gomod"))
	orDefault(&o.Concurrency, d.Concurrency)
	orDefault(&o.Timeout, d.Timeout)
	orDefault(&o.Visibility, d.Visibility)
	orDefault(&o.MaxAttempts, d.MaxAttempts)
	orDefault(&o.MaxBinary, d.MaxBinary)
	orDefault(&o.MaxLog, d.MaxLog)
	if o.Limits == (source.Limits{}) {
		o.Limits = d.Limits
	}
	orDefault(&o.FetchTimeout, d.FetchTimeout)
	orDefault(&o.CancelPoll, d.CancelPoll)
	orDefault(&o.RetryMin, d.RetryMin)
	orDefault(&o.RetryMax, d.RetryMax)
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	orDefault(&o.RetryHorizon, d.RetryHorizon)
	if o.Log == nil {
		o.Log = d.Log
	}
	orDefault(&o.Builder.ID, "slipway")
	return o, nil
}

// orDefault sets *v to def when *v is zero or negative.
func orDefault[T cmp.Ordered](v *T, def T) {
	var zero T
	if *v <= zero {
		*v = def
	}
}

// randomWorkerID names a worker by its host, its process and a random suffix.
func randomWorkerID() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
