package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/store"
)

// TestCLIVerify: slipway verify accepts a signed build with the server's keys or a
// pinned --key, refuses it with another key and when the build's record and its
// provenance disagree; slipway download verifies first (and downloads nothing when the
// check fails) unless --no-verify.
func TestCLIVerify(t *testing.T) {
	env := buildEnv(t)
	key := filepath.Join(t.TempDir(), "signing.pem")
	p := startServe(t, append(env, "SLIPWAY_SIGNING_KEYS="+key, "SLIPWAY_SIGNING_KEY_GENERATE=true"))
	b := signedBuild(t, p.url, "verified", "hello")
	cli := []string{"SLIPWAY_URL=" + p.url}
	dir := t.TempDir()
	_, pemBody := get(t, p.url+"/v1/signing-keys", "Accept", "application/x-pem-file")
	pub := writeFile(t, dir, "slipway.pub", pemBody)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherPEM, _ := sign.PublicPEM(&other.PublicKey)
	otherPub := writeFile(t, dir, "other.pub", otherPEM)

	if r := runCLI(t, cli, "verify", "verified", b.Id); r.code != 0 ||
		!strings.Contains(r.stdout, "image "+b.Image.Digest+": signature verified") ||
		!strings.Contains(r.stdout, "provenance: verified") || !strings.Contains(r.stdout, "SHA256SUMS: signature verified") {
		t.Errorf("verify with the server's keys: %s", r)
	}
	if r := runCLI(t, cli, "verify", "verified", b.Id, "--key", pub); r.code != 0 {
		t.Errorf("verify --key slipway.pub: %s", r)
	}
	if r := runCLI(t, cli, "verify", "verified", b.Id, "--key", otherPub); r.code != 1 ||
		!strings.Contains(r.stderr, "the image signature does not verify") {
		t.Errorf("verify --key <another key>: %s\nwant exit 1", r)
	}
	for _, ref := range []string{"verified@" + b.Image.Digest, "verified:build-" + b.Id} {
		if r := runCLI(t, cli, "verify", ref, "--key", pub); r.code != 0 || !strings.Contains(r.stdout, "image "+b.Image.Digest+": signature verified") {
			t.Errorf("verify %s: %s", ref, r)
		}
	}
	if r := runCLI(t, cli, "verify", "verified@sha256:"+strings.Repeat("0", 64)); r.code != 1 {
		t.Errorf("verify of an image nobody signed: %s\nwant exit 1", r)
	}
	if r := runCLI(t, cli, "verify", "verified"); r.code != 2 {
		t.Errorf("verify without a build: %s\nwant exit 2", r)
	}

	out := t.TempDir()
	if r := runCLI(t, cli, "download", "verified", b.Id, "-o", out); r.code != 0 || !strings.Contains(r.stderr, "verified") {
		t.Errorf("download: %s", r)
	}
	refused := t.TempDir()
	if r := runCLI(t, cli, "download", "verified", b.Id, "-o", refused, "--key", otherPub); r.code != 1 ||
		!strings.Contains(r.stderr, "--no-verify") {
		t.Errorf("download --key <another key>: %s\nwant exit 1", r)
	}
	if entries, _ := os.ReadDir(refused); len(entries) != 0 {
		t.Errorf("a download that did not verify saved %d files", len(entries))
	}
	if r := runCLI(t, cli, "download", "verified", b.Id, "-o", t.TempDir(), "--key", otherPub, "--no-verify"); r.code != 0 {
		t.Errorf("download --no-verify: %s", r)
	}

	// The build's record says another source than its signed provenance.
	rdb := redisOf(t, env)
	ctx := context.Background()
	k := store.BuildKey("verified", b.Id)
	doc, err := rdb.HGet(ctx, k, "doc").Result()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(doc), &m)
	m["source_digest"] = "sha256:" + strings.Repeat("0", 64)
	forged, _ := json.Marshal(m)
	if err := rdb.HSet(ctx, k, "doc", forged).Err(); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, cli, "verify", "verified", b.Id); r.code != 1 || !strings.Contains(r.stderr, "source digest") {
		t.Errorf("verify of a build whose record disagrees with its provenance: %s\nwant exit 1 naming the source digest", r)
	}
	if r := runCLI(t, cli, "download", "verified", b.Id, "-o", t.TempDir()); r.code != 1 {
		t.Errorf("download of a build whose record disagrees with its provenance: %s\nwant exit 1", r)
	}

	// The private key is in no Redis value, no log line and no answer.
	secrets := privateKeyForms(t, key)
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "*", 100).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			dump := redisValue(ctx, rdb, k)
			for _, sec := range secrets {
				if strings.Contains(dump, sec) {
					t.Errorf("Redis key %s holds the private signing key", k)
				}
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	_, jwks := get(t, p.url+"/v1/signing-keys")
	for _, sec := range secrets {
		if strings.Contains(p.stderr.String(), sec) || strings.Contains(string(jwks), sec) {
			t.Errorf("the server's log or /v1/signing-keys holds the private signing key")
		}
	}
}

// redisOf is a client of the Redis database env names, closed when the test ends.
func redisOf(t *testing.T, env []string) *redis.Client {
	t.Helper()
	var redisURL string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "SLIPWAY_REDIS_URL="); ok {
			redisURL = v
		}
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// redisValue is everything a Redis key holds, as text.
func redisValue(ctx context.Context, rdb *redis.Client, k string) string {
	var v any
	switch rdb.Type(ctx, k).Val() {
	case "string":
		v = rdb.Get(ctx, k).Val()
	case "hash":
		v = rdb.HGetAll(ctx, k).Val()
	case "list":
		v = rdb.LRange(ctx, k, 0, -1).Val()
	case "set":
		v = rdb.SMembers(ctx, k).Val()
	case "zset":
		v = rdb.ZRange(ctx, k, 0, -1).Val()
	case "stream":
		v = rdb.XRange(ctx, k, "-", "+").Val()
	}
	return fmt.Sprint(v)
}

// privateKeyForms are the ways a private key could be written: its PEM body's lines and
// its scalar in hex, base64 and base64url.
func privateKeyForms(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := sign.ParsePrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	d, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	forms := []string{hex.EncodeToString(d), base64.StdEncoding.EncodeToString(d), base64.RawURLEncoding.EncodeToString(d)}
	for line := range strings.Lines(string(raw)) {
		if line = strings.TrimSpace(line); len(line) > 40 && !strings.HasPrefix(line, "-----") {
			forms = append(forms, line)
		}
	}
	return forms
}
