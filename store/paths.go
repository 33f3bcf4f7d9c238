package store

// The whole storage layout of slipway, in one place.
//
// Blob store (a directory under the data dir, or an S3 bucket), immutable objects:
//
//	blobs/sha256/<hex>          content-addressed bytes: image layers, configs, manifests,
//	                            SBOMs; stored once, shared by every build and app. A build's
//	                            binary is stored once too, inside its image layer (as
//	                            app/<app>); only builds made before that have it here on its own
//	sources/sha256/<hex>        uploaded source archives, by the digest of the archive
//	logs/<app>/<build id>.log   a build's log, written once when the build ends
//	releases/<app>/<version>.json  a release, written once, so the list can be rebuilt
//	                            if Redis loses it
//	gocache/<ns>/a/<action hex>  the shared Go build cache (builder/gocache): one entry of
//	                            the go command's cache, JSON {output, size, time, build_ms}:
//	                            the output ID (SHA-256 of the output's bytes) that action
//	                            <action hex> produced. <ns> is "shared", or the app's name
//	                            when each app keeps its own (SLIPWAY_BUILD_CACHE_SCOPE=app).
//	                            Put only after its output is stored
//	gocache/<ns>/o/<output hex>  the bytes of one output of the go command, named by their
//	                            SHA-256 and checked against it on every fetch. Nothing but
//	                            age trims gocache/ (slipway cache prune, or a lifecycle rule)
//	probes/<random>             S3 only: the write probe of the readiness check (S3.Ping),
//	                            put and deleted at once, at most once a minute per process
//	                            (WithWriteProbe); a lifecycle rule on the prefix clears any
//	                            that a crash between the two left behind
//
// Local scratch space, one directory per process and use: <dir>/<pid>-<random>/ holds a
// .lock file its process keeps an exclusive flock on while it lives (ClaimScratch), and a
// process that starts removes every such directory whose lock it can take, so the files
// of a killed process do not outlive the next start:
//
//	<data dir>/spool/<pid>-<random>/source-*.spool  uploaded and fetched source archives
//	                            while the intake checks and stores them
//	<data dir>/blobs/.tmp/<pid>-<random>/put-*      the filesystem store's puts before they
//	                            are linked into place (read-only, 0444); ping-* its
//	                            readiness probes
//	<data dir>/work/<pid>-<random>/work/<build id>-*/  a build's work directory (source,
//	                            binaries, image files)
//
// The local tier of the shared Go build cache is not scratch space: it outlives its process,
// and only slipway writes it (compiles cannot):
//
//	<data dir>/cache/gocache/o/<xx>/<output hex>  an output's bytes (read by the go command
//	                            through the path it is handed); <xx> is the hex's first byte
//	<data dir>/cache/gocache/a/<ns>/<xx>/<action hex>  an entry, as gocache/<ns>/a/ above
//	<data dir>/cache/gocache/tmp/  files being written, renamed into place when whole
//	                            Both trimmed to SLIPWAY_BUILD_CACHE_SIZE, least recently
//	                            used first (by modification time, set again on each use)
//
// Redis, all metadata. Every key of one app carries the hash tag {<app>}, so a script that
// touches several keys of one app runs on Redis Cluster too, where one command or script
// may touch the keys of one hash slot only. No command or script of slipway touches keys
// of two hash tags, or a tagged key and an untagged one, or two untagged ones; what spans
// them is written as several commands in an order that readers tolerate, said beside
// each key. The only global key of apps is the apps index, written with its own command
// after the app's keys (a listing skips index entries whose app is gone, and every PUT of
// an app re-adds it).
//
//	slipway:apps                sorted set, score 0, member = app name: the apps index,
//	                            read in name order with ZRANGEBYLEX for cursor pagination
//	slipway:{<app>}:app         hash: spec (the app's JSON configuration), gen (generation,
//	                            the ETag), created_at, updated_at (RFC 3339 UTC)
//	slipway:{<app>}:build:<id>  hash: doc (the build's JSON, with created_by and
//	                            created_by_id), status, attempt (the fencing token of the
//	                            worker that owns it), cancel ("1" once asked), log ("blob"
//	                            once the log is in the blob store)
//	slipway:{<app>}:build:<id>:log   string: the log of a build while it runs (APPEND; byte
//	                            offsets are the API's log offsets); expires after the log is
//	                            stored as a blob
//	slipway:{<app>}:build:<id>:facts  string: the JSON of a succeeded build's facts (Go
//	                            version, modules, build settings, base digest, sizes,
//	                            licenses), read out of its binaries, index and SBOM the first
//	                            time a diff needs them; builds are immutable, so it never
//	                            expires (every writer writes the same bytes)
//	slipway:{<app>}:build:<id>:wake  pub/sub channel, not a key: a message (empty) each
//	                            time the build's log grows or its status changes, so a
//	                            follower of the log wakes at once instead of at its next poll
//	slipway:{<app>}:builds      sorted set, score 0, member = build id (a ULID, so name order
//	                            is time order): every build, listed newest first
//	slipway:{<app>}:builds:<status>  the same, one per status, for filtered lists
//	slipway:{<app>}:dedupe:<hex>     string: the id of the live (queued, running or
//	                            succeeded) build whose inputs hash to <hex>
//	slipway:{<app>}:idem:<hex>  hash: an Idempotency-Key's request fingerprint, state
//	                            (pending, done) and answer; expires after 24 hours. <hex> is
//	                            the SHA-256 of the key; a chat command that moves a channel of
//	                            the app keeps its answer here too, under the key
//	                            chatops:<platform>:trigger:<team id>:<trigger id> (or
//	                            chatops:<platform>:response:<response_url>), so a retry of it
//	                            by the chat service gets the first answer and moves nothing
//	slipway:{<app>}:release:<version>  string: the release's JSON (with created_by and
//	                            created_by_id), written once
//	slipway:{<app>}:releases    sorted set, score = sequence, member = version
//	slipway:{<app>}:releases:seq     string: the last sequence number given out
//	slipway:{<app>}:channel:<ch>     hash: release, image_digest, generation (the ETag),
//	                            locked, lock_reason, updated_at, updated_by, updated_by_id,
//	                            since (unix ms: when release became current, the start of
//	                            its soak), pinned ("1" after a rollback, until an unpin or a
//	                            manual promotion), pinned_at, pinned_by, pinned_by_id,
//	                            pin_reason
//	slipway:{<app>}:channel:<ch>:approvals:<version>  hash: approver's actor id → the
//	                            approval's JSON (actor, actor_id, reason, at, counts, note):
//	                            the approvals of one release for the channel, revocable until
//	                            it enters the channel; the move script counts those that count
//	slipway:{<app>}:autopromote:lease  string: the id of the scheduler evaluating the app's
//	                            auto_promote channels now; expires after a few seconds, so
//	                            one scheduler of the fleet does it at a time
//	slipway:{<app>}:channel:<ch>:history  list: the channel's events as JSON (seq, action,
//	                            from_version, to_version, actor, actor_id, reason, at,
//	                            reverts, override, pinned, unpinned), oldest first; an event's
//	                            seq is its position + 1. Approvals that count are events too
//	                            (action approve or revoke, to_version the release)
//	slipway:{<app>}:channel:<ch>:seen     sorted set, score = release sequence, member =
//	                            version: every release that has been in the channel (the
//	                            input of promotion policies)
//	slipway:{<app>}:channel:<ch>:stack    list of "<version> <event seq> <image digest>": the
//	                            releases a default rollback walks back through
//	slipway:{<app>}:referrers:<digest>  hash: field = referrer manifest digest, value = its
//	                            OCI descriptor JSON (with artifactType): the artifacts (SBOMs)
//	                            whose subject is the manifest <digest>
//	slipway:{<app>}:cosign      hash: field = cosign's tag of an image, sha256-<hex>.sig or
//	                            sha256-<hex>.att, value = the digest of the signature (or
//	                            attestation) manifest it names: the newest, whose layers hold
//	                            every signature the app's builds of that image made
//	slipway:{<app>}:links       set of digests: every blob and manifest the app's images
//	                            reference (indexes, manifests, configs, layers, SBOMs and
//	                            their referrer manifests). The registry serves a digest under
//	                            <app> only when it is a member, as distribution links blobs
//	                            into each repository; blobs themselves stay shared
//	slipway:{<app>}:links:complete  string "1" once every build made before links were
//	                            recorded has been linked (set by the first lookup that misses)
//	slipway:{<app>}:events      stream of the app's events (id, type, app, actor, actor_id,
//	                            time, data), written in the same script as the change it
//	                            reports, always through package events (events.Script), and
//	                            trimmed to about 100 000 entries (MAXLEN ~); consumer group
//	                            "webhooks": the webhook dispatchers, which turn each entry
//	                            into deliveries before they acknowledge it. Readers of
//	                            several apps' streams (the dispatchers, the events API)
//	                            read them with one XREAD/XREADGROUP on one Redis, and with
//	                            one command per stream, pipelined, on Redis Cluster
//	slipway:{<app>}:checks:secret  hash: secret, prev_secret, prev_expires (ms; the old
//	                            secret signs until then): what signs the requests of the
//	                            app's check gates (package webhook), made at its first use
//	slipway:{<app>}:check:<ch>:<version>:<name>  hash: the last result of the check gate
//	                            <name> of channel <ch> for release <version>: status (passed,
//	                            failed), detail, at (ms), attempts, check_id, url (SHA-256 hex
//	                            of the URL called); written after the hook answered, never
//	                            held while it is called; expires after 7 days
//	slipway:{<app>}:vulns:<binary hex>:<db modified ms>  string: the JSON of the known
//	                            vulnerabilities (package vulns) found in the binary
//	                            sha256:<binary hex> by the database as modified at that time;
//	                            a database with newer entries makes a new key; expires after
//	                            30 days
//
// Who made a change is recorded twice wherever it is recorded: as a name (actor, created_by,
// updated_by: a token's name, "admin" or "anonymous") and as an identity (actor_id,
// created_by_id, updated_by_id: the token's id "tok_<ULID>", "admin" for the server's admin
// token, "anonymous" when authentication is off; for a chat command, "slack:U0123ABCD
// (alice)" and "slack:U0123ABCD", the chat user). A revoked token's name can be taken again,
// its id never. What was written before identities were recorded has none (the field is
// absent or empty), and reads back without one.
//
// Webhooks span apps, so their keys share the hash tag {webhooks} (one cluster slot) and
// every script that touches several of them stays in one slot:
//
//	slipway:{webhooks}:subs     sorted set, score 0, member = subscription id (a ULID): every
//	                            subscription, listed in id order
//	slipway:{webhooks}:sub:<id> hash: doc (the subscription's JSON, with created_by and
//	                            created_by_id, without secrets), created_ms (Redis time when
//	                            it was written: it receives the events whose stream id is at
//	                            or after it), secret, prev_secret, prev_expires (ms; the old
//	                            secret signs until then)
//	slipway:{webhooks}:sub:<id>:deliveries  sorted set, score 0, member = delivery id (a
//	                            ULID with the event's time): the subscription's deliveries,
//	                            listed newest first, trimmed to the newest 10 000
//	slipway:{webhooks}:delivery:<id>  hash: sub, event_id, type, app, body (the bytes every
//	                            attempt sends), ctype, state (pending, delivering, succeeded,
//	                            failed), attempts, last_status, last_error, last_at, next_at,
//	                            created, deadline (ms), lease (the fencing token of the
//	                            attempt in flight), recent (JSON of the last attempts);
//	                            expires some days after it succeeds or fails
//	slipway:{webhooks}:due      sorted set, score = when (unix ms), member = delivery id: the
//	                            schedule. A dispatcher claims a due delivery by moving its
//	                            score to the end of its lease, so a dispatcher that dies
//	                            mid-attempt leaves it due again when the lease runs out
//
// Chat commands (package chatops) span apps too, so their keys share the hash tag {chatops}:
//
//	slipway:{chatops}:secret:<platform>  hash, platform slack or mattermost: value (Slack's
//	                            signing secret as Slack shows it, since the HMAC needs it;
//	                            Mattermost's command token as its SHA-256 hex, never the token
//	                            itself), set_at, set_by, set_by_id. The API never shows value
//	slipway:{chatops}:users     sorted set, score 0, member = chat user id
//	                            (<platform>:<user id>, such as slack:U0123ABCD): every mapped
//	                            chat user, listed in id order
//	slipway:{chatops}:user:<platform>:<user id>  hash: scopes, apps (JSON arrays), created_at,
//	                            created_by, created_by_id, updated_at, updated_by,
//	                            updated_by_id: what the chat user may do, by a token's rules
//
// The build queue is a global stream, written before the build's own keys (a worker drops
// an entry whose build never appeared):
//
//	slipway:queue:builds        stream of {app, build}; consumer group "workers"; a worker
//	                            keeps its entry's idle time low while it builds, and entries
//	                            idle past the visibility timeout are claimed by another
//
// API tokens, portal sessions and rate limits are global, one key per token, session and
// caller (package auth):
//
//	slipway:tokens              hash: name → sha256 hex of the token's secret: the live
//	                            tokens by name (a name is taken while its token lives);
//	                            written before the token's key (HSETNX takes the name), so
//	                            a field whose token key is missing names no token, and
//	                            revoking that name frees it; a token whose name is no
//	                            longer its own once its key is written is deleted again.
//	                            Revoking a token deletes its key, then removes its field
//	                            only while it still names that token's hash
//	slipway:token:<sha256 hex>  string: a token's JSON (id, name, scopes, apps, created_at,
//	                            last_used_at), found by hashing the secret a request sends;
//	                            never the secret. id is "tok_" and a ULID made at creation;
//	                            a token stored before ids has none, and its id is derived
//	                            from <sha256 hex> and written back at its next use
//	slipway:session:<sha256 hex>  hash: one signed-in browser of the portal, found by
//	                            hashing the id its cookie carries (never stored): token (the
//	                            sha256 hex of the secret it signed in with, never the secret),
//	                            csrf (the synchronizer token of its forms), created_at,
//	                            expires_at (unix ms); expires at expires_at, and signing out
//	                            deletes it
//	slipway:ratelimit:<caller>  string: the GCRA theoretical arrival time (µs) of one caller:
//	                            a token's id, "admin" for the server's admin token, or a chat
//	                            user's id (slack:U0123ABCD) for chat commands (never a name,
//	                            which another token may take); expires when idle

import (
	"strconv"
	"strings"
)

// BlobKey is the key of content-addressed bytes.
func BlobKey(d Digest) string { return "blobs/sha256/" + d.Hex() }

// SourceKey is the key of an uploaded source archive.
func SourceKey(d Digest) string { return "sources/sha256/" + d.Hex() }

// GoCachePrefix is the prefix of every key of the shared Go build cache.
const GoCachePrefix = "gocache/"

// GoCacheActionKey is the key of a Go build cache entry: the output action actionHex
// produced, in namespace ns.
func GoCacheActionKey(ns, actionHex string) string {
	return GoCachePrefix + ns + "/a/" + actionHex
}

// GoCacheOutputKey is the key of the bytes of a Go build cache output, in namespace ns.
func GoCacheOutputKey(ns, outputHex string) string {
	return GoCachePrefix + ns + "/o/" + outputHex
}

// LogKey is the key of a finished build's log.
func LogKey(app, buildID string) string { return "logs/" + app + "/" + buildID + ".log" }

// BuildKey is the Redis hash of one build.
func BuildKey(app, id string) string { return appPrefix(app) + "build:" + id }

// BuildFactsKey is the Redis string caching a succeeded build's facts, for diffs.
func BuildFactsKey(app, id string) string { return appPrefix(app) + "build:" + id + ":facts" }

// BuildLogKey is the Redis string holding a running build's log.
func BuildLogKey(app, id string) string { return appPrefix(app) + "build:" + id + ":log" }

// BuildWakeChannel is the Redis pub/sub channel told of each change to a build's log or
// status.
func BuildWakeChannel(app, id string) string { return appPrefix(app) + "build:" + id + ":wake" }

// BuildsKey is the Redis sorted set of an app's builds.
func BuildsKey(app string) string { return appPrefix(app) + "builds" }

// BuildsByStatusKey is the Redis sorted set of an app's builds in one status.
func BuildsByStatusKey(app, status string) string { return appPrefix(app) + "builds:" + status }

// DedupeKey is the Redis string naming the live build with the given input hash.
func DedupeKey(app, inputHex string) string { return appPrefix(app) + "dedupe:" + inputHex }

// IdempotencyKey is the Redis hash recording one Idempotency-Key of an app's requests.
func IdempotencyKey(app, keyHex string) string { return appPrefix(app) + "idem:" + keyHex }

// BuildQueueKey is the Redis stream of builds waiting for a worker, and BuildQueueGroup
// its consumer group.
const (
	BuildQueueKey   = "slipway:queue:builds"
	BuildQueueGroup = "workers"
)

// ReleaseBlobKey is the blob holding a release's JSON.
func ReleaseBlobKey(app, version string) string { return "releases/" + app + "/" + version + ".json" }

// ReleaseKey is the Redis string holding a release's JSON.
func ReleaseKey(app, version string) string { return appPrefix(app) + "release:" + version }

// ReleasesKey is the Redis sorted set of an app's releases by sequence.
func ReleasesKey(app string) string { return appPrefix(app) + "releases" }

// ReleaseSeqKey is the Redis counter of an app's release sequence numbers.
func ReleaseSeqKey(app string) string { return appPrefix(app) + "releases:seq" }

// ChannelKey is the Redis hash of a channel's state.
func ChannelKey(app, ch string) string { return appPrefix(app) + "channel:" + ch }

// ChannelHistoryKey is the Redis list of a channel's events.
func ChannelHistoryKey(app, ch string) string { return ChannelKey(app, ch) + ":history" }

// ChannelSeenKey is the Redis sorted set of releases that have been in a channel.
func ChannelSeenKey(app, ch string) string { return ChannelKey(app, ch) + ":seen" }

// ChannelStackKey is the Redis list a default rollback walks back through.
func ChannelStackKey(app, ch string) string { return ChannelKey(app, ch) + ":stack" }

// ChannelApprovalsKey is the Redis hash of the approvals of one release for a channel.
func ChannelApprovalsKey(app, ch, version string) string {
	return ChannelKey(app, ch) + ":approvals:" + version
}

// AutoPromoteLeaseKey is the Redis string naming the scheduler that evaluates an app's
// auto_promote channels now.
func AutoPromoteLeaseKey(app string) string { return appPrefix(app) + "autopromote:lease" }

// ReferrersKey is the Redis hash of the referrers of one manifest.
func ReferrersKey(app string, subject Digest) string {
	return appPrefix(app) + "referrers:" + string(subject)
}

// CosignTagsKey is the Redis hash of an app's cosign signature and attestation tags.
func CosignTagsKey(app string) string { return appPrefix(app) + "cosign" }

// LinksKey is the Redis set of the digests an app's images reference.
func LinksKey(app string) string { return appPrefix(app) + "links" }

// LinksCompleteKey marks an app whose links cover every build it ever made.
func LinksCompleteKey(app string) string { return appPrefix(app) + "links:complete" }

// EventsKey is the Redis stream of an app's events.
func EventsKey(app string) string { return appPrefix(app) + "events" }

// ChecksSecretKey is the Redis hash of the secrets that sign an app's check gate requests.
func ChecksSecretKey(app string) string { return appPrefix(app) + "checks:secret" }

// CheckResultKey is the Redis hash of the last result of one check gate for one release
// entering one channel.
func CheckResultKey(app, ch, version, name string) string {
	return appPrefix(app) + "check:" + ch + ":" + version + ":" + name
}

// VulnsKey is the Redis string of the known vulnerabilities of one binary by the database
// as modified at dbModifiedMS (unix ms).
func VulnsKey(app string, binary Digest, dbModifiedMS int64) string {
	return appPrefix(app) + "vulns:" + binary.Hex() + ":" + strconv.FormatInt(dbModifiedMS, 10)
}

// EventsGroup is the consumer group of the webhook dispatchers on every app's events
// stream.
const EventsGroup = "webhooks"

// WebhooksKey is the Redis sorted set of every webhook subscription id.
const WebhooksKey = "slipway:{webhooks}:subs"

// WebhookKey is the Redis hash of one webhook subscription.
func WebhookKey(id string) string { return "slipway:{webhooks}:sub:" + id }

// WebhookDeliveriesKey is the Redis sorted set of one subscription's deliveries.
func WebhookDeliveriesKey(id string) string { return WebhookKey(id) + ":deliveries" }

// DeliveryKey is the Redis hash of one webhook delivery.
func DeliveryKey(id string) string { return "slipway:{webhooks}:delivery:" + id }

// DeliveriesDueKey is the Redis sorted set of deliveries by the time they are due.
const DeliveriesDueKey = "slipway:{webhooks}:due"

// ChatSecretKey is the Redis hash of one chat platform's secret.
func ChatSecretKey(platform string) string { return "slipway:{chatops}:secret:" + platform }

// ChatUsersKey is the Redis sorted set of every mapped chat user's id.
const ChatUsersKey = "slipway:{chatops}:users"

// ChatUserKey is the Redis hash of one chat user's mapping.
func ChatUserKey(id string) string { return "slipway:{chatops}:user:" + id }

// TokensKey is the Redis hash of the live tokens: name → SHA-256 hex of the secret.
const TokensKey = "slipway:tokens"

// TokenKey is the Redis string holding one token, found by the SHA-256 hex of its secret.
func TokenKey(hash string) string { return "slipway:token:" + hash }

// SessionKey is the Redis hash of one portal session, found by the SHA-256 hex of its id.
func SessionKey(hash string) string { return "slipway:session:" + hash }

// RateLimitKey is the Redis string holding one caller's GCRA theoretical arrival time.
func RateLimitKey(caller string) string { return "slipway:ratelimit:" + caller }

// AppsIndexKey is the Redis sorted set of all app names.
const AppsIndexKey = "slipway:apps"

// AppKey is the Redis hash holding one app's configuration.
func AppKey(app string) string { return appPrefix(app) + "app" }

// appPrefix is "slipway:{<app>}:", the hash-tagged prefix of every key of one app.
func appPrefix(app string) string {
	var b strings.Builder
	b.Grow(len(app) + 12)
	b.WriteString("slipway:{")
	b.WriteString(app)
	b.WriteString("}:")
	return b.String()
}
