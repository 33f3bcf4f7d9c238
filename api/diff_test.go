package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/chatops"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// greetModule is the source of app hello depending on example.com/greet at version, a
// module kept in the source tree (replaced by the directory ./greet: the build sandbox
// has no network) whose text differs between versions.
func greetModule(t *testing.T, version, greetLicense string) []byte {
	t.Helper()
	return buildertest.Archive(t, map[string]string{
		"LICENSE":       buildertest.ApacheLicense,
		"greet/LICENSE": greetLicense,
		"go.mod": "module example.com/hello\n\ngo 1.22\n\nrequire example.com/greet " + version +
			"\n\nreplace example.com/greet => ./greet\n",
		"main.go": `package main

import (
	"fmt"

	"example.com/greet"
)

var version = "dev"

func main() { fmt.Println(greet.Hello(), version) }
`,
		"greet/go.mod":   "module example.com/greet\n\ngo 1.22\n",
		"greet/greet.go": "package greet\n\n// Hello greets.\nfunc Hello() string { return \"hello from greet " + version + "\" }\n",
	})
}

// buildGreet builds hello (licensed Apache-2.0) at version v with example.com/greet at
// greetVersion, whose LICENSE file is greetLicense, and releases it. The app's ldflags do
// not name the version, so that the builds differ only in the dependency (and the commit).
func (e *env) buildGreet(v, commit, greetVersion, greetLicense string) openapi.Build {
	e.t.Helper()
	src := greetModule(e.t, greetVersion, greetLicense)
	r := e.do("POST", "/v1/apps/hello/builds?version="+v+"&commit="+commit, gz(nil), string(src))
	if r.status != http.StatusAccepted {
		e.t.Fatalf("POST build %s = %d %s", v, r.status, r.body)
	}
	b := e.waitBuild("hello", r.build(e.t).Id)
	if b.Status != openapi.BuildStatusSucceeded {
		e.t.Fatalf("build %s = %s %+v", v, b.Status, b.Error)
	}
	if r := e.do("POST", "/v1/apps/hello/releases", nil, `{"build_id":"`+b.Id+`"}`); r.status != http.StatusCreated {
		e.t.Fatalf("release %s = %d %s", v, r.status, r.body)
	}
	return b
}

func (e *env) getDiff(from, to string) (openapi.ReleaseDiff, response) {
	e.t.Helper()
	r := e.do("GET", "/v1/apps/hello/diff?from="+from+"&to="+to, nil, "")
	var d openapi.ReleaseDiff
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &d); err != nil {
			e.t.Fatalf("decoding the diff: %v: %s", err, r.body)
		}
	}
	return d, r
}

// TestDiffOneDependencyBumped: two builds of a module whose only difference is one
// dependency's version differ, in the diff, by exactly that bump (and the binaries'
// sizes, which may move), and by the dependency's license, MIT then Apache-2.0, which the
// builds' SBOMs declare from its LICENSE file; releases are named by version or by channel, an unknown name
// is 404 naming what exists, an empty channel 409. The facts are cached per build; the
// vulnerabilities come from the server's scanner (Deps.Vulns).
func TestDiffOneDependencyBumped(t *testing.T) {
	rdb := storetest.Redis(t)
	var vulns sync.Map // build id → the vulnerability ids a scan of it finds
	e := newEnvWith(t, rdb, nil, func(d *api.Deps) {
		d.Chat = chatops.NewStore(rdb)
		d.Vulns = func(_ context.Context, _, id string) ([]string, error) {
			ids, _ := vulns.Load(id)
			v, _ := ids.([]string)
			return v, nil
		}
	})
	e.startWorker()
	if r := e.do("PUT", "/v1/apps/hello", nil, `{"platforms":["linux/amd64","linux/arm64"],"ldflags":"-X main.version=greet"}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	b1 := e.buildGreet("1.0.0", "c0ffee1", "v1.0.0", buildertest.MITLicense)
	b2 := e.buildGreet("1.1.0", "c0ffee2", "v1.1.0", buildertest.ApacheLicense)
	vulns.Store(b1.Id, []string{"GO-2024-0002", "GO-2024-0001"})
	vulns.Store(b2.Id, []string{"GO-2025-0003", "GO-2024-0002"})
	for _, s := range []struct{ ch, v string }{{"dev", "1.0.0"}, {"staging", "1.0.0"}, {"dev", "1.1.0"}} {
		if r := e.do("POST", "/v1/apps/hello/channels/"+s.ch+"/promote", nil, `{"version":"`+s.v+`","reason":"test"}`); r.status != http.StatusOK {
			t.Fatalf("promote %s %s = %d %s", s.ch, s.v, r.status, r.body)
		}
	}

	for _, tc := range []struct{ name, from, to string }{
		{"by version", "1.0.0", "1.1.0"},
		{"by channel", "staging", "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, r := e.getDiff(tc.from, tc.to)
			if r.status != http.StatusOK {
				t.Fatalf("GET diff = %d %s", r.status, r.body)
			}
			want := []openapi.ModuleChange{{Kind: "changed", Path: "example.com/greet", From: ptr("v1.0.0"), To: ptr("v1.1.0"),
				FromReplace: ptr("./greet"), ToReplace: ptr("./greet")}}
			if len(d.Modules) != 1 || !equalModule(d.Modules[0], want[0]) {
				t.Errorf("modules = %s, want exactly example.com/greet v1.0.0 → v1.1.0", r.body)
			}
			if d.GoVersion != nil || d.MainModule != nil || d.BaseImage != nil || d.BaseDigest != nil || d.Ldflags != nil || len(d.Settings) != 0 {
				t.Errorf("diff = %s, want no change but the module (and sizes)", r.body)
			}
			if d.Commits.From != "c0ffee1" || d.Commits.To != "c0ffee2" {
				t.Errorf("commits = %+v, want c0ffee1 → c0ffee2", d.Commits)
			}
			if d.From.BuildId != b1.Id || d.To.BuildId != b2.Id || d.From.Version != "1.0.0" || d.To.Version != "1.1.0" {
				t.Errorf("sides = %+v → %+v, want builds %s → %s", d.From, d.To, b1.Id, b2.Id)
			}
			if tc.from == "staging" && (deref(d.From.Channel) != "staging" || deref(d.To.Channel) != "dev") {
				t.Errorf("channels = %v → %v, want staging → dev", d.From.Channel, d.To.Channel)
			}
			var platforms []string
			for _, s := range d.Sizes {
				platforms = append(platforms, s.Platform)
				if s.From <= 0 || s.To <= 0 || s.Delta != s.To-s.From {
					t.Errorf("size %+v, want both sides and their delta", s)
				}
			}
			if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
				t.Errorf("sizes of %v, want linux/amd64 and linux/arm64", platforms)
			}
			if l := d.Licenses; !l.Known || len(l.Changes) != 1 || l.Changes[0].Path != "example.com/greet" ||
				l.Changes[0].From != "MIT" || l.Changes[0].To != "Apache-2.0" {
				t.Errorf("licenses = %+v, want exactly example.com/greet MIT → Apache-2.0", l)
			}
			if !d.Vulns.Available || !slices.Equal(deref(d.Vulns.Fixed), []string{"GO-2024-0001"}) ||
				!slices.Equal(deref(d.Vulns.Introduced), []string{"GO-2025-0003"}) {
				t.Errorf("vulns = %s, want GO-2024-0001 fixed and GO-2025-0003 introduced", r.body)
			}
		})
	}

	// The facts of both builds are cached, as builds do not change.
	for _, id := range []string{b1.Id, b2.Id} {
		if n, err := e.rdb.Exists(t.Context(), store.BuildFactsKey("hello", id)).Result(); err != nil || n != 1 {
			t.Errorf("facts of %s cached = %d, %v", id, n, err)
		}
	}

	for _, tc := range []struct {
		from, to string
		status   int
		want     []string
	}{
		{"9.9.9", "dev", http.StatusNotFound, []string{`no channel or release "9.9.9"`, "dev, staging, prod", "1.1.0, 1.0.0"}},
		{"dev", "nope", http.StatusNotFound, []string{`"nope"`}},
		{"staging", "prod", http.StatusConflict, []string{"channel prod of app hello holds no release yet"}},
	} {
		_, r := e.getDiff(tc.from, tc.to)
		p := r.problem(t)
		if r.status != tc.status {
			t.Errorf("diff %s %s = %d %s, want %d", tc.from, tc.to, r.status, r.body, tc.status)
		}
		for _, w := range tc.want {
			if !strings.Contains(deref(p.Detail), w) {
				t.Errorf("diff %s %s detail = %q, want %q in it", tc.from, tc.to, deref(p.Detail), w)
			}
		}
	}
	// In chat: diff answers in a few lines; a promotion's answer says what it changed.
	ce := &chatEnv{env: e, responseURL: "https://chat.invalid/commands/T1/1"}
	if r := e.do("PUT", "/v1/chatops/secrets/slack", nil, `{"secret":"`+slackSecret+`"}`); r.status/100 != 2 {
		t.Fatalf("PUT slack secret = %d %s", r.status, r.body)
	}
	ce.mapUser("slack:U9", `{"scopes":["promote"],"apps":["hello"]}`)
	bump := "~ example.com/greet v1.0.0 =&gt; ./greet → v1.1.0 =&gt; ./greet" // as Slack reads >
	m := ce.slack(ce.slackForm("U9", "bob", "diff hello staging dev")).message(t)
	if want := "hello staging (1.0.0) → dev (1.1.0):\n• modules: 1 changed\n  " + bump + "\n• commits c0ffee1 → c0ffee2"; m.Text != want {
		t.Errorf("chat diff answered\n%s\nwant\n%s", m.Text, want)
	}
	m = ce.slack(ce.slackForm("U9", "bob", "promote hello staging 1.1.0 greet bump")).message(t)
	if want := "\nChanges from 1.0.0: modules 1 changed (" + bump + ")"; !strings.HasSuffix(m.Text, want) {
		t.Errorf("chat promote answered %q, want it to end with %q", m.Text, want)
	}

	if r := e.do("GET", "/v1/apps/nowhere/diff?from=a&to=b", nil, ""); r.status != http.StatusNotFound {
		t.Errorf("diff of an unknown app = %d, want 404", r.status)
	}
	if r := e.do("GET", "/v1/apps/hello/diff?from=dev", nil, ""); r.status != http.StatusBadRequest {
		t.Errorf("diff without to = %d %s, want 400", r.status, r.body)
	}
}

func equalModule(a, b openapi.ModuleChange) bool {
	return a.Kind == b.Kind && a.Path == b.Path && deref(a.From) == deref(b.From) && deref(a.To) == deref(b.To) &&
		deref(a.FromReplace) == deref(b.FromReplace) && deref(a.ToReplace) == deref(b.ToReplace)
}
