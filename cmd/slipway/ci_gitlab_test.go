package main

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/slipway/slipway/builder/buildertest"
)

// gitlabJob is what the tests read of a GitLab CI job.
type gitlabJob struct {
	Stage        string            `yaml:"stage"`
	Extends      string            `yaml:"extends"`
	Image        string            `yaml:"image"`
	Needs        []string          `yaml:"needs"`
	Variables    map[string]string `yaml:"variables"`
	BeforeScript []string          `yaml:"before_script"`
	Script       []string          `yaml:"script"`
	Environment  string            `yaml:"environment"`
	Rules        []struct {
		If           string            `yaml:"if"`
		When         string            `yaml:"when"`
		AllowFailure bool              `yaml:"allow_failure"`
		Variables    map[string]string `yaml:"variables"`
	} `yaml:"rules"`
	Artifacts struct {
		When    string `yaml:"when"`
		Reports struct {
			Dotenv string `yaml:"dotenv"`
		} `yaml:"reports"`
	} `yaml:"artifacts"`
}

// gitlabGlobal are the keywords of a pipeline's top level that are no job.
var gitlabGlobal = []string{"default", "include", "stages", "variables", "workflow", "spec"}

// gitlabJobKeywords are GitLab CI's job keywords.
var gitlabJobKeywords = []string{
	"after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage",
	"dependencies", "environment", "extends", "hooks", "id_tokens", "identity", "image",
	"inherit", "interruptible", "needs", "pages", "parallel", "release", "resource_group",
	"retry", "rules", "script", "secrets", "services", "stage", "tags", "timeout",
	"trigger", "variables", "when",
}

// parseGitlab decodes a GitLab CI file strictly enough: every job's keys must be job
// keywords; it returns the jobs and the top level.
func parseGitlab(t *testing.T, name string, data []byte) (map[string]gitlabJob, map[string]any) {
	t.Helper()
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	jobs := map[string]gitlabJob{}
	for key, v := range top {
		if slices.Contains(gitlabGlobal, key) {
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: job %s is no mapping", name, key)
		}
		for k := range m {
			if !slices.Contains(gitlabJobKeywords, k) {
				t.Errorf("%s: job %s has %q, which is no GitLab CI job keyword", name, key, k)
			}
		}
		raw, _ := yaml.Marshal(m)
		var j gitlabJob
		if err := yaml.Unmarshal(raw, &j); err != nil {
			t.Fatalf("%s: job %s: %v", name, key, err)
		}
		jobs[key] = j
	}
	return jobs, top
}

// gitlabTemplate is ci/slipway.gitlab-ci.yml's jobs.
func gitlabTemplate(t *testing.T) map[string]gitlabJob {
	t.Helper()
	name := filepath.Join("..", "..", "ci", "slipway.gitlab-ci.yml")
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := parseGitlab(t, name, data)
	return jobs
}

// resolve is job name of jobs with what it extends merged in, as GitLab merges them:
// variables key by key, the other keywords replaced.
func resolve(t *testing.T, jobs map[string]gitlabJob, name string) gitlabJob {
	t.Helper()
	j, ok := jobs[name]
	if !ok {
		t.Fatalf("no job %s to extend", name)
	}
	if j.Extends == "" {
		return j
	}
	base := resolve(t, jobs, j.Extends)
	vars := maps.Clone(base.Variables)
	if vars == nil {
		vars = map[string]string{}
	}
	maps.Copy(vars, j.Variables)
	out := base
	out.Variables, out.Extends = vars, ""
	if j.Stage != "" {
		out.Stage = j.Stage
	}
	if j.Needs != nil {
		out.Needs = j.Needs
	}
	if j.Script != nil {
		out.Script = j.Script
	}
	if j.BeforeScript != nil {
		out.BeforeScript = j.BeforeScript
	}
	if j.Rules != nil {
		out.Rules = j.Rules
	}
	if j.Environment != "" {
		out.Environment = j.Environment
	}
	if j.Image != "" {
		out.Image = j.Image
	}
	if j.Artifacts.Reports.Dotenv != "" {
		out.Artifacts = j.Artifacts
	}
	return out
}

// TestCIGitlabTemplate checks the template against the action: .slipway-build takes the
// action's inputs but url and token as SLIPWAY_* variables with the same defaults, runs
// the action's build script and keeps slipway.env as a dotenv report.
func TestCIGitlabTemplate(t *testing.T) {
	jobs := gitlabTemplate(t)
	build := resolve(t, jobs, ".slipway-build")
	action := readAction(t, filepath.Join("..", "..", "action.yml"))
	for name, in := range action.Inputs {
		v := "SLIPWAY_" + strings.ToUpper(name)
		if name == "url" || name == "token" {
			continue // CI/CD variables of the project
		}
		if got, ok := build.Variables[v]; !ok || got != in.Default {
			t.Errorf(".slipway-build's variable %s = %q (declared %t), want the action's default %q", v, got, ok, in.Default)
		}
	}
	if len(build.Variables) != len(action.Inputs)-2 {
		t.Errorf(".slipway-build has variables %v, want one per input of the action but url and token", build.Variables)
	}
	if !slices.Equal(build.Script, []string{`bash "$SLIPWAY_CI_DIR/build.sh"`}) || build.Artifacts.Reports.Dotenv != "slipway.env" || build.Artifacts.When != "always" {
		t.Errorf(".slipway-build runs %q with dotenv %q (when %q); want build.sh and slipway.env, always", build.Script, build.Artifacts.Reports.Dotenv, build.Artifacts.When)
	}
	if cli := jobs[".slipway-cli"]; cli.Image == "" || len(cli.BeforeScript) != 1 || !strings.Contains(cli.BeforeScript[0], `go install "github.com/slipway/slipway/cmd/slipway@$SLIPWAY_CLI_VERSION"`) {
		t.Errorf(".slipway-cli does not install the CLI at SLIPWAY_CLI_VERSION:\n%+v", cli)
	}
}

// gitlabPipeline is the pipeline of docs/ci.md with the template's jobs, and its
// top level.
func gitlabPipeline(t *testing.T) (map[string]gitlabJob, map[string]any) {
	t.Helper()
	md, err := os.ReadFile(filepath.Join("..", "..", "docs", "ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	var text string
	for _, b := range docBlocks(string(md)) {
		if b.marker == "gitlab: .gitlab-ci.yml" {
			text = b.text
		}
	}
	if text == "" {
		t.Fatal("docs/ci.md has no block marked <!-- gitlab: .gitlab-ci.yml -->")
	}
	jobs, top := parseGitlab(t, "docs/ci.md .gitlab-ci.yml", []byte(text))
	maps.Copy(jobs, gitlabTemplate(t))
	return jobs, top
}

// TestCIGitlabPipeline runs the pipeline of docs/ci.md, job by job as GitLab would, against
// a real server: a tag pipeline for v2.0.0 builds and releases it with the template's
// build job (ci/action/build.sh; the job's before_script, which installs the CLI from the
// Go module proxy, is left out, and the test's binary is on PATH instead), whose
// slipway.env reaches the jobs after it; promote-staging and the manual promote-prod move
// the release with their own tokens; a pipeline for v2.1.0 does it again, and the manual
// rollback jobs go back. A retried build job, a new job id, asks again.
func TestCIGitlabPipeline(t *testing.T) {
	jobs, top := gitlabPipeline(t)
	var stages []string
	for _, s := range top["stages"].([]any) {
		stages = append(stages, s.(string))
	}
	for name, j := range jobs {
		if strings.HasPrefix(name, ".") {
			continue
		}
		j = resolve(t, jobs, name)
		if !slices.Contains(stages, j.Stage) {
			t.Errorf("job %s has stage %q, not one of %q", name, j.Stage, stages)
		}
		for _, n := range j.Needs {
			if _, ok := jobs[n]; !ok {
				t.Errorf("job %s needs %s, which is no job", name, n)
			}
		}
	}
	if r := resolve(t, jobs, "promote-prod").Rules; len(r) != 1 || r[0].When != "manual" {
		t.Errorf("promote-prod's rules = %+v, want one, manual", r)
	}
	include, _ := top["include"].([]any)
	cliVersion := top["variables"].(map[string]any)["SLIPWAY_CLI_VERSION"].(string)
	if len(include) != 1 || !strings.HasSuffix(include[0].(map[string]any)["remote"].(string), "/slipway/slipway/"+cliVersion+"/ci/slipway.gitlab-ci.yml") {
		t.Errorf("the pipeline includes %v, want the template of SLIPWAY_CLI_VERSION %s", include, cliVersion)
	}

	s := startCIServer(t, true)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "slipway")); err != nil {
		t.Fatal(err)
	}
	_, goEnv := buildertest.Toolchain(t)
	project := map[string]string{ // the CI/CD variables of docs/ci.md
		"SLIPWAY_URL": s.url, "SLIPWAY_APP": "hello", "SLIPWAY_CLI_VERSION": cliVersion,
		"SLIPWAY_CI_TOKEN": s.ciToken, "SLIPWAY_STAGING_TOKEN": s.stagingToken, "SLIPWAY_PROD_TOKEN": s.prodToken,
	}
	jobID := 100
	// run runs job name of a pipeline for tag, with the dotenv of the jobs it needs and
	// the variables of its first rule and the person running it, and returns its
	// dotenv report, its output and its exit status.
	run := func(name, tag string, dotenv map[string]string, extra map[string]string) (map[string]string, string, int) {
		t.Helper()
		j := resolve(t, jobs, name)
		jobID++
		dir := writeTree(t, map[string]string{"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": buildertest.HelloMain})
		env := map[string]string{
			"CI": "true", "GITLAB_CI": "true", "CI_COMMIT_TAG": tag, "CI_COMMIT_SHA": "89abcdef0123456789abcdef0123456789abcdef",
			"CI_JOB_ID": strconv.Itoa(jobID), "CI_JOB_URL": "https://gitlab.example.com/acme/hello/-/jobs/" + strconv.Itoa(jobID),
			"CI_PIPELINE_URL": "https://gitlab.example.com/acme/hello/-/pipelines/7", "GITLAB_USER_LOGIN": "alice",
			"CI_DEFAULT_BRANCH": "main", "SLIPWAY_CI_DIR": filepath.Join(root, "ci", "action"),
		}
		vars := maps.Clone(j.Variables)
		if len(j.Rules) > 0 {
			maps.Copy(vars, j.Rules[0].Variables)
		}
		maps.Copy(vars, extra)
		lookup := func(k string) string {
			if v, ok := project[k]; ok {
				return v
			}
			return env[k]
		}
		for k, v := range vars {
			env[k] = os.Expand(v, lookup)
		}
		maps.Copy(env, project) // project variables win over the job's
		maps.Copy(env, dotenv)  // and dotenv reports over both
		cmd := exec.Command("bash", "-c", "set -eo pipefail\n"+strings.Join(j.Script, "\n"))
		cmd.Dir = dir
		cmd.Env = append(baseEnv(t), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
			"GOCACHE="+goEnv.Cache, "GOMODCACHE="+goEnv.ModCache)
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		_ = cmd.Run()
		var report map[string]string
		if f := j.Artifacts.Reports.Dotenv; f != "" {
			report = readDotenv(t, filepath.Join(dir, f))
		}
		return report, out.String(), cmd.ProcessState.ExitCode()
	}

	pipeline := func(tag, version string) map[string]string {
		t.Helper()
		env, out, code := run("build", tag, nil, nil)
		if code != 0 || env["SLIPWAY_BUILD_VERSION"] != version || env["SLIPWAY_RELEASE_VERSION"] != version || env["SLIPWAY_BUILD_ID"] == "" ||
			env["SLIPWAY_IMAGE"] != s.hostPath+"/hello@"+env["SLIPWAY_IMAGE_DIGEST"] || !strings.HasPrefix(env["SLIPWAY_IMAGE_DIGEST"], "sha256:") {
			t.Fatalf("build on tag %s: exit %d, slipway.env %v\n%s", tag, code, env, out)
		}
		for _, job := range []string{"promote-staging", "promote-prod"} {
			if _, out, code := run(job, tag, env, nil); code != 0 {
				t.Fatalf("%s on tag %s: exit %d\n%s", job, tag, code, out)
			}
		}
		return env
	}
	first := pipeline("v2.0.0", "2.0.0")
	for _, ch := range []string{"dev", "staging", "prod"} {
		if got := s.holds(t, ch); got != "2.0.0" {
			t.Errorf("after the v2.0.0 pipeline, %s holds %q, want 2.0.0", ch, got)
		}
	}
	if _, out, _ := run("build", "v2.0.0", nil, nil); !strings.Contains(out, "has the same inputs") || !strings.Contains(out, first["SLIPWAY_BUILD_ID"]) {
		t.Errorf("a retried build job (a new job id) should ask again and find build %s by its inputs:\n%s", first["SLIPWAY_BUILD_ID"], out)
	}
	pipeline("v2.1.0", "2.1.0")
	if got := s.holds(t, "prod"); got != "2.1.0" {
		t.Errorf("after the v2.1.0 pipeline, prod holds %q", got)
	}
	if _, out, code := run("rollback-prod", "v2.1.0", nil, nil); code != 0 || s.holds(t, "prod") != "2.0.0" {
		t.Errorf("rollback-prod: exit %d, prod holds %s; want 2.0.0\n%s", code, s.holds(t, "prod"), out)
	}
	if _, out, code := run("rollback-staging", "", nil, map[string]string{"SLIPWAY_ROLLBACK_TO": "2.0.0"}); code != 0 || s.holds(t, "staging") != "2.0.0" {
		t.Errorf("rollback-staging to 2.0.0: exit %d, staging holds %s\n%s", code, s.holds(t, "staging"), out)
	}
	var hist struct {
		Items []struct{ Actor, Reason string }
	}
	call(t, "GET", s.url+"/v1/apps/hello/channels/prod/history", s.admin, "", 200, &hist)
	if len(hist.Items) == 0 || hist.Items[0].Actor != "prod-hello" || !strings.Contains(hist.Items[0].Reason, "rolled back by alice") {
		t.Errorf("prod's history = %+v, want the rollback by prod-hello for alice first", hist.Items)
	}
}
