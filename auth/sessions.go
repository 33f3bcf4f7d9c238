package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// Session is a signed-in browser of the portal: it stands for one token, which it names
// by the hash of its secret, never by the secret.
type Session struct {
	// TokenHash is HashToken of the secret the session was opened with.
	TokenHash string
	// CSRF is the synchronizer token every form of the session carries back.
	CSRF      string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// DefaultSessionTTL is how long a session lives unless WithSessionTTL says otherwise.
const DefaultSessionTTL = 12 * time.Hour

// Sessions keeps the portal's sessions in Redis, each under store.SessionKey of the hash
// of its id: the id, a random string, is only ever in the browser's cookie.
type Sessions struct {
	rdb redis.UniversalClient
	ttl time.Duration
	now func() time.Time
}

// NewSessions returns the session store on rdb; a session expires ttl after it is opened
// (DefaultSessionTTL when ttl is 0).
func NewSessions(rdb redis.UniversalClient, ttl time.Duration) *Sessions {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &Sessions{rdb: rdb, ttl: ttl, now: time.Now}
}

// Create opens a session for the token whose secret hashes to tokenHash and returns its
// id, the cookie's value.
func (s *Sessions) Create(ctx context.Context, tokenHash string) (string, Session, error) {
	id, err := randomString(32)
	if err != nil {
		return "", Session{}, err
	}
	csrf, err := randomString(32)
	if err != nil {
		return "", Session{}, err
	}
	now := s.now().UTC()
	sess := Session{TokenHash: tokenHash, CSRF: csrf, CreatedAt: now, ExpiresAt: now.Add(s.ttl)}
	key := store.SessionKey(HashToken(id))
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "token", tokenHash, "csrf", csrf,
			"created_at", strconv.FormatInt(now.UnixMilli(), 10), "expires_at", strconv.FormatInt(sess.ExpiresAt.UnixMilli(), 10))
		p.PExpireAt(ctx, key, sess.ExpiresAt)
		return nil
	})
	if err != nil {
		return "", Session{}, fmt.Errorf("recording session: %w", err)
	}
	return id, sess, nil
}

// Get returns the live session with id, or ErrSessionUnknown.
func (s *Sessions) Get(ctx context.Context, id string) (Session, error) {
	if id == "" {
		return Session{}, ErrSessionUnknown
	}
	m, err := s.rdb.HGetAll(ctx, store.SessionKey(HashToken(id))).Result()
	if err != nil {
		return Session{}, fmt.Errorf("reading session: %w", err)
	}
	created, err1 := strconv.ParseInt(m["created_at"], 10, 64)
	expires, err2 := strconv.ParseInt(m["expires_at"], 10, 64)
	if m["token"] == "" || m["csrf"] == "" || err1 != nil || err2 != nil {
		return Session{}, ErrSessionUnknown
	}
	sess := Session{TokenHash: m["token"], CSRF: m["csrf"], CreatedAt: time.UnixMilli(created).UTC(), ExpiresAt: time.UnixMilli(expires).UTC()}
	if !s.now().Before(sess.ExpiresAt) {
		return Session{}, ErrSessionUnknown
	}
	return sess, nil
}

// Delete ends the session with id; ending one that is gone is not an error.
func (s *Sessions) Delete(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	if err := s.rdb.Del(ctx, store.SessionKey(HashToken(id))).Err(); err != nil {
		return fmt.Errorf("ending session: %w", err)
	}
	return nil
}

// LookupHash is Lookup by the hash of the secret (HashToken) rather than the secret: a
// session holds only the hash.
func (t *Tokens) LookupHash(ctx context.Context, h string) (Token, error) {
	s, err := t.rdb.Get(ctx, store.TokenKey(h)).Result()
	if errors.Is(err, redis.Nil) {
		return Token{}, ErrTokenUnknown
	}
	if err != nil {
		return Token{}, fmt.Errorf("reading token: %w", err)
	}
	return decodeToken(h, s)
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
