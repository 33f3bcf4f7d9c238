package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/invalid"
	"github.com/slipway/slipway/store"
)

// Release is an immutable, numbered version of an app made from a succeeded build.
type Release struct {
	App         string    `json:"app"`
	Version     string    `json:"version"`
	Sequence    int64     `json:"sequence"`
	BuildID     string    `json:"build_id"`
	ImageDigest string    `json:"image_digest"`
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	CreatedByID string    `json:"created_by_id,omitempty"` // who CreatedBy is: a token's id, admin or anonymous; "" before ids were recorded
	Notes       string    `json:"notes"`
	// Channels are the channels that point at the release now; filled in on read.
	Channels []string `json:"-"`
}

// BuildRef is what a release needs to know of a build.
type BuildRef struct {
	ID          string
	Version     string
	Succeeded   bool
	Status      string
	ImageDigest string // "" when the build has no image
	CreatedByID string // who made the build: a token's id, admin or anonymous; "" when unknown
}

// BuildLookup finds builds for releases; the API wires the builder's build store in.
type BuildLookup interface {
	BuildRef(ctx context.Context, app, id string) (BuildRef, error)
}

// Releases keeps an app's releases in Redis, with a copy of each in the blob store.
type Releases struct {
	rdb    redis.UniversalClient
	blobs  store.Blobs
	builds BuildLookup
	now    func() time.Time
}

// NewReleases returns the release store.
func NewReleases(rdb redis.UniversalClient, blobs store.Blobs, builds BuildLookup) *Releases {
	return &Releases{rdb: rdb, blobs: blobs, builds: builds, now: time.Now}
}

// createReleaseScript records a release under the next sequence number, unless the
// version exists.
//
//	KEYS  release key, releases set, sequence counter, the app's events
//	ARGV  version, build id, release JSON (sequence 0), event id, time, actor, app, actor id,
//	      event type (release.created)
//	returns {"created"|"exists"|"taken", release JSON}; a new release gets its
//	        release.created event
var createReleaseScript = events.Script(`
local existing = redis.call('GET', KEYS[1])
if existing then
  local doc = cjson.decode(existing)
  if doc.build_id == ARGV[2] then return {'exists', existing} end
  return {'taken', existing}
end
local seq = redis.call('INCR', KEYS[3])
local doc = cjson.decode(ARGV[3])
doc.sequence = seq
local out = cjson.encode(doc)
redis.call('SET', KEYS[1], out)
redis.call('ZADD', KEYS[2], seq, ARGV[1])
append_event(KEYS[4], ARGV[4], ARGV[9], ARGV[7], ARGV[6], ARGV[8], ARGV[5], out)
return {'created', out}
`)

// ReleaseSpec asks for a release.
type ReleaseSpec struct {
	BuildID string
	Version string // "" for the build's version
	Notes   string
	Actor   string
	ActorID string // the identity behind Actor: a token's id, admin or anonymous
}

// Create makes a release of a succeeded build that has an image. It reports whether
// the release is new: the same version of the same build answers the existing release;
// of another build, ErrConflict.
func (r *Releases) Create(ctx context.Context, app string, spec ReleaseSpec) (Release, bool, error) {
	b, err := r.builds.BuildRef(ctx, app, spec.BuildID)
	if err != nil {
		return Release{}, false, err
	}
	if !b.Succeeded {
		return Release{}, false, fmt.Errorf("%w: build %s is %s; only a succeeded build can be released", ErrConflict, b.ID, b.Status)
	}
	if b.ImageDigest == "" {
		return Release{}, false, fmt.Errorf("%w: build %s has no image", ErrConflict, b.ID)
	}
	version := spec.Version
	if version == "" {
		version = b.Version
	}
	if err := invalid.CheckVersion(version); err != nil {
		return Release{}, false, &ValidationError{Fields: []FieldError{{Field: "version", Detail: err.Error()}}}
	}
	if len(spec.Notes) > 4096 {
		return Release{}, false, &ValidationError{Fields: []FieldError{{Field: "notes", Detail: "at most 4096 bytes"}}}
	}
	rel := Release{
		App: app, Version: version, BuildID: b.ID, ImageDigest: b.ImageDigest,
		CreatedAt: r.now().UTC(), CreatedBy: spec.Actor, CreatedByID: spec.ActorID, Notes: spec.Notes,
	}
	doc, err := json.Marshal(rel)
	if err != nil {
		return Release{}, false, err
	}
	now := r.now().UTC()
	res, err := createReleaseScript.Run(ctx, r.rdb, []string{
		store.ReleaseKey(app, version), store.ReleasesKey(app), store.ReleaseSeqKey(app), store.EventsKey(app),
	}, version, b.ID, doc, events.NewID(now),
		now.Format(time.RFC3339Nano), spec.Actor, app, spec.ActorID, events.ReleaseCreated).StringSlice()
	if err != nil {
		return Release{}, false, fmt.Errorf("recording release %s: %w", version, err)
	}
	var got Release
	if err := json.Unmarshal([]byte(res[1]), &got); err != nil {
		return Release{}, false, fmt.Errorf("decoding release %s: %w", version, err)
	}
	switch res[0] {
	case "taken":
		return got, false, fmt.Errorf("%w: version %s of %s is release %d, made from build %s", ErrConflict, version, app, got.Sequence, got.BuildID)
	case "exists":
		r.writeBlob(ctx, got) // repairs a copy lost earlier
		return got, false, nil
	}
	if err := r.writeBlob(ctx, got); err != nil {
		return got, true, err
	}
	return got, true, nil
}

// writeBlob keeps the release's immutable copy in the blob store.
func (r *Releases) writeBlob(ctx context.Context, rel Release) error {
	b, err := json.Marshal(rel)
	if err != nil {
		return err
	}
	key := store.ReleaseBlobKey(rel.App, rel.Version)
	if _, err := r.blobs.Stat(ctx, key); err == nil {
		return nil
	}
	if _, err := r.blobs.Put(ctx, key, bytes.NewReader(b), ""); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("storing release %s in the blob store: %w", rel.Version, err)
	}
	return nil
}

// Get returns a release.
func (r *Releases) Get(ctx context.Context, app, version string) (Release, error) {
	version, _ = invalid.NormalizeVersion(version) // v1.4.2 names release 1.4.2
	s, err := r.rdb.Get(ctx, store.ReleaseKey(app, version)).Result()
	if errors.Is(err, redis.Nil) {
		return Release{}, fmt.Errorf("%w: %s has no release %q", ErrNotFound, app, version)
	}
	if err != nil {
		return Release{}, fmt.Errorf("reading release %s: %w", version, err)
	}
	var rel Release
	if err := json.Unmarshal([]byte(s), &rel); err != nil {
		return Release{}, fmt.Errorf("decoding release %s: %w", version, err)
	}
	return rel, nil
}

// pageScript reads an app, one page of its releases and where each of its channels
// points, in one round trip. The release and channel keys are made in the script from
// the app's channel list and the key prefixes; like every key of an app they carry the
// app's hash tag, so they are in the app's slot on Redis Cluster too.
//
//	KEYS  the app's hash, the sorted set to page (all releases, or those seen in a
//	      channel)
//	ARGV  max score ("+inf" or "(<seq>"), limit + 1, release key prefix, channel key
//	      prefix
//	returns {"noapp"}, or {gen, spec, created_at, updated_at, n,
//	         score_1, version_1, json_1, ..., score_n, version_n, json_n,
//	         channel_1, release_1, ...}
var pageScript = redis.NewScript(`
local app = redis.call('HMGET', KEYS[1], 'gen', 'spec', 'created_at', 'updated_at')
if not app[1] or not app[2] then return {'noapp'} end
local zs = redis.call('ZREVRANGEBYSCORE', KEYS[2], ARGV[1], '-inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local out = {app[1], app[2], app[3] or '', app[4] or '', (last[1] and last[1][1]) or '0', tostring(#zs / 2)}
for i = 1, #zs, 2 do
  out[#out + 1] = zs[i + 1]
  out[#out + 1] = zs[i]
  out[#out + 1] = redis.call('GET', ARGV[3] .. zs[i]) or ''
end
local spec = cjson.decode(app[2])
if type(spec.channels) == 'table' then
  for _, ch in ipairs(spec.channels) do
    out[#out + 1] = ch.name
    out[#out + 1] = redis.call('HGET', ARGV[4] .. ch.name, 'release') or ''
  end
end
return out
`)

// PageItem is one release of a page as stored: its JSON document (the fields of
// Release), handed through undecoded so a page of releases costs no decoding, and the
// channels that point at it now.
type PageItem struct {
	Version  string
	Sequence int64
	Doc      json.RawMessage
	Channels []string
}

// Page returns up to limit releases of app, newest first, before sequence number before
// (0 for the newest); only those that have been in channel filter when it
// is not "" (ErrNotFound when the app has no such channel). Each item's Channels says
// which of the app's channels point at it. It returns the sequence to pass as before for
// the next page (0 on the last), or ErrNotFound when there is no such app. One Redis
// round trip, whatever the number of releases.
func (r *Releases) Page(ctx context.Context, app, filter string, before int64, limit int) ([]PageItem, int64, error) {
	items, next, _, err := r.PageStamped(ctx, app, filter, before, limit)
	return items, next, err
}

// PageStamped is Page, and the app's Stamp as it was when the page was read, in the same
// atomic step.
func (r *Releases) PageStamped(ctx context.Context, app, filter string, before int64, limit int) ([]PageItem, int64, string, error) {
	if ValidateName(app) != nil {
		return nil, 0, "", fmt.Errorf("%w: no app named %q", ErrNotFound, app)
	}
	key := store.ReleasesKey(app)
	if filter != "" {
		key = store.ChannelSeenKey(app, filter)
	}
	max := "+inf"
	if before > 0 {
		max = "(" + strconv.FormatInt(before, 10)
	}
	res, err := pageScript.Run(ctx, r.rdb, []string{store.AppKey(app), key, store.EventsKey(app)},
		max, limit+1, store.ReleaseKey(app, ""), store.ChannelKey(app, "")).StringSlice()
	if err != nil {
		return nil, 0, "", fmt.Errorf("listing releases of %s: %w", app, err)
	}
	if len(res) < 6 {
		return nil, 0, "", fmt.Errorf("%w: no app named %q", ErrNotFound, app)
	}
	a, err := decodeApp(app, res[0], res[1], res[2], res[3])
	if err != nil {
		return nil, 0, "", err
	}
	if filter != "" {
		if _, err := a.channel(filter); err != nil {
			return nil, 0, "", err
		}
	}
	stamp := pageStamp(res[0], res[2], res[4])
	res = res[5:]
	n, _ := strconv.Atoi(res[0])
	on := map[string][]string{}
	for i := 1 + 3*n; i+1 < len(res); i += 2 {
		if res[i+1] != "" {
			on[res[i+1]] = append(on[res[i+1]], res[i])
		}
	}
	out := make([]PageItem, 0, min(n, limit))
	var next int64
	for i := range min(n, limit) {
		seq, _ := strconv.ParseInt(res[1+3*i], 10, 64)
		version, doc := res[2+3*i], res[3+3*i]
		if i == limit-1 && n > limit {
			next = seq
		}
		if doc == "" {
			continue
		}
		if !validDoc(doc) {
			return nil, 0, "", fmt.Errorf("release %s of %s: stored document is not a JSON object", version, app)
		}
		out = append(out, PageItem{Version: version, Sequence: seq, Doc: json.RawMessage(doc), Channels: on[version]})
	}
	return out, next, stamp, nil
}

// Stamp returns what tells app's pages apart in time: its configuration's generation,
// its creation time (an app deleted and made again starts its generations over) and the
// id of the newest entry of its event stream, which every release and channel move
// appends to in the same script as the change — also those of replicas running an older
// slipway. A page read along with a stamp is the page still when the stamp is the same.
// It is "" when there is no such app. One round trip.
func (r *Releases) Stamp(ctx context.Context, app string) (string, error) {
	res, err := stampScript.Run(ctx, r.rdb, []string{store.AppKey(app), store.EventsKey(app)}).StringSlice()
	if err != nil {
		return "", fmt.Errorf("reading app %s: %w", app, err)
	}
	if len(res) != 3 || res[0] == "" {
		return "", nil
	}
	return pageStamp(res[0], res[1], res[2]), nil
}

// stampScript reads an app's stamp: {generation, created_at, newest event id}, "" for
// what is missing.
//
//	KEYS  1 the app's hash, 2 its event stream
var stampScript = redis.NewScript(`
local app = redis.call('HMGET', KEYS[1], 'gen', 'created_at')
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
return {app[1] or '', app[2] or '', (last[1] and last[1][1]) or '0'}
`)

func pageStamp(gen, created, lastEvent string) string {
	return gen + " " + created + " " + lastEvent
}

// validDoc is a cheap check that a stored release document is a JSON object, so a page
// can splice it into a response.
func validDoc(doc string) bool {
	return len(doc) > 2 && doc[0] == '{' && doc[len(doc)-1] == '}'
}

// Versions returns the versions of every release of app, oldest first: the members of
// its sequence index, no documents read.
func (r *Releases) Versions(ctx context.Context, app string) ([]string, error) {
	vs, err := r.rdb.ZRange(ctx, store.ReleasesKey(app), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("listing releases of %s: %w", app, err)
	}
	return vs, nil
}
