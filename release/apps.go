package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/store"
)

// Apps keeps app configurations in Redis (see store/paths.go for the keys).
type Apps struct {
	rdb   redis.UniversalClient
	check BuildChecker
	now   func() time.Time
}

// NewApps returns the app registry on rdb; check vets build settings.
func NewApps(rdb redis.UniversalClient, check BuildChecker) *Apps {
	return &Apps{rdb: rdb, check: check, now: time.Now}
}

// Precondition makes a write conditional on the app's state.
type Precondition struct {
	// Generation, when not zero, must be the app's current generation (If-Match).
	Generation int64
	// MustExist refuses to create the app (If-Match: *).
	MustExist bool
	// MustNotExist refuses to replace an app (If-None-Match: *).
	MustNotExist bool
}

// putAppScript writes an app's configuration if the precondition holds. Writing the
// configuration it already has changes nothing, not even the generation.
//
//	KEYS[1] the app hash
//	ARGV    spec JSON, now, expected generation (0: any), must not exist (0/1), must exist (0/1)
//	returns {outcome, generation, spec, created_at, updated_at}; outcome is one of
//	        created, updated, unchanged, exists, missing, stale
var putAppScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'gen', 'spec', 'created_at', 'updated_at')
local gen = tonumber(h[1] or '0')
local function state(outcome)
  local c = redis.call('HMGET', KEYS[1], 'gen', 'spec', 'created_at', 'updated_at')
  return {outcome, tonumber(c[1] or '0'), c[2] or '', c[3] or '', c[4] or ''}
end
if ARGV[4] == '1' and gen > 0 then return state('exists') end
if ARGV[5] == '1' and gen == 0 then return state('missing') end
local want = tonumber(ARGV[3])
if want > 0 and want ~= gen then return state('stale') end
if gen > 0 and h[2] == ARGV[1] then return state('unchanged') end
local outcome = 'updated'
if gen == 0 then
  redis.call('HSET', KEYS[1], 'created_at', ARGV[2])
  outcome = 'created'
end
redis.call('HSET', KEYS[1], 'spec', ARGV[1], 'gen', gen + 1, 'updated_at', ARGV[2])
return state(outcome)
`)

// deleteAppScript deletes an app's hash if the precondition holds.
//
//	KEYS[1] the app hash
//	ARGV    expected generation (0: any)
//	returns {outcome, generation}; outcome is deleted, missing or stale
var deleteAppScript = redis.NewScript(`
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
if gen == 0 then return {'missing', 0} end
local want = tonumber(ARGV[1])
if want > 0 and want ~= gen then return {'stale', gen} end
redis.call('DEL', KEYS[1])
return {'deleted', gen}
`)

// Put creates or replaces the configuration of app name from spec, whose nil fields
// take their defaults. It reports whether the app was created. Nothing is written when
// spec is invalid (*ValidationError) or the precondition fails (ErrExists, ErrNotFound,
// *StaleError).
func (a *Apps) Put(ctx context.Context, name string, spec AppSpec, pre Precondition) (App, bool, error) {
	if err := ValidateName(name); err != nil {
		return App{}, false, &ValidationError{Fields: []FieldError{{Field: "name", Detail: err.Error()}}}
	}
	cfg, err := spec.Resolve(a.check)
	if err != nil {
		return App{}, false, err
	}
	specJSON, err := json.Marshal(cfg)
	if err != nil {
		return App{}, false, fmt.Errorf("encoding app %s: %w", name, err)
	}
	now := a.now().UTC().Format(time.RFC3339Nano)
	res, err := putAppScript.Run(ctx, a.rdb, []string{store.AppKey(name)},
		specJSON, now, pre.Generation, flag(pre.MustNotExist), flag(pre.MustExist)).Slice()
	if err != nil {
		return App{}, false, fmt.Errorf("writing app %s: %w", name, err)
	}
	outcome, app, err := decodeAppState(name, res)
	if err != nil {
		return App{}, false, err
	}
	switch outcome {
	case "exists":
		return app, false, fmt.Errorf("%w: app %q exists", ErrExists, name)
	case "missing":
		return App{}, false, fmt.Errorf("%w: no app named %q", ErrNotFound, name)
	case "stale":
		return app, false, &StaleError{Current: app.Generation}
	}
	// The index is a global key, so it is written apart from the app's own (one
	// cluster slot per app); writing it on every put also repairs a lost entry.
	if err := a.rdb.ZAdd(ctx, store.AppsIndexKey, redis.Z{Member: name}).Err(); err != nil {
		return App{}, false, fmt.Errorf("indexing app %s: %w", name, err)
	}
	return app, outcome == "created", nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// decodeAppState reads the {outcome, gen, spec, created_at, updated_at} reply.
func decodeAppState(name string, res []any) (string, App, error) {
	if len(res) != 5 {
		return "", App{}, fmt.Errorf("app %s: unexpected script reply %v", name, res)
	}
	outcome, _ := res[0].(string)
	gen, _ := res[1].(int64)
	if gen == 0 {
		return outcome, App{}, nil
	}
	spec, _ := res[2].(string)
	created, _ := res[3].(string)
	updated, _ := res[4].(string)
	app, err := decodeApp(name, strconv.FormatInt(gen, 10), spec, created, updated)
	return outcome, app, err
}

func decodeApp(name, gen, spec, created, updated string) (App, error) {
	app := App{Name: name}
	var err error
	if app.Generation, err = strconv.ParseInt(gen, 10, 64); err != nil {
		return App{}, fmt.Errorf("app %s: generation %q: %w", name, gen, err)
	}
	if err := json.Unmarshal([]byte(spec), &app.AppConfig); err != nil {
		return App{}, fmt.Errorf("app %s: decoding configuration: %w", name, err)
	}
	if app.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return App{}, fmt.Errorf("app %s: created_at: %w", name, err)
	}
	if app.UpdatedAt, err = time.Parse(time.RFC3339Nano, updated); err != nil {
		return App{}, fmt.Errorf("app %s: updated_at: %w", name, err)
	}
	return app, nil
}

var appFields = []string{"gen", "spec", "created_at", "updated_at"}

// Get returns the app called name, or ErrNotFound.
func (a *Apps) Get(ctx context.Context, name string) (App, error) {
	if ValidateName(name) != nil {
		return App{}, fmt.Errorf("%w: no app named %q", ErrNotFound, name)
	}
	app, _, err := a.getStamped(ctx, name)
	return app, err
}

// getStamped returns the app called name and its stamp: its generation and creation time
// as stored, which tell this configuration from any later one, also from an app deleted
// and created again (whose generation starts over).
func (a *Apps) getStamped(ctx context.Context, name string) (App, string, error) {
	vals, err := a.rdb.HMGet(ctx, store.AppKey(name), appFields...).Result()
	if err != nil {
		return App{}, "", fmt.Errorf("reading app %s: %w", name, err)
	}
	app, err := appFromHash(name, vals)
	if err != nil {
		return App{}, "", err
	}
	gen, _ := vals[0].(string)
	created, _ := vals[2].(string)
	return app, gen + " " + created, nil
}

func appFromHash(name string, vals []any) (App, error) {
	s := make([]string, len(vals))
	for i, v := range vals {
		if v == nil {
			return App{}, fmt.Errorf("%w: no app named %q", ErrNotFound, name)
		}
		s[i], _ = v.(string)
	}
	return decodeApp(name, s[0], s[1], s[2], s[3])
}

// List returns up to limit apps in name order, starting after the name after ("" for
// the first page), and the name to pass as after for the next page ("" on the last).
func (a *Apps) List(ctx context.Context, after string, limit int) ([]App, string, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	names, err := a.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: store.AppsIndexKey, Start: start, Stop: "+", ByLex: true, Count: int64(limit) + 1,
	}).Result()
	if err != nil {
		return nil, "", fmt.Errorf("listing apps: %w", err)
	}
	next := ""
	if len(names) > limit {
		names = names[:limit]
		next = names[limit-1]
	}
	cmds := make([]*redis.SliceCmd, len(names))
	_, err = a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.HMGet(ctx, store.AppKey(n), appFields...)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("reading apps: %w", err)
	}
	apps := make([]App, 0, len(names))
	for i, n := range names {
		app, err := appFromHash(n, cmds[i].Val())
		if errors.Is(err, ErrNotFound) {
			continue // deleted between the index read and this one
		}
		if err != nil {
			return nil, "", err
		}
		apps = append(apps, app)
	}
	return apps, next, nil
}

// Delete removes the app called name if the precondition holds (only Generation is
// used). It returns ErrNotFound or a *StaleError when nothing was deleted.
func (a *Apps) Delete(ctx context.Context, name string, pre Precondition) error {
	if ValidateName(name) != nil {
		return fmt.Errorf("%w: no app named %q", ErrNotFound, name)
	}
	res, err := deleteAppScript.Run(ctx, a.rdb, []string{store.AppKey(name)}, pre.Generation).Slice()
	if err != nil {
		return fmt.Errorf("deleting app %s: %w", name, err)
	}
	outcome, _ := res[0].(string)
	switch outcome {
	case "missing":
		return fmt.Errorf("%w: no app named %q", ErrNotFound, name)
	case "stale":
		gen, _ := res[1].(int64)
		return &StaleError{Current: gen}
	}
	if err := a.rdb.ZRem(ctx, store.AppsIndexKey, name).Err(); err != nil {
		return fmt.Errorf("unindexing app %s: %w", name, err)
	}
	return nil
}
