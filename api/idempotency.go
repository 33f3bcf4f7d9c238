package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// Idempotency remembers the answers to requests sent with an Idempotency-Key, so a
// retried request gets the first answer instead of doing the work again. The answers are
// HTTP responses (status, Location, body), so the API keeps them itself, in Redis under
// store.IdempotencyKey.
//
// A request is fingerprinted in two parts: its head (method, path, query, media type),
// known at once, and its body's digest, known once the body is read. Begin reserves the
// key with the head; Complete records the answer with the body digest.
type Idempotency struct {
	rdb        redis.UniversalClient
	ttl        time.Duration
	pendingTTL time.Duration
}

// NewIdempotency returns the key store on rdb. Answers are kept for ttl (24 hours when
// zero); a reservation whose request never completes expires after 10 minutes.
func NewIdempotency(rdb redis.UniversalClient, ttl time.Duration) *Idempotency {
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	return &Idempotency{rdb: rdb, ttl: ttl, pendingTTL: 10 * time.Minute}
}

// IdemState is where a key's first request is.
type IdemState string

// The states of an Idempotency-Key.
const (
	IdemPending IdemState = "pending"
	IdemDone    IdemState = "done"
)

// IdemRecord is what is remembered of a key's first request.
type IdemRecord struct {
	State      IdemState
	Head       string // fingerprint of method, path, query and media type
	BodyDigest string
	Status     int
	Location   string
	Body       []byte
}

// idemBeginScript reserves a key or returns what it holds.
//
//	KEYS  the key's hash
//	ARGV  head fingerprint, reservation ttl (ms)
//	returns {} when reserved, else the hash's field/value pairs
var idemBeginScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGETALL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'state', 'pending', 'head', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {}
`)

func idemKey(app, key string) string {
	sum := sha256.Sum256([]byte(key))
	return store.IdempotencyKey(app, hex.EncodeToString(sum[:]))
}

// Begin reserves key (scoped to app) for a request whose head fingerprint is head. It
// returns nil when the key was free and is now this request's; otherwise the record of
// the earlier request.
func (i *Idempotency) Begin(ctx context.Context, app, key, head string) (*IdemRecord, error) {
	vals, err := idemBeginScript.Run(ctx, i.rdb, []string{idemKey(app, key)}, head, i.pendingTTL.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("reserving idempotency key: %w", err)
	}
	if len(vals) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for j := 0; j+1 < len(vals); j += 2 {
		m[vals[j]] = vals[j+1]
	}
	status, _ := strconv.Atoi(m["status"])
	return &IdemRecord{
		State: IdemState(m["state"]), Head: m["head"], BodyDigest: m["body_digest"],
		Status: status, Location: m["location"], Body: []byte(m["body"]),
	}, nil
}

// Complete records the answer to the request that reserved key.
func (i *Idempotency) Complete(ctx context.Context, app, key string, rec IdemRecord) error {
	k := idemKey(app, key)
	_, err := i.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k, "state", string(IdemDone), "body_digest", rec.BodyDigest,
			"status", rec.Status, "location", rec.Location, "body", rec.Body)
		p.PExpire(ctx, k, i.ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording idempotent answer: %w", err)
	}
	return nil
}

// Abort frees key after its request failed, so the client may retry with it.
func (i *Idempotency) Abort(ctx context.Context, app, key string) error {
	err := i.rdb.Del(ctx, idemKey(app, key)).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("freeing idempotency key: %w", err)
	}
	return nil
}
