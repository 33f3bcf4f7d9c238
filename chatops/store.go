package chatops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/invalid"
	"github.com/slipway/slipway/store"
)

// Actor is who changes the chat configuration: a name and an identity, as history
// records them (a token's name and id, admin, anonymous).
type Actor struct {
	Name, ID string
}

// SecretState is what may be shown of a platform's secret: whether it is set, when and
// by whom. The secret itself is never shown.
type SecretState struct {
	Set   bool
	SetAt time.Time
	SetBy Actor
}

// User maps a chat user to what they may do: scopes and apps, by the rules of a token's.
type User struct {
	ID        string // <platform>:<user id>, slack:U0123ABCD
	Scopes    []string
	Apps      []string // empty: every app
	CreatedAt time.Time
	CreatedBy Actor
	UpdatedAt time.Time
	UpdatedBy Actor
}

// UserSpec asks for a user's mapping.
type UserSpec struct {
	ID     string
	Scopes []string
	Apps   []string
	Actor  Actor
}

// Store keeps the chat platforms' secrets and the chat users' mappings in Redis (see
// store/paths.go).
type Store struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewStore returns the chat configuration store on rdb.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb, now: time.Now} }

// SetSecret sets what p's commands are verified with, replacing the one before at once:
// Slack's signing secret as it is (the HMAC needs it), Mattermost's command token as its
// SHA-256 (HashToken), which is all a comparison needs.
func (s *Store) SetSecret(ctx context.Context, p Platform, secret string, by Actor) (SecretState, error) {
	if !p.Valid() {
		return SecretState{}, fmt.Errorf("%w: no chat platform %q", ErrNotFound, p)
	}
	var verr invalid.Error
	switch {
	case len(secret) < 8 || len(secret) > 256:
		verr.Add("secret", "8 to 256 characters, as the chat service shows it")
	case slices.ContainsFunc([]byte(secret), func(c byte) bool { return c <= ' ' || c > '~' }):
		verr.Add("secret", "printable ASCII without spaces, as the chat service shows it")
	}
	if err := verr.Err(); err != nil {
		return SecretState{}, err
	}
	value := secret
	if p == Mattermost {
		value = HashToken(secret)
	}
	st := SecretState{Set: true, SetAt: s.now().UTC(), SetBy: by}
	if err := s.rdb.HSet(ctx, store.ChatSecretKey(string(p)), "value", value,
		"set_at", st.SetAt.Format(time.RFC3339Nano), "set_by", by.Name, "set_by_id", by.ID).Err(); err != nil {
		return SecretState{}, fmt.Errorf("setting the %s secret: %w", p, err)
	}
	return st, nil
}

// DeleteSecret removes p's secret: its commands are refused until one is set again.
func (s *Store) DeleteSecret(ctx context.Context, p Platform) error {
	if err := s.rdb.Del(ctx, store.ChatSecretKey(string(p))).Err(); err != nil {
		return fmt.Errorf("removing the %s secret: %w", p, err)
	}
	return nil
}

// Secret returns what p's commands are verified with (VerifySlack's secret,
// VerifyMattermost's token hash), or "" when none is set.
func (s *Store) Secret(ctx context.Context, p Platform) (string, error) {
	v, err := s.rdb.HGet(ctx, store.ChatSecretKey(string(p)), "value").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the %s secret: %w", p, err)
	}
	return v, nil
}

// Secrets returns the state of every platform's secret.
func (s *Store) Secrets(ctx context.Context) (map[Platform]SecretState, error) {
	cmds := make([]*redis.SliceCmd, len(Platforms))
	if _, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, p := range Platforms {
			cmds[i] = pl.HMGet(ctx, store.ChatSecretKey(string(p)), "value", "set_at", "set_by", "set_by_id")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading the chat secrets: %w", err)
	}
	out := map[Platform]SecretState{}
	for i, p := range Platforms {
		v := cmds[i].Val()
		str := func(j int) string { s, _ := v[j].(string); return s }
		st := SecretState{Set: str(0) != "", SetBy: Actor{Name: str(2), ID: str(3)}}
		st.SetAt, _ = time.Parse(time.RFC3339Nano, str(1))
		out[p] = st
	}
	return out, nil
}
