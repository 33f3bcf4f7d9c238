package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/store/storetest"
)

func TestRateLimiter(t *testing.T) {
	ctx := context.Background()
	rl := auth.NewRateLimiter(storetest.Redis(t), 2, 3) // 2/s, bursts of 3
	allowed := 0
	var wait time.Duration
	for range 10 {
		ok, w, err := rl.Allow(ctx, "bot")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			allowed++
		} else {
			wait = w
		}
	}
	if allowed != 3 || wait <= 0 || wait > time.Second {
		t.Errorf("10 quick requests at 2/s with bursts of 3: %d allowed, retry after %s", allowed, wait)
	}
	if ok, _, _ := rl.Allow(ctx, "someone-else"); !ok {
		t.Error("another caller was limited")
	}
	time.Sleep(600 * time.Millisecond)
	if ok, _, _ := rl.Allow(ctx, "bot"); !ok {
		t.Error("after waiting, the caller is still limited")
	}
}
