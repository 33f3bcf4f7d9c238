package chatops_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/slipway/slipway/chatops"
	"github.com/slipway/slipway/invalid"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

func TestStoreSecrets(t *testing.T) {
	rdb := storetest.Redis(t)
	s := chatops.NewStore(rdb)
	ctx := t.Context()
	admin := chatops.Actor{Name: "admin", ID: "admin"}
	if v, err := s.Secret(ctx, chatops.Slack); v != "" || err != nil {
		t.Fatalf("Secret before any = %q, %v", v, err)
	}
	if _, err := s.SetSecret(ctx, chatops.Slack, "8f742231b10e8888abcd99yyyzzz85a5", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetSecret(ctx, chatops.Mattermost, "xbxecxw3n7y6pke8dgh3kxab4c", admin); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Secret(ctx, chatops.Slack); v != "8f742231b10e8888abcd99yyyzzz85a5" {
		t.Errorf("Slack secret = %q, want it as set (the HMAC needs it)", v)
	}
	if v, _ := s.Secret(ctx, chatops.Mattermost); v != chatops.HashToken("xbxecxw3n7y6pke8dgh3kxab4c") {
		t.Errorf("Mattermost secret = %q, want the token's hash", v)
	}
	raw, _ := rdb.HGetAll(ctx, store.ChatSecretKey("mattermost")).Result()
	for _, v := range raw {
		if strings.Contains(v, "xbxecxw3n7y6pke8dgh3kxab4c") {
			t.Errorf("Redis holds the Mattermost token itself: %v", raw)
		}
	}
	st, err := s.Secrets(ctx)
	if err != nil || !st[chatops.Slack].Set || st[chatops.Slack].SetBy != admin || st[chatops.Slack].SetAt.IsZero() {
		t.Errorf("Secrets = %+v, %v", st, err)
	}
	if err := s.DeleteSecret(ctx, chatops.Slack); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Secrets(ctx); st[chatops.Slack].Set || !st[chatops.Mattermost].Set {
		t.Errorf("Secrets after deleting Slack's = %+v", st)
	}
	var verr *invalid.Error
	for _, bad := range []string{"short", "has a space in it", strings.Repeat("x", 257)} {
		if _, err := s.SetSecret(ctx, chatops.Slack, bad, admin); !errors.As(err, &verr) {
			t.Errorf("SetSecret(%q) = %v, want a validation error", bad, err)
		}
	}
}

func TestStoreUsers(t *testing.T) {
	s := chatops.NewStore(storetest.Redis(t))
	ctx := t.Context()
	alice, bob := chatops.Actor{Name: "alice-admin", ID: "tok_1"}, chatops.Actor{Name: "bob-admin", ID: "tok_2"}
	u, created, err := s.PutUser(ctx, chatops.UserSpec{ID: "slack:U123", Scopes: []string{"promote:prod"}, Apps: []string{"hello"}, Actor: alice})
	if err != nil || !created || u.CreatedBy != alice || !slices.Equal(u.Apps, []string{"hello"}) {
		t.Fatalf("PutUser = %+v, %v, %v", u, created, err)
	}
	u2, created, err := s.PutUser(ctx, chatops.UserSpec{ID: "slack:U123", Scopes: []string{"read"}, Actor: bob})
	if err != nil || created || u2.CreatedBy != alice || !u2.CreatedAt.Equal(u.CreatedAt) || u2.UpdatedBy != bob ||
		!slices.Equal(u2.Scopes, []string{"read"}) || u2.Apps == nil || len(u2.Apps) != 0 {
		t.Errorf("PutUser again = %+v, %v, %v; want it replaced, keeping its creation", u2, created, err)
	}
	if _, _, err := s.PutUser(ctx, chatops.UserSpec{ID: "mattermost:k3x9", Scopes: []string{"read"}, Actor: bob}); err != nil {
		t.Fatal(err)
	}
	users, err := s.Users(ctx)
	if err != nil || len(users) != 2 || users[0].ID != "mattermost:k3x9" || users[1].ID != "slack:U123" {
		t.Errorf("Users = %+v, %v", users, err)
	}
	if err := s.DeleteUser(ctx, "slack:U123"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{s.DeleteUser(ctx, "slack:U123"), func() error { _, err := s.User(ctx, "slack:U123"); return err }()} {
		if !errors.Is(err, chatops.ErrNotFound) {
			t.Errorf("after deleting: %v, want ErrNotFound", err)
		}
	}
	if _, _, err := s.PutUser(ctx, chatops.UserSpec{ID: "irc:bob", Scopes: []string{"read"}}); !errors.Is(err, chatops.ErrNotFound) {
		t.Errorf("PutUser(irc:bob) = %v, want refused", err)
	}
}
