package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/slipway/slipway/openapi"
)

// TestCLIApps creates, shows, updates, lists and deletes an app with the CLI against a
// server on real Redis and S3, including the refusals: an app that exists, an update
// that lost a race, a setting the server refuses, an app that does not exist.
func TestCLIApps(t *testing.T) {
	p := startServe(t, append(buildEnv(t), "SLIPWAY_WORKERS=0"))
	cli := []string{"SLIPWAY_URL=" + p.url}

	r := runCLI(t, cli, "apps", "create", "web", "--main", "./cmd/web", "--platforms", "linux/amd64,linux/arm64", "--channels", "dev,prod", "--public")
	if r.code != 0 || field(r.stdout, "main") != "./cmd/web" || field(r.stdout, "platforms") != "linux/amd64,linux/arm64" ||
		field(r.stdout, "channels") != "dev, prod (from dev)" || field(r.stdout, "public") != "yes" || field(r.stdout, "generation") != "1" ||
		!strings.Contains(r.stderr, "created app web") {
		t.Fatalf("apps create: %s", r)
	}
	var app openapi.App
	call(t, "GET", p.url+"/v1/apps/web", "", "", http.StatusOK, &app)
	if len(app.Channels) != 2 || app.Channels[1].From == nil || *app.Channels[1].From != "dev" || !app.Public || app.Ldflags != "-X main.version={{.Version}}" {
		t.Errorf("the app created = %+v, want channels dev, prod from dev, public, default ldflags", app)
	}

	t.Run("create refuses an app that exists", func(t *testing.T) {
		r := runCLI(t, cli, "apps", "create", "web")
		if r.code != 3 || !strings.Contains(r.stderr, `app "web" exists`) || !strings.Contains(r.stderr, "(412 precondition-failed)") ||
			!strings.Contains(r.stderr, "slipway apps update web changes it") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("apps create of an app that exists: %s\nwant exit 3 and one line pointing at apps update", r)
		}
	})

	t.Run("show", func(t *testing.T) {
		r := runCLI(t, cli, "apps", "show", "web", "--json")
		var got openapi.App
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 || got.Main != "./cmd/web" || got.Generation != 1 {
			t.Errorf("apps show --json = %+v, %v: %s", got, err, r)
		}
		r = runCLI(t, cli, "apps", "show", "nope")
		if want := "slipway: no app named \"nope\" (404 not-found)\n"; r.code != 3 || r.stderr != want {
			t.Errorf("apps show nope: %s\nwant exit 3 and %q", r, want)
		}
	})

	t.Run("update", func(t *testing.T) {
		r := runCLI(t, cli, "apps", "update", "web", "--ldflags", "-X main.v={{.Version}}", "--public=false")
		if r.code != 0 || field(r.stdout, "ldflags") != "-X main.v={{.Version}}" || field(r.stdout, "public") != "no" ||
			field(r.stdout, "main") != "./cmd/web" || field(r.stdout, "channels") != "dev, prod (from dev)" || field(r.stdout, "generation") != "2" ||
			!strings.Contains(r.stderr, "updated app web (generation 2)") {
			t.Errorf("apps update: %s\nwant the flags' settings changed and the others kept", r)
		}
		r = runCLI(t, cli, "apps", "update", "web", "--main", "./cmd/web")
		if r.code != 0 || field(r.stdout, "generation") != "2" || !strings.Contains(r.stderr, "nothing changed") {
			t.Errorf("apps update to the same settings: %s", r)
		}
		r = runCLI(t, cli, "apps", "update", "web")
		if r.code != 2 || !strings.Contains(r.stderr, "--platforms") {
			t.Errorf("apps update without a setting: %s\nwant exit 2 naming the settings", r)
		}
		r = runCLI(t, cli, "apps", "update", "web", "--platforms", "plan9/nope")
		if r.code != 3 || !strings.Contains(r.stderr, "(422 validation-failed)") || !strings.Contains(r.stderr, "\n  platforms[0]: ") {
			t.Errorf("apps update to a platform the server refuses: %s\nwant exit 3 and the field", r)
		}
	})

	t.Run("update that lost a race", func(t *testing.T) {
		u, _ := url.Parse(p.url)
		c, err := newClient(u, "")
		if err != nil {
			t.Fatal(err)
		}
		// This command read generation 1; the update above made it 2.
		_, err = c.putApp(context.Background(), "web", 1, openapi.AppInput{Main: ptr("./cmd/other")})
		var stale *staleAppError
		if !errors.As(err, &stale) || exitCode(err) != 3 {
			t.Fatalf("putApp at a stale generation = %v (exit %d), want a staleAppError and exit 3", err, exitCode(err))
		}
		for _, want := range []string{"someone changed app web after this command read it (generation 1)", "changed nothing", "run the command again"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the message lacks %q: %s", want, err)
			}
		}
	})

	t.Run("list and delete", func(t *testing.T) {
		for _, args := range [][]string{{"apps"}, {"apps", "list"}, {"apps", "--limit", "5"}} {
			if r := runCLI(t, cli, args...); r.code != 0 || !strings.HasPrefix(r.stdout, "APP ") || !strings.Contains(r.stdout, "\nweb ") {
				t.Errorf("slipway %q: %s", args, r)
			}
		}
		if r := runCLI(t, cli, "apps", "delete", "web"); r.code != 0 || r.stdout != "app web deleted\n" {
			t.Errorf("apps delete: %s", r)
		}
		if r := runCLI(t, cli, "apps", "delete", "web"); r.code != 3 || !strings.Contains(r.stderr, "(404 not-found)") {
			t.Errorf("apps delete of a deleted app: %s", r)
		}
	})
}

func TestCLIParseChannels(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want [][2]string // name, from
	}{
		{"dev,staging,prod", [][2]string{{"dev", ""}, {"staging", "dev"}, {"prod", "staging"}}},
		{"prod", [][2]string{{"prod", ""}}},
		{"dev, prod=", [][2]string{{"dev", ""}, {"prod", ""}}},
		{"dev,staging,prod=dev,hotfix=", [][2]string{{"dev", ""}, {"staging", "dev"}, {"prod", "dev"}, {"hotfix", ""}}},
	} {
		chs, err := parseChannels(tc.in)
		var got [][2]string
		for _, ch := range chs {
			got = append(got, [2]string{ch.Name, orEmpty(ch.From)})
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseChannels(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "dev,,prod", "=dev"} {
		var ue *usageError
		if _, err := parseChannels(bad); !errors.As(err, &ue) {
			t.Errorf("parseChannels(%q) = %v, want a usage error", bad, err)
		}
	}
}

func orEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
