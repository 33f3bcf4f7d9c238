package slipway_test

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of the Compose specification deploy/compose.yaml uses. It is
// decoded with KnownFields, so a key that is not here (a misspelt one, or one newly
// used) fails the test: add it here, and a check for it below.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]struct{}       `yaml:"volumes"`
}

type composeService struct {
	Image       string                      `yaml:"image"`
	Build       string                      `yaml:"build"`
	Command     []string                    `yaml:"command"`
	EnvFile     []string                    `yaml:"env_file"`
	Environment map[string]string           `yaml:"environment"`
	Ports       []string                    `yaml:"ports"`
	Volumes     []string                    `yaml:"volumes"`
	Healthcheck *composeHealthcheck         `yaml:"healthcheck"`
	DependsOn   map[string]composeDependsOn `yaml:"depends_on"`
	Restart     string                      `yaml:"restart"`
}

type composeHealthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

type composeDependsOn struct {
	Condition string `yaml:"condition"`
}

// readCompose decodes deploy/compose.yaml strictly.
func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c composeFile
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("deploy/compose.yaml: %v (a key the test does not know: add it to composeService)", err)
	}
	return c
}

// TestDeployCompose checks what deploy/compose.yaml promises: it starts on a fresh machine
// with the admin token from the environment, slipway waits for a healthy Redis, both restart,
// and Redis's append-only file and slipway's data are on volumes.
func TestDeployCompose(t *testing.T) {
	c := readCompose(t)
	redis, slipway := c.Services["redis"], c.Services["slipway"]
	if redis.Image == "" || slipway.Build == "" {
		t.Fatalf("compose services = %v, want redis (an image) and slipway (built from the repository)", slices.Sorted(maps.Keys(c.Services)))
	}
	if _, err := os.Stat(filepath.Join("deploy", slipway.Build, "Dockerfile")); err != nil {
		t.Errorf("slipway's build context %q has no Dockerfile: %v", slipway.Build, err)
	}

	// The settings slipway sees: its env_file, then environment, which wins.
	env := map[string]string{}
	for _, f := range slipway.EnvFile {
		file, err := readEnvFile(filepath.Join("deploy", f))
		if err != nil {
			t.Fatalf("slipway's env_file: %v", err)
		}
		maps.Copy(env, file)
		if _, ok := file["SLIPWAY_ADMIN_TOKEN"]; ok {
			t.Errorf("%s sets SLIPWAY_ADMIN_TOKEN: a secret belongs in the environment, not in a file in the repository", f)
		}
	}
	maps.Copy(env, slipway.Environment)
	known := knownSettings(t)
	for k := range env {
		if strings.HasPrefix(k, "SLIPWAY_") && !known[k] {
			t.Errorf("slipway's environment sets %s, which is no setting of cmd/slipway/config.go", k)
		}
	}

	t.Run("admin token", func(t *testing.T) {
		tok := slipway.Environment["SLIPWAY_ADMIN_TOKEN"]
		m := regexp.MustCompile(`^\$\{SLIPWAY_ADMIN_TOKEN:\?([^}]+)\}$`).FindStringSubmatch(tok)
		if m == nil {
			t.Fatalf("SLIPWAY_ADMIN_TOKEN = %q, want ${SLIPWAY_ADMIN_TOKEN:?how to make one}, so compose stops without one", tok)
		}
		if !strings.Contains(m[1], "openssl rand") {
			t.Errorf("SLIPWAY_ADMIN_TOKEN's error = %q, want it to say how to make one (openssl rand)", m[1])
		}
		if !strings.Contains(readFile(t, "deploy/compose.yaml"), "export SLIPWAY_ADMIN_TOKEN=") {
			t.Error("deploy/compose.yaml does not say how to set SLIPWAY_ADMIN_TOKEN (export SLIPWAY_ADMIN_TOKEN=...)")
		}
	})

	t.Run("redis", func(t *testing.T) {
		u, err := url.Parse(env["SLIPWAY_REDIS_URL"])
		if err != nil || u.Scheme != "redis" {
			t.Fatalf("SLIPWAY_REDIS_URL = %q, want redis://redis:6379/0", env["SLIPWAY_REDIS_URL"])
		}
		if host, port, _ := net.SplitHostPort(u.Host); host != "redis" || port != "6379" {
			t.Errorf("SLIPWAY_REDIS_URL's host = %q, want the service redis:6379", u.Host)
		}
		if d, err := time.ParseDuration(env["SLIPWAY_REDIS_WAIT"]); err != nil || d <= 0 {
			t.Errorf("SLIPWAY_REDIS_WAIT = %q, want a positive duration: slipway must retry Redis, not exit at once", env["SLIPWAY_REDIS_WAIT"])
		}
		hc := redis.Healthcheck
		if hc == nil || !slices.Contains([]string{"CMD", "CMD-SHELL"}, first(hc.Test)) ||
			!strings.Contains(strings.Join(hc.Test[1:], " "), "redis-cli ping") || hc.Retries <= 0 {
			t.Errorf("redis healthcheck = %+v, want test [CMD, redis-cli, ping] with retries", hc)
		} else {
			for _, d := range []string{hc.Interval, hc.Timeout, hc.StartPeriod} {
				if _, err := time.ParseDuration(d); d != "" && err != nil {
					t.Errorf("redis healthcheck: %v", err)
				}
			}
		}
		if got := slipway.DependsOn["redis"].Condition; got != "service_healthy" {
			t.Errorf("slipway depends_on redis condition = %q, want service_healthy", got)
		}
		if i := slices.Index(redis.Command, "--appendonly"); i < 0 || i+1 >= len(redis.Command) || redis.Command[i+1] != "yes" {
			t.Errorf("redis command = %q, want --appendonly yes: Redis is slipway's only copy of its metadata", redis.Command)
		}
	})

	t.Run("restart", func(t *testing.T) {
		for _, name := range []string{"redis", "slipway"} {
			r := c.Services[name].Restart
			if r != "unless-stopped" && r != "always" && !strings.HasPrefix(r, "on-failure") {
				t.Errorf("%s restart = %q, want on-failure or unless-stopped", name, r)
			}
		}
	})

	t.Run("volumes", func(t *testing.T) {
		for _, v := range []struct{ service, path, why string }{
			{"redis", "/data", "its append-only file"},
			{"slipway", env["SLIPWAY_DATA_DIR"], "its data directory (SLIPWAY_DATA_DIR)"},
		} {
			vol := ""
			for _, m := range c.Services[v.service].Volumes {
				if src, dst, _ := strings.Cut(m, ":"); strings.TrimSuffix(strings.TrimSuffix(dst, ":rw"), "/") == v.path {
					vol = src
				}
			}
			if _, named := c.Volumes[vol]; vol == "" || !named {
				t.Errorf("%s mounts %q at %s, want a named volume for %s (declared under volumes:)", v.service, vol, v.path, v.why)
			}
		}
	})

	t.Run("port", func(t *testing.T) {
		_, port, err := net.SplitHostPort(env["SLIPWAY_ADDR"])
		if err != nil {
			t.Fatalf("SLIPWAY_ADDR = %q: %v", env["SLIPWAY_ADDR"], err)
		}
		published := false
		for _, p := range slipway.Ports {
			published = published || strings.HasSuffix(strings.TrimSuffix(p, "/tcp"), ":"+port)
		}
		if !published {
			t.Errorf("slipway ports = %q, want one publishing SLIPWAY_ADDR's port %s", slipway.Ports, port)
		}
	})
}

// TestDeployComposeConfig has Docker Compose itself validate deploy/compose.yaml, when a
// compose client is installed (`docker compose config` needs no engine): with the admin
// token it is valid, and without it compose stops and says how to make one.
func TestDeployComposeConfig(t *testing.T) {
	compose := composeCommand()
	if compose == nil {
		t.Skip("neither `docker compose` nor docker-compose is installed: compose.yaml was checked by TestDeployCompose alone")
	}
	run := func(token string) (string, error) {
		args := append(slices.Clone(compose[1:]), "-f", "deploy/compose.yaml", "config", "-q")
		cmd := exec.Command(compose[0], args...)
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
			return strings.HasPrefix(kv, "SLIPWAY_ADMIN_TOKEN=") || strings.HasPrefix(kv, "COMPOSE_")
		})
		if token != "" {
			cmd.Env = append(cmd.Env, "SLIPWAY_ADMIN_TOKEN="+token)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("0123456789abcdef0123456789abcdef"); err != nil {
		t.Errorf("%s config with SLIPWAY_ADMIN_TOKEN: %v\n%s", strings.Join(compose, " "), err, out)
	}
	if out, err := run(""); err == nil || !strings.Contains(out, "openssl rand") {
		t.Errorf("%s config without SLIPWAY_ADMIN_TOKEN = %v\n%s\nwant an error saying how to make one", strings.Join(compose, " "), err, out)
	}
}

// composeCommand returns the compose client's command, or nil when there is none.
func composeCommand() []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	return nil
}

// readEnvFile reads KEY=VALUE lines, as compose's env_file and kustomize's envs do;
// blank lines and # comments are skipped.
func readEnvFile(name string) (map[string]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: %q is not KEY=VALUE", name, n, line)
		}
		env[k] = v
	}
	return env, sc.Err()
}

// knownSettings are the SLIPWAY_* variables cmd/slipway/config.go reads.
func knownSettings(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`env: "(SLIPWAY_[A-Z0-9_]+)"`).FindAllStringSubmatch(readFile(t, "cmd/slipway/config.go"), -1) {
		known[m[1]] = true
	}
	if len(known) == 0 {
		t.Fatal("found no settings in cmd/slipway/config.go")
	}
	return known
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
