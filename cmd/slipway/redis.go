package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// embeddedRedis is the SLIPWAY_REDIS_URL that asks serve for a private redis-server even
// when another Redis answers on the default address.
const embeddedRedis = "embedded"

// privateRedisStart bounds how long a private redis-server may take to answer, and
// privateRedisStop how long it may take to write its data and exit.
const (
	privateRedisStart = 30 * time.Second
	privateRedisStop  = 30 * time.Second
)

// connectRedis connects to the Redis of the settings. An explicit SLIPWAY_REDIS_URL is
// waited for (waitRedis) and never replaced. Without one, serve (private true) uses the
// default address if something answers there, and otherwise starts a redis-server of
// its own under the data directory, as it does for SLIPWAY_REDIS_URL=embedded; the
// returned *privateRedis is that server, nil for any other. A worker waits for the
// default address, since a private Redis would share no queue with anyone. With
// SLIPWAY_REDIS_CLUSTER the URL names a Redis Cluster, waited for as an explicit URL is.
func connectRedis(ctx context.Context, cfg serveConfig, private bool, log *slog.Logger) (redis.UniversalClient, *privateRedis, error) {
	switch {
	case cfg.RedisURL == embeddedRedis && cfg.RedisCluster:
		return nil, nil, &usageError{`SLIPWAY_REDIS_URL=embedded starts one private redis-server, not a Redis Cluster: drop SLIPWAY_REDIS_CLUSTER, or set SLIPWAY_REDIS_URL to the cluster's nodes`}
	case cfg.RedisURL == embeddedRedis && !private:
		return nil, nil, &usageError{`SLIPWAY_REDIS_URL=embedded is for serve alone: a worker needs the Redis its servers use; set SLIPWAY_REDIS_URL to it`}
	case cfg.RedisURL == embeddedRedis:
		rdb, p, err := startPrivateRedis(ctx, cfg.DataDir, log, "SLIPWAY_REDIS_URL is embedded")
		return clientOrNil(rdb), p, err
	case cfg.RedisCluster:
		rdb, err := waitRedisCluster(ctx, cfg.RedisURL, cfg.RedisWait, log)
		return clientOrNil(rdb), nil, err
	case cfg.RedisExplicit || !private:
		rdb, err := waitRedis(ctx, cfg.RedisURL, cfg.RedisWait, log)
		return clientOrNil(rdb), nil, err
	}
	rdb, err := waitRedis(ctx, cfg.RedisURL, 0, log)
	var unreachable *redisUnreachableError
	if !errors.As(err, &unreachable) || unreachable.answered {
		return clientOrNil(rdb), nil, err
	}
	rdb, p, err := startPrivateRedis(ctx, cfg.DataDir, log, "SLIPWAY_REDIS_URL is not set and nothing answers at "+redactURL(cfg.RedisURL))
	return clientOrNil(rdb), p, err
}

// clientOrNil returns c as a redis.UniversalClient that is nil when c is: a nil
// *redis.Client in an interface would not be.
func clientOrNil[C interface {
	*redis.Client | *redis.ClusterClient
	redis.UniversalClient
}](c C) redis.UniversalClient {
	if c == nil {
		return nil
	}
	return c
}

// waitRedis connects to the Redis at rawURL and checks that it answers. One that does not
// answer yet, or answers that it is still loading its data, is tried again with backoff
// for up to wait, as when it starts beside slipway; serve says once that it waits.
func waitRedis(ctx context.Context, rawURL string, wait time.Duration, log *slog.Logger) (*redis.Client, error) {
	opts, err := redis.ParseURL(rawURL)
	if u, _ := url.Parse(rawURL); err != nil && u != nil && u.Query().Has("addr") {
		return nil, &usageError{fmt.Sprintf("SLIPWAY_REDIS_URL %s names several nodes (addr=): set SLIPWAY_REDIS_CLUSTER=true (--redis-cluster) for a Redis Cluster", redactURL(rawURL))}
	}
	if err != nil {
		return nil, &usageError{fmt.Sprintf("SLIPWAY_REDIS_URL %s is not a Redis URL (%v); use redis://[:password@]host:port/db", redactURL(rawURL), err)}
	}
	rdb := redis.NewClient(opts)
	err = pingUntil(ctx, rdb, wait, nil, func() {
		log.Info("Redis does not answer yet; waiting for it", "redis", redactURL(rawURL), "wait", wait.String())
	})
	if err != nil {
		rdb.Close()
		return nil, &redisUnreachableError{url: rawURL, wait: wait, err: err, answered: !retryableRedis(err)}
	}
	// A node of a Redis Cluster answers PING, and then MOVED to the commands of every key
	// of another node's slots (a cluster of one node works, though).
	if info, err := rdb.Info(ctx, "cluster").Result(); err == nil && strings.Contains(info, "cluster_enabled:1") {
		log.Warn("Redis is a node of a Redis Cluster: set SLIPWAY_REDIS_CLUSTER=true (--redis-cluster), or keys on its other nodes fail with MOVED",
			"redis", redactURL(rawURL))
	}
	return rdb, nil
}

// waitRedisCluster connects to the Redis Cluster whose nodes rawURL names and checks that
// every master answers, waiting for up to wait as waitRedis does (a cluster still
// forming, CLUSTERDOWN, is waited for too).
func waitRedisCluster(ctx context.Context, rawURL string, wait time.Duration, log *slog.Logger) (*redis.ClusterClient, error) {
	opts, err := redis.ParseClusterURL(rawURL)
	if err == nil {
		if u, _ := url.Parse(rawURL); u != nil && strings.Trim(u.Path, "/") != "" && strings.Trim(u.Path, "/") != "0" {
			err = errors.New("a Redis Cluster has database 0 only")
		}
	}
	if err != nil {
		return nil, &usageError{fmt.Sprintf("SLIPWAY_REDIS_URL %s is not a Redis Cluster URL (%v); with SLIPWAY_REDIS_CLUSTER=true use redis://[:password@]host1:port1?addr=host2:port2&addr=host3:port3", redactURL(rawURL), err)}
	}
	rdb := redis.NewClusterClient(opts)
	err = pingUntil(ctx, rdb, wait, nil, func() {
		log.Info("Redis Cluster does not answer yet; waiting for it", "redis", redactURL(rawURL), "wait", wait.String())
	})
	if err != nil {
		rdb.Close()
		return nil, &redisUnreachableError{url: rawURL, wait: wait, err: err, answered: !retryableRedis(err)}
	}
	return rdb, nil
}

// pingRedis checks that rdb answers: on a Redis Cluster, every master (a cluster with a
// master down cannot serve the keys of its slots).
func pingRedis(ctx context.Context, rdb redis.UniversalClient) error {
	c, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return rdb.Ping(ctx).Err()
	}
	return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if err := m.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("%s: %w", m.Options().Addr, err)
		}
		return nil
	})
}

// pingUntil pings rdb until it answers, for up to within (one try when 0), backing off
// from 50 ms to 2 s between tries. It gives up early on an answer that waiting does not
// cure (a wrong password) and when exited is closed. waiting is called once, after the
// first failed try.
func pingUntil(ctx context.Context, rdb redis.UniversalClient, within time.Duration, exited <-chan struct{}, waiting func()) error {
	deadline := time.Now().Add(within)
	delay := 50 * time.Millisecond
	for tries := 0; ; tries++ {
		timeout := startupTimeout
		if within > 0 {
			timeout = min(timeout, max(time.Until(deadline), time.Second))
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := pingRedis(pctx, rdb)
		cancel()
		if err == nil || !retryableRedis(err) || time.Until(deadline) <= 0 || ctx.Err() != nil {
			return err
		}
		if tries == 0 && waiting != nil {
			waiting()
		}
		timer := time.NewTimer(min(delay, time.Until(deadline)))
		select {
		case <-ctx.Done():
		case <-exited:
			timer.Stop()
			return errRedisExited
		case <-timer.C:
		}
		timer.Stop()
		delay = min(delay*2, 2*time.Second)
	}
}

// retryableRedis reports whether a failed PING may succeed later: no answer at all, or a
// server still loading its data.
func retryableRedis(err error) bool {
	var reply redis.Error
	if errors.As(err, &reply) {
		return redis.IsLoadingError(err) || redis.IsClusterDownError(err)
	}
	return true
}

// privateRedis is a redis-server that serve started for itself: on a loopback port, with
// a password made at each start, its append-only file under <data dir>/redis, and a lock
// there that it shares with serve, so two processes never run one data directory.
type privateRedis struct {
	cmd     *exec.Cmd
	url     string
	lock    *os.File // set once it answers
	exited  chan struct{}
	stopped sync.Once
	stderr  bytes.Buffer
}

// startPrivateRedis starts a private redis-server in <dataDir>/redis and connects to it;
// why says in the log line why it was started. Without redis-server on PATH the error
// says how to install it.
func startPrivateRedis(ctx context.Context, dataDir string, log *slog.Logger, why string) (*redis.Client, *privateRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, nil, fmt.Errorf("%s, and there is no redis-server on PATH to start a private one: install Redis (apt-get install redis-server, dnf install redis, apk add redis or brew install redis), or set SLIPWAY_REDIS_URL (--redis-url) to a Redis that is running", why)
	}
	dir := filepath.Join(dataDir, "redis")
	lock, err := lockRedisDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 1; ; attempt++ {
		p, rdb, err := runPrivateRedis(ctx, bin, dir, lock)
		if err == nil {
			log.Info("started a private redis-server: "+why, "redis", redactURL(p.url), "dir", dir, "pid", p.cmd.Process.Pid)
			return rdb, p, nil
		}
		// Another process may have taken the free port first: try another.
		if !errors.Is(err, errRedisExited) || attempt == 3 {
			lock.Close()
			return nil, nil, err
		}
	}
}

// lockRedisDir creates dir, only for this user, and takes the lock on its lock file.
func lockRedisDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot make %s for the private redis-server (%v); set SLIPWAY_DATA_DIR (--data-dir) to a writable directory", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot lock %s for the private redis-server: %v", dir, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("another slipway serve runs the private redis-server of %s; give this one another SLIPWAY_DATA_DIR, or point both at one Redis with SLIPWAY_REDIS_URL", dir)
	}
	return lock, nil
}

// runPrivateRedis starts redis-server with a configuration file of its own in dir and
// waits until it answers. errRedisExited means it exited at start.
func runPrivateRedis(ctx context.Context, bin, dir string, lock *os.File) (*privateRedis, *redis.Client, error) {
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, nil, err
	}
	password := rand.Text()
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(privateRedisConf(dir, port, password)), 0o600); err != nil {
		return nil, nil, fmt.Errorf("writing %s: %w", conf, err)
	}
	p := &privateRedis{exited: make(chan struct{}), url: "redis://:" + password + "@127.0.0.1:" + strconv.Itoa(port) + "/0"}
	p.cmd = exec.Command(bin, conf)
	p.cmd.SysProcAttr = redisProcAttr()
	// The child holds the lock too: it stays taken until the server has exited, even when
	// serve dies first.
	p.cmd.ExtraFiles = []*os.File{lock}
	p.cmd.Stdout, p.cmd.Stderr = &p.stderr, &p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	opts, _ := redis.ParseURL(p.url)
	rdb := redis.NewClient(opts)
	if err := pingUntil(ctx, rdb, privateRedisStart, p.exited, nil); err != nil {
		rdb.Close()
		p.stop()
		if errors.Is(err, errRedisExited) {
			return nil, nil, fmt.Errorf("%w: %s (its log: %s)", errRedisExited, oneLine(errors.New(p.stderr.String()+" ")), filepath.Join(dir, "redis.log"))
		}
		return nil, nil, fmt.Errorf("the private redis-server did not answer within %s (%s); its log: %s", privateRedisStart, oneLine(err), filepath.Join(dir, "redis.log"))
	}
	p.lock = lock
	return p, rdb, nil
}

// privateRedisConf is the private server's configuration: loopback only, a password,
// every write in the append-only file (fsync each second), no snapshots.
func privateRedisConf(dir string, port int, password string) string {
	return strings.Join([]string{
		"bind 127.0.0.1",
		"port " + strconv.Itoa(port),
		"dir " + strconv.Quote(dir),
		"logfile " + strconv.Quote(filepath.Join(dir, "redis.log")),
		"requirepass " + strconv.Quote(password),
		"appendonly yes",
		"appendfsync everysec",
		`save ""`,
		"daemonize no",
	}, "\n") + "\n"
}

// freeLoopbackPort returns a port on 127.0.0.1 that nobody listens on right now.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port for the private redis-server: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stop asks the server to write its data and exit (SIGTERM), kills it if it has not
// within privateRedisStop, and then releases the data directory (once it runs).
func (p *privateRedis) stop() {
	p.stopped.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(privateRedisStop)
		defer timer.Stop()
		select {
		case <-p.exited:
		case <-timer.C:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if p.lock != nil {
			p.lock.Close()
		}
	})
}
