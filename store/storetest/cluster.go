package storetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterWait bounds how long a test waits for a cluster of EnvRedisClusters that no
// other test holds.
const clusterWait = 10 * time.Minute

// RedisCluster returns a client on a Redis Cluster of EnvRedisClusters that this test
// holds alone until it ends, emptied first (FLUSHALL on every master), and closed when the
// test ends. A cluster has only database 0, so tests cannot share one as they share the
// server of EnvRedisURL: a test takes a cluster no other test, in this process or
// another, holds (an exclusive flock on a file named after it in the temporary
// directory), waiting for one when all are taken.
func RedisCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	clusters := strings.Fields(need(t, EnvRedisClusters))
	addrs, release := holdCluster(t, clusters)
	t.Cleanup(release)
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
			t.Fatalf("%s: no Redis Cluster was free within %s", EnvRedisClusters, clusterWait)
		}
		time.Sleep(50 * time.Millisecond)
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
