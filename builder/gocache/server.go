package gocache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/slipway/slipway/store"
)

// Stats counts what the cache did since its server started; every field only grows.
type Stats struct {
	LocalHits  atomic.Int64 // gets answered from the local tier
	RemoteHits atomic.Int64 // gets answered from the blob store (then kept locally)
	Misses     atomic.Int64 // gets answered by neither: the go command builds the action
	Puts       atomic.Int64 // outputs the go command put
	// RemoteRefused counts entries of the blob store that were not used: an output whose
	// bytes did not hash to its output ID, an entry that did not parse. Each is a miss.
	RemoteRefused  atomic.Int64
	RemoteErrors   atomic.Int64 // fetches that failed (unreachable store, timeout): misses
	BytesFetched   atomic.Int64 // output bytes fetched from the blob store
	Uploads        atomic.Int64 // entries uploaded to the blob store
	BytesUploaded  atomic.Int64 // output bytes uploaded to the blob store
	UploadsDropped atomic.Int64 // puts not uploaded because the upload queue was full
	UploadErrors   atomic.Int64 // uploads that failed
	// TimeSavedMS sums the BuildMS of the entries remote hits used: the time the go
	// command took to build them where they were built. Local hits are not counted: a
	// warm local cache saves what the go command's own cache always did.
	TimeSavedMS  atomic.Int64
	Evicted      atomic.Int64 // files the local tier's trims removed (the hot tier's too)
	EvictedBytes atomic.Int64 // their bytes
	// HotCompiles counts compiles that used the hot tier's GOCACHE (WithHotDir) instead
	// of the cache program: their hits are the go command's own, not counted here.
	HotCompiles atomic.Int64
}

// Server is a worker's side of the shared build cache. It listens on a unix socket in a
// private directory for the go command's cache programs (RunProg), keeps the local tier,
// and reads and writes the shared tier in the blob store, which the compile itself can
// never reach: no credential enters its environment, only the socket's path.
type Server struct {
	opts   options
	local  *local
	blobs  store.Blobs // nil: the local tier alone
	ln     net.Listener
	sock   string
	stats  Stats
	flight singleflight.Group

	uploads   chan upload
	pending   atomic.Int64 // uploads queued and not yet done
	closing   atomic.Bool
	cancel    context.CancelFunc
	done      sync.WaitGroup // the accept loop, the trimmer, the uploaders
	conns     sync.WaitGroup
	connMu    sync.Mutex
	openConns map[net.Conn]bool
	hot       hot
	bg        sync.WaitGroup // the hot tier's work after compiles (Compile)
	bgPending atomic.Int64   // that work, not yet done
}

// New starts a cache server with its local tier in dir and its shared tier in blobs
// (nil for none: then entries stay on this machine). Close stops it.
func New(dir string, blobs store.Blobs, opts ...Option) (*Server, error) {
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.program == "" {
		if o.program, o.progArgs, err = defaultProgram(); err != nil {
			return nil, err
		}
	}
	s := &Server{opts: o, blobs: blobs, uploads: make(chan upload, o.queue), openConns: map[net.Conn]bool{},
		hot: hot{warm: map[hotKey]bool{}, sessions: map[string]*session{}, filling: map[hotKey]chan struct{}{}, seen: map[string]map[string]bool{}}}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if o.hotDir != "" {
		if s.hot.dir, err = filepath.Abs(o.hotDir); err != nil {
			return nil, err
		}
		if Overlap(s.hot.dir, dir) {
			return nil, fmt.Errorf("the hot GOCACHE (%s) and the local tier (%s) overlap; compiles could write the local tier", s.hot.dir, dir)
		}
		if err := os.MkdirAll(s.hot.dir, 0o755); err != nil {
			return nil, fmt.Errorf("making the hot GOCACHE %s: %w", s.hot.dir, err)
		}
	}
	if s.local, err = newLocal(dir, o.maxSize, o.trimGrace, &s.stats, o.sandboxUID >= 0); err != nil {
		return nil, fmt.Errorf("opening the local build cache in %s: %w", dir, err)
	}
	if s.hot.dir != "" {
		s.local.hotDir, s.local.hotTrimBegin, s.local.hotTrimEnd = s.hot.dir, s.hotTrimBegin, s.hotTrimEnd
	}
	sockDir, err := os.MkdirTemp(o.socketDir, "slipway-gocache-")
	if err != nil {
		return nil, fmt.Errorf("making the build cache's socket directory: %w", err)
	}
	if err := os.Chmod(sockDir, 0o700); err != nil {
		os.RemoveAll(sockDir)
		return nil, err
	}
	s.sock = filepath.Join(sockDir, "sock")
	if s.ln, err = net.Listen("unix", s.sock); err != nil {
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("listening for the go command's cache programs: %w", err)
	}
	if o.sandboxUID >= 0 {
		if err := shareWithSandbox(sockDir, s.sock, dir, o.sandboxUID, o.sandboxGID); err != nil {
			s.ln.Close()
			os.RemoveAll(sockDir)
			return nil, fmt.Errorf("handing the build cache's socket to the sandbox user: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Go(func() { s.accept() })
	s.done.Go(func() {
		s.local.run(ctx, func(err error) { o.log.Warn("build cache", "err", err) })
	})
	for range o.uploaders {
		s.done.Go(func() { s.upload(ctx) })
	}
	return s, nil
}

// Overlap reports whether directories a and b, compared as written, are the same or
// one holds the other: then what may write one may write the other.
func Overlap(a, b string) bool {
	sep := string(filepath.Separator)
	return a == b || strings.HasPrefix(a, b+sep) || strings.HasPrefix(b, a+sep)
}

// Program is the cache program the go command runs (WithProgram).
func (s *Server) Program() string { return s.opts.program }

// Socket is the path of the server's socket.
func (s *Server) Socket() string { return s.sock }

// Stats are the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Namespace is the namespace of app's builds: the app's own with WithPerApp, else
// SharedNamespace.
func (s *Server) Namespace(app string) string {
	if s.opts.perApp && app != "" {
		return app
	}
	return SharedNamespace
}

// Command is the GOCACHEPROG of a compile of app: the cache program (WithProgram), told
// the socket, the app's namespace and the local tier. The go command splits it at spaces,
// honouring quotes.
func (s *Server) Command(app string) string { return s.command(app, "") }

// command is Command, for the compile session id when it is not empty (Compile).
func (s *Server) command(app, id string) string {
	var b strings.Builder
	b.WriteString(quoteArg(s.opts.program))
	for _, a := range s.opts.progArgs {
		b.WriteString(" " + quoteArg(a))
	}
	b.WriteString(" --socket " + quoteArg(s.sock) + " --namespace " + s.Namespace(app) + " --local " + quoteArg(s.local.dir))
	if id != "" {
		b.WriteString(" --session " + id)
	}
	return b.String()
}

// ProgramName is the small cache program's name, which a worker looks for beside its own
// executable.
const ProgramName = "slipway-gocacheprog"

// defaultProgram is WithProgram's default: ProgramName beside this executable, else this
// executable's gocacheprog command.
func defaultProgram() (string, []string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("finding slipway's executable for GOCACHEPROG: %w", err)
	}
	small := filepath.Join(filepath.Dir(exe), ProgramName)
	if fi, err := os.Stat(small); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return small, nil, nil
	}
	return exe, []string{"gocacheprog"}, nil
}

// quoteArg quotes a for the go command's splitting of GOCACHEPROG (cmd/internal/quoted)
// when it holds a space.
func quoteArg(a string) string {
	if !strings.ContainsAny(a, " \t\n\r'\"") {
		return a
	}
	if !strings.Contains(a, "'") {
		return "'" + a + "'"
	}
	return `"` + a + `"`
}

// Flush waits until every put queued so far is uploaded (or has failed), and the hot
// tier's work after the compiles that ended is done (Compile), or ctx ends.
func (s *Server) Flush(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for s.bgPending.Load() > 0 || s.pending.Load() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops accepting cache programs, ends the connections still open, waits up to
// ctx for the queued uploads, cancels those still queued or running then, and stops.
func (s *Server) Close(ctx context.Context) error {
	if !s.closing.CompareAndSwap(false, true) {
		return nil
	}
	s.ln.Close()
	s.connMu.Lock()
	for c := range s.openConns {
		c.Close()
	}
	s.connMu.Unlock()
	s.conns.Wait()
	s.bg.Wait()
	err := s.Flush(ctx)
	s.cancel()
	close(s.uploads)
	s.done.Wait()
	os.RemoveAll(filepath.Dir(s.sock))
	return err
}

func (s *Server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !s.closing.Load() {
				s.opts.log.Warn("build cache: accepting a cache program", "err", err)
			}
			return
		}
		s.connMu.Lock()
		if s.closing.Load() {
			s.connMu.Unlock()
			c.Close()
			return
		}
		s.openConns[c] = true
		s.conns.Add(1)
		s.connMu.Unlock()
		go func() {
			defer s.conns.Done()
			s.serveConn(c)
			s.connMu.Lock()
			delete(s.openConns, c)
			s.connMu.Unlock()
		}()
	}
}

// conn is one go command's session: its namespace, its replies, and when each of its
// gets missed (for Stats.TimeSavedMS).
type conn struct {
	s      *Server
	ns     string
	wmu    sync.Mutex
	w      *bufio.Writer
	missMu sync.Mutex
	missAt map[string]time.Time
	se     *session // the compile it serves (Compile), if any
}

// serveConn speaks the cache protocol on c until the go command closes it.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	var h hello
	if err := json.Unmarshal(line, &h); err != nil || checkNamespace(h.Namespace) != nil {
		s.opts.log.Warn("build cache: a cache program sent a bad greeting", "greeting", string(line))
		return
	}
	cn := &conn{s: s, ns: h.Namespace, w: bufio.NewWriterSize(c, 16<<10), missAt: map[string]time.Time{}}
	if se := s.sessionOf(h.Session); se != nil && se.key.ns == h.Namespace {
		cn.se = se
		defer se.end()
	}
	cn.reply(response{ID: 0, KnownCommands: []string{"get", "put", "close"}})
	dec := json.NewDecoder(r)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			return
		}
		var body []byte
		if req.Command == "put" && req.BodySize > 0 {
			if err := dec.Decode(&body); err != nil {
				return
			}
		}
		switch req.Command {
		case cmdUsed:
			if action, err := hashHex(req.ActionID); err == nil {
				s.local.used(cn.ns, action)
			}
			continue
		case cmdHits:
			s.stats.LocalHits.Add(max(req.Hits, 0))
			if cn.se != nil {
				cn.se.add(req.Actions...)
			}
			continue
		}
		if req.Command == "close" {
			wg.Wait()
			cn.reply(response{ID: req.ID})
			return
		}
		wg.Go(func() { cn.reply(cn.handle(req, body)) })
	}
}

func (cn *conn) reply(res response) {
	b, _ := json.Marshal(res)
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	cn.w.Write(b)
	cn.w.WriteByte('\n')
	cn.w.Flush()
}

func (cn *conn) handle(req request, body []byte) response {
	action, err := hashHex(req.ActionID)
	if err != nil {
		return response{ID: req.ID, Err: "action " + err.Error()}
	}
	switch req.Command {
	case "get":
		res := cn.s.get(cn.ns, action)
		res.ID = req.ID
		if !res.Miss && cn.se != nil {
			cn.se.add(action)
		}
		if res.Miss {
			cn.missMu.Lock()
			cn.missAt[action] = time.Now()
			cn.missMu.Unlock()
		}
		return res
	case "put":
		cn.missMu.Lock()
		at, missed := cn.missAt[action]
		delete(cn.missAt, action)
		cn.missMu.Unlock()
		var took time.Duration
		if missed {
			took = time.Since(at)
		}
		path, err := cn.s.put(cn.ns, action, req.OutputID, body, took)
		if err != nil {
			return response{ID: req.ID, Err: err.Error()}
		}
		if cn.se != nil {
			cn.se.add(action)
		}
		return response{ID: req.ID, DiskPath: path}
	}
	return response{ID: req.ID, Err: fmt.Sprintf("unknown command %q", req.Command)}
}

// get answers a get of action in ns: from the local tier, else from the blob store.
func (s *Server) get(ns, action string) response {
	if e, path, ok := s.local.get(ns, action); ok {
		s.stats.LocalHits.Add(1)
		return hit(e, path)
	}
	if s.blobs != nil {
		if e, path, ok := s.fetch(ns, action); ok {
			s.stats.RemoteHits.Add(1)
			s.stats.TimeSavedMS.Add(e.BuildMS)
			return hit(e, path)
		}
	}
	s.stats.Misses.Add(1)
	return response{Miss: true}
}

// put keeps what the go command built for action in ns, checking that body hashes to
// outputID, and queues its upload. It returns the output's path.
func (s *Server) put(ns, action string, outputID, body []byte, took time.Duration) (string, error) {
	out, err := hashHex(outputID)
	if err != nil {
		return "", fmt.Errorf("output %w", err)
	}
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != out {
		return "", fmt.Errorf("%w: the body of action %s does not hash to its output ID", ErrCorrupt, action)
	}
	path, err := s.local.putOutput(out, int64(len(body)), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	e := entry{Output: out, Size: int64(len(body)), Time: time.Now().UTC().Truncate(time.Millisecond), BuildMS: took.Milliseconds()}
	if err := s.local.putEntry(ns, action, e); err != nil {
		return "", err
	}
	s.stats.Puts.Add(1)
	s.enqueue(upload{ns: ns, action: action, entry: e, path: path})
	return path, nil
}

// shareWithSandbox lets compiles that run as uid reach the server: the socket's private
// directory becomes theirs (still 0700: no other user's), the socket writable, and the
// local tier's directory and those above it searchable by others (the go command reads
// the outputs it is handed; the files are 0644, their directories 0711).
func shareWithSandbox(sockDir, sock, localDir string, uid, gid int) error {
	if err := os.Chmod(sock, 0o777); err != nil {
		return err
	}
	if err := os.Chown(sockDir, uid, gid); err != nil {
		return err
	}
	dir, err := filepath.Abs(localDir)
	if err != nil {
		return err
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
				return err
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}
