package gocache

import (
	"errors"
	"log/slog"
	"time"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	maxSize    int64
	perApp     bool
	program    string
	progArgs   []string
	socketDir  string
	queue      int
	uploaders  int
	trimGrace  time.Duration
	remoteWait time.Duration
	log        *slog.Logger
	sandboxUID int // -1: compiles run as slipway's user
	sandboxGID int
	hotDir     string
}

// DefaultMaxSize is the local tier's size when WithMaxSize gives none: 10 GiB.
const DefaultMaxSize = 10 << 30

func defaultOptions() options {
	return options{
		maxSize:    DefaultMaxSize,
		queue:      4096,
		uploaders:  4,
		trimGrace:  10 * time.Minute,
		remoteWait: 30 * time.Second,
		log:        slog.New(slog.DiscardHandler),
		sandboxUID: -1,
	}
}

// WithMaxSize bounds the local tier to n bytes, trimmed least recently used first.
// Default DefaultMaxSize (10 GiB).
func WithMaxSize(n int64) Option { return func(o *options) { o.maxSize = n } }

// WithPerApp keeps each app's entries in a namespace of its own, locally and in the blob
// store, so no app's build ever uses what another app's build put. Default false: every
// app shares the namespace "shared".
func WithPerApp(perApp bool) Option { return func(o *options) { o.perApp = perApp } }

// WithProgram is the command the go command runs as its GOCACHEPROG: path with args,
// then `--socket <path> --namespace <ns> --local <dir>` (cacheprog.Run). Default: the
// small slipway-gocacheprog beside this process's executable when it is there, which
// starts at once; else this executable with the argument gocacheprog (`slipway
// gocacheprog`), which starts slower, as all of slipway initializes first.
func WithProgram(path string, args ...string) Option {
	return func(o *options) { o.program, o.progArgs = path, args }
}

// WithSocketDir is the directory where the server makes its private (0700) socket
// directory. Default os.TempDir(): a unix socket's path must be short (108 bytes).
func WithSocketDir(dir string) Option { return func(o *options) { o.socketDir = dir } }

// WithUploadQueue bounds the puts waiting to be uploaded to the blob store to n; a put
// that finds the queue full is not uploaded (Stats.UploadsDropped). Default 4096.
func WithUploadQueue(n int) Option { return func(o *options) { o.queue = n } }

// WithUploaders is how many uploads to the blob store run at once. Default 4.
func WithUploaders(n int) Option { return func(o *options) { o.uploaders = n } }

// WithTrimGrace keeps files used within d out of the local tier's trims, since a build
// in progress may still read them. Default 10 minutes.
func WithTrimGrace(d time.Duration) Option { return func(o *options) { o.trimGrace = d } }

// WithRemoteTimeout bounds one fetch from the blob store (an entry and its output); a
// fetch past it is a miss. Default 30 seconds.
func WithRemoteTimeout(d time.Duration) Option { return func(o *options) { o.remoteWait = d } }

// WithLogger receives what goes wrong in the cache: refused remote entries, failed
// uploads, failed trims. Default: discarded.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithHotDir keeps the hot tier in dir: a GOCACHE of the go command's own per namespace,
// which compiles of a key this worker has built before use directly (Server.Compile).
// Compiles write it, so it must not be the local tier or inside it. Default: none, every
// compile goes through the cache program.
func WithHotDir(dir string) Option { return func(o *options) { o.hotDir = dir } }

// WithSandboxUser says that compiles run as user uid and group gid (gobuild's sandbox
// without Landlock), so the socket's private directory is theirs and the local tier
// searchable by them. Default: compiles run as slipway's own user.
func WithSandboxUser(uid, gid int) Option {
	return func(o *options) { o.sandboxUID, o.sandboxGID = uid, gid }
}

// makeOptions applies opts to the defaults and checks the result.
func makeOptions(opts []Option) (options, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.maxSize <= 0:
		return o, errors.New("build cache size must be positive")
	case o.queue < 1 || o.uploaders < 1:
		return o, errors.New("build cache upload queue and uploaders must be at least 1")
	case o.trimGrace < 0 || o.remoteWait <= 0:
		return o, errors.New("build cache durations must be positive")
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
