package store

import "github.com/redis/go-redis/v9"

// IsCluster reports whether rdb is a Redis Cluster client, on which one command may touch
// the keys of one hash slot only: a read of several apps' streams is then one command per
// stream (see paths.go).
func IsCluster(rdb redis.UniversalClient) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}
