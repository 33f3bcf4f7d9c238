package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// RateLimiter spreads each caller's requests over time (GCRA), shared by every API
// replica through Redis: store.RateLimitKey(caller) holds the caller's theoretical arrival
// time. The API names callers by identity (a token's ID), never by a name another token
// could take.
type RateLimiter struct {
	rdb   redis.UniversalClient
	rate  float64 // requests per second
	burst int
}

// NewRateLimiter allows rate requests per second per caller, with bursts of burst.
func NewRateLimiter(rdb redis.UniversalClient, rate float64, burst int) *RateLimiter {
	return &RateLimiter{rdb: rdb, rate: rate, burst: max(burst, 1)}
}

// gcraScript admits a request if the caller's theoretical arrival time allows it.
//
//	KEYS  the caller's key
//	ARGV  emission interval (µs), burst tolerance (µs)
//	returns {1, 0} when admitted, {0, retry after µs} when not
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return {0, allow_at - now} end
local new = tat + interval
redis.call('SET', KEYS[1], new, 'PX', math.ceil((new - now) / 1000) + 1000)
return {1, 0}
`)

// Allow reports whether caller may make a request now, and if not, when to retry.
func (l *RateLimiter) Allow(ctx context.Context, caller string) (bool, time.Duration, error) {
	interval := int64(1e6 / l.rate)
	res, err := gcraScript.Run(ctx, l.rdb, []string{store.RateLimitKey(caller)}, interval, interval*int64(l.burst-1)).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("rate limiting: %w", err)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
}
