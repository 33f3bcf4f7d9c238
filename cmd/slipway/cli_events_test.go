package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// TestCLIEvents lists events as a table and as JSON, filtered by app and type, and
// follows them: a channel locked after the stream began is printed as it happens.
func TestCLIEvents(t *testing.T) {
	p := startServe(t, append(buildEnv(t), "SLIPWAY_WORKERS=0"))
	call(t, "PUT", p.url+"/v1/apps/hello", "", `{}`, http.StatusCreated, nil)
	call(t, "PUT", p.url+"/v1/apps/other", "", `{}`, http.StatusCreated, nil)
	cli := []string{"SLIPWAY_URL=" + p.url}
	for _, app := range []string{"hello", "other"} {
		if r := runCLI(t, cli, "lock", app, "dev", "--reason", "freeze "+app); r.code != 0 {
			t.Fatalf("lock: %s", r)
		}
	}

	r := runCLI(t, cli, "events", "--app", "hello")
	if r.code != 0 || !regexp.MustCompile(`(?m)^\d+s ago\s+hello\s+channel\.locked\s+anonymous\s+dev: freeze hello$`).MatchString(r.stdout) || strings.Contains(r.stdout, "other") {
		t.Errorf("events --app hello:\n%s", r)
	}
	if r := runCLI(t, cli, "events", "--type", "channel.unlocked"); r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("events --type channel.unlocked: %s\nwant the header alone", r)
	}
	r = runCLI(t, cli, "events", "--json", "--limit", "1")
	var l openapi.EventList
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Items) != 1 || l.Items[0].App != "other" || l.NextCursor == nil {
		t.Errorf("events --json --limit 1 = %+v, %v; want other's lock, the newest, and next_cursor", l, err)
	}
	if r := runCLI(t, cli, "events", "--type", "nope"); r.code != 3 || !strings.Contains(r.stderr, "(400 invalid-parameter)") {
		t.Errorf("events --type nope: %s", r)
	}

	t.Run("follow", func(t *testing.T) {
		f := startFollow(t, cli, "events", "--follow", "--app", "hello")
		f.waitStderr(t, "slipway: following hello's events as they happen")
		call(t, "POST", p.url+"/v1/apps/other/channels/dev/unlock", "", `{"reason":"not this one"}`, http.StatusOK, nil)
		call(t, "POST", p.url+"/v1/apps/hello/channels/dev/unlock", "", `{"reason":"thaw"}`, http.StatusOK, nil)
		line := f.nextLine(t)
		if !regexp.MustCompile(`^\d\d:\d\d:\d\d  hello  channel\.unlocked  anonymous  dev: thaw$`).MatchString(line) {
			t.Errorf("events --follow printed %q, want hello's unlock", line)
		}
		f.interrupt(t)
	})

	t.Run("follow JSON", func(t *testing.T) {
		f := startFollow(t, cli, "events", "--follow", "--json", "--type", "channel.locked")
		f.waitStderr(t, "slipway: following every app's events")
		call(t, "POST", p.url+"/v1/apps/hello/channels/dev/lock", "", `{"reason":"again"}`, http.StatusOK, nil)
		var ev openapi.Event
		if line := f.nextLine(t); json.Unmarshal([]byte(line), &ev) != nil || ev.Type != openapi.ChannelLocked || ev.App != "hello" {
			t.Errorf("events --follow --json printed %q, want the lock as JSON", line)
		}
		f.interrupt(t)
	})
}

// TestCLIEventsRevoked follows events with a token that is revoked meanwhile: the stream
// ends with the server's problem, and the command exits 3.
func TestCLIEventsRevoked(t *testing.T) {
	const admin = "admin-token-for-the-events-test"
	p := startServe(t, []string{"SLIPWAY_REDIS_URL=" + storetest.RedisURL(t), "SLIPWAY_ADMIN_TOKEN=" + admin, "SLIPWAY_WORKERS=0"})
	var tok openapi.TokenCreated
	call(t, "POST", p.url+"/v1/tokens", admin, `{"name":"watcher","scopes":["read"]}`, http.StatusCreated, &tok)
	f := startFollow(t, []string{"SLIPWAY_URL=" + p.url, "SLIPWAY_TOKEN=" + tok.Token}, "events", "--follow")
	f.waitStderr(t, "slipway: following")
	call(t, "DELETE", p.url+"/v1/tokens/watcher", admin, "", http.StatusNoContent, nil)
	err := f.wait(t, time.Minute)
	if code := f.cmd.ProcessState.ExitCode(); code != 3 || !strings.Contains(f.stderrLines(), "(401 unauthorized)") {
		t.Errorf("events --follow with a revoked token: exit %d (%v), stderr:\n%s\nwant exit 3 and the 401", code, err, f.stderrLines())
	}
}

// follower is a running `slipway events --follow` whose output the test reads line by line.
type follower struct {
	cmd    *exec.Cmd
	stdout chan string
	stderr chan string
	seen   []string // stderr lines read so far
	done   chan error
}

func startFollow(t *testing.T, env []string, args ...string) *follower {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(baseEnv(t), env...)
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	cmd.Stdout, cmd.Stderr = outW, errW
	f := &follower{cmd: cmd, stdout: lines(outR), stderr: lines(errR), done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait() // returns once all output is copied to the pipes
		outW.Close()
		errW.Close()
		f.done <- err
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		outR.Close() // output nobody reads no longer holds Wait back
		errR.Close()
		<-f.done
	})
	return f
}

// lines sends each line read from r, and closes the channel at its end.
func lines(r io.Reader) chan string {
	ch := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	return ch
}

// waitStderr waits for a line of stderr that starts with prefix.
func (f *follower) waitStderr(t *testing.T, prefix string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-f.stderr:
			if !ok {
				t.Fatalf("the command ended before it said %q; stderr:\n%s", prefix, f.stderrLines())
			}
			f.seen = append(f.seen, line)
			if strings.HasPrefix(line, prefix) {
				return
			}
		case <-timeout:
			t.Fatalf("the command did not say %q within 30s; stderr:\n%s", prefix, f.stderrLines())
		}
	}
}

// nextLine is the next line of stdout.
func (f *follower) nextLine(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-f.stdout:
		if !ok {
			t.Fatalf("stdout ended; stderr:\n%s", f.stderrLines())
		}
		return line
	case <-time.After(30 * time.Second):
		t.Fatalf("nothing on stdout within 30s; stderr:\n%s", f.stderrLines())
	}
	return ""
}

// interrupt stops the command as Ctrl-C does; it must exit 0.
func (f *follower) interrupt(t *testing.T) {
	t.Helper()
	if err := f.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := f.wait(t, 30*time.Second); err != nil {
		t.Errorf("after an interrupt the command ended with %v, want exit 0; stderr:\n%s", err, f.stderrLines())
	}
}

// wait waits for the command to end and reads the rest of its stderr.
func (f *follower) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-f.done:
		f.done <- err // for the cleanup
		for line := range f.stderr {
			f.seen = append(f.seen, line)
		}
		return err
	case <-time.After(within):
		t.Fatalf("the command did not end within %s; stderr:\n%s", within, f.stderrLines())
	}
	return nil
}

func (f *follower) stderrLines() string { return strings.Join(slices.Clone(f.seen), "\n") }
