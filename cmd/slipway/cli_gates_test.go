package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// anyBuild answers every build id "b-<version>" as a succeeded build with an image, so
// the test makes releases without compiling.
type anyBuild struct{}

func (anyBuild) BuildRef(_ context.Context, _, id string) (release.BuildRef, error) {
	return release.BuildRef{ID: id, Version: id[2:], Status: "succeeded", Succeeded: true,
		ImageDigest: store.DigestBytes([]byte(id)).String()}, nil
}

// TestCLIGates runs the gate commands against a server: the dry run, a refused promote
// listing the gates in words, approve, override, the pin of a rollback and unpin.
func TestCLIGates(t *testing.T) {
	const admin = "admin-token-for-the-gates-test"
	redisURL := storetest.RedisURL(t)
	p := startServe(t, []string{"SLIPWAY_REDIS_URL=" + redisURL, "SLIPWAY_ADMIN_TOKEN=" + admin, "SLIPWAY_WORKERS=0"})
	call(t, "PUT", p.url+"/v1/apps/hello", admin, `{"platforms":["linux/amd64"],"channels":[{"name":"dev"},{"name":"prod","from":"dev","gates":{"approvals":1}}]}`, http.StatusCreated, nil)
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	blobs, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	releases := release.NewReleases(rdb, blobs, anyBuild{})
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if _, _, err := releases.Create(context.Background(), "hello", release.ReleaseSpec{BuildID: "b-" + v, Actor: "ci", ActorID: "tok_ci"}); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"SLIPWAY_URL=" + p.url, "SLIPWAY_TOKEN=" + admin}
	cli := func(want int, args ...string) cliResult {
		t.Helper()
		r := runCLI(t, env, args...)
		if r.code != want {
			t.Fatalf("slipway %s: %s\nwant exit %d", strings.Join(args, " "), r, want)
		}
		return r
	}
	cli(0, "promote", "hello", "dev", "--version", "1.0.0", "--reason", "ship")

	if r := cli(3, "gates", "hello", "prod"); !strings.Contains(r.stdout, "1.0.0 may not enter now hello/prod") ||
		!strings.Contains(r.stdout, "✗ approvals  failed  0 of 1 approvals") {
		t.Errorf("gates before the approval: %s", r)
	}
	if r := cli(3, "promote", "hello", "prod", "--from", "dev", "--reason", "go"); !strings.Contains(r.stderr, "the channel's gates refuse it (409 gates-failed)") ||
		!strings.Contains(r.stderr, "\n  ✗ approvals  failed") {
		t.Errorf("promote before the approval: %s", r)
	}
	if r := cli(0, "approve", "hello", "prod", "1.0.0", "--reason", "looked"); !strings.Contains(r.stdout, "hello/prod: 1.0.0 approved by admin") {
		t.Errorf("approve: %s", r)
	}
	if r := cli(0, "gates", "hello", "prod", "1.0.0"); !strings.Contains(r.stdout, "1.0.0 may enter now hello/prod") {
		t.Errorf("gates after the approval: %s", r)
	}
	cli(0, "promote", "hello", "prod", "--from", "dev", "--reason", "go")
	if r := cli(3, "approve", "hello", "prod", "1.0.0", "--revoke"); !strings.Contains(r.stderr, "409 conflict") {
		t.Errorf("revoke after the move: %s", r)
	}

	cli(0, "promote", "hello", "dev", "--version", "1.1.0", "--reason", "next")
	if r := cli(0, "promote", "hello", "prod", "--version", "1.1.0", "--reason", "incident 7", "--override"); !strings.Contains(r.stdout, "OVERRIDE: these gates did not pass") ||
		!strings.Contains(r.stdout, "✗ approvals  failed") {
		t.Errorf("promote --override: %s", r)
	}
	if r := cli(0, "rollback", "hello", "prod", "--reason", "errors up"); !strings.Contains(r.stdout, "is pinned: auto_promote leaves it alone until slipway unpin hello prod") {
		t.Errorf("rollback: %s", r)
	}
	if r := cli(0, "unpin", "hello", "prod", "--reason", "fixed"); !strings.Contains(r.stdout, "hello/prod unpinned") {
		t.Errorf("unpin: %s", r)
	}
	if r := cli(0, "history", "hello", "prod"); !strings.Contains(r.stdout, "unpin") || !strings.Contains(r.stdout, "approve") {
		t.Errorf("history: %s", r)
	}
}
