package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/slipway/slipway/openapi"
)

// TestCLIWebhooks subscribes a URL, lists, rotates and deletes the subscription.
func TestCLIWebhooks(t *testing.T) {
	p := startServe(t, append(buildEnv(t), "SLIPWAY_WORKERS=0", "SLIPWAY_WEBHOOK_ALLOW_NETS=127.0.0.0/8"))
	call(t, "PUT", p.url+"/v1/apps/hello", "", `{}`, http.StatusCreated, nil)
	cli := []string{"SLIPWAY_URL=" + p.url}

	r := runCLI(t, cli, "webhooks", "create", "http://127.0.0.1:9/hook", "--event", "channel.*", "--app", "hello", "--format", "slack")
	secret := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(secret, "whsec_") || strings.Contains(secret, "\n") || !strings.Contains(r.stderr, "posts channel.* of hello to http://127.0.0.1:9/hook") {
		t.Fatalf("webhooks create: %s", r)
	}
	r = runCLI(t, cli, "webhooks", "list", "--json")
	var l openapi.WebhookList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Items) != 1 || strings.Contains(r.stdout, secret) {
		t.Fatalf("webhooks list --json = %+v, %v: %s", l, err, r)
	}
	id := l.Items[0].Id
	r = runCLI(t, cli, "webhooks")
	if r.code != 0 || !regexp.MustCompile(`(?m)^`+id+`\s+http://127\.0\.0\.1:9/hook\s+channel\.\*\s+hello\s+slack\s+\d+s ago\s+anonymous$`).MatchString(r.stdout) {
		t.Errorf("webhooks:\n%s", r)
	}

	r = runCLI(t, cli, "webhooks", "rotate", id)
	rotated := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(rotated, "whsec_") || rotated == secret || !strings.Contains(r.stderr, "the old one signs beside it until") {
		t.Errorf("webhooks rotate: %s", r)
	}
	if r := runCLI(t, cli, "webhooks", "delete", id); r.code != 0 || r.stdout != "webhook "+id+" deleted\n" {
		t.Errorf("webhooks delete: %s", r)
	}
	if r := runCLI(t, cli, "webhooks", "delete", id); r.code != 3 || !strings.Contains(r.stderr, "(404 not-found)") {
		t.Errorf("webhooks delete of a deleted subscription: %s", r)
	}
	if r := runCLI(t, cli, "webhooks", "create", "http://10.0.0.1/hook"); r.code != 3 || !strings.Contains(r.stderr, "(422 target-refused)") {
		t.Errorf("webhooks create of a refused target: %s", r)
	}
	if r := runCLI(t, cli, "webhooks", "list"); r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("webhooks list after delete: %s\nwant the header alone", r)
	}
}

// TestCLIWhoami asks who a token, the admin token and no token are, on a server with
// authentication, and who anyone is on one without.
func TestCLIWhoami(t *testing.T) {
	const admin = "admin-token-for-the-whoami-test"
	env := buildEnv(t)
	p := startServe(t, append(slices.Clone(env), "SLIPWAY_WORKERS=0", "SLIPWAY_ADMIN_TOKEN="+admin))
	var bot openapi.TokenCreated
	call(t, "POST", p.url+"/v1/tokens", admin, `{"name":"release-bot","scopes":["promote:staging"],"apps":["hello"]}`, http.StatusCreated, &bot)
	cli := []string{"SLIPWAY_URL=" + p.url}

	r := runCLI(t, append(slices.Clone(cli), "SLIPWAY_TOKEN="+bot.Token), "whoami")
	if r.code != 0 || field(r.stdout, "name") != "release-bot" || field(r.stdout, "id") != bot.Id ||
		field(r.stdout, "scopes") != "promote:staging" || field(r.stdout, "apps") != "hello" || strings.Contains(r.stdout, bot.Token) {
		t.Errorf("whoami as release-bot: %s", r)
	}
	r = runCLI(t, append(slices.Clone(cli), "SLIPWAY_TOKEN="+admin), "whoami", "--json")
	var w openapi.Whoami
	if err := json.Unmarshal([]byte(r.stdout), &w); err != nil || w.Name != "admin" || !slices.Equal(w.Scopes, []string{"admin"}) || !w.Authenticated {
		t.Errorf("whoami --json as admin = %+v, %v: %s", w, err, r)
	}
	if r := runCLI(t, cli, "whoami"); r.code != 3 || !strings.Contains(r.stderr, "(401 unauthorized); set SLIPWAY_TOKEN or --token") {
		t.Errorf("whoami without a token: %s", r)
	}

	open := startServe(t, append(slices.Clone(env), "SLIPWAY_WORKERS=0"))
	r = runCLI(t, []string{"SLIPWAY_URL=" + open.url}, "whoami")
	if r.code != 0 || field(r.stdout, "name") != "anonymous" || field(r.stdout, "scopes") != "read,build,release,promote,admin" ||
		!strings.Contains(field(r.stdout, "server"), "without authentication") {
		t.Errorf("whoami without authentication: %s", r)
	}
}
