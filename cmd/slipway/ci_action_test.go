package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/slipway/slipway/builder/buildertest"
)

// actionFile is what the tests read of a GitHub Action's metadata (action.yml).
type actionFile struct {
	Name   string `yaml:"name"`
	Inputs map[string]struct {
		Description string `yaml:"description"`
		Required    bool   `yaml:"required"`
		Default     string `yaml:"default"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Description string `yaml:"description"`
		Value       string `yaml:"value"`
	} `yaml:"outputs"`
	Runs struct {
		Using string       `yaml:"using"`
		Steps []actionStep `yaml:"steps"`
	} `yaml:"runs"`
}

// actionStep is one step of a composite action.
type actionStep struct {
	ID    string            `yaml:"id"`
	If    string            `yaml:"if"`
	Shell string            `yaml:"shell"`
	Run   string            `yaml:"run"`
	Uses  string            `yaml:"uses"`
	Env   map[string]string `yaml:"env"`
	With  map[string]string `yaml:"with"`
}

// readAction reads and decodes the action metadata file name.
func readAction(t *testing.T, name string) actionFile {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var a actionFile
	if err := yaml.Unmarshal(data, &a); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if a.Runs.Using != "composite" || len(a.Runs.Steps) == 0 {
		t.Fatalf("%s: runs.using %q with %d steps, want a composite action", name, a.Runs.Using, len(a.Runs.Steps))
	}
	return a
}

// ghJob is a GitHub Actions job that runs an action, as the runner would set it up: the
// action's inputs, the ref, run id and attempt, and the job's workspace.
type ghJob struct {
	inputs    map[string]string
	ref, sha  string
	runID     string
	attempt   string
	workspace string
	then      string   // a bash script run as the job's next step, with the PATH the action left ("": none)
	env       []string // more of the job's environment, for every step
}

// ghResult is what a run of an action left: its outputs, the job summary, the steps' log,
// and the exit status of the step that failed (0 when none did).
type ghResult struct {
	outputs map[string]string
	summary string
	log     string
	code    int
	failed  string // the failed step, by its id or index
}

var expression = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

// runAction runs the composite action in actionDir (its action.yml) in job as the GitHub
// runner does: inputs with their defaults, each run: step's script in bash with the env:
// the step declares and files of its own for GITHUB_OUTPUT and GITHUB_STEP_SUMMARY,
// GITHUB_PATH's directories put on PATH for the steps after, a step skipped when its if:
// is false, the first failed step ending the job. An expression it does not know, an
// input the action does not declare or a uses: step it would have to run fails the test,
// so the test follows the action file rather than a copy of it.
func runAction(t *testing.T, actionDir string, job ghJob) ghResult {
	t.Helper()
	meta := readAction(t, filepath.Join(actionDir, "action.yml"))
	inputs := map[string]string{}
	for name, in := range meta.Inputs {
		v, ok := job.inputs[name]
		if !ok {
			if in.Required {
				t.Fatalf("input %q of %s is required", name, meta.Name)
			}
			v = in.Default
		}
		inputs[name] = v
	}
	for name := range job.inputs {
		if _, ok := meta.Inputs[name]; !ok {
			t.Fatalf("%s has no input %q", meta.Name, name)
		}
	}
	temp := t.TempDir()
	pathFile := filepath.Join(temp, "path")
	envFile := filepath.Join(temp, "env")
	for _, f := range []string{pathFile, envFile} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	steps := map[string]map[string]string{}
	declared := func(id string) bool {
		for _, st := range meta.Runs.Steps {
			if st.ID == id {
				return true
			}
		}
		return false
	}
	expand := func(s string) string {
		return expression.ReplaceAllStringFunc(s, func(m string) string {
			expr := expression.FindStringSubmatch(m)[1]
			switch parts := strings.Split(expr, "."); {
			case len(parts) == 2 && parts[0] == "inputs":
				v, ok := inputs[parts[1]]
				if !ok {
					t.Fatalf("%s: ${{ %s }} names an input it does not declare", meta.Name, expr)
				}
				return v
			case expr == "github.action_path":
				return actionDir
			case expr == "github.action_ref":
				return "" // empty inside composite actions: actions/runner#2473
			case len(parts) == 4 && parts[0] == "steps" && parts[2] == "outputs":
				if !declared(parts[1]) {
					t.Fatalf("%s: ${{ %s }} names no step of the action", meta.Name, expr)
				}
				return steps[parts[1]][parts[3]] // "" for a step that did not run (yet)
			}
			t.Fatalf("%s: the test does not know the expression ${{ %s }}", meta.Name, expr)
			return ""
		})
	}
	ifExpr := regexp.MustCompile(`^steps\.([\w-]+)\.outputs\.([\w-]+) == '([^']*)'$`)

	_, goEnv := buildertest.Toolchain(t)
	base := []string{
		"HOME=" + t.TempDir(), "CI=true", "GITHUB_ACTIONS=true",
		"GITHUB_REF=" + job.ref, "GITHUB_SHA=" + job.sha,
		"GITHUB_RUN_ID=" + job.runID, "GITHUB_RUN_ATTEMPT=" + job.attempt,
		"GITHUB_SERVER_URL=https://github.com", "GITHUB_REPOSITORY=acme/hello",
		"GITHUB_WORKSPACE=" + job.workspace, "RUNNER_TEMP=" + temp, "GITHUB_ACTION_PATH=" + actionDir,
		"GITHUB_PATH=" + pathFile, "GITHUB_ENV=" + envFile,
		"GOCACHE=" + goEnv.Cache, "GOMODCACHE=" + goEnv.ModCache, "GOPROXY=off", "GOSUMDB=off",
	}
	base = append(base, job.env...)
	var log bytes.Buffer
	res := ghResult{outputs: map[string]string{}}
	runStep := func(name, script string, env []string) (map[string]string, bool) {
		scriptFile := filepath.Join(temp, name+".sh")
		outFile := filepath.Join(temp, name+".output")
		summaryFile := filepath.Join(temp, name+".summary")
		for _, f := range []string{outFile, summaryFile} {
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(scriptFile, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		// The directories steps wrote to GITHUB_PATH come first, the last one first.
		added, _ := os.ReadFile(pathFile)
		dirs := strings.Fields(string(added))
		slices.Reverse(dirs)
		cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", scriptFile)
		cmd.Dir = job.workspace
		cmd.Env = append(append(slices.Clone(base),
			"PATH="+strings.Join(append(dirs, os.Getenv("PATH")), string(os.PathListSeparator)),
			"GITHUB_OUTPUT="+outFile, "GITHUB_STEP_SUMMARY="+summaryFile), env...)
		cmd.Stdout, cmd.Stderr = &log, &log
		log.WriteString("--- step " + name + "\n")
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("step %s: %v", name, err)
		}
		summary, _ := os.ReadFile(summaryFile)
		res.summary += string(summary)
		out := readStepOutputs(t, outFile)
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			res.code, res.failed = code, name
			return out, false
		}
		return out, true
	}
	ok := true
	for i, st := range meta.Runs.Steps {
		name := st.ID
		if name == "" {
			name = "step" + string(rune('0'+i))
		}
		if st.If != "" {
			m := ifExpr.FindStringSubmatch(st.If)
			if m == nil {
				t.Fatalf("%s: step %s: the test does not know the condition %q", meta.Name, name, st.If)
			}
			if steps[m[1]][m[2]] != m[3] {
				continue
			}
		}
		if st.Uses != "" {
			t.Fatalf("%s: step %s would run %s, which the test cannot; it runs where Go is on PATH", meta.Name, name, st.Uses)
		}
		if st.Shell != "bash" {
			t.Fatalf("%s: step %s has shell %q, want bash", meta.Name, name, st.Shell)
		}
		var env []string
		for k, v := range st.Env {
			env = append(env, k+"="+expand(v))
		}
		var out map[string]string
		out, ok = runStep(name, expand(st.Run), env)
		if st.ID != "" {
			steps[st.ID] = out
		}
		if !ok {
			break
		}
	}
	for name, o := range meta.Outputs {
		res.outputs[name] = expand(o.Value)
	}
	if ok && job.then != "" {
		runStep("then", job.then, nil)
	}
	res.log = log.String()
	return res
}

// readStepOutputs reads a GITHUB_OUTPUT file: name=value lines and name<<DELIMITER
// blocks.
func readStepOutputs(t *testing.T, name string) map[string]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if k, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(k, "=") {
			var v []string
			for sc.Scan() && sc.Text() != delim {
				v = append(v, sc.Text())
			}
			out[k] = strings.Join(v, "\n")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is neither name=value nor name<<DELIMITER", name, line)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
