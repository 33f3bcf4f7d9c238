package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// Token is an API token as stored: never its secret, only the secret's SHA-256.
type Token struct {
	// ID is the token's identity, "tok_" and a ULID made at creation: unlike the name,
	// which a later token may take once this one is revoked, it is never reused. A token
	// stored before ids has its ID derived from its hash (see tokenID).
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	Apps       []string   `json:"apps"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// TokenPrefix starts every token slipway makes, so secret scanners can find them.
const TokenPrefix = "slw_"

// TokenIDPrefix starts every token id.
const TokenIDPrefix = "tok_"

// Tokens keeps API tokens in Redis: each token's JSON under store.TokenKey of its
// secret's hash, and the live tokens by name in store.TokensKey.
type Tokens struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewTokens returns the token store on rdb.
func NewTokens(rdb redis.UniversalClient) *Tokens { return &Tokens{rdb: rdb, now: time.Now} }

// HashToken returns the hex SHA-256 of a secret.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Create makes a token and returns its secret, which is not kept.
func (t *Tokens) Create(ctx context.Context, name string, scopes, apps []string) (string, Token, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", Token{}, err
	}
	secret := TokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	if apps == nil {
		apps = []string{}
	}
	now := t.now().UTC()
	id := TokenIDPrefix + ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()
	tok := Token{ID: id, Name: name, Scopes: slices.Clone(scopes), Apps: slices.Clone(apps), CreatedAt: now}
	doc, err := json.Marshal(tok)
	if err != nil {
		return "", Token{}, err
	}
	h := HashToken(secret)
	// The index and the token are keys of different cluster slots, so they are written
	// one after the other: the name first (taken only if free), then the token. An index
	// entry whose token is missing reads as no token, and revoking its name frees it.
	ok, err := t.rdb.HSetNX(ctx, store.TokensKey, name, h).Result()
	if err != nil {
		return "", Token{}, fmt.Errorf("recording token: %w", err)
	}
	if !ok {
		return "", Token{}, fmt.Errorf("%w: a token named %q exists; revoke it first or pick another name", ErrTokenExists, name)
	}
	if err := t.rdb.Set(ctx, store.TokenKey(h), doc, 0).Err(); err != nil {
		t.abandon(ctx, name, h)
		return "", Token{}, fmt.Errorf("recording token: %w", err)
	}
	// A revocation of the name between the two writes freed it before the token existed:
	// a token no name leads to could never be revoked, so it is dropped.
	if cur, err := t.rdb.HGet(ctx, store.TokensKey, name).Result(); err != nil || cur != h {
		t.abandon(ctx, name, h)
		if err == nil || errors.Is(err, redis.Nil) {
			err = fmt.Errorf("%w: the name %q was revoked while its token was made", ErrTokenExists, name)
		}
		return "", Token{}, fmt.Errorf("recording token: %w", err)
	}
	return secret, tok, nil
}

// abandon undoes a token's creation that did not finish: its key, then its name while the
// name is still its own.
func (t *Tokens) abandon(ctx context.Context, name, h string) {
	ctx = context.WithoutCancel(ctx)
	_ = t.rdb.Del(ctx, store.TokenKey(h)).Err()
	_ = unindexTokenScript.Run(ctx, t.rdb, []string{store.TokensKey}, name, h).Err()
}

// Lookup returns the token whose secret is given, or ErrTokenUnknown. It notes the time
// of use, at most once a minute per token.
func (t *Tokens) Lookup(ctx context.Context, secret string) (Token, error) {
	h := HashToken(secret)
	s, err := t.rdb.Get(ctx, store.TokenKey(h)).Result()
	if errors.Is(err, redis.Nil) {
		return Token{}, ErrTokenUnknown
	}
	if err != nil {
		return Token{}, fmt.Errorf("reading token: %w", err)
	}
	tok, err := decodeToken(h, s)
	if err != nil {
		return Token{}, err
	}
	now := t.now().UTC()
	if tok.LastUsedAt == nil || now.Sub(*tok.LastUsedAt) > time.Minute {
		tok.LastUsedAt = &now
		if doc, err := json.Marshal(tok); err == nil {
			t.rdb.SetArgs(ctx, store.TokenKey(h), doc, redis.SetArgs{Mode: "XX"})
		}
	}
	return tok, nil
}

// List returns every token, by name.
func (t *Tokens) List(ctx context.Context) ([]Token, error) {
	idx, err := t.rdb.HGetAll(ctx, store.TokensKey).Result()
	if err != nil {
		return nil, fmt.Errorf("listing tokens: %w", err)
	}
	names := make([]string, 0, len(idx))
	for n := range idx {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]Token, 0, len(names))
	for _, n := range names {
		s, err := t.rdb.Get(ctx, store.TokenKey(idx[n])).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading token %s: %w", n, err)
		}
		tok, err := decodeToken(idx[n], s)
		if err != nil {
			return nil, fmt.Errorf("token %s: %w", n, err)
		}
		out = append(out, tok)
	}
	return out, nil
}

// Get returns the live token called name, or ErrTokenUnknown.
func (t *Tokens) Get(ctx context.Context, name string) (Token, error) {
	tok, _, err := t.get(ctx, name)
	return tok, err
}

// get returns the token called name and the hash of its secret.
func (t *Tokens) get(ctx context.Context, name string) (Token, string, error) {
	h, err := t.rdb.HGet(ctx, store.TokensKey, name).Result()
	if errors.Is(err, redis.Nil) {
		return Token{}, "", fmt.Errorf("%w: no token named %q", ErrTokenUnknown, name)
	}
	if err != nil {
		return Token{}, "", fmt.Errorf("reading token %s: %w", name, err)
	}
	s, err := t.rdb.Get(ctx, store.TokenKey(h)).Result()
	if errors.Is(err, redis.Nil) {
		return Token{}, h, fmt.Errorf("%w: no token named %q", ErrTokenUnknown, name)
	}
	if err != nil {
		return Token{}, "", fmt.Errorf("reading token %s: %w", name, err)
	}
	tok, err := decodeToken(h, s)
	if err != nil {
		return Token{}, "", fmt.Errorf("token %s: %w", name, err)
	}
	return tok, h, nil
}

// unindexTokenScript removes a name from the index only while it still names the hash
// given, so a revocation never frees the name of a token made since.
//
//	KEYS  the index
//	ARGV  name, hash
var unindexTokenScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`)

// Delete revokes the token called name.
func (t *Tokens) Delete(ctx context.Context, name string) error {
	return t.DeleteIf(ctx, name, "")
}

// DeleteIf revokes the token called name if it is still the token with id (any token
// for an empty id), and answers ErrTokenUnknown otherwise: a caller that decided on a
// token it read revokes that token, never another that took its name since.
func (t *Tokens) DeleteIf(ctx context.Context, name, id string) error {
	tok, h, err := t.get(ctx, name)
	switch {
	case errors.Is(err, ErrTokenUnknown) && h != "" && id == "":
		// The index names a token that is gone: free the name.
	case err != nil:
		return err
	case id != "" && tok.ID != id:
		return fmt.Errorf("%w: no token named %q", ErrTokenUnknown, name)
	}
	// The token's own key holds no other token ever (its secret is random), so deleting
	// it revokes exactly the token read above.
	if err := t.rdb.Del(ctx, store.TokenKey(h)).Err(); err != nil {
		return fmt.Errorf("revoking token %s: %w", name, err)
	}
	if err := unindexTokenScript.Run(ctx, t.rdb, []string{store.TokensKey}, name, h).Err(); err != nil {
		return fmt.Errorf("revoking token %s: %w", name, err)
	}
	return nil
}

// decodeToken reads a stored token whose secret hashes to h.
func decodeToken(h, doc string) (Token, error) {
	var tok Token
	if err := json.Unmarshal([]byte(doc), &tok); err != nil {
		return Token{}, fmt.Errorf("decoding token: %w", err)
	}
	if tok.ID == "" {
		tok.ID = tokenID(h, tok.CreatedAt)
	}
	return tok, nil
}

// tokenID is the id of a token stored before tokens had ids: a ULID of its creation time
// whose random part comes from the hash of its secret, so it is the same on every read
// and every replica. Lookup writes it into the token when it notes a use.
func tokenID(h string, created time.Time) string {
	sum := sha256.Sum256([]byte("slipway token id\x00" + h))
	ms := ulid.Timestamp(created)
	if created.IsZero() || ms > ulid.MaxTime() {
		ms = 0
	}
	id, err := ulid.New(ms, bytes.NewReader(sum[:10]))
	if err != nil {
		id, _ = ulid.New(0, bytes.NewReader(sum[:10]))
	}
	return TokenIDPrefix + id.String()
}
