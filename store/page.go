package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// PageIDs reads one page of a sorted set whose members all have score 0 and sort by id
// (ULIDs, so newest last): up to limit ids, newest first, starting after the id after
// ("" for the newest), and the id to pass as after for the next page ("" on the last).
func PageIDs(ctx context.Context, rdb redis.Cmdable, key, after string, limit int) (ids []string, next string, err error) {
	start := "+"
	if after != "" {
		start = "(" + after
	}
	ids, err = rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: key, Start: start, Stop: "-", ByLex: true, Rev: true, Count: int64(limit) + 1,
	}).Result()
	if err != nil {
		return nil, "", err
	}
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	return ids, next, nil
}
