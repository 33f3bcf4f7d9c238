package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/gocache"
)

// buildCacheDrain bounds how long a stopping process waits for the shared build cache's
// queued uploads.
const buildCacheDrain = 30 * time.Second

// withBuildCache sets the build cache of the workers' options from the settings: with
// SLIPWAY_BUILD_CACHE=shared, it starts this process's cache server (one for all its
// workers) over the blob store, which close stops after draining its uploads.
func (s *service) withBuildCache(opts *builder.WorkerOptions) error {
	switch s.cfg.BuildCache {
	case "off":
		opts.CachePerBuild = true
		return nil
	case "local":
		return nil
	}
	if srv := s.buildCache.Load(); srv != nil {
		opts.BuildCache = srv.Compile
		return nil
	}
	dir := s.cfg.BuildCacheDir
	if dir == "" {
		dir = filepath.Join(s.cfg.DataDir, "cache", "gocache")
	}
	// Compiles may write GOCACHE and GOMODCACHE; the local tier must be out of their reach.
	for _, c := range []string{opts.Go.Cache, opts.Go.ModCache, filepath.Join(s.cfg.DataDir, "cache", "go-build"), filepath.Join(s.cfg.DataDir, "cache", "gomod")} {
		if c != "" && gocache.Overlap(dir, c) {
			return &usageError{fmt.Sprintf("SLIPWAY_BUILD_CACHE_DIR (%s) and the compiles' GOCACHE or GOMODCACHE (%s) overlap; compiles could write the cache's local tier", dir, c)}
		}
	}
	// The hot tier: a GOCACHE per namespace beside the compiles' own, which a warm
	// worker's compiles use directly (gocache.WithHotDir).
	goCache := opts.Go.Cache
	if goCache == "" {
		goCache = filepath.Join(s.cfg.DataDir, "cache", "go-build")
	}
	cacheOpts := []gocache.Option{gocache.WithMaxSize(s.cfg.BuildCacheSize),
		gocache.WithPerApp(s.cfg.BuildCacheScope == "app"), gocache.WithLogger(s.log),
		gocache.WithHotDir(filepath.Clean(goCache) + "-hot")}
	if uid, gid, ok := s.toolchain.SandboxUser(); ok {
		cacheOpts = append(cacheOpts, gocache.WithSandboxUser(uid, gid))
	}
	srv, err := gocache.New(dir, s.blobs, cacheOpts...)
	if err != nil {
		return err
	}
	s.buildCache.Store(srv)
	s.closers = append(s.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), buildCacheDrain)
		defer cancel()
		err := srv.Close(ctx)
		st := srv.Stats()
		s.log.Info("build cache stopped", "local_hits", st.LocalHits.Load(), "remote_hits", st.RemoteHits.Load(),
			"misses", st.Misses.Load(), "hot_compiles", st.HotCompiles.Load(), "uploads", st.Uploads.Load(), "uploads_dropped", st.UploadsDropped.Load(),
			"time_saved", (time.Duration(st.TimeSavedMS.Load()) * time.Millisecond).String())
		if err != nil {
			return fmt.Errorf("build cache uploads still queued after %s: %w", buildCacheDrain, err)
		}
		return nil
	})
	s.log.Info("build cache", "mode", "shared", "scope", s.cfg.BuildCacheScope, "local", dir, "size", s.cfg.BuildCacheSize,
		"program", srv.Program(), "hot", srv.GoCacheDir(""))
	opts.BuildCache = srv.Compile
	return nil
}

// buildCacheMetrics exports the shared build cache's counters of this process, once
// its server runs (none in an API-only process).
type buildCacheMetrics struct {
	srv *atomic.Pointer[gocache.Server]
}

var (
	cacheGetsDesc = prometheus.NewDesc("slipway_build_cache_gets_total",
		"Gets of the go command's build cache, by result: local_hit, remote_hit (from the blob store), miss (the go command builds the action).", []string{"result"}, nil)
	cacheCounterDescs = []struct {
		desc *prometheus.Desc
		get  func(*gocache.Stats) float64
	}{
		{prometheus.NewDesc("slipway_build_cache_puts_total", "Outputs the go command put in the build cache.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.Puts.Load()) }},
		{prometheus.NewDesc("slipway_build_cache_remote_refused_total", "Entries of the blob store refused (an output that does not hash to its ID, an entry that does not parse); each is a miss.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.RemoteRefused.Load()) }},
		{prometheus.NewDesc("slipway_build_cache_remote_errors_total", "Fetches from the blob store that failed; each is a miss.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.RemoteErrors.Load()) }},
		{prometheus.NewDesc("slipway_build_cache_fetched_bytes_total", "Output bytes fetched from the blob store.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.BytesFetched.Load()) }},
		{prometheus.NewDesc("slipway_build_cache_uploads_total", "Entries uploaded to the blob store.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.Uploads.Load()) }},
		{prometheus.NewDesc("slipway_build_cache_uploaded_bytes_total", "Output bytes uploaded to the blob store.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.BytesUploaded.Load()) }},
		{prometheus.NewDesc("slipway_build_cache_uploads_dropped_total", "Puts not uploaded because the upload queue was full.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.UploadsDropped.Load()) }},
		{prometheus.NewDesc("slipway_build_cache_upload_errors_total", "Uploads to the blob store that failed.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.UploadErrors.Load()) }},
		{prometheus.NewDesc("slipway_build_cache_time_saved_seconds_total", "Sum, over remote hits, of the time the go command took to build the entry on the worker that put it (from its miss to its put).", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.TimeSavedMS.Load()) / 1000 }},
		{prometheus.NewDesc("slipway_build_cache_evicted_files_total", "Files the local tier's trims removed.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.Evicted.Load()) }},
		{prometheus.NewDesc("slipway_build_cache_evicted_bytes_total", "Bytes the local tier's trims removed.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.EvictedBytes.Load()) }},
		{prometheus.NewDesc("slipway_build_cache_hot_compiles_total", "Compiles that used the hot tier's GOCACHE directly, their key (namespace, platform, go.mod and go.sum) built on this worker before; their hits are the go command's own and not counted in slipway_build_cache_gets_total.", nil, nil),
			func(s *gocache.Stats) float64 { return float64(s.HotCompiles.Load()) }},
	}
)

// Describe sends nothing: the metrics exist only once the server runs.
func (m buildCacheMetrics) Describe(chan<- *prometheus.Desc) {}

func (m buildCacheMetrics) Collect(ch chan<- prometheus.Metric) {
	srv := m.srv.Load()
	if srv == nil {
		return
	}
	st := srv.Stats()
	for result, n := range map[string]int64{"local_hit": st.LocalHits.Load(), "remote_hit": st.RemoteHits.Load(), "miss": st.Misses.Load()} {
		ch <- prometheus.MustNewConstMetric(cacheGetsDesc, prometheus.CounterValue, float64(n), result)
	}
	for _, c := range cacheCounterDescs {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, c.get(st))
	}
}

// runCache runs `slipway cache prune --older-than D`: it deletes the shared build cache's
// objects older than D from the blob store the server's settings name.
func runCache(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	const help = "Usage: slipway cache prune --older-than DURATION [blob store flags]\n\n" +
		"Deletes the shared Go build cache's objects (gocache/ in the blob store) written more than\n" +
		"DURATION ago (such as 720h), in every namespace, and prints what it deleted and kept. The\n" +
		"blob store is the server's: SLIPWAY_S3_BUCKET and the other S3 settings, or the filesystem\n" +
		"store under SLIPWAY_DATA_DIR. An S3 lifecycle rule on gocache/ does the same without it\n" +
		"(docs/build-cache.md).\n"
	if len(args) == 0 || args[0] != "prune" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			fmt.Fprint(stdout, help)
			return nil
		}
		return &usageError{"slipway cache takes one subcommand, prune (slipway cache prune --help)"}
	}
	var cfg serveConfig
	var olderThan time.Duration
	fs := flag.NewFlagSet("cache prune", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Func("older-than", "delete what was written longer ago than this", func(v string) error {
		d, err := time.ParseDuration(v)
		if err == nil && d <= 0 {
			err = errors.New("must be positive")
		}
		olderThan = d
		return err
	})
	for _, s := range serverSettings(&cfg) {
		if !slices.Contains([]string{"data-dir", "s3-bucket", "s3-endpoint", "s3-region", "s3-path-style"}, s.flag) {
			continue
		}
		if err := s.set(s.def); err != nil {
			return err
		}
		if v := getenv(s.env); v != "" {
			if err := s.set(v); err != nil {
				return &usageError{fmt.Sprintf("%s=%q: %v", s.env, v, err)}
			}
		}
		fs.Func(s.flag, s.help, s.set)
	}
	if err := fs.Parse(expandBoolFlags(args[1:], "s3-path-style")); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, help)
			return nil
		}
		return &usageError{err.Error() + " (slipway cache prune --help)"}
	}
	if olderThan == 0 || fs.NArg() > 0 {
		return &usageError{"slipway cache prune needs --older-than DURATION, such as 720h, and no arguments"}
	}
	if err := cfg.absolute(); err != nil {
		return err
	}
	blobs, desc, closeBlobs, err := openBlobs(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeBlobs()
	r, err := gocache.Prune(ctx, blobs, time.Now().Add(-olderThan))
	fmt.Fprintf(stdout, "deleted %d objects (%d bytes) of the build cache older than %s from %s; kept %d (%d bytes)\n",
		r.Deleted, r.DeletedBytes, olderThan, desc, r.Kept, r.KeptBytes)
	return err
}
