package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

func TestTokens(t *testing.T) {
	ctx := context.Background()
	toks := store.NewTokens(storetest.Redis(t))
	secret, tok, err := toks.Create(ctx, "ci", []string{"build"}, nil)
	if err != nil || tok.Name != "ci" || len(secret) < 40 {
		t.Fatalf("Create = %q %+v %v", secret, tok, err)
	}
	if _, _, err := toks.Create(ctx, "ci", []string{"read"}, nil); !errors.Is(err, store.ErrTokenExists) {
		t.Errorf("Create(taken name) = %v, want ErrTokenExists", err)
	}
	got, err := toks.Lookup(ctx, secret)
	if err != nil || got.Name != "ci" || got.LastUsedAt == nil {
		t.Errorf("Lookup = %+v %v", got, err)
	}
	if _, err := toks.Lookup(ctx, secret+"x"); !errors.Is(err, store.ErrTokenUnknown) {
		t.Errorf("Lookup(wrong) = %v, want ErrTokenUnknown", err)
	}
	if err := toks.Delete(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Lookup(ctx, secret); !errors.Is(err, store.ErrTokenUnknown) {
		t.Errorf("Lookup(revoked) = %v, want ErrTokenUnknown", err)
	}
}

func TestRateLimiter(t *testing.T) {
	ctx := context.Background()
	rl := store.NewRateLimiter(storetest.Redis(t), 2, 3) // 2/s, bursts of 3
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
