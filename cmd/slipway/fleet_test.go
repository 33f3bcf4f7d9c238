package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// TestFleet runs slipway as a fleet: two API processes and three worker processes
// sharing Redis and the bucket. 30 builds of 3 apps are submitted across both APIs while
// one worker is killed in the middle of a build and one API is stopped with SIGTERM; a
// new worker with an empty cache joins. Every build succeeds exactly once, and a 50-way
// promote race across both APIs (the stopped one started again) has exactly one winner.
func TestFleet(t *testing.T) {
	for _, mode := range fleetModes() {
		t.Run(mode.name, func(t *testing.T) { runFleet(t, mode.env(t)) })
	}
}

// fleetMode is one Redis set-up the fleet runs on.
type fleetMode struct {
	name string
	env  func(t *testing.T) []string
}

// fleetModes are the Redis set-ups of the fleet test: one Redis server, and a Redis
// Cluster of 3 masters that the test holds alone (SLIPWAY_REDIS_CLUSTER=true).
func fleetModes() []fleetMode {
	return []fleetMode{
		{"redis", buildEnv},
		{"cluster", func(t *testing.T) []string {
			env := buildEnv(t)
			url := storetest.RedisClusterURL(t)
			for i, kv := range env {
				if strings.HasPrefix(kv, "SLIPWAY_REDIS_URL=") {
					env[i] = "SLIPWAY_REDIS_URL=" + url
				}
			}
			return append(env, "SLIPWAY_REDIS_CLUSTER=true")
		}},
	}
}

const (
	fleetApps       = 3
	fleetPerApp     = 10
	fleetRacers     = 50
	fleetSubmitters = 6
)

func runFleet(t *testing.T, env []string) {
	env = append(append([]string{}, env...), "SLIPWAY_BUILD_CACHE=shared")
	apiEnv := append(append([]string{}, env...), "SLIPWAY_WORKERS=0")
	apis := []*process{startServe(t, apiEnv), startServe(t, apiEnv)}

	// One worker compiles the runtime once, into the shared build cache; every worker
	// started after it takes those packages from the bucket.
	workers := []*process{startWorker(t, env)}
	fleetDo(t, apis[0].url, "PUT", "/v1/apps/fleetwarm", nil, `{"platforms":["linux/amd64"]}`, http.StatusCreated)
	warm := fleetSubmit(t, apis, "fleetwarm", "warm", fleetSource(t, "fleetwarm", -1))
	waitStatus(t, apis[1].url, "fleetwarm", warm, 5*time.Minute, func(b openapi.Build) bool { return b.Status == openapi.BuildStatusSucceeded })
	workers = append(workers, startWorker(t, env), startWorker(t, env))

	apps := make([]string, fleetApps)
	for i := range apps {
		apps[i] = fmt.Sprintf("fleet%d", i)
		fleetDo(t, apis[i%2].url, "PUT", "/v1/apps/"+apps[i], nil, `{"platforms":["linux/amd64"]}`, http.StatusCreated)
	}

	// Submit every build, spread over both APIs; a submission that finds its API gone
	// is sent again to the other with the same Idempotency-Key, so it counts once.
	type job struct {
		app, key string
		src      []byte
	}
	var jobs []job
	for i := range fleetApps * fleetPerApp {
		app := apps[i%fleetApps]
		jobs = append(jobs, job{app: app, key: fmt.Sprintf("fleet-%d", i), src: fleetSource(t, app, i)})
	}
	var (
		mu  sync.Mutex
		ids = map[string]string{} // build id → app
	)
	submit := func(jobs []job) {
		var wg sync.WaitGroup
		next := make(chan job)
		for range fleetSubmitters {
			wg.Go(func() {
				for j := range next {
					id := fleetSubmit(t, apis, j.app, j.key, j.src)
					mu.Lock()
					ids[id] = j.app
					mu.Unlock()
				}
			})
		}
		for _, j := range jobs {
			next <- j
		}
		close(next)
		wg.Wait()
	}

	// A third of the builds; then, while they run, kill a worker in the middle of a
	// build, stop an API, and start a worker with an empty cache that takes one build and
	// exits; then the rest.
	first := len(jobs) / 3
	submit(jobs[:first])
	busy := func() bool {
		log := workers[0].stderr.String()
		return strings.Count(log, `"msg":"build started"`) > strings.Count(log, `"msg":"build finished"`)
	}
	for deadline := time.Now().Add(3 * time.Minute); !busy(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first worker ran no build:\n%s", workers[0].stderr)
		}
	}
	if err := workers[0].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := apis[0].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	fresh := startWorker(t, append(env, "SLIPWAY_WORKER_ONCE=true", "SLIPWAY_IDLE_EXIT=3m"))
	submit(jobs[first:])
	if err := waitExit(t, apis[0], time.Minute); err != nil {
		t.Errorf("the API stopped with SIGTERM exited with %v, want 0:\n%s", err, apis[0].stderr)
	}

	if len(ids) != len(jobs) {
		t.Fatalf("%d submissions made %d builds, want one each", len(jobs), len(ids))
	}
	for id, app := range ids {
		b := waitStatus(t, apis[1].url, app, id, 5*time.Minute, func(b openapi.Build) bool {
			return b.Status != openapi.BuildStatusQueued && b.Status != openapi.BuildStatusRunning
		})
		log := buildLog(t, apis[1].url, app, id)
		if b.Status != openapi.BuildStatusSucceeded || b.Attempts < 1 || b.Attempts > 2 {
			t.Errorf("build %s of %s is %s after %d attempts, want succeeded:\n%s", id, app, b.Status, b.Attempts, log)
		}
		if n := strings.Count(log, " succeeded in "); n != 1 {
			t.Errorf("the log of build %s records %d successes, want 1:\n%s", id, n, log)
		}
	}
	for _, app := range apps {
		var list openapi.BuildList
		fleetDo(t, apis[1].url, "GET", "/v1/apps/"+app+"/builds?limit=100", &list, "", http.StatusOK)
		if len(list.Items) != fleetPerApp {
			t.Errorf("%s has %d builds, want %d", app, len(list.Items), fleetPerApp)
		}
	}

	// The new worker ran one build, with the runtime's packages from the shared cache.
	if err := waitExit(t, fresh, 5*time.Minute); err != nil {
		t.Errorf("the new worker exited with %v:\n%s", err, fresh.stderr)
	}
	log := fresh.stderr.String()
	if !strings.Contains(log, `"why":"ran its one build"`) {
		t.Errorf("the new worker ran no build:\n%s", log)
	}
	m := regexp.MustCompile(`"msg":"build cache stopped".*"remote_hits":(\d+)`).FindStringSubmatch(log)
	if m == nil || m[1] == "0" {
		t.Errorf("the new worker's build took nothing from the shared build cache:\n%s", log)
	}

	apis[0] = startServe(t, apiEnv)
	fleetPromoteRace(t, apis, apps[0], ids)
}

// fleetSource is a module of app whose program prints n.
func fleetSource(t *testing.T, app string, n int) []byte {
	return buildertest.Module(t, app, map[string]string{"main.go": fmt.Sprintf(
		"package main\n\nconst n = %d\n\nfunc main() { println(%q, n) }\n", n, app)})
}

// fleetSubmit posts a build, to one API and then the other while neither answers, and
// returns its id.
func fleetSubmit(t *testing.T, apis []*process, app, key string, src []byte) string {
	deadline := time.Now().Add(2 * time.Minute)
	for try := 0; ; try++ {
		base := apis[(try+len(key))%len(apis)].url
		req, _ := http.NewRequest("POST", base+"/v1/apps/"+app+"/builds", bytes.NewReader(src))
		req.Header.Set("Content-Type", "application/gzip")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var b openapi.Build
			derr := json.NewDecoder(resp.Body).Decode(&b)
			resp.Body.Close()
			if (resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK) && derr == nil {
				return b.Id
			}
			if resp.StatusCode < 500 {
				t.Errorf("POST build %s = %d", key, resp.StatusCode)
				return ""
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("POST build %s: no API took it within 2m (last: %v)", key, err)
			return ""
		}
		time.Sleep(time.Duration(try+1) * 20 * time.Millisecond) // back off before the other API
	}
}

// fleetPromoteRace releases two builds of app, puts the first in dev, and has 50 clients
// (over every API) promote the second with the same If-Match: one wins, the others get
// 412, and the history holds one move more.
func fleetPromoteRace(t *testing.T, apis []*process, app string, ids map[string]string) {
	var builds []string
	for id, a := range ids {
		if a == app && len(builds) < 2 {
			builds = append(builds, id)
		}
	}
	for i, id := range builds {
		fleetDo(t, apis[0].url, "POST", "/v1/apps/"+app+"/releases", nil,
			fmt.Sprintf(`{"build_id":%q,"version":"1.0.%d"}`, id, i), http.StatusCreated)
	}
	fleetDo(t, apis[0].url, "POST", "/v1/apps/"+app+"/channels/dev/promote", nil, `{"version":"1.0.0","reason":"first"}`, http.StatusOK)
	etag := fleetETag(t, apis[1].url, app)

	codes := make([]int, fleetRacers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range fleetRacers {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", apis[i%len(apis)].url+"/v1/apps/"+app+"/channels/dev/promote",
				strings.NewReader(fmt.Sprintf(`{"version":"1.0.1","reason":"racer %d"}`, i)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("If-Match", etag)
			<-start
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("racer %d: %v", i, err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, c := range codes {
		switch c {
		case http.StatusOK:
			won++
		case http.StatusPreconditionFailed:
		default:
			t.Errorf("racer %d got %d, want 200 or 412", i, c)
		}
	}
	if won != 1 {
		t.Errorf("%d racers moved the channel, want exactly 1 (codes %v)", won, codes)
	}
	var ch openapi.Channel
	fleetDo(t, apis[1].url, "GET", "/v1/apps/"+app+"/channels/dev", &ch, "", http.StatusOK)
	if ch.Release == nil || *ch.Release != "1.0.1" || ch.Generation != 2 {
		t.Errorf("dev after the race = %+v, want 1.0.1 at generation 2", ch)
	}
	var hist struct {
		Items []json.RawMessage `json:"items"`
	}
	fleetDo(t, apis[0].url, "GET", "/v1/apps/"+app+"/channels/dev/history?limit=100", &hist, "", http.StatusOK)
	if len(hist.Items) != 2 {
		t.Errorf("dev's history has %d events after the race, want 2 (the first promote and the winner)", len(hist.Items))
	}
}

// fleetETag is the ETag of app's dev channel.
func fleetETag(t *testing.T, base, app string) string {
	t.Helper()
	resp, err := http.Get(base + "/v1/apps/" + app + "/channels/dev")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("ETag") == "" {
		t.Fatalf("GET channel: %d without an ETag", resp.StatusCode)
	}
	return resp.Header.Get("ETag")
}

// fleetDo sends one JSON request and checks its status; out, when not nil, receives the
// answer.
func fleetDo(t *testing.T, base, method, path string, out any, body string, want int) {
	t.Helper()
	var r *strings.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	var req *http.Request
	if r != nil {
		req, _ = http.NewRequest(method, base+path, r)
		req.Header.Set("Content-Type", "application/json")
	} else {
		req, _ = http.NewRequest(method, base+path, nil)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	_, _ = raw.ReadFrom(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, want, raw.String())
	}
	if out != nil {
		if err := json.Unmarshal(raw.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}
