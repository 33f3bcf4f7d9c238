package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/gobuild"
	"github.com/slipway/slipway/builder/gocache"
	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/builder/source"
	"github.com/slipway/slipway/builder/vulns"
	"github.com/slipway/slipway/chatops"
	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/webhook"
)

// startupTimeout bounds each start-up check (Redis, the blob store, the toolchain).
const startupTimeout = 5 * time.Second

// service is what serve and worker share: the logger, Redis, the blob store and the
// Go toolchain.
type service struct {
	cfg       serveConfig
	log       *slog.Logger
	rdb       redis.UniversalClient
	redis     *privateRedis // the private redis-server serve started, if it did
	blobs     blobStore
	blobsDesc string
	toolchain *gobuild.Toolchain
	builds    *builder.Builds
	keys      *sign.Keys // nil when nothing is signed
	// verifier evaluates the channels' checks and require gates; checks signs their
	// requests and keeps their secrets.
	verifier *api.Verifier
	checks   *webhook.Checker
	closers  []func() error // run by close, last first
	// buildCache is the shared build cache's server, once startWorkers has started it.
	buildCache atomic.Pointer[gocache.Server]
}

// close releases what open and the start-up took: scratch directories, the blob store,
// Redis, and last the private redis-server.
func (s *service) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			s.log.Warn("closing", "err", err)
		}
	}
	s.rdb.Close()
	if s.redis != nil {
		s.redis.stop()
	}
}

// claimScratch claims this process's scratch directory in dir (see store.ClaimScratch),
// which close releases, and logs what it removed of processes that died.
func (s *service) claimScratch(dir string) (*store.Scratch, error) {
	sc, err := store.ClaimScratch(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot use %s for temporary files (%v); set SLIPWAY_DATA_DIR (--data-dir) to a writable directory", dir, err)
	}
	s.closers = append(s.closers, sc.Close)
	swept, err := sc.Swept()
	if len(swept) > 0 {
		s.log.Info("removed the temporary files of stopped slipway processes", "dirs", swept)
	}
	if err != nil {
		s.log.Warn("could not remove all temporary files of stopped slipway processes", "err", err)
	}
	return sc, nil
}

// open connects to everything and checks that it answers; each failure is one line.
// serve (private true) may start a private redis-server (connectRedis).
func open(ctx context.Context, cfg serveConfig, private bool, logOut io.Writer) (*service, error) {
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// go-redis reports each failed dial itself; the start-up check says it once, in one line.
	redis.SetLogger(redisLogger{slog.New(slog.DiscardHandler)})

	rdb, priv, err := connectRedis(ctx, cfg, private, log)
	if err != nil {
		return nil, err
	}
	if priv != nil {
		cfg.RedisURL = priv.url
	}
	s := &service{cfg: cfg, log: log, rdb: rdb, redis: priv}
	if err := s.openRest(ctx); err != nil {
		s.close()
		return nil, err
	}
	redis.SetLogger(redisLogger{log})
	return s, nil
}

// openRest opens what open does after Redis: the blob store and the toolchain, and
// makes sure the build queue exists.
func (s *service) openRest(ctx context.Context) error {
	cfg := s.cfg
	blobs, blobsDesc, closeBlobs, err := openBlobs(ctx, cfg)
	if err != nil {
		return err
	}
	s.blobs, s.blobsDesc, s.closers = blobs, blobsDesc, []func() error{closeBlobs}
	tctx, cancel := context.WithTimeout(ctx, startupTimeout)
	toolchain, err := gobuild.LoadToolchain(tctx, cfg.GoBin)
	cancel()
	if err != nil {
		return fmt.Errorf("slipway builds with the Go toolchain, and %v; install Go or point SLIPWAY_GO (--go) at the go command", err)
	}
	s.toolchain, s.builds = toolchain, builder.NewBuilds(s.rdb)
	if s.keys, err = loadSigningKeys(cfg, s.log); err != nil {
		return err
	}
	if err := s.openVerifier(); err != nil {
		return err
	}
	return builder.EnsureQueue(ctx, s.rdb)
}

// openVerifier makes the verifier of the gates that look outside Redis (check hooks,
// signatures, vulnerabilities), which the API's promotions and the workers' automatic
// promotions alike evaluate.
func (s *service) openVerifier() error {
	checks, err := webhook.NewChecker(s.rdb, webhook.WithAllowNets(s.cfg.WebhookAllowNets),
		webhook.WithSecretGrace(s.cfg.WebhookSecretGrace), webhook.WithLogger(s.log))
	if err != nil {
		return err
	}
	d := api.VerifierDeps{Builds: s.builds, Blobs: s.blobs, Checks: checks, SigningKeys: s.publicKeys(), Log: s.log,
		Channels: release.NewChannels(s.rdb, release.NewApps(s.rdb, builder.AppChecker{Toolchain: s.toolchain}))}
	if s.cfg.VulnDB != "" {
		tmp, err := s.claimScratch(filepath.Join(s.cfg.DataDir, "vulns"))
		if err != nil {
			return err
		}
		if d.Vulns, err = vulns.New(s.rdb, s.cfg.VulnDB, tmp.Path()); err != nil {
			return fmt.Errorf("%v (SLIPWAY_VULN_DB)", err)
		}
	}
	v, err := api.NewVerifier(d)
	if err != nil {
		return err
	}
	s.verifier, s.checks = v, checks
	return nil
}

// vulnIDs is what release diffs compare vulnerabilities with: nil without a database.
func (s *service) vulnIDs() api.VulnLister {
	if s.cfg.VulnDB == "" {
		return nil
	}
	return s.verifier.VulnIDs
}

func (s *service) sourceLimits() source.Limits {
	lim := source.DefaultLimits()
	lim.MaxCompressed = s.cfg.MaxSourceBytes
	lim.MaxUncompressed = s.cfg.MaxSourceUnpacked
	lim.MaxEntries = s.cfg.MaxSourceEntries
	return lim
}

// startWorkers starts cfg.Workers build workers; the returned function waits for them
// to stop. When ctx ends they drain: each takes no new build and finishes the one it
// runs within the drain timeout, after which that build goes back to the queue at once
// for another worker. A worker may also stop by itself (--once, --idle-exit); done is
// closed once every worker has stopped, for whatever reason.
//
// The workers' work directories are made in this process's scratch directory under
// <data dir>/work, so those of a process that was killed are removed at the next start.
func (s *service) startWorkers(ctx context.Context) (wait func(), done <-chan struct{}, err error) {
	allDone := make(chan struct{})
	if s.cfg.Workers == 0 {
		close(allDone)
		return func() {}, allDone, nil
	}
	scratch, err := s.claimScratch(filepath.Join(s.cfg.DataDir, "work"))
	if err != nil {
		return nil, nil, err
	}
	var workers []*builder.Worker
	for i := range s.cfg.Workers {
		opts := builder.WorkerOptions{
			ID:          workerID(i),
			DataDir:     s.cfg.DataDir,
			WorkDir:     scratch.Path(),
			Concurrency: s.cfg.BuildConcurrency,
			Timeout:     s.cfg.BuildTimeout,
			Visibility:  s.cfg.BuildVisibility,
			MaxAttempts: s.cfg.BuildAttempts,
			Go: gobuild.Env{Cache: s.cfg.GoCache, ModCache: s.cfg.GoModCache,
				Proxy: s.cfg.GoProxy, SumDB: s.cfg.GoSumDB, Private: s.cfg.GoPrivate},
			Limits:          s.sourceLimits(),
			SourceAllowNets: s.cfg.SourceAllowNets,
			Once:            s.cfg.Once,
			IdleExit:        s.cfg.IdleExit,
			Log:             s.log,
			Signer:          s.signer(),
			Builder:         s.builderID(),
		}
		if err := s.withBuildCache(&opts); err != nil {
			return nil, nil, err
		}
		w, err := builder.NewWorker(s.builds, s.blobs, s.toolchain, opts)
		if err != nil {
			return nil, nil, err
		}
		workers = append(workers, w)
	}
	// hard ends the builds in progress (they go back to the queue); it ends a drain
	// timeout after ctx, or when every worker has stopped.
	hard, abort := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			if err := w.Run(hard); err != nil {
				s.log.Error("worker stopped", "worker", w.ID(), "err", err)
			}
		})
	}
	// The auto_promote scheduler runs beside the build workers, one per process, and stops
	// with them.
	actx, stopAuto := context.WithCancel(ctx)
	auto := release.NewAutoPromoter(s.channels(release.NewApps(s.rdb, builder.AppChecker{Toolchain: s.toolchain})),
		hostPID()+"-autopromote", release.WithAutoLogger(s.log))
	autoDone := make(chan struct{})
	go func() {
		defer close(autoDone)
		if err := auto.Run(actx); err != nil {
			s.log.Error("auto_promote stopped", "err", err)
		}
	}()
	go func() {
		wg.Wait()
		stopAuto()
		<-autoDone
		close(allDone)
	}()
	go func() {
		defer abort()
		select {
		case <-allDone:
			return
		case <-ctx.Done():
		}
		for _, w := range workers {
			w.Drain()
		}
		s.log.Info("draining the build workers", "timeout", s.cfg.DrainTimeout.String())
		t := time.NewTimer(s.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-allDone:
		case <-t.C:
			s.log.Warn("the drain timeout ran out; the builds in progress go back to the queue", "timeout", s.cfg.DrainTimeout.String())
		}
	}()
	return func() { <-allDone }, allDone, nil
}

// channels is the channel store of the API and the auto_promote scheduler alike.
func (s *service) channels(apps *release.Apps) *release.Channels {
	differ := release.NewDiffer(release.NewReleases(s.rdb, s.blobs, api.ReleaseBuilds(s.builds)), api.FactSource(s.builds, s.blobs))
	opts := []release.ChannelsOption{release.WithBuilds(api.ReleaseBuilds(s.builds)), release.WithMoveSummary(differ.MoveSummary)}
	if s.verifier != nil {
		opts = append(opts, release.WithVerifier(s.verifier))
	}
	return release.NewChannels(s.rdb, apps, opts...)
}

// webhookOptions are the webhook settings, for the store and the dispatcher alike.
func (s *service) webhookOptions() []webhook.Option {
	return []webhook.Option{
		webhook.WithAllowNets(s.cfg.WebhookAllowNets),
		webhook.WithSecretGrace(s.cfg.WebhookSecretGrace),
		webhook.WithHorizon(s.cfg.WebhookHorizon),
		webhook.WithBackoff(s.cfg.WebhookMinBackoff, s.cfg.WebhookMaxBackoff),
		webhook.WithTimeout(s.cfg.WebhookTimeout),
		webhook.WithVisibility(s.cfg.WebhookVisibility),
		webhook.WithConcurrency(max(s.cfg.WebhookConcurrency, 1)),
		webhook.WithConsumer(workerID(-1)),
		webhook.WithLogger(s.log),
	}
}

// startDispatcher starts the webhook dispatcher unless SLIPWAY_WEBHOOK_CONCURRENCY is 0;
// the returned function waits for it to stop after ctx ends (each attempt in flight is
// put back on the schedule).
func (s *service) startDispatcher(ctx context.Context) (func(), error) {
	if s.cfg.WebhookConcurrency == 0 {
		return func() {}, nil
	}
	d, err := webhook.NewDispatcher(s.rdb, s.webhookOptions()...)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			s.log.Error("webhook dispatcher stopped", "err", err)
		}
	}()
	return func() { <-done }, nil
}

// workerID names the i-th worker of this process: host, pid, index.
// The webhook dispatcher is "webhooks" instead of an index.
func workerID(i int) string {
	if i < 0 {
		return hostPID() + "-webhooks"
	}
	return fmt.Sprintf("%s-%d", hostPID(), i)
}

// hostPID names this process: host and pid.
func hostPID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// serve runs the API server (and workers) until ctx is done, then drains in-flight
// requests.
func serve(ctx context.Context, cfg serveConfig, logOut io.Writer) error {
	if cfg.AdminToken == "" && !cfg.Insecure && !loopback(cfg.Addr) {
		return &usageError{fmt.Sprintf("refusing to serve on %s without authentication: set SLIPWAY_ADMIN_TOKEN (at least 16 characters), listen on 127.0.0.1, or pass --insecure", cfg.Addr)}
	}
	if cfg.AdminToken != "" && len(cfg.AdminToken) < 16 {
		return &usageError{"SLIPWAY_ADMIN_TOKEN is shorter than 16 characters; use a long random secret (openssl rand -hex 32)"}
	}
	s, err := open(ctx, cfg, true, logOut)
	if err != nil {
		return err
	}
	defer s.close()
	handler, err := s.newAPI()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %v; pick another address with SLIPWAY_ADDR (--addr)", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	srv.RegisterOnShutdown(handler.CloseStreams) // event streams would hold the shutdown back
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	waitWorkers, err := s.startBackground(wctx, stopWorkers)
	if err != nil {
		ln.Close()
		return err
	}
	s.log.Info("slipway serving", "addr", ln.Addr().String(), "redis", redactURL(s.cfg.RedisURL),
		"blobs", s.blobsDesc, "go", s.toolchain.Version(), "workers", cfg.Workers,
		"webhook_concurrency", cfg.WebhookConcurrency, "version", version())
	return s.serveUntilDone(ctx, srv, ln, stopWorkers, waitWorkers)
}

// newAPI makes the API server with everything it depends on: the intake (spooling
// uploads in this process's own scratch directory, so those of a process that was killed
// mid-upload are removed at the next start), the release stores, tokens, events and
// webhooks.
func (s *service) newAPI() (*api.Server, error) {
	spool, err := s.claimScratch(filepath.Join(s.cfg.DataDir, "spool"))
	if err != nil {
		return nil, err
	}
	intake, err := builder.NewIntake(s.builds, s.blobs, s.toolchain, builder.IntakeOptions{
		Limits:   s.sourceLimits(),
		SpoolDir: spool.Path(),
	})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildCacheMetrics{&s.buildCache})
	reg.MustRegister(s.verifier.Collectors()...)
	apps := release.NewApps(s.rdb, builder.AppChecker{Toolchain: s.toolchain})
	opts := s.apiOptions()
	hooks, err := webhook.NewStore(s.rdb, s.webhookOptions()...)
	if err != nil {
		return nil, err
	}
	poster, err := s.chatPoster()
	if err != nil {
		return nil, err
	}
	return api.New(api.Deps{
		Apps:          apps,
		Releases:      release.NewReleases(s.rdb, s.blobs, api.ReleaseBuilds(s.builds)),
		Channels:      s.channels(apps),
		Builds:        s.builds,
		Intake:        intake,
		Blobs:         s.blobs,
		Idempotency:   api.NewIdempotency(s.rdb, 0),
		Tokens:        auth.NewTokens(s.rdb),
		Sessions:      auth.NewSessions(s.rdb, 0),
		Events:        events.NewLog(s.rdb),
		Webhooks:      hooks,
		Limiter:       auth.NewRateLimiter(s.rdb, s.cfg.RateLimit, s.cfg.RateBurst),
		Chat:          chatops.NewStore(s.rdb),
		ChatPoster:    poster,
		SigningKeys:   s.publicKeys(),
		ChecksSecrets: s.checks,
		Verifier:      s.verifier,
		Vulns:         s.vulnIDs(),
		Checks: []api.Check{
			{Name: "redis", Ping: func(ctx context.Context) error { return pingRedis(ctx, s.rdb) }},
			{Name: "blobs", Ping: s.blobs.Ping},
		},
		Metrics: reg,
		Log:     s.log,
	}, opts...)
}

// chatPoster posts the late answers of chat commands under the allowed response URLs,
// through the guarded client webhooks use: no proxy, and no address a webhook may not
// reach.
func (s *service) chatPoster() (*chatops.Poster, error) {
	client, err := webhook.NewClient(webhook.WithAllowNets(s.cfg.WebhookAllowNets), webhook.WithTimeout(s.cfg.WebhookTimeout))
	if err != nil {
		return nil, err
	}
	return chatops.NewPoster(client, s.cfg.ChatResponseURLs)
}

// apiOptions are the API's options from the settings; it warns when authentication is
// off.
func (s *service) apiOptions() []api.Option {
	opts := []api.Option{api.WithMetricsPublic(s.cfg.MetricsPublic), api.WithCORSOrigins(s.cfg.CORSOrigins),
		api.WithTrustedProxies(s.cfg.TrustedProxies)}
	if s.cfg.AdminToken != "" {
		opts = append(opts, api.WithAdminToken(s.cfg.AdminToken))
	} else {
		s.log.Warn("authentication is off: no SLIPWAY_ADMIN_TOKEN is set, so anyone who reaches " + s.cfg.Addr + " may do anything")
	}
	return append(opts, api.WithBodyMinRate(s.cfg.BodyMinRate, s.cfg.BodyGrace))
}

// startBackground starts the build workers and the webhook dispatcher; the returned
// function waits for both to stop after ctx ends. If the dispatcher cannot start, it
// stops the workers (with stop, which ends ctx) and waits for them.
func (s *service) startBackground(ctx context.Context, stop func()) (func(), error) {
	waitBuilders, _, err := s.startWorkers(ctx)
	if err != nil {
		return nil, err
	}
	waitDispatcher, err := s.startDispatcher(ctx)
	if err != nil {
		stop()
		waitBuilders()
		return nil, err
	}
	return func() { waitBuilders(); waitDispatcher() }, nil
}

// serveUntilDone serves ln until ctx is done, then stops the workers and drains
// in-flight requests for up to the shutdown timeout; it returns once the workers have
// stopped too.
func (s *service) serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener, stopWorkers, waitWorkers func()) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		stopWorkers()
		waitWorkers()
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	timeout := s.cfg.ShutdownTimeout
	s.log.Info("shutting down", "timeout", timeout.String())
	stopWorkers()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	waitWorkers()
	if err != nil {
		srv.Close()
		return fmt.Errorf("in-flight requests did not finish within %s: %w", timeout, err)
	}
	s.log.Info("stopped")
	return nil
}

// loopback reports whether addr listens on the loopback interface only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// runWorkers runs build workers and the webhook dispatcher only, until ctx is done or,
// with --once or --idle-exit, until the build workers have stopped by themselves.
func runWorkers(ctx context.Context, cfg serveConfig, logOut io.Writer) error {
	if cfg.Workers < 1 && cfg.WebhookConcurrency < 1 {
		return &usageError{"slipway worker needs --workers (SLIPWAY_WORKERS) or --webhook-concurrency (SLIPWAY_WEBHOOK_CONCURRENCY) of at least 1"}
	}
	s, err := open(ctx, cfg, false, logOut)
	if err != nil {
		return err
	}
	defer s.close()
	wait, done, err := s.startWorkers(ctx)
	if err != nil {
		return err
	}
	dctx, stopDispatcher := context.WithCancel(ctx)
	defer stopDispatcher()
	waitDispatcher, err := s.startDispatcher(dctx)
	if err != nil {
		return err
	}
	s.log.Info("slipway worker running", "workers", cfg.Workers, "webhook_concurrency", cfg.WebhookConcurrency,
		"once", cfg.Once, "idle_exit", cfg.IdleExit.String(),
		"redis", redactURL(cfg.RedisURL), "blobs", s.blobsDesc, "go", s.toolchain.Version(), "version", version())
	selfStopping := cfg.Workers > 0 && (cfg.Once || cfg.IdleExit > 0)
	if selfStopping {
		select {
		case <-ctx.Done():
		case <-done:
		}
	} else {
		<-ctx.Done()
	}
	wait()
	stopDispatcher()
	waitDispatcher()
	s.log.Info("stopped")
	return nil
}

// blobStore is what serve needs of the blob store.
type blobStore interface {
	store.Blobs
	store.Pinger
}

// verifiedBlobs is store.Verified of the filesystem store, which keeps its Root in reach:
// the worker keeps that directory out of build logs.
type verifiedBlobs struct {
	blobStore
	root string
}

// Root is the filesystem store's directory.
func (v verifiedBlobs) Root() string { return v.root }

// openBlobs opens S3 when a bucket is set, else the filesystem under the data directory,
// and checks that it answers. Reads of content-addressed keys are checked against their
// digest (store.Verified). The returned function releases the store.
func openBlobs(ctx context.Context, cfg serveConfig) (blobStore, string, func() error, error) {
	if cfg.S3Bucket == "" {
		dir := filepath.Join(cfg.DataDir, "blobs")
		fsStore, err := store.NewFS(dir)
		if err != nil {
			return nil, "", nil, fmt.Errorf("cannot use %s for blobs (%v); set SLIPWAY_DATA_DIR (--data-dir) to a writable directory", dir, err)
		}
		if err := fsStore.Ping(ctx); err != nil {
			fsStore.Close()
			return nil, "", nil, fmt.Errorf("%v; set SLIPWAY_DATA_DIR (--data-dir) to a writable directory", err)
		}
		v, ok := store.Verified(fsStore).(blobStore)
		if !ok {
			fsStore.Close()
			return nil, "", nil, errors.New("the verified blob store lost Ping")
		}
		return verifiedBlobs{v, fsStore.Root()}, "file://" + fsStore.Root(), fsStore.Close, nil
	}
	var loadOpts []func(*awsconfig.LoadOptions) error
	if cfg.S3Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(cfg.S3Region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, "", nil, fmt.Errorf("loading the AWS configuration for S3: %v", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.S3Endpoint)
		}
		o.UsePathStyle = cfg.S3PathStyle
	})
	var s3Opts []store.S3Option
	if cfg.S3PresignTTL > 0 {
		s3Opts = append(s3Opts, store.WithPresign(client, cfg.S3PresignTTL))
	}
	s3Store, err := store.NewS3(client, cfg.S3Bucket, s3Opts...)
	if err != nil {
		return nil, "", nil, err
	}
	desc := "s3://" + cfg.S3Bucket
	if cfg.S3Endpoint != "" {
		desc += " at " + cfg.S3Endpoint
	}
	pctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	if err := s3Store.Ping(pctx); err != nil {
		return nil, "", nil, fmt.Errorf("cannot reach %s (%s); check SLIPWAY_S3_BUCKET, SLIPWAY_S3_ENDPOINT, SLIPWAY_S3_PATH_STYLE and the AWS credentials",
			desc, oneLine(err))
	}
	v, ok := store.Verified(s3Store).(blobStore)
	if !ok {
		return nil, "", nil, errors.New("the verified blob store lost Ping")
	}
	return v, desc, func() error { return nil }, nil
}

// oneLine flattens an error message so start-up failures stay one line.
func oneLine(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within " + startupTimeout.String()
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// redisLogger sends go-redis's own messages to the structured log.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}
