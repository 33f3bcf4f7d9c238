package main

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
)

// ciServer is a slipway server with authentication on, app hello (linux/amd64, the
// default channels, with auto_promote as asked), and a token per kind of CI job, each
// limited to hello, as docs/ci.md has them made.
type ciServer struct {
	*process
	admin                  string
	ciToken, stagingToken  string // build+release; promote:staging
	prodToken, buildOnly   string // promote:prod; build+release, for a promote it may not make
	ciPromoteDev, hostPath string // build+release+promote:dev; host of url
}

func startCIServer(t *testing.T, autoPromote bool) *ciServer {
	t.Helper()
	const admin = "admin-token-for-the-ci-test"
	p := startServe(t, append(buildEnv(t), "SLIPWAY_ADMIN_TOKEN="+admin))
	call(t, "PUT", p.url+"/v1/apps/hello", admin, fmt.Sprintf(`{"platforms":["linux/amd64"],"auto_promote":%t}`, autoPromote), http.StatusCreated, nil)
	token := func(name string, scopes ...string) string {
		var tc openapi.TokenCreated
		body := `{"name":"` + name + `","scopes":["` + strings.Join(scopes, `","`) + `"],"apps":["hello"]}`
		call(t, "POST", p.url+"/v1/tokens", admin, body, http.StatusCreated, &tc)
		return tc.Token
	}
	u, _ := url.Parse(p.url)
	return &ciServer{
		process: p, admin: admin, hostPath: u.Host,
		ciToken:      token("ci-hello", "build", "release"),
		stagingToken: token("staging-hello", "promote:staging"),
		prodToken:    token("prod-hello", "promote:prod"),
		buildOnly:    token("ci-no-promote", "build", "release"),
		ciPromoteDev: token("ci-dev-hello", "build", "release", "promote:dev"),
	}
}

// channel is channel ch of hello as the admin reads it.
func (s *ciServer) channel(t *testing.T, ch string) openapi.Channel {
	t.Helper()
	var c openapi.Channel
	call(t, "GET", s.url+"/v1/apps/hello/channels/"+ch, s.admin, "", http.StatusOK, &c)
	return c
}

func (s *ciServer) holds(t *testing.T, ch string) string {
	t.Helper()
	if r := s.channel(t, ch).Release; r != nil {
		return *r
	}
	return ""
}

// actionCheckout is the repository as GitHub checks an action out for `uses:
// slipway/slipway@v1`: its files without .git under _actions/slipway/slipway/v1.
func actionCheckout(t *testing.T) string {
	t.Helper()
	src := copyRepo(t, filepath.Join("..", ".."))
	dir := filepath.Join(t.TempDir(), "_actions", "slipway", "slipway", "v1")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(src, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// helloWorkspace is a job's checkout of a repository with the hello module in svc/.
func helloWorkspace(t *testing.T, main string) string {
	t.Helper()
	ws := t.TempDir()
	svc := writeTree(t, map[string]string{"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": main})
	if err := os.Rename(svc, filepath.Join(ws, "svc")); err != nil {
		t.Fatal(err)
	}
	return ws
}

// TestCIGitHubAction runs action.yml's steps as a GitHub job would (check-go.sh,
// install.sh, build.sh, from a checkout of the action at v1) against a real server: on
// tag v1.2.3 it builds 1.2.3, releases and promotes it to dev, and gives the outputs and
// the job summary; a retry within the run attempt gets the same build, a new attempt asks
// again; a failed build is built again only by a new attempt; a token without the
// promote scope and bad inputs fail the step with a message that says why; the setup
// action gives later steps the CLI, with which a promote:staging token moves staging.
func TestCIGitHubAction(t *testing.T) {
	s := startCIServer(t, false)
	action := actionCheckout(t)
	ws := helloWorkspace(t, buildertest.HelloMain)
	inputs := map[string]string{
		"url": s.url, "token": s.ciPromoteDev, "app": "hello", "path": "svc",
		"platforms": "linux/amd64", "release": "true", "promote": "dev",
	}
	job := ghJob{inputs: inputs, ref: "refs/tags/v1.2.3", sha: "0123456789abcdef0123456789abcdef01234567", runID: "4242", attempt: "1", workspace: ws}

	r := runAction(t, action, job)
	if r.code != 0 {
		t.Fatalf("the action failed in step %s (exit %d):\n%s", r.failed, r.code, r.log)
	}
	id, digest := r.outputs["build-id"], r.outputs["image-digest"]
	if id == "" || !strings.HasPrefix(digest, "sha256:") || r.outputs["image"] != s.hostPath+"/hello@"+digest || r.outputs["version"] != "1.2.3" {
		t.Errorf("outputs = %v; want build-id, image-digest, image %s/hello@<digest>, version 1.2.3", r.outputs, s.hostPath)
	}
	if !strings.Contains(r.log, "slipway v1 ") {
		t.Errorf("the installed CLI does not say it is v1, the action's ref:\n%s", r.log)
	}
	if !strings.Contains(r.log, "::add-mask::"+s.ciPromoteDev) || strings.Count(r.log, s.ciPromoteDev) != 1 {
		t.Errorf("the token is not masked, or is in the log besides ::add-mask:::\n%s", r.log)
	}
	var b openapi.Build
	call(t, "GET", s.url+"/v1/apps/hello/builds/"+id, s.admin, "", http.StatusOK, &b)
	if b.Version != "1.2.3" || b.Commit == nil || *b.Commit != job.sha || b.Image == nil || b.Image.Digest != digest {
		t.Errorf("build %s: version %s, commit %v, image %+v; want 1.2.3, %s, %s", id, b.Version, b.Commit, b.Image, job.sha, digest)
	}
	for _, want := range []string{
		"build " + id + " succeeded",
		"- image: `" + r.outputs["image"] + "`",
		"- release: 1.2.3",
		"/v1/apps/hello/builds/" + id + "/log",
		"| platform | binary | size | image manifest |",
		"| linux/amd64 | `sha256:",
	} {
		if !strings.Contains(r.summary, want) {
			t.Errorf("the job summary lacks %q:\n%s", want, r.summary)
		}
	}
	if got := s.holds(t, "dev"); got != "1.2.3" {
		t.Errorf("dev holds %q, want 1.2.3", got)
	}
	var hist openapi.ChannelHistory
	call(t, "GET", s.url+"/v1/apps/hello/channels/dev/history", s.admin, "", http.StatusOK, &hist)
	if len(hist.Items) == 0 || hist.Items[0].Actor != "ci-dev-hello" {
		t.Errorf("dev's history = %+v, want the CI token's move first", hist.Items)
	}

	t.Run("retry of the attempt", func(t *testing.T) {
		r := runAction(t, action, job)
		if r.code != 0 || r.outputs["build-id"] != id || strings.Contains(r.log, "has the same inputs") {
			t.Errorf("the same run attempt again: exit %d, build %s; want build %s, the first answer replayed\n%s", r.code, r.outputs["build-id"], id, r.log)
		}
	})
	t.Run("new attempt", func(t *testing.T) {
		again := job
		again.attempt = "2"
		r := runAction(t, action, again)
		if r.code != 0 || r.outputs["build-id"] != id || !strings.Contains(r.log, "has the same inputs") {
			t.Errorf("attempt 2: exit %d, build %s; want a new request that finds build %s by its inputs\n%s", r.code, r.outputs["build-id"], id, r.log)
		}
	})

	t.Run("failed build", func(t *testing.T) {
		bad := job
		bad.workspace = helloWorkspace(t, "package main\n\nfunc main() { notDefined() }\n")
		bad.ref, bad.runID = "refs/heads/main", "4343"
		bad.inputs = maps.Clone(inputs)
		bad.inputs["release"], bad.inputs["promote"] = "false", ""
		first := runAction(t, action, bad)
		failed := first.outputs["build-id"]
		if first.code != 1 || first.failed != "build" || failed == "" || !strings.Contains(first.summary, "build "+failed+" failed") {
			t.Fatalf("a module that does not compile: exit %d in step %s, outputs %v; want exit 1 in build, the build's id and a summary\n%s", first.code, first.failed, first.outputs, first.log)
		}
		if r := runAction(t, action, bad); r.outputs["build-id"] != failed {
			t.Errorf("the same attempt again: build %s, want %s, the first answer", r.outputs["build-id"], failed)
		}
		bad.attempt = "2"
		if r := runAction(t, action, bad); r.code != 1 || r.outputs["build-id"] == failed || r.outputs["build-id"] == "" {
			t.Errorf("a re-run (attempt 2): exit %d, build %s; want a new build, not %s", r.code, r.outputs["build-id"], failed)
		}
	})

	t.Run("refused", func(t *testing.T) {
		refused := job
		refused.ref, refused.runID = "refs/tags/v1.3.0", "4444"
		refused.inputs = maps.Clone(inputs)
		refused.inputs["token"] = s.buildOnly
		r := runAction(t, action, refused)
		if r.code != 3 || r.failed != "build" || !strings.Contains(r.log, "403") || !strings.Contains(r.log, "promote:dev") ||
			!strings.Contains(r.log, "::error title=slipway::") || r.outputs["build-id"] == "" {
			t.Errorf("promote with a token without promote:dev: exit %d in step %s, outputs %v; want exit 3, a 403 naming the scope, an error annotation, and the build's outputs\n%s", r.code, r.failed, r.outputs, r.log)
		}
		if got := s.holds(t, "dev"); got != "1.2.3" {
			t.Errorf("dev holds %q after a refused promote, want 1.2.3 still", got)
		}
	})

	t.Run("bad inputs", func(t *testing.T) {
		for _, tc := range []struct {
			name, input, value, ref, want string
		}{
			{"release not a boolean", "release", "yes", "", `the release input (SLIPWAY_RELEASE) is "yes"`},
			{"empty token", "token", "", "", "the token is empty: set the url and token inputs"},
			{"URL without scheme", "url", "slipway.example.com", "", `the URL "slipway.example.com" is not an http:// or https:// URL`},
			{"tag not a version", "", "", "refs/tags/nightly", `the tag "nightly" is not a SemVer version`},
			{"version not a version", "version", "1.2", "", `the version "1.2" is not a SemVer version`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				bad := job
				bad.runID = "4545"
				bad.inputs = maps.Clone(inputs)
				if tc.input != "" {
					bad.inputs[tc.input] = tc.value
				}
				if tc.ref != "" {
					bad.ref = tc.ref
				}
				r := runAction(t, action, bad)
				if r.code != 2 || r.failed != "build" || !strings.Contains(r.log, "slipway: "+tc.want) || !strings.Contains(r.log, "::error title=slipway::"+tc.want) {
					t.Errorf("exit %d in step %s; want exit 2 in build, saying %q\n%s", r.code, r.failed, tc.want, r.log)
				}
			})
		}
	})

	t.Run("setup action", func(t *testing.T) {
		setup := ghJob{ref: "refs/tags/v1.2.3", runID: "4646", attempt: "1", workspace: ws,
			env:  []string{"SLIPWAY_URL=" + s.url, "SLIPWAY_TOKEN=" + s.stagingToken},
			then: "slipway version\nslipway promote hello staging --version 1.2.3 --reason \"release 1.2.3\"\nslipway promote hello prod --version 1.2.3 --reason nope\n"}
		r := runAction(t, filepath.Join(action, "ci", "setup"), setup)
		if r.code != 3 || r.failed != "then" || !strings.Contains(r.log, "slipway v1 ") || !strings.Contains(r.log, "hello/staging: (none) → 1.2.3") || !strings.Contains(r.log, "403") {
			t.Errorf("the setup action, then promotes with a promote:staging token: exit %d in step %s; want staging moved and prod refused (exit 3)\n%s", r.code, r.failed, r.log)
		}
		if got := s.holds(t, "staging"); got != "1.2.3" {
			t.Errorf("staging holds %q, want 1.2.3", got)
		}
		if got := s.holds(t, "prod"); got != "" {
			t.Errorf("prod holds %q, want nothing", got)
		}
	})
}
