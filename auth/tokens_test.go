package auth_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/store/storetest"
)

func TestTokens(t *testing.T) {
	ctx := context.Background()
	toks := auth.NewTokens(storetest.Redis(t))
	secret, tok, err := toks.Create(ctx, "ci", []string{"build"}, nil)
	if err != nil || tok.Name != "ci" || len(secret) < 40 {
		t.Fatalf("Create = %q %+v %v", secret, tok, err)
	}
	if _, _, err := toks.Create(ctx, "ci", []string{"read"}, nil); !errors.Is(err, auth.ErrTokenExists) {
		t.Errorf("Create(taken name) = %v, want ErrTokenExists", err)
	}
	got, err := toks.Lookup(ctx, secret)
	if err != nil || got.Name != "ci" || got.LastUsedAt == nil {
		t.Errorf("Lookup = %+v %v", got, err)
	}
	if _, err := toks.Lookup(ctx, secret+"x"); !errors.Is(err, auth.ErrTokenUnknown) {
		t.Errorf("Lookup(wrong) = %v, want ErrTokenUnknown", err)
	}
	if err := toks.Delete(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Lookup(ctx, secret); !errors.Is(err, auth.ErrTokenUnknown) {
		t.Errorf("Lookup(revoked) = %v, want ErrTokenUnknown", err)
	}
}

// TestTokenIDs: every token has an id of its own that outlives its name, and a revocation
// decided on one token never revokes another that took its name since.
func TestTokenIDs(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	toks := auth.NewTokens(rdb)
	_, first, err := toks.Create(ctx, "ci", []string{"build"}, []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.ID, auth.TokenIDPrefix) || len(first.ID) != len(auth.TokenIDPrefix)+26 {
		t.Errorf("Create().ID = %q, want tok_ and a ULID", first.ID)
	}
	got, err := toks.Get(ctx, "ci")
	if err != nil || got.ID != first.ID || !slices.Equal(got.Apps, []string{"hello"}) {
		t.Errorf("Get(ci) = %+v %v, want the token made", got, err)
	}
	if _, err := toks.Get(ctx, "nobody"); !errors.Is(err, auth.ErrTokenUnknown) {
		t.Errorf("Get(nobody) = %v, want ErrTokenUnknown", err)
	}
	if err := toks.Delete(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	secret, second, err := toks.Create(ctx, "ci", []string{"build"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID == first.ID {
		t.Errorf("a token re-made under the name ci has the id %s of the revoked one", second.ID)
	}
	if err := toks.DeleteIf(ctx, "ci", first.ID); !errors.Is(err, auth.ErrTokenUnknown) {
		t.Errorf("DeleteIf(ci, the revoked token's id) = %v, want ErrTokenUnknown", err)
	}
	if got, err := toks.Lookup(ctx, secret); err != nil || got.ID != second.ID {
		t.Errorf("Lookup after a stale DeleteIf = %+v %v, want the new token alive", got, err)
	}
	if err := toks.DeleteIf(ctx, "ci", second.ID); err != nil {
		t.Errorf("DeleteIf(ci, its id) = %v", err)
	}
	if _, err := toks.Lookup(ctx, secret); !errors.Is(err, auth.ErrTokenUnknown) {
		t.Errorf("Lookup after DeleteIf = %v, want ErrTokenUnknown", err)
	}
	if list, err := toks.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List after revoking every token = %+v %v", list, err)
	}
}

// TestTokenWithoutID: a token stored before tokens had ids keeps working, with an id
// derived from its hash that stays the same on every read and once Lookup rewrites it.
func TestTokenWithoutID(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	toks := auth.NewTokens(rdb)
	secret := auth.TokenPrefix + "legacylegacylegacylegacylegacylegacylegacylegacy"
	h := auth.HashToken(secret)
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	doc := `{"name":"old-ci","scopes":["build"],"apps":[],"created_at":"` + created.Format(time.RFC3339) + `"}`
	if err := rdb.Set(ctx, "slipway:token:"+h, doc, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, "slipway:tokens", "old-ci", h).Err(); err != nil {
		t.Fatal(err)
	}
	listed, err := toks.List(ctx)
	if err != nil || len(listed) != 1 {
		t.Fatalf("List = %+v %v", listed, err)
	}
	id := listed[0].ID
	if !strings.HasPrefix(id, auth.TokenIDPrefix) || len(id) != len(auth.TokenIDPrefix)+26 {
		t.Errorf("derived id = %q, want tok_ and a ULID", id)
	}
	for i := range 2 { // the first Lookup writes the id into the token, the second reads it
		got, err := toks.Lookup(ctx, secret)
		if err != nil || got.ID != id || got.Name != "old-ci" {
			t.Errorf("Lookup #%d = %+v %v, want id %s", i+1, got, err, id)
		}
	}
	if got, err := toks.Get(ctx, "old-ci"); err != nil || got.ID != id {
		t.Errorf("Get = %+v %v, want id %s", got, err, id)
	}
	if s, _ := rdb.Get(ctx, "slipway:token:"+h).Result(); !strings.Contains(s, `"id":"`+id+`"`) {
		t.Errorf("stored token after Lookup = %s, want its id recorded", s)
	}
	if err := toks.DeleteIf(ctx, "old-ci", id); err != nil {
		t.Errorf("DeleteIf(old-ci, derived id) = %v", err)
	}
}

// TestTokenRevokedWhileMade: the name and the token are written one after the other (they
// lie in different Redis Cluster slots). A revocation of the name between the two frees
// it before the token exists; the token is then dropped and Create fails, rather than
// hand out a secret no name leads to, which nobody could revoke.
func TestTokenRevokedWhileMade(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	toks := auth.NewTokens(rdb)
	rdb.AddHook(afterCommand{name: "hsetnx", fn: func() {
		if err := toks.Delete(ctx, "ci"); err != nil {
			t.Errorf("Delete between the writes = %v", err)
		}
	}})
	if secret, _, err := toks.Create(ctx, "ci", []string{"build"}, nil); !errors.Is(err, auth.ErrTokenExists) {
		t.Fatalf("Create while revoked = %q, %v; want ErrTokenExists", secret, err)
	}
	if list, err := toks.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want none", list, err)
	}
	if keys, err := storetest.Keys(ctx, rdb, "slipway:token*"); err != nil || len(keys) != 0 {
		t.Errorf("keys left = %v, %v; want none", keys, err)
	}
}

// afterCommand calls fn after each command called name.
type afterCommand struct {
	name string
	fn   func()
}

func (h afterCommand) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h afterCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h afterCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == h.name {
			h.fn()
		}
		return err
	}
}
