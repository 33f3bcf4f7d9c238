package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/chatops"
)

// serveConfig is every setting of `slipway serve`.
type serveConfig struct {
	Addr            string
	RedisURL        string
	RedisExplicit   bool // SLIPWAY_REDIS_URL or --redis-url gave RedisURL
	RedisCluster    bool // RedisURL names the nodes of a Redis Cluster
	RedisWait       time.Duration
	DataDir         string
	S3Bucket        string
	S3Endpoint      string
	S3Region        string
	S3PathStyle     bool
	S3PresignTTL    time.Duration
	AdminToken      string
	GoBin           string
	LogLevel        slog.Level
	ShutdownTimeout time.Duration

	Workers           int
	Once              bool
	IdleExit          time.Duration
	DrainTimeout      time.Duration
	BuildConcurrency  int
	BuildTimeout      time.Duration
	BuildVisibility   time.Duration
	BuildAttempts     int
	GoCache           string
	GoModCache        string
	GoProxy           string
	GoSumDB           string
	GoPrivate         string
	SourceAllowNets   []netip.Prefix
	MaxSourceBytes    int64
	MaxSourceUnpacked int64
	MaxSourceEntries  int
	BodyMinRate       int64
	BodyGrace         time.Duration

	// The Go build cache (docs/build-cache.md).
	BuildCache      string // shared, local or off
	BuildCacheSize  int64
	BuildCacheScope string // shared or app
	BuildCacheDir   string

	Insecure      bool
	MetricsPublic bool
	RateLimit     float64
	RateBurst     int
	CORSOrigins   []string
	// TrustedProxies may name the client in X-Forwarded-For.
	TrustedProxies []netip.Prefix

	WebhookAllowNets   []netip.Prefix
	WebhookSecretGrace time.Duration
	WebhookHorizon     time.Duration
	WebhookMinBackoff  time.Duration
	WebhookMaxBackoff  time.Duration
	WebhookTimeout     time.Duration
	WebhookVisibility  time.Duration
	WebhookConcurrency int

	// ChatResponseURLs are the prefixes a chat command's response_url must be under.
	ChatResponseURLs []string

	// SigningKeys are the paths of the PEM private keys: the first signs.
	SigningKeys        []string
	SigningKeyGenerate bool
	// VulnDB is the vulnerability database the vulns gates scan against; "" for none.
	VulnDB string
}

// setting is one flag with the environment variable that also sets it.
type setting struct {
	flag, env, def, help string
	secret               bool
	set                  func(string) error
}

// serveSettings are the settings of serve and worker, in the order help lists them.
func serveSettings(c *serveConfig) []setting {
	return slices.Concat(serverSettings(c), processSettings(c), buildSettings(c), buildCacheSettings(c), requestSettings(c),
		webhookSettings(c), chatSettings(c), frontSettings(c), signingSettings(c), gateSettings(c))
}

// serverSettings are the settings of where the server listens and keeps its state.
func serverSettings(c *serveConfig) []setting {
	return []setting{
		{flag: "addr", env: "SLIPWAY_ADDR", def: "127.0.0.1:8080", help: "address to listen on, host:port", set: setString(&c.Addr)},
		{flag: "redis-url", env: "SLIPWAY_REDIS_URL", def: "redis://127.0.0.1:6379/0", help: "Redis URL, redis://[:password@]host:port/db (rediss:// for TLS). When it is not set and nothing answers at the default, serve starts a private redis-server (from PATH) with its data under <data-dir>/redis and stops it on exit; \"embedded\" always does", set: setString(&c.RedisURL)},
		{flag: "redis-cluster", env: "SLIPWAY_REDIS_CLUSTER", def: "false", help: "SLIPWAY_REDIS_URL names a Redis Cluster, in go-redis's form redis://[:password@]host1:port1?addr=host2:port2&addr=host3:port3 (any of its nodes; the rest are found from them)", set: setBool(&c.RedisCluster)},
		{flag: "redis-wait", env: "SLIPWAY_REDIS_WAIT", def: "30s", help: "how long start-up waits, retrying with backoff, for a Redis that does not answer yet (as when both start together); 0 tries once", set: setNonNegative(&c.RedisWait)},
		{flag: "data-dir", env: "SLIPWAY_DATA_DIR", def: "./data", help: "directory for local state; blobs live under <data-dir>/blobs when no S3 bucket is set", set: setString(&c.DataDir)},
		{flag: "s3-bucket", env: "SLIPWAY_S3_BUCKET", def: "", help: "S3 bucket for blobs; empty keeps them on the filesystem under the data directory", set: setString(&c.S3Bucket)},
		{flag: "s3-endpoint", env: "SLIPWAY_S3_ENDPOINT", def: "", help: "S3 endpoint URL for S3-compatible servers; empty for AWS", set: setString(&c.S3Endpoint)},
		{flag: "s3-region", env: "SLIPWAY_S3_REGION", def: "", help: "S3 region; empty takes it from the AWS configuration, else us-east-1", set: setString(&c.S3Region)},
		{flag: "s3-path-style", env: "SLIPWAY_S3_PATH_STYLE", def: "false", help: "address buckets by path (http://endpoint/bucket), as most S3-compatible servers need", set: setBool(&c.S3PathStyle)},
		{flag: "s3-presign-ttl", env: "SLIPWAY_S3_PRESIGN_TTL", def: "0", help: "answer registry blob downloads with a redirect to a presigned S3 URL valid this long (e.g. 15m), so layers leave the bucket without passing through slipway; 0 streams them", set: setNonNegative(&c.S3PresignTTL)},
	}
}

// processSettings are the settings of the admin token, the go command, logs and shutdown.
func processSettings(c *serveConfig) []setting {
	return []setting{
		{flag: "admin-token", env: "SLIPWAY_ADMIN_TOKEN", def: "", help: "bearer token that holds the admin scope; prefer the variable, since flags show in ps", secret: true, set: setString(&c.AdminToken)},
		{flag: "go", env: "SLIPWAY_GO", def: "go", help: "the go command builds run with, a path or a name in PATH", set: setString(&c.GoBin)},
		{flag: "log-level", env: "SLIPWAY_LOG_LEVEL", def: "info", help: "least severe log level: debug, info, warn or error", set: func(v string) error {
			return c.LogLevel.UnmarshalText([]byte(v))
		}},
		{flag: "shutdown-timeout", env: "SLIPWAY_SHUTDOWN_TIMEOUT", def: "20s", help: "on SIGTERM or SIGINT, how long in-flight requests may take to finish", set: setDuration(&c.ShutdownTimeout)},
	}
}

// workerDefaults are the defaults of the build settings: the worker's own.
var workerDefaults = builder.DefaultWorkerOptions()

// shortDuration writes d as a flag's default: "10m" and "1h", not "10m0s" and "1h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// buildSettings are the settings of the workers, their Go environment and source limits.
func buildSettings(c *serveConfig) []setting {
	return []setting{
		{flag: "workers", env: "SLIPWAY_WORKERS", def: "1", help: "build workers in this process (serve: 0 for an API-only process)", set: setCount(&c.Workers, 0)},
		{flag: "once", env: "SLIPWAY_WORKER_ONCE", def: "false", help: "worker only: take one build, finish it and exit (with one worker), as a Kubernetes Job does; with --idle-exit it also exits when no build comes", set: setBool(&c.Once)},
		{flag: "idle-exit", env: "SLIPWAY_IDLE_EXIT", def: "0", help: "worker only: exit once no build has come for this long (e.g. 5m), so a fleet scaled on the queue can shrink to zero; 0 never", set: setNonNegative(&c.IdleExit)},
		{flag: "drain-timeout", env: "SLIPWAY_DRAIN_TIMEOUT", def: "20s", help: "on SIGTERM or SIGINT, how long a running build may take to finish before it goes back to the queue at once for another worker; 0 hands it back at once", set: setNonNegative(&c.DrainTimeout)},
		{flag: "build-concurrency", env: "SLIPWAY_BUILD_CONCURRENCY", def: strconv.Itoa(workerDefaults.Concurrency), help: "platforms of one build compiled at once (default: the number of CPUs)", set: setCount(&c.BuildConcurrency, 1)},
		{flag: "build-timeout", env: "SLIPWAY_BUILD_TIMEOUT", def: shortDuration(workerDefaults.Timeout), help: "longest one platform's compile may take; its process group is killed then", set: setDuration(&c.BuildTimeout)},
		{flag: "build-visibility", env: "SLIPWAY_BUILD_VISIBILITY", def: shortDuration(workerDefaults.Visibility), help: "how long a build may go without its worker's heartbeat before another worker takes it over", set: setDuration(&c.BuildVisibility)},
		{flag: "build-attempts", env: "SLIPWAY_BUILD_ATTEMPTS", def: strconv.Itoa(workerDefaults.MaxAttempts), help: "how many workers may start a build before it fails", set: setCount(&c.BuildAttempts, 1)},
		{flag: "gocache", env: "SLIPWAY_GOCACHE", def: "", help: "GOCACHE shared by all builds (default <data-dir>/cache/go-build)", set: setString(&c.GoCache)},
		{flag: "gomodcache", env: "SLIPWAY_GOMODCACHE", def: "", help: "GOMODCACHE shared by all builds (default <data-dir>/cache/gomod)", set: setString(&c.GoModCache)},
		{flag: "goproxy", env: "SLIPWAY_GOPROXY", def: gobuild.DefaultProxy, help: "GOPROXY for builds", set: setString(&c.GoProxy)},
		{flag: "gosumdb", env: "SLIPWAY_GOSUMDB", def: gobuild.DefaultSumDB, help: "GOSUMDB for builds", set: setString(&c.GoSumDB)},
		{flag: "goprivate", env: "SLIPWAY_GOPRIVATE", def: "", help: "GOPRIVATE for builds", set: setString(&c.GoPrivate)},
		{flag: "source-allow-nets", env: "SLIPWAY_SOURCE_ALLOW_NETS", def: "", help: "comma-separated CIDRs that source URLs may reach although link-local or metadata addresses", set: cidrs(&c.SourceAllowNets)},
		{flag: "max-source-bytes", env: "SLIPWAY_MAX_SOURCE_BYTES", def: "100MiB", help: "largest source archive accepted (KiB, MiB, GiB suffixes)", set: setSize(&c.MaxSourceBytes)},
		{flag: "max-source-unpacked", env: "SLIPWAY_MAX_SOURCE_UNPACKED", def: "1GiB", help: "most bytes a source archive may unpack to", set: setSize(&c.MaxSourceUnpacked)},
		{flag: "max-source-entries", env: "SLIPWAY_MAX_SOURCE_ENTRIES", def: "50000", help: "most files and directories in a source archive", set: setCount(&c.MaxSourceEntries, 1)},
	}
}

// buildCacheSettings are the settings of the Go build cache (docs/build-cache.md).
func buildCacheSettings(c *serveConfig) []setting {
	return []setting{
		{flag: "build-cache", env: "SLIPWAY_BUILD_CACHE", def: "shared", help: "the Go build cache of builds: shared (every worker's, through the blob store, with a local tier in --build-cache-dir), local (each machine's own GOCACHE, --gocache) or off (an empty GOCACHE for each build)", set: setOneOf(&c.BuildCache, "shared", "local", "off")},
		{flag: "build-cache-size", env: "SLIPWAY_BUILD_CACHE_SIZE", def: "10GiB", help: "most bytes the shared cache's local tier keeps on this machine, least recently used trimmed first", set: setSize(&c.BuildCacheSize)},
		{flag: "build-cache-scope", env: "SLIPWAY_BUILD_CACHE_SCOPE", def: "shared", help: "shared: every app's builds use one cache; app: each app's builds only its own entries", set: setOneOf(&c.BuildCacheScope, "shared", "app")},
		{flag: "build-cache-dir", env: "SLIPWAY_BUILD_CACHE_DIR", def: "", help: "the shared cache's local tier (default <data-dir>/cache/gocache)", set: setString(&c.BuildCacheDir)},
	}
}

// setOneOf sets *p to a value that is one of values.
func setOneOf(p *string, values ...string) func(string) error {
	return func(v string) error {
		if !slices.Contains(values, v) {
			return fmt.Errorf("must be one of %s", strings.Join(values, ", "))
		}
		*p = v
		return nil
	}
}

// requestSettings are the settings of what requests must keep to: body rate, tokens, rates.
func requestSettings(c *serveConfig) []setting {
	return []setting{
		{flag: "body-min-rate", env: "SLIPWAY_BODY_MIN_RATE", def: "10KiB", help: "least average rate, in bytes a second (KiB, MiB suffixes), every request body must keep up after --body-grace; one that falls behind gets 408 and nothing of it is kept, so a stalled upload cannot hold a spool file. 0 turns it off", set: func(v string) error {
			if strings.TrimSpace(v) == "0" {
				c.BodyMinRate = 0
				return nil
			}
			n, err := parseSize(v)
			c.BodyMinRate = n
			return err
		}},
		{flag: "body-grace", env: "SLIPWAY_BODY_GRACE", def: "10s", help: "how long a request body may take before --body-min-rate applies", set: setDuration(&c.BodyGrace)},
		{flag: "insecure", env: "SLIPWAY_INSECURE", def: "false", help: "serve without an admin token (so without authentication) on a non-loopback address", set: setBool(&c.Insecure)},
		{flag: "metrics-public", env: "SLIPWAY_METRICS_PUBLIC", def: "false", help: "serve /metrics without a token (it needs the read scope otherwise)", set: setBool(&c.MetricsPublic)},
		{flag: "rate-limit", env: "SLIPWAY_RATE_LIMIT", def: "20", help: "requests per second each token may make, shared by every API replica", set: func(v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil && f <= 0 {
				err = errors.New("must be positive")
			}
			c.RateLimit = f
			return err
		}},
		{flag: "rate-burst", env: "SLIPWAY_RATE_BURST", def: "40", help: "requests a token may make at once above its rate", set: setCount(&c.RateBurst, 1)},
	}
}

// webhookSettings are the settings of where webhooks may go and how they are retried.
func webhookSettings(c *serveConfig) []setting {
	return []setting{
		{flag: "webhook-allow-nets", env: "SLIPWAY_WEBHOOK_ALLOW_NETS", def: "", help: "comma-separated CIDRs webhooks may reach although loopback, private, link-local or otherwise special (checked after DNS, on every connection)", set: cidrs(&c.WebhookAllowNets)},
		{flag: "webhook-secret-grace", env: "SLIPWAY_WEBHOOK_SECRET_GRACE", def: "24h", help: "how long a rotated-out webhook secret keeps signing beside the new one", set: setDuration(&c.WebhookSecretGrace)},
		{flag: "webhook-horizon", env: "SLIPWAY_WEBHOOK_HORIZON", def: "24h", help: "how long a webhook delivery is retried before it is marked failed", set: setDuration(&c.WebhookHorizon)},
		{flag: "webhook-min-backoff", env: "SLIPWAY_WEBHOOK_MIN_BACKOFF", def: "2s", help: "wait before the first retry of a webhook delivery; each later wait doubles (with jitter)", set: setDuration(&c.WebhookMinBackoff)},
		{flag: "webhook-max-backoff", env: "SLIPWAY_WEBHOOK_MAX_BACKOFF", def: "1h", help: "longest wait between attempts of a webhook delivery, Retry-After included", set: setDuration(&c.WebhookMaxBackoff)},
		{flag: "webhook-timeout", env: "SLIPWAY_WEBHOOK_TIMEOUT", def: "10s", help: "longest one webhook attempt may take, from dialing to the end of the answer", set: setDuration(&c.WebhookTimeout)},
		{flag: "webhook-visibility", env: "SLIPWAY_WEBHOOK_VISIBILITY", def: "1m", help: "how long a dispatcher may hold a delivery or an event without finishing before another takes it over; more than the timeout", set: setDuration(&c.WebhookVisibility)},
		{flag: "webhook-concurrency", env: "SLIPWAY_WEBHOOK_CONCURRENCY", def: "8", help: "webhook deliveries this process sends at once; 0 runs no webhook dispatcher here", set: setCount(&c.WebhookConcurrency, 0)},
	}
}

// signingSettings are the settings of the keys that sign builds.
func signingSettings(c *serveConfig) []setting {
	return []setting{
		{flag: "signing-keys", env: "SLIPWAY_SIGNING_KEYS", def: "", help: "comma-separated paths of PEM ECDSA P-256 private keys (PKCS#8 or SEC1): the first signs every build's image, provenance and SHA256SUMS, the others only verify what they signed before (rotation: put the new key first). Empty signs nothing. Relative paths are under --data-dir", set: func(v string) error {
			c.SigningKeys = splitComma(v)
			return nil
		}},
		{flag: "signing-key-generate", env: "SLIPWAY_SIGNING_KEY_GENERATE", def: "false", help: "when the first --signing-keys file does not exist, make a new key there (0600, PKCS#8 PEM) at start", set: setBool(&c.SigningKeyGenerate)},
	}
}

// gateSettings are the settings of the channels' gates that look outside Redis.
func gateSettings(c *serveConfig) []setting {
	return []setting{
		{flag: "vuln-db", env: "SLIPWAY_VULN_DB", def: "", help: "the Go vulnerability database the vulns gates scan release binaries against: a file:// URL of a mirror (index/db.json, index/modules.json, ID/<id>.json) or an https:// URL such as https://vuln.go.dev; empty fails every vulns gate", set: setString(&c.VulnDB)},
	}
}

// chatSettings are the settings of the chat commands (/v1/chatops).
func chatSettings(c *serveConfig) []setting {
	return []setting{
		{flag: "chat-response-urls", env: "SLIPWAY_CHAT_RESPONSE_URLS", def: "https://hooks.slack.com/", help: "comma-separated URL prefixes (each ending with /) a chat command's response_url must be under for a slow command's answer to be posted there; add your Mattermost's, such as https://chat.example.com/hooks/ (a private address also needs --webhook-allow-nets)", set: func(v string) error {
			c.ChatResponseURLs = splitComma(v)
			_, err := chatops.NewPoster(nil, c.ChatResponseURLs)
			return err
		}},
	}
}

// frontSettings are the settings of who stands in front of the API: proxies, browser origins.
func frontSettings(c *serveConfig) []setting {
	return []setting{
		{flag: "trusted-proxies", env: "SLIPWAY_TRUSTED_PROXIES", def: "", help: "comma-separated CIDRs of the reverse proxies and load balancers in front of slipway; only a request from one of them may name its client in X-Forwarded-For (for the logs). With none, the client is the TCP peer", set: cidrs(&c.TrustedProxies)},
		{flag: "cors-origins", env: "SLIPWAY_CORS_ORIGINS", def: "", help: "comma-separated origins whose browser pages may call the API (https://portal.example.com); none by default", set: func(v string) error {
			c.CORSOrigins = splitComma(v)
			return nil
		}},
	}
}

// setString sets *p to the value as it is.
func setString(p *string) func(string) error { return func(v string) error { *p = v; return nil } }

// setDuration sets *p to a positive duration.
func setDuration(p *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		*p = d
		return err
	}
}

// setNonNegative sets *p to a duration of 0 or more.
func setNonNegative(p *time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err == nil && d < 0 {
			err = errors.New("must not be negative")
		}
		*p = d
		return err
	}
}

// setCount sets *p to a whole number of at least least.
func setCount(p *int, least int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err == nil && n < least {
			err = fmt.Errorf("must be at least %d", least)
		}
		*p = n
		return err
	}
}

// setBool sets *p to a boolean as strconv.ParseBool reads it.
func setBool(p *bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		*p = b
		return err
	}
}

// setSize sets *p to a byte count (parseSize).
func setSize(p *int64) func(string) error {
	return func(v string) error {
		n, err := parseSize(v)
		*p = n
		return err
	}
}

// parseServe reads the settings from their defaults, then the environment, then flags.
func parseServe(name string, args []string, getenv func(string) string, out io.Writer) (serveConfig, error) {
	var cfg serveConfig
	settings := serveSettings(&cfg)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, s := range settings {
		s := s
		if err := s.set(s.def); err != nil {
			return cfg, fmt.Errorf("default of --%s: %w", s.flag, err)
		}
		if v := getenv(s.env); v != "" {
			if err := s.set(v); err != nil {
				return cfg, &usageError{fmt.Sprintf("%s=%q: %v", s.env, redactValue(s, v), err)}
			}
		}
		fs.Func(s.flag, s.help, func(v string) error { return s.set(v) })
	}
	args = expandBoolFlags(args, "redis-cluster")
	// Boolean flags may be given bare (--s3-path-style).
	args = expandBoolFlags(args, "s3-path-style", "insecure", "metrics-public", "once")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printServeHelp(out, name, settings)
			return cfg, err
		}
		return cfg, &usageError{err.Error() + " (see slipway " + name + " --help)"}
	}
	if fs.NArg() > 0 {
		return cfg, &usageError{fmt.Sprintf("%s takes no arguments, got %q (see slipway %s --help)", name, fs.Args(), name)}
	}
	fs.Visit(func(f *flag.Flag) { cfg.RedisExplicit = cfg.RedisExplicit || f.Name == "redis-url" })
	cfg.RedisExplicit = cfg.RedisExplicit || getenv("SLIPWAY_REDIS_URL") != ""
	if err := cfg.absolute(); err != nil {
		return cfg, err
	}
	if err := checkWorker(name, cfg); err != nil {
		return cfg, err
	}
	return cfg, checkServe(cfg)
}

// checkWorker checks the settings of a worker that lives for one build or until idle.
func checkWorker(name string, cfg serveConfig) error {
	switch {
	case name != "worker" && (cfg.Once || cfg.IdleExit > 0):
		return &usageError{"--once (SLIPWAY_WORKER_ONCE) and --idle-exit (SLIPWAY_IDLE_EXIT) are for slipway worker; slipway " + name + " serves until stopped"}
	case cfg.Once && cfg.Workers != 1:
		return &usageError{fmt.Sprintf("--once takes one build, so it needs --workers 1 (SLIPWAY_WORKERS), not %d; run one such process per build", cfg.Workers)}
	case cfg.IdleExit > 0 && cfg.Workers < 1:
		return &usageError{"--idle-exit needs build workers (--workers 1 or more): a process with none is never busy"}
	}
	return nil
}

// checkServe checks the settings that depend on each other.
func checkServe(cfg serveConfig) error {
	if cfg.WebhookVisibility <= cfg.WebhookTimeout {
		return &usageError{fmt.Sprintf("SLIPWAY_WEBHOOK_VISIBILITY (%s) must be longer than SLIPWAY_WEBHOOK_TIMEOUT (%s), or an attempt still running would be taken over", cfg.WebhookVisibility, cfg.WebhookTimeout)}
	}
	if cfg.WebhookMaxBackoff < cfg.WebhookMinBackoff {
		return &usageError{fmt.Sprintf("SLIPWAY_WEBHOOK_MAX_BACKOFF (%s) is shorter than SLIPWAY_WEBHOOK_MIN_BACKOFF (%s)", cfg.WebhookMaxBackoff, cfg.WebhookMinBackoff)}
	}
	if cfg.S3Bucket == "" && (cfg.S3Endpoint != "" || cfg.S3Region != "" || cfg.S3PresignTTL > 0) {
		return &usageError{"SLIPWAY_S3_ENDPOINT, SLIPWAY_S3_REGION or SLIPWAY_S3_PRESIGN_TTL is set but SLIPWAY_S3_BUCKET is not; set the bucket to store blobs in S3"}
	}
	return nil
}

// absolute makes every path setting absolute, against the working directory at start:
// builds run in other directories, and the go command refuses relative GOPATH, GOCACHE
// and GOMODCACHE entries. The go command is a path when it holds a separator, else a
// name looked up in PATH, and left so.
func (c *serveConfig) absolute() error {
	paths := []*string{&c.DataDir, &c.GoCache, &c.GoModCache, &c.BuildCacheDir}
	if strings.ContainsRune(c.GoBin, '/') || strings.ContainsRune(c.GoBin, filepath.Separator) {
		paths = append(paths, &c.GoBin)
	}
	for _, p := range paths {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("making %s absolute: %w", *p, err)
		}
		*p = abs
	}
	return nil
}

func expandBoolFlags(args []string, names ...string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		for _, n := range names {
			if a == "-"+n || a == "--"+n {
				a = "--" + n + "=true"
			}
		}
		out = append(out, a)
	}
	return out
}

func redactValue(s setting, v string) string {
	if s.secret {
		return "<redacted>"
	}
	return v
}

func printServeHelp(w io.Writer, name string, settings []setting) {
	what := "Runs the slipway API server and, unless --workers is 0, build workers in the same process."
	if name == "worker" {
		what = "Runs build workers (--workers of them) that take builds off the queue shared with every slipway serve."
	}
	fmt.Fprintf(w, "Usage: slipway %s [flags]\n\n%s\n\nEvery flag can also be set by its environment variable; a flag wins over the variable.\n\n", name, what)
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(w, "  --%s  (%s)\n      %s\n      default: %s\n", s.flag, s.env, s.help, def)
	}
	fmt.Fprint(w, "\nS3 credentials come from the standard AWS chain: AWS_ACCESS_KEY_ID and\nAWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, or the instance role.\n")
}

// cidrs sets *p from a comma-separated list of CIDRs.
func cidrs(p *[]netip.Prefix) func(string) error {
	return func(v string) error {
		*p = nil
		for _, part := range splitComma(v) {
			prefix, err := netip.ParsePrefix(part)
			if err != nil {
				return err
			}
			*p = append(*p, prefix)
		}
		return nil
	}
}

func splitComma(v string) []string {
	var out []string
	for part := range strings.SplitSeq(v, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseSize reads a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("must be a positive byte count, such as 100MiB")
	}
	return n * mult, nil
}

// redactURL hides the password of a URL, for messages and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return "<redacted>" + raw[i:]
		}
		return raw
	}
	return u.Redacted()
}
