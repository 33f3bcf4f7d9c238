package chatops

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/invalid"
	"github.com/slipway/slipway/store"
)

// putUserScript writes a mapping, keeping when and by whom it was first made.
//
//	KEYS  the user's hash, the users index
//	ARGV  id, now, actor, actor id, scopes JSON, apps JSON
//	returns {created (1 or 0), the hash's fields and values...}
var putUserScript = redis.NewScript(`
local created = redis.call('HSETNX', KEYS[1], 'created_at', ARGV[2])
if created == 1 then redis.call('HSET', KEYS[1], 'created_by', ARGV[3], 'created_by_id', ARGV[4]) end
redis.call('HSET', KEYS[1], 'scopes', ARGV[5], 'apps', ARGV[6], 'updated_at', ARGV[2], 'updated_by', ARGV[3], 'updated_by_id', ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
local out = {created}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
`)

// deleteUserScript removes a mapping.
//
//	KEYS  the user's hash, the users index
//	ARGV  id
//	returns 1, or 0 when there was none
var deleteUserScript = redis.NewScript(`
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
`)

// PutUser maps a chat user to scopes and apps, replacing their mapping if they have one,
// and reports whether the mapping is new. The caller checks the scopes and apps as it
// checks a token's.
func (s *Store) PutUser(ctx context.Context, spec UserSpec) (User, bool, error) {
	if why := ValidUserID(spec.ID); why != "" {
		return User{}, false, fmt.Errorf("%w: %s", ErrNotFound, why)
	}
	if len(spec.Scopes) == 0 {
		return User{}, false, &invalid.Error{Fields: []invalid.Field{{Field: "scopes", Detail: "at least one scope"}}}
	}
	scopes, _ := json.Marshal(spec.Scopes)
	apps, _ := json.Marshal(orEmpty(spec.Apps))
	now := s.now().UTC().Format(time.RFC3339Nano)
	res, err := putUserScript.Run(ctx, s.rdb, []string{store.ChatUserKey(spec.ID), store.ChatUsersKey},
		spec.ID, now, spec.Actor.Name, spec.Actor.ID, scopes, apps).Slice()
	if err != nil {
		return User{}, false, fmt.Errorf("mapping chat user %s: %w", spec.ID, err)
	}
	h := map[string]string{}
	for i := 1; i+1 < len(res); i += 2 {
		k, _ := res[i].(string)
		h[k], _ = res[i+1].(string)
	}
	created, _ := res[0].(int64)
	u, err := decodeUser(spec.ID, h)
	return u, created == 1, err
}

// User returns a chat user's mapping, or ErrNotFound.
func (s *Store) User(ctx context.Context, id string) (User, error) {
	if ValidUserID(id) != "" {
		return User{}, fmt.Errorf("%w: no chat user %s", ErrNotFound, id)
	}
	h, err := s.rdb.HGetAll(ctx, store.ChatUserKey(id)).Result()
	if err != nil {
		return User{}, fmt.Errorf("reading chat user %s: %w", id, err)
	}
	if len(h) == 0 {
		return User{}, fmt.Errorf("%w: no chat user %s", ErrNotFound, id)
	}
	return decodeUser(id, h)
}

// Users returns every mapping, by id.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	ids, err := s.rdb.ZRange(ctx, store.ChatUsersKey, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("listing chat users: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, store.ChatUserKey(id))
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading chat users: %w", err)
	}
	out := make([]User, 0, len(ids))
	for i, id := range ids {
		if len(cmds[i].Val()) == 0 {
			continue // deleted between the two reads
		}
		u, err := decodeUser(id, cmds[i].Val())
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// DeleteUser removes a chat user's mapping: their next command is refused.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	if ValidUserID(id) != "" {
		return fmt.Errorf("%w: no chat user %s", ErrNotFound, id)
	}
	n, err := deleteUserScript.Run(ctx, s.rdb, []string{store.ChatUserKey(id), store.ChatUsersKey}, id).Int()
	if err != nil {
		return fmt.Errorf("removing chat user %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: no chat user %s", ErrNotFound, id)
	}
	return nil
}

func decodeUser(id string, h map[string]string) (User, error) {
	u := User{
		ID:        id,
		CreatedBy: Actor{Name: h["created_by"], ID: h["created_by_id"]},
		UpdatedBy: Actor{Name: h["updated_by"], ID: h["updated_by_id"]},
	}
	if err := json.Unmarshal([]byte(h["scopes"]), &u.Scopes); err != nil {
		return User{}, fmt.Errorf("decoding chat user %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(h["apps"]), &u.Apps); err != nil {
		return User{}, fmt.Errorf("decoding chat user %s: %w", id, err)
	}
	u.CreatedAt, _ = time.Parse(time.RFC3339Nano, h["created_at"])
	u.UpdatedAt, _ = time.Parse(time.RFC3339Nano, h["updated_at"])
	return u, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}
