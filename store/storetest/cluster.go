package storetest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterWait bounds how long a test waits for a cluster of EnvRedisClusters that no
// other test holds before it starts one of its own.
const clusterWait = time.Second

// RedisCluster returns a client on a Redis Cluster of 3 masters that this test holds
// alone until it ends, emptied first (FLUSHALL on every master), and closed when the test
// ends. A cluster has only database 0, so tests cannot share one as they share the server
// of EnvRedisURL: a test takes one of EnvRedisClusters that no other test, in this process
// or another, holds (an exclusive flock on a file named after it in the temporary
// directory), and when all are taken for longer than clusterWait (as by a test that wants
// two), it starts a cluster of its own (StartRedisCluster).
func RedisCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	clusters := strings.Fields(need(t, EnvRedisClusters))
	addrs, release := holdCluster(t, clusters)
	if addrs == nil {
		addrs = StartRedisCluster(t)
	} else {
		t.Cleanup(release)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.FlushAll(ctx).Err()
	})
	if err != nil {
		t.Fatalf("emptying the Redis Cluster at %s: %v", strings.Join(addrs, ","), err)
	}
	return c
}

// RedisClusterURL returns the addresses of a Redis Cluster this test holds alone
// (see RedisCluster) as go-redis writes a cluster URL:
// redis://<addr 1>?addr=<addr 2>&addr=<addr 3>.
func RedisClusterURL(t testing.TB) string {
	t.Helper()
	c := RedisCluster(t)
	addrs := c.Options().Addrs
	return "redis://" + addrs[0] + "?addr=" + strings.Join(addrs[1:], "&addr=")
}

// holdCluster takes the lock of one of clusters and returns its addresses and the
// function that releases it.
func holdCluster(t testing.TB, clusters []string) ([]string, func()) {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		for _, cl := range clusters {
			name := "slipway-test-cluster-" + strings.NewReplacer(":", "_", ",", "-").Replace(cl) + ".lock"
			f, err := os.OpenFile(filepath.Join(os.TempDir(), name), os.O_CREATE|os.O_RDWR, 0o600)
			if err != nil {
				t.Fatalf("locking a Redis Cluster: %v", err)
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				f.Close()
				continue
			}
			return strings.Split(cl, ","), func() { f.Close() }
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartRedisCluster starts a Redis Cluster of 3 masters on free loopback ports, with
// nothing kept on disk, waits until every node says it is ok, and stops it when the test
// ends. It returns the nodes' addresses.
func StartRedisCluster(t testing.TB) []string {
	t.Helper()
	NeedRedisServer(t)
	dir := t.TempDir()
	ctx := context.Background()
	nodes := make([]*redis.Client, 3)
	addrs := make([]string, 3)
	buses := make([]string, 3)
	for i := range nodes {
		addrs[i] = FreeAddr(t)
		_, port, _ := net.SplitHostPort(addrs[i])
		_, buses[i], _ = net.SplitHostPort(FreeAddr(t))
		cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--cluster-port", buses[i],
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes-"+port+".conf", "--dir", dir,
			"--appendonly", "no", "--save", "", "--daemonize", "no", "--logfile", filepath.Join(dir, port+".log"))
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis-server: %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		nodes[i] = redis.NewClient(&redis.Options{Addr: addrs[i]})
		defer nodes[i].Close()
	}
	const slots = 16384
	for i, n := range nodes {
		waitFor(t, "redis-server on "+addrs[i]+" to answer", func() bool { return n.Ping(ctx).Err() == nil })
		if err := n.ClusterAddSlotsRange(ctx, i*slots/3, (i+1)*slots/3-1).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", addrs[i], err)
		}
	}
	for i := 1; i < 3; i++ {
		host, port, _ := net.SplitHostPort(addrs[i])
		if err := nodes[0].Do(ctx, "cluster", "meet", host, port, buses[i]).Err(); err != nil {
			t.Fatalf("CLUSTER MEET %s: %v", addrs[i], err)
		}
	}
	for i, n := range nodes {
		waitFor(t, "the Redis Cluster node "+addrs[i]+" to be ok", func() bool {
			info, err := n.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}
	return addrs
}

// waitFor polls cond for up to 30 seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: gave up after 30s", what)
		}
	}
}

// Keys returns the keys matching pattern in rdb: on a Redis Cluster, those of every
// master (KEYS on a cluster client asks one node).
func Keys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	c, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return rdb.Keys(ctx, pattern).Result()
	}
	var mu sync.Mutex
	var all []string
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, pattern).Result()
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return err
	})
	return all, err
}
