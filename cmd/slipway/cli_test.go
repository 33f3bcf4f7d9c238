package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// cliResult is what one run of the binary as a client printed and how it exited.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the slipway binary with args and env (on top of baseEnv).
func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(baseEnv(t), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("running slipway %q: %v", args, err)
	}
	return cliResult{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// call makes one API request as a test's setup, with the token if any, and decodes the
// answer into out (unless nil); it fails the test on a status other than want.
func call(t *testing.T, method, u, token, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, u, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, u, err, b)
		}
	}
}

// envValue is the value of name in env.
func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// field returns the value of the "key value" line of a build's output.
func field(out, key string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s+(.+)$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// TestCLIBuild is the build scenario end to end: a module with .git, an ignored
// file and an ignored directory is built, released and promoted to dev by one command;
// the stored source holds none of the ignored things; the same command again builds
// nothing new. The same server then answers the list commands, a compile error and
// refused requests.
func TestCLIBuild(t *testing.T) {
	env := buildEnv(t)
	p := startServe(t, env)
	call(t, "PUT", p.url+"/v1/apps/hello", "", `{"platforms":["linux/amd64"]}`, http.StatusCreated, nil)
	call(t, "PUT", p.url+"/v1/apps/other", "", `{"platforms":["linux/amd64"]}`, http.StatusCreated, nil)
	cli := []string{"SLIPWAY_URL=" + p.url}

	dir := writeTree(t, map[string]string{
		"go.mod":       "module example.com/hello\n\ngo 1.22\n",
		"main.go":      buildertest.HelloMain,
		".gitignore":   "# local things\nsecret.txt\ndist/\n",
		"secret.txt":   "hunter2",
		"dist/hello":   "an old binary",
		".git/HEAD":    "ref: refs/heads/main\n",
		".git/config":  "[core]\n",
		"docs/note.md": "kept\n",
	})
	start := time.Now()
	r := runCLI(t, cli, "build", dir, "--app", "hello", "--version", "1.2.3", "--promote", "dev")
	t.Logf("build --promote took %s", time.Since(start).Round(time.Millisecond))
	if r.code != 0 {
		t.Fatalf("build --promote dev: %s", r)
	}
	id, image := field(r.stdout, "build"), field(r.stdout, "image")
	if id == "" || !strings.HasPrefix(image, "sha256:") || field(r.stdout, "status") != "succeeded" || field(r.stdout, "release") != "1.2.3" ||
		!strings.Contains(field(r.stdout, "promoted"), "hello/dev: (none) → 1.2.3") {
		t.Errorf("build --promote dev printed:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "succeeded") {
		t.Errorf("stderr does not show the build log:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "\r") {
		t.Errorf("stderr, not a terminal, has a progress bar:\n%q", r.stderr)
	}
	b := getBuild(t, p.url, "hello", id)
	if b.Image == nil || b.Image.Digest != image {
		t.Errorf("build %s has image %+v, the command printed %s", id, b.Image, image)
	}

	// The stored source, straight from the bucket.
	s3c := storetest.NewS3Client(storetest.S3Config{
		Endpoint: envValue(env, "SLIPWAY_S3_ENDPOINT"), Region: envValue(env, "AWS_REGION"),
		AccessKey: envValue(env, "AWS_ACCESS_KEY_ID"), SecretKey: envValue(env, "AWS_SECRET_ACCESS_KEY"),
	})
	obj, err := s3c.GetObject(context.Background(), &s3.GetObjectInput{
		Bucket: ptr(envValue(env, "SLIPWAY_S3_BUCKET")),
		Key:    ptr("sources/sha256/" + strings.TrimPrefix(b.SourceDigest, "sha256:")),
	})
	if err != nil {
		t.Fatalf("fetching the stored source %s: %v", b.SourceDigest, err)
	}
	stored, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	entries := tarEntries(t, stored)
	if want := []string{".gitignore", "docs/note.md", "go.mod", "main.go"}; !slices.Equal(entries, want) {
		t.Errorf("the stored source holds %q, want %q", entries, want)
	}
	var ch openapi.Channel
	call(t, "GET", p.url+"/v1/apps/hello/channels/dev", "", "", http.StatusOK, &ch)
	if ch.Release == nil || *ch.Release != "1.2.3" {
		t.Errorf("dev holds %v, want 1.2.3", ch.Release)
	}

	t.Run("retry builds nothing new", func(t *testing.T) {
		r := runCLI(t, cli, "build", dir, "--app", "hello", "--version", "1.2.3", "--promote", "dev")
		if r.code != 0 || field(r.stdout, "build") != id || !strings.Contains(r.stdout, "already holds 1.2.3") {
			t.Errorf("the same build again: %s\nwant build %s and dev unchanged", r, id)
		}
		var l openapi.BuildList
		call(t, "GET", p.url+"/v1/apps/hello/builds", "", "", http.StatusOK, &l)
		if len(l.Items) != 1 {
			t.Errorf("hello has %d builds, want 1", len(l.Items))
		}
	})

	t.Run("compile error", func(t *testing.T) {
		bad := writeTree(t, map[string]string{
			"go.mod":  "module example.com/hello\n\ngo 1.22\n",
			"main.go": "package main\n\nfunc main() { notDefined() }\n",
		})
		r := runCLI(t, cli, "build", bad, "--app", "hello", "--follow")
		if r.code != 1 || !strings.Contains(r.stderr, "undefined: notDefined") || field(r.stdout, "status") != "failed" {
			t.Errorf("build of a module that does not compile: %s\nwant exit 1 and the compiler's message", r)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			args  []string
			wants []string
		}{
			{"unknown app", []string{"build", dir, "--app", "nope"}, []string{"404 not-found", "nope"}},
			{"bad version", []string{"build", dir, "--app", "hello", "--version", "1.2"}, []string{"422 validation-failed", "version", "1.2"}},
			{"unknown release", []string{"promote", "hello", "staging", "--version", "9.9.9", "--reason", "test"}, []string{"9.9.9"}},
			{"policy", []string{"promote", "hello", "prod", "--version", "1.2.3", "--reason", "skip staging"}, []string{"409 policy-violation", "staging", "slipway promote hello staging --version 1.2.3 --reason R"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := runCLI(t, cli, tc.args...)
				if r.code != 3 {
					t.Fatalf("%s", r)
				}
				for _, w := range tc.wants {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
					}
				}
			})
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"build", t.TempDir(), "--app", "hello"}, // no go.mod
			{"build", dir},                           // no --app
			{"promote", "hello", "dev", "--reason", "x"},
			{"promote", "hello", "dev", "--version", "1.2.3"},
			{"rollback", "hello"},
			{"apps", "--nope"},
			{"token", "create", "x"},
		} {
			if r := runCLI(t, cli, args...); r.code != 2 {
				t.Errorf("slipway %q: %s\nwant exit 2", args, r)
			}
		}
	})

	t.Run("tables and JSON", func(t *testing.T) {
		r := runCLI(t, cli, "apps")
		if r.code != 0 || !regexp.MustCompile(`(?m)^hello\s+\.\s+linux/amd64\s+dev → staging → prod\s+no\s+\d+s ago$`).MatchString(r.stdout) ||
			!strings.HasPrefix(r.stdout, "APP ") || !strings.Contains(r.stdout, "\nother ") {
			t.Errorf("apps:\n%s", r)
		}
		r = runCLI(t, cli, "apps", "--json")
		var apps openapi.AppList
		if err := json.Unmarshal([]byte(r.stdout), &apps); err != nil || len(apps.Items) != 2 || apps.Items[0].Name != "hello" || apps.NextCursor != nil {
			t.Errorf("apps --json = %+v, %v:\n%s", apps, err, r)
		}
		r = runCLI(t, cli, "apps", "--json", "--limit", "1")
		apps = openapi.AppList{}
		if err := json.Unmarshal([]byte(r.stdout), &apps); err != nil || len(apps.Items) != 1 || apps.NextCursor == nil {
			t.Errorf("apps --json --limit 1 = %+v, %v; want one app and next_cursor:\n%s", apps, err, r)
		}

		r = runCLI(t, cli, "releases", "hello")
		if r.code != 0 || !regexp.MustCompile(`(?m)^1\.2\.3\s+1\s+`+id+`\s+sha256:[0-9a-f]{12}\s+dev\s+\d+s ago\s+anonymous$`).MatchString(r.stdout) {
			t.Errorf("releases hello:\n%s", r)
		}
		r = runCLI(t, cli, "releases", "hello", "--json")
		var rels openapi.ReleaseList
		if err := json.Unmarshal([]byte(r.stdout), &rels); err != nil || len(rels.Items) != 1 || rels.Items[0].BuildId != id || rels.Items[0].ImageDigest != image {
			t.Errorf("releases --json = %+v, %v", rels, err)
		}

		r = runCLI(t, cli, "channels", "hello")
		if r.code != 0 || !regexp.MustCompile(`(?m)^dev\s+1\.2\.3\s+-\s+no\s+1\s+\d+s ago\s+anonymous$`).MatchString(r.stdout) ||
			!regexp.MustCompile(`(?m)^prod\s+-\s+staging\s+no\s+0\s+-\s+-$`).MatchString(r.stdout) {
			t.Errorf("channels hello:\n%s", r)
		}
		r = runCLI(t, cli, "channels", "hello", "--json")
		var chans openapi.ChannelList
		if err := json.Unmarshal([]byte(r.stdout), &chans); err != nil || len(chans.Items) != 3 || *chans.Items[0].Release != "1.2.3" {
			t.Errorf("channels --json = %+v, %v", chans, err)
		}

		// Promote to staging, lock it, roll dev back to nothing.
		if r := runCLI(t, cli, "promote", "hello", "staging", "--from", "dev", "--reason", "tested"); r.code != 0 || !strings.Contains(r.stdout, "hello/staging: (none) → 1.2.3") {
			t.Errorf("promote --from dev: %s", r)
		}
		if r := runCLI(t, cli, "lock", "hello", "staging", "--reason", "freeze"); r.code != 0 || r.stdout != "hello/staging locked\n" {
			t.Errorf("lock: %s", r)
		}
		if r := runCLI(t, cli, "promote", "hello", "staging", "--version", "1.2.3", "--reason", "again"); r.code != 0 && r.code != 3 {
			t.Errorf("promote to a locked channel: %s", r)
		}
		if r := runCLI(t, cli, "unlock", "hello", "staging", "--reason", "thaw", "--json"); r.code != 0 || !json.Valid([]byte(r.stdout)) {
			t.Errorf("unlock --json: %s", r)
		}
		r = runCLI(t, cli, "history", "hello", "staging")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 4 || !regexp.MustCompile(`^3\s+unlock\s+`).MatchString(lines[1]) ||
			!regexp.MustCompile(`^1\s+promote\s+-\s+1\.2\.3\s+anonymous\s+\d+s ago\s+tested$`).MatchString(lines[3]) {
			t.Errorf("history hello staging:\n%s", r)
		}
		r = runCLI(t, cli, "history", "hello", "staging", "--json", "--limit", "2")
		var hist openapi.ChannelHistory
		if err := json.Unmarshal([]byte(r.stdout), &hist); err != nil || len(hist.Items) != 2 || hist.Items[0].Seq != 3 || hist.NextCursor == nil {
			t.Errorf("history --json --limit 2 = %+v, %v", hist, err)
		}
	})

	t.Run("a locked channel says how to go on", func(t *testing.T) {
		if r := runCLI(t, cli, "lock", "hello", "dev", "--reason", "incident"); r.code != 0 {
			t.Fatalf("lock: %s", r)
		}
		r := runCLI(t, cli, "promote", "hello", "dev", "--version", "1.2.3", "--reason", "again")
		want := "slipway: promote hello/dev: dev is locked (incident); unlock it first, or roll back (423 channel-locked): " +
			"slipway unlock hello dev --reason R, or slipway rollback hello dev --reason R\n"
		if r.code != 3 || r.stderr != want {
			t.Errorf("promote to a locked channel: %s\nwant exit 3 and %q", r, want)
		}
		if r := runCLI(t, cli, "unlock", "hello", "dev", "--reason", "over"); r.code != 0 {
			t.Errorf("unlock: %s", r)
		}
	})
}

// TestCLIUnreachable points the client at a port nobody listens on.
func TestCLIUnreachable(t *testing.T) {
	addr := storetest.FreeAddr(t)
	for _, args := range [][]string{{"apps"}, {"channels", "hello"}, {"build", writeTree(t, map[string]string{"go.mod": "module x\n"}), "--app", "x"}} {
		r := runCLI(t, []string{"SLIPWAY_URL=http://" + addr, "SLIPWAY_TOKEN=slw_topsecret"}, args...)
		out := strings.TrimSpace(r.stderr)
		if r.code != 4 || strings.Contains(out, "\n") || !strings.Contains(out, "http://"+addr) || !strings.Contains(out, "SLIPWAY_URL") || strings.Contains(out, "topsecret") {
			t.Errorf("slipway %q with the server down: %s\nwant exit 4 and one line naming the URL and SLIPWAY_URL", args, r)
		}
	}
}

// TestCLIAuth runs the token commands against a server with an admin token, and a
// promote that loses the race to another token's move.
func TestCLIAuth(t *testing.T) {
	const admin = "admin-token-for-the-cli-test"
	p := startServe(t, []string{"SLIPWAY_REDIS_URL=" + storetest.RedisURL(t), "SLIPWAY_ADMIN_TOKEN=" + admin})
	call(t, "PUT", p.url+"/v1/apps/hello", admin, `{}`, http.StatusCreated, nil)
	cli := []string{"SLIPWAY_URL=" + p.url}
	asAdmin := append(slices.Clone(cli), "SLIPWAY_TOKEN="+admin)

	if r := runCLI(t, cli, "apps"); r.code != 3 || !strings.Contains(r.stderr, "401 unauthorized") || !strings.Contains(r.stderr, "SLIPWAY_TOKEN") {
		t.Errorf("apps without a token: %s\nwant exit 3 and a 401", r)
	}

	r := runCLI(t, asAdmin, "token", "create", "ci", "--scope", "build", "--scope", "release")
	secret := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(secret, "slw_") || strings.Contains(secret, "\n") || !strings.Contains(r.stderr, "only time") {
		t.Fatalf("token create: %s", r)
	}
	asCI := append(slices.Clone(cli), "SLIPWAY_TOKEN="+secret)
	if r := runCLI(t, asCI, "apps"); r.code != 0 || !strings.Contains(r.stdout, "hello") {
		t.Errorf("apps with the new token: %s", r)
	}
	if r := runCLI(t, asCI, "token", "list"); r.code != 3 || !strings.Contains(r.stderr, "403 forbidden") || strings.Contains(r.stderr, secret) {
		t.Errorf("token list with a build token: %s\nwant exit 3, 403, and no secret", r)
	}
	r = runCLI(t, asAdmin, "token", "list")
	if r.code != 0 || !regexp.MustCompile(`(?m)^ci\s+tok_[0-9A-Z]{26}\s+build,release\s+every app\s+\d+s ago\s+\d+s ago$`).MatchString(r.stdout) || strings.Contains(r.stdout, secret) {
		t.Errorf("token list: %s", r)
	}
	table := r.stdout
	r = runCLI(t, asAdmin, "token", "list", "--json")
	var toks openapi.TokenList
	if err := json.Unmarshal([]byte(r.stdout), &toks); err != nil || len(toks.Items) != 1 || strings.Contains(r.stdout, secret) || strings.Contains(r.stdout, `"token"`) {
		t.Errorf("token list --json = %+v, %v:\n%s", toks, err, r.stdout)
	} else if !strings.Contains(table, " "+toks.Items[0].Id+" ") {
		t.Errorf("token list:\n%s\nwant the id %s in its ID column", table, toks.Items[0].Id)
	}
	if r := runCLI(t, asAdmin, "token", "revoke", "ci"); r.code != 0 || r.stdout != "token ci revoked\n" {
		t.Errorf("token revoke: %s", r)
	}
	for _, args := range [][]string{{"apps"}, {"channels", "hello"}, {"build", writeTree(t, map[string]string{"go.mod": "module x\n"}), "--app", "hello"}} {
		r := runCLI(t, asCI, args...)
		if r.code != 3 || !strings.Contains(r.stderr, "401 unauthorized") || strings.Contains(r.stderr+r.stdout, secret) || strings.Contains(r.stderr+r.stdout, admin) {
			t.Errorf("slipway %q with the revoked token: %s\nwant exit 3, 401 and no token", args, r)
		}
	}
	if r := runCLI(t, append(slices.Clone(cli), "SLIPWAY_TOKEN=wrong-"+admin), "token", "list"); r.code != 3 || strings.Contains(r.stderr, admin) {
		t.Errorf("a wrong token: %s", r)
	}

	t.Run("stale channel", func(t *testing.T) {
		var alice openapi.TokenCreated
		call(t, "POST", p.url+"/v1/tokens", admin, `{"name":"alice","scopes":["promote"]}`, http.StatusCreated, &alice)
		u, _ := url.Parse(p.url)
		c, err := newClient(u, admin)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		read, err := c.getChannel(ctx, "hello", "dev")
		if err != nil {
			t.Fatal(err)
		}
		// Alice locks the channel between this command's read and its move.
		call(t, "POST", p.url+"/v1/apps/hello/channels/dev/lock", alice.Token, `{"reason":"incident"}`, http.StatusOK, nil)
		_, _, err = c.move(ctx, "hello", "dev", read.Generation, channelAction{kind: "promote", body: openapi.PromoteInput{Version: ptr("1.0.0"), Reason: ptr("mine")}})
		var stale *staleChannelError
		if !errors.As(err, &stale) || exitCode(err) != 3 {
			t.Fatalf("move with a stale generation = %v (exit %d), want a staleChannelError and exit 3", err, exitCode(err))
		}
		msg := err.Error()
		t.Logf("stale promote: %s", msg)
		for _, want := range []string{"alice moved channel dev of hello first", "generation 1", "read generation 0", "locked"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the message lacks %q: %s", want, msg)
			}
		}
		// The command itself reads the channel afresh and succeeds.
		if r := runCLI(t, asAdmin, "unlock", "hello", "dev", "--reason", "over"); r.code != 0 || r.stdout != "hello/dev unlocked\n" {
			t.Errorf("unlock: %s", r)
		}
	})
}

func TestCLIParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		pos     []string
		app     string
		follow  bool
		wantErr bool
	}{
		{args: []string{"--app", "x"}, app: "x"},
		{args: []string{"dir", "--app", "x", "--follow"}, pos: []string{"dir"}, app: "x", follow: true},
		{args: []string{"--follow", "dir", "--app=x"}, pos: []string{"dir"}, app: "x", follow: true},
		{args: []string{"--app", "x", "--", "--odd-dir"}, pos: []string{"--odd-dir"}, app: "x"},
		{args: []string{"a", "b"}, wantErr: true},
		{args: []string{"--nope"}, wantErr: true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var cf clientFlags
			cmd := clientCommands["build"]
			fs := newFlagSet(cmd, &cf, false)
			app := fs.String("app", "", "")
			follow := fs.Bool("follow", false, "")
			e := &cliEnv{stdout: io.Discard, stderr: io.Discard}
			pos, err := parseArgs(fs, e, cmd, tc.args, 0, 1)
			if tc.wantErr {
				var ue *usageError
				if !errors.As(err, &ue) {
					t.Errorf("parseArgs(%q) = %v, want a usage error", tc.args, err)
				}
				return
			}
			if err != nil || !slices.Equal(pos, tc.pos) || *app != tc.app || *follow != tc.follow {
				t.Errorf("parseArgs(%q) = %q, %v (app %q follow %v), want %q (app %q follow %v)", tc.args, pos, err, *app, *follow, tc.pos, tc.app, tc.follow)
			}
		})
	}
}

func TestCLIExitCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"usage", &usageError{"x"}, 2},
		{"wrapped usage", fmt.Errorf("a: %w", &usageError{"x"}), 2},
		{"rejected", fmt.Errorf("listing: %w", &apiError{status: 404}), 3},
		{"server failed", &apiError{status: 503}, 1},
		{"unreachable", fmt.Errorf("x: %w", &unreachableError{url: "http://x", err: errors.New("refused")}), 4},
		{"build failed", &buildFailedError{}, 1},
		{"stale", &staleChannelError{apiErr: &apiError{status: 412}}, 3},
		{"other", errors.New("disk full"), 1},
		{"help", flag.ErrHelp, 1},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%s) = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestCLIAgo(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{now.Add(-5 * time.Second), "5s ago"},
		{now.Add(-3 * time.Minute), "3m ago"},
		{now.Add(-5 * time.Hour), "5h ago"},
		{now.Add(-50 * time.Hour), "2d ago"},
		{now.Add(-8 * 24 * time.Hour), "2026-04-23T12:00:00Z"},
		{now.Add(time.Hour), "2026-05-01T13:00:00Z"},
		{time.Time{}, "-"},
	} {
		if got := ago(tc.t, now); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

// TestCLIHelpDocumentsExitCodes checks that `slipway help` has every client command and
// the exit-status table.
func TestCLIHelpDocumentsExitCodes(t *testing.T) {
	out, err := exec.Command(binary, "help").Output()
	if err != nil {
		t.Fatal(err)
	}
	for name, cmd := range clientCommands {
		if !bytes.Contains(out, []byte("slipway "+name)) {
			t.Errorf("help lacks %s (%s)", name, cmd.synopsis)
		}
	}
	for _, want := range []string{"Exit status:", "\n  0  success", "\n  1  ", "\n  2  usage", "\n  3  the server refused", "\n  4  the server could not be reached", "SLIPWAY_URL", "SLIPWAY_TOKEN"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// TestCLIFollowLogResumes drops the log stream mid-build: the client resumes at the byte
// it reached and stops once the build has ended.
func TestCLIFollowLogResumes(t *testing.T) {
	var (
		mu      sync.Mutex
		offsets []string
		logDone bool
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/v1/apps/a/builds/b/log":
			off := r.URL.Query().Get("offset")
			offsets = append(offsets, off)
			w.Header().Set("Content-Type", "text/plain")
			switch off {
			case "0":
				io.WriteString(w, "compiling\n")
				w.(http.Flusher).Flush()
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close() // mid-response: the chunked body never ends
				}
			case "10":
				io.WriteString(w, "succeeded\n")
				logDone = true
			}
		case "/v1/apps/a/builds/b":
			status := "running"
			if logDone {
				status = "succeeded"
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"b","app":"a","status":%q}`, status)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	c, err := newClient(u, "")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	b, _, err := c.followLog(context.Background(), &out, "a", "b")
	if err != nil || b.Status != openapi.BuildStatusSucceeded {
		t.Fatalf("followLog = %s, %v", b.Status, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(offsets, []string{"0", "10", "20"}) {
		t.Errorf("log requested at offsets %q, want 0, 10 (resuming) and 20 (the rest after the end)", offsets)
	}
	got := out.String()
	if !strings.HasPrefix(got, "compiling\n") || !strings.HasSuffix(got, "succeeded\n") || !strings.Contains(got, "resuming at byte 10") {
		t.Errorf("followLog wrote:\n%s", got)
	}
}
