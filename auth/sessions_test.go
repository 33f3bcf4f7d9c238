package auth_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

func TestSessions(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	sessions := auth.NewSessions(rdb, time.Hour)
	h := auth.HashToken("slw_secret")
	id, sess, err := sessions.Create(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if len(id) < 40 || sess.TokenHash != h || len(sess.CSRF) < 40 || sess.CSRF == id {
		t.Fatalf("Create = %q %+v, want a long random id and CSRF token", id, sess)
	}
	got, err := sessions.Get(ctx, id)
	if err != nil || got.TokenHash != h || got.CSRF != sess.CSRF || !got.ExpiresAt.Equal(sess.ExpiresAt.Truncate(time.Millisecond)) {
		t.Fatalf("Get = %+v, %v, want %+v", got, err, sess)
	}
	// Stored under the hash of the id, never the id, and expiring with the session.
	key := store.SessionKey(auth.HashToken(id))
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("PTTL of the session = %s, want about 1h", ttl)
	}
	if n := rdb.Exists(ctx, store.SessionKey(id)).Val(); n != 0 {
		t.Errorf("a key is named by the session id itself")
	}
	for _, bad := range []string{"", "nosuchsession", id + "x"} {
		if _, err := sessions.Get(ctx, bad); !errors.Is(err, auth.ErrSessionUnknown) {
			t.Errorf("Get(%q) = %v, want ErrSessionUnknown", bad, err)
		}
	}
	// A session past its expiry is unknown even while its key lingers.
	rdb.HSet(ctx, key, "expires_at", strconv.FormatInt(time.Now().Add(-time.Second).UnixMilli(), 10))
	if _, err := sessions.Get(ctx, id); !errors.Is(err, auth.ErrSessionUnknown) {
		t.Errorf("Get of an expired session = %v, want ErrSessionUnknown", err)
	}
	// Delete ends it; deleting again is no error.
	id2, _, err := sessions.Create(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := sessions.Delete(ctx, id2); err != nil {
		t.Fatal(err)
	}
	if err := sessions.Delete(ctx, id2); err != nil {
		t.Errorf("second Delete = %v", err)
	}
	if _, err := sessions.Get(ctx, id2); !errors.Is(err, auth.ErrSessionUnknown) {
		t.Errorf("Get after Delete = %v, want ErrSessionUnknown", err)
	}
}

func TestLookupHash(t *testing.T) {
	ctx := context.Background()
	toks := auth.NewTokens(storetest.Redis(t))
	secret, tok, err := toks.Create(ctx, "viewer", []string{"read"}, []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := toks.LookupHash(ctx, auth.HashToken(secret))
	if err != nil || got.ID != tok.ID || got.Name != "viewer" {
		t.Fatalf("LookupHash = %+v, %v, want %+v", got, err, tok)
	}
	if err := toks.Delete(ctx, "viewer"); err != nil {
		t.Fatal(err)
	}
	if _, err := toks.LookupHash(ctx, auth.HashToken(secret)); !errors.Is(err, auth.ErrTokenUnknown) {
		t.Errorf("LookupHash of a revoked token = %v, want ErrTokenUnknown", err)
	}
}
