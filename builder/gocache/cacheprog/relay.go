package cacheprog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Run is the cache program the go command starts (GOCACHEPROG, see gocache.Server.Command),
// as `slipway-gocacheprog --socket PATH --namespace NS [--local DIR] [--session ID]` (or `slipway gocacheprog ...`): it connects to the
// worker's server, says which namespace the compile uses, and relays the go command's
// cache protocol (its stdin and stdout) both ways, line by line, until either side ends.
//
// With --local, the local tier's directory, it answers a get that the local tier holds
// itself, reading the entry and its output's size there, and forwards only the rest: a
// warm build then makes no round trip to the server, which matters on a loaded machine,
// where each hop between processes waits for the scheduler. It never writes the tier (the
// compile's sandbox would not let it): it tells the server which entries it used, for the
// trim's notion of recent use, and how many gets it answered, for the server's counters.
// It holds no credential: the server does all of the blob store's work.
//
// The two exchanges the go command waits on at either end of its session are answered
// here too: the capabilities, written before the server is reached, and close, after
// which stdout is closed (when it can be), which is what the go command waits for.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "gocacheprog" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("gocacheprog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sock := fs.String("socket", "", "the worker's build cache socket")
	ns := fs.String("namespace", SharedNamespace, "the build cache namespace")
	localDir := fs.String("local", "", "the local tier, read directly for gets")
	session := fs.String("session", "", "the compile this program serves")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("gocacheprog: %w", err)
	}
	if *sock == "" || fs.NArg() > 0 {
		return errors.New("usage: slipway gocacheprog --socket PATH [--namespace NS] [--local DIR] [--session ID] (run by the go command as GOCACHEPROG)")
	}
	if err := CheckNamespace(*ns); err != nil {
		return err
	}
	out := &lineWriter{w: stdout}
	// The go command waits for the program's capabilities before its first request: they
	// go out at once, while the connection to the server is made, and the server's own
	// first line, the same capabilities, is dropped.
	if err := out.write(capabilities); err != nil {
		return fmt.Errorf("answering the go command: %w", err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", *sock)
	if err != nil {
		return fmt.Errorf("reaching the worker's build cache: %w", err)
	}
	uc := c.(*net.UnixConn)
	defer uc.Close()
	greeting, _ := json.Marshal(Hello{Namespace: *ns, Session: *session})
	if _, err := uc.Write(append(greeting, '\n')); err != nil {
		return fmt.Errorf("reaching the worker's build cache: %w", err)
	}
	// The server's answers, each a whole line, go out as they come.
	copied := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(uc, 64<<10)
		for first := true; ; first = false {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 && !first {
				if werr := out.write(line); werr != nil {
					copied <- werr
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				copied <- err
				return
			}
		}
	}()
	rl := &relay{server: uc, out: out, ns: *ns, session: *session != ""}
	if *localDir != "" {
		rl.local = Layout(*localDir)
	}
	if err := rl.requests(bufio.NewReaderSize(stdin, 64<<10)); err != nil {
		return err
	}
	_ = uc.CloseWrite()
	if err := <-copied; err != nil {
		return fmt.Errorf("relaying the build cache: %w", err)
	}
	return nil
}

// relay is RunProg's side of one go command's session.
type relay struct {
	server   *net.UnixConn
	out      *lineWriter
	ns       string
	local    Layout // "": every get goes to the server
	hits     int64  // gets answered here
	session  bool   // the server wants to know which (actions)
	actions  []string
	reported bool
	closed   bool // the go command sent close: the server answers it and hangs up
}

// requests forwards the go command's requests (and put bodies, one line each) to the
// server until stdin ends, answering gets the local tier holds itself.
func (rl *relay) requests(in *bufio.Reader) error {
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if ferr := rl.forward(line); ferr != nil {
				return fmt.Errorf("relaying the build cache: %w", ferr)
			}
		}
		if errors.Is(err, io.EOF) {
			if rl.closed {
				return nil
			}
			return rl.report()
		}
		if err != nil {
			return fmt.Errorf("reading the go command's requests: %w", err)
		}
	}
}

func (rl *relay) forward(line []byte) error {
	// The go command ends each request with an empty line; after close, the server is
	// gone.
	if len(bytes.TrimSpace(line)) == 0 || rl.closed {
		return nil
	}
	if line[0] == '{' {
		var req Request
		if json.Unmarshal(line, &req) == nil {
			switch req.Command {
			case "get":
				if rl.local == "" {
					break
				}
				if res, ok := rl.get(req); ok {
					return rl.out.write(res)
				}
			case "close":
				// The go command sends close once every request it made has its answer,
				// so every put is stored. Close is answered here and the output closed,
				// which is what the go command waits for; the server still gets close,
				// and the program ends when the server has taken everything it sent.
				if err := rl.report(); err != nil {
					return err
				}
				rl.closed = true
				res, _ := json.Marshal(Response{ID: req.ID})
				if err := rl.out.last(append(res, '\n')); err != nil {
					return err
				}
			}
		}
	}
	_, err := rl.server.Write(line)
	return err
}

// get answers a get from the local tier, if it holds the entry and its whole output.
func (rl *relay) get(req Request) ([]byte, bool) {
	action, err := HashHex(req.ActionID)
	if err != nil {
		return nil, false
	}
	ep := rl.local.EntryPath(rl.ns, action)
	b, err := os.ReadFile(ep)
	if err != nil {
		return nil, false
	}
	e, err := ParseEntry(b)
	if err != nil {
		return nil, false
	}
	path := rl.local.OutputPath(e.Output)
	fi, err := os.Stat(path)
	if err != nil || fi.Size() != e.Size {
		return nil, false
	}
	if time.Since(fi.ModTime()) >= TouchEvery {
		// The server sets the times again; no answer comes.
		used, _ := json.Marshal(Request{Command: CmdUsed, ActionID: req.ActionID})
		if _, err := rl.server.Write(append(used, '\n')); err != nil {
			return nil, false
		}
	}
	rl.hits++
	if rl.session {
		rl.actions = append(rl.actions, action)
	}
	res := Hit(e, path)
	res.ID = req.ID
	line, _ := json.Marshal(res)
	return append(line, '\n'), true
}

// report tells the server, once, how many gets were answered here (and, in a session,
// which).
func (rl *relay) report() error {
	if rl.reported || rl.hits == 0 {
		return nil
	}
	rl.reported = true
	msg, _ := json.Marshal(Request{Command: CmdHits, Hits: rl.hits, Actions: rl.actions})
	_, err := rl.server.Write(append(msg, '\n'))
	return err
}

// capabilities are the commands the program answers, its first line to the go command.
var capabilities = []byte(`{"ID":0,"KnownCommands":["get","put","close"]}` + "\n")

// lineWriter writes whole lines from two goroutines.
type lineWriter struct {
	mu   sync.Mutex
	w    io.Writer
	done bool // the last line is written
}

func (l *lineWriter) write(line []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return nil // the go command has had its last answer
	}
	_, err := l.w.Write(line)
	return err
}

// last writes the last line the go command reads, then closes the output if it can be
// closed; what comes after is dropped.
func (l *lineWriter) last(line []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return nil
	}
	l.done = true
	if _, err := l.w.Write(line); err != nil {
		return err
	}
	if c, ok := l.w.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
