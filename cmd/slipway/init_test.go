package main

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
)

func TestAppNameOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"example.com/hello", "hello"},
		{"hello", "hello"},
		{"github.com/acme/Hello_World.go", "hello-world-go"},
		{"example.com/tool/v2", "tool"},
		{"example.com/v2", "example-com"},
		{"example.com/__", "app"},
		{"example.com/" + strings.Repeat("a", 62) + "-b", strings.Repeat("a", 62)},
	} {
		if got := appNameOf(tc.in); got != tc.want {
			t.Errorf("appNameOf(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseAppFile(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, wantErr string
		want                *appFile
	}{
		{name: "name only", yaml: "app: hello\n", want: &appFile{App: "hello"}},
		{name: "channels", yaml: "app: hello\nchannels:\n  - name: dev\n  - name: prod\n    from: dev\n",
			want: &appFile{App: "hello", Channels: &[]channelFile{{Name: "dev"}, {Name: "prod", From: "dev"}}}},
		{name: "unknown field", yaml: "app: hello\nplatfroms: [linux/amd64]\n",
			wantErr: `line 2: unknown field "platfroms" (slipway.yaml has app, main, platforms, ldflags, base_image, channels, auto_promote, public)`},
		{name: "unknown channel field", yaml: "app: hello\nchannels:\n  - name: dev\n    form: x\n",
			wantErr: `line 4: unknown field "form" (a channel has name, from, gates, auto_promote)`},
		{name: "wrong type", yaml: "app: hello\nplatforms: linux/amd64\n", wantErr: "line 2: cannot unmarshal"},
		{name: "empty", yaml: "", wantErr: "the file is empty"},
		{name: "no app", yaml: "main: .\n", wantErr: "names no app"},
		{name: "two documents", yaml: "app: a\n---\napp: b\n", wantErr: "more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAppFile([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("parseAppFile = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseAppFile = %+v, %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestFindMain(t *testing.T) {
	main := "package main\n\nfunc main() {}\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
		note  bool
	}{
		{"top", map[string]string{"main.go": main, "cmd/x/main.go": main}, ".", false},
		{"cmd/app", map[string]string{"lib.go": "package lib\n", "cmd/x/main.go": main, "cmd/hello/main.go": main}, "./cmd/hello", false},
		{"one under cmd", map[string]string{"cmd/x/main.go": main, "cmd/y/y.go": "package y\n"}, "./cmd/x", false},
		{"several under cmd", map[string]string{"cmd/b/main.go": main, "cmd/a/main.go": main}, "./cmd/a", true},
		{"tests only", map[string]string{"main_test.go": main}, ".", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, note := findMain(writeTree(t, tc.files), "hello")
			if got != tc.want || (note != "") != tc.note {
				t.Errorf("findMain = %q, %q; want %q, a note: %v", got, note, tc.want, tc.note)
			}
		})
	}
}

// readApp reads app from the server.
func readApp(t *testing.T, base, app string) openapi.App {
	t.Helper()
	var a openapi.App
	call(t, "GET", base+"/v1/apps/"+app, "", "", http.StatusOK, &a)
	return a
}

// TestCLIInit runs slipway init and builds with the slipway.yaml it wrote: init creates
// the app and writes its settings; build applies the file (creating or updating the app)
// unless --no-apply; a file for another app, or with an unknown field, is refused before
// anything is sent.
func TestCLIInit(t *testing.T) {
	p := startServe(t, buildEnv(t))
	cli := []string{"SLIPWAY_URL=" + p.url}
	dir := writeTree(t, map[string]string{"go.mod": "module example.com/acme/Hello_Svc\n\ngo 1.22\n", "main.go": buildertest.HelloMain})

	r := runCLI(t, cli, "init", dir)
	a := readApp(t, p.url, "hello-svc")
	if r.code != 0 || !strings.Contains(r.stdout, "created app hello-svc") || a.Main != "." {
		t.Fatalf("init: %s\napp: %+v", r, a)
	}
	f, found, err := readAppFile(dir)
	if err != nil || !found || !reflect.DeepEqual(f, appFileOf(&a)) {
		t.Fatalf("slipway.yaml after init = %+v, %v; want the app's settings %+v", f, err, appFileOf(&a))
	}
	if r := runCLI(t, cli, "init", dir); r.code != 0 || !strings.Contains(r.stdout, "matches it already") {
		t.Errorf("init again: %s", r)
	}

	// The file changes: build updates the app, then finds it matching.
	path := filepath.Join(dir, appFileName)
	edit(t, path, "  - linux/arm64\n", "")
	r = runCLI(t, cli, "build", dir, "--version", "1.0.0", "--release")
	if r.code != 0 || !strings.Contains(r.stderr, "updated app hello-svc from slipway.yaml: platforms") || field(r.stdout, "release") != "1.0.0" {
		t.Fatalf("build after editing platforms: %s", r)
	}
	if a := readApp(t, p.url, "hello-svc"); len(a.Platforms) != 1 {
		t.Errorf("platforms after build = %v, want [linux/amd64]", a.Platforms)
	}
	if r := runCLI(t, cli, "build", dir, "--version", "1.0.1"); r.code != 0 || strings.Contains(r.stderr, "updated app") {
		t.Errorf("build with a file that matches: %s", r)
	}
	edit(t, path, "ldflags: ", "ldflags: -X main.commit={{.Commit}} ")
	gen := readApp(t, p.url, "hello-svc").Generation
	if r := runCLI(t, cli, "build", dir, "--no-apply", "--version", "1.0.2"); r.code != 0 || readApp(t, p.url, "hello-svc").Generation != gen {
		t.Errorf("build --no-apply changed the app: %s", r)
	}

	for _, tc := range []struct {
		name, args, want string
		change           func()
	}{
		{name: "another app", args: "--app other", want: "slipway.yaml is for app hello-svc, but --app is other"},
		{name: "unknown field", change: func() { edit(t, path, "public:", "pubic:") }, want: `unknown field "pubic"`},
	} {
		if tc.change != nil {
			tc.change()
		}
		r := runCLI(t, cli, append([]string{"build", dir}, strings.Fields(tc.args)...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "uploaded") {
			t.Errorf("%s: build = %s; want exit 2 with %q and no upload", tc.name, r, tc.want)
		}
	}
}

// TestCLIInitExistingApp runs init for an app the server has: the file gets the app's
// settings and the app is left as it was.
func TestCLIInitExistingApp(t *testing.T) {
	p := startServe(t, buildEnv(t))
	cli := []string{"SLIPWAY_URL=" + p.url}
	call(t, "PUT", p.url+"/v1/apps/web", "", `{"main":"./cmd/web","platforms":["linux/arm64"],"channels":[{"name":"canary"},{"name":"live","from":"canary"}]}`, http.StatusCreated, nil)
	before := readApp(t, p.url, "web")
	dir := writeTree(t, map[string]string{"go.mod": "module example.com/website\n\ngo 1.22\n", "main.go": buildertest.HelloMain})

	r := runCLI(t, cli, "init", "--app", "web", dir)
	after := readApp(t, p.url, "web")
	f, _, err := readAppFile(dir)
	if r.code != 0 || !strings.Contains(r.stdout, "app web exists on the server") || after.Generation != before.Generation ||
		err != nil || !reflect.DeepEqual(f, appFileOf(&before)) {
		t.Errorf("init --app web: %s\nfile %+v, %v\napp before %+v, after %+v", r, f, err, before, after)
	}
	bare := writeTree(t, map[string]string{"go.mod": "module example.com/bare\n\ngo 1.22\n", "main.go": buildertest.HelloMain})
	if r := runCLI(t, cli, "build", bare); r.code != exitUsage || !strings.Contains(r.stderr, "build needs --app, or a slipway.yaml") {
		t.Errorf("build without --app or slipway.yaml: %s", r)
	}
}

// edit replaces old with new in the file at path, and fails if old is not there.
func edit(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q:\n%s", path, old, b)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}
