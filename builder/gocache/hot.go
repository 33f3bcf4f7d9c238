package gocache

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The hot tier: a GOCACHE of the go command's own, per namespace, that a warm worker's
// compiles use directly.
//
// Through the cache program every get is a request and an answer between two processes,
// where the go command's own cache reads a file: on a warm build that is 5–12 % of the
// build (docs/PERFORMANCE.md). So a compile runs through the program only when this
// worker has not yet built the same module graph for the same platform (Compile): then
// the shared tier can save it the work. Once such a compile succeeded, what it used is
// copied into the namespace's hot GOCACHE, and the next compiles of the same key use the
// go command's own cache there, as fast as SLIPWAY_BUILD_CACHE=local. Their new entries
// (the app's own packages, mostly) are taken into the local tier afterwards, checked
// against their output IDs, and uploaded like puts. A change of go.mod, go.sum or
// vendor/modules.txt is a new key, so a dependency bump goes through the program and
// the shared tier again.
//
// The hot GOCACHE is written by compiles, so it is kept apart from the local tier
// (WithHotDir), which they cannot write; entries go from one to the other as copies,
// never links, and only after the output's bytes hash to its output ID.

// hotKey is what makes a compile warm: the namespace, the platform and the module graph.
type hotKey struct {
	ns, platform, mods string
}

// session is one compile through the cache program (Compile): the actions its go
// command's gets and puts used, known once its connection ends.
type session struct {
	key     hotKey
	mu      sync.Mutex
	actions map[string]bool
	ended   chan struct{} // closed when the program's connection ends
	once    sync.Once
}

func (se *session) add(actions ...string) {
	se.mu.Lock()
	defer se.mu.Unlock()
	for _, a := range actions {
		if isHashHex(a) {
			se.actions[a] = true
		}
	}
}

func (se *session) end() { se.once.Do(func() { close(se.ended) }) }

// hot is the server's hot tier: which keys are warm, and the compiles in flight.
type hot struct {
	dir      string // "": none; every compile goes through the program
	mu       sync.Mutex
	warm     map[hotKey]bool
	sessions map[string]*session
	filling  map[hotKey]chan struct{} // closed when a key's successful compile has filled the hot tier
	active   int                      // compiles on the hot tier now
	trimming bool                     // a trim may remove files of the hot tier: no compile may start there

	// collectMu makes one collect or export at a time; seen holds, per namespace, the
	// entries of its hot GOCACHE that collect need not look at again (taken, exported,
	// or older than the compile that found them), so that a collect reads the
	// directories' names and nothing more of what it has seen. A trim that removed hot
	// files makes it stale (seenStale): it is forgotten before the next collect.
	collectMu sync.Mutex
	seen      map[string]map[string]bool
	seenStale atomic.Bool
}

// GoCacheDir is the hot GOCACHE of namespace ns ("" without WithHotDir).
func (s *Server) GoCacheDir(ns string) string {
	if s.hot.dir == "" {
		return ""
	}
	return filepath.Join(s.hot.dir, ns)
}

// Compile chooses the build cache of one compile of app, whose module is in dir, for
// platform ("linux/arm64"): the hot tier's GOCACHE (goCache, and prog empty) when this worker has
// built the same key before, else the cache program (prog, and goCache empty: the
// worker's own). done must be called when the compile ends, ok when it succeeded.
// Without WithHotDir every compile goes through the program.
func (s *Server) Compile(app, dir, platform string) (goCache, prog string, done func(ok bool)) {
	ns := s.Namespace(app)
	if s.hot.dir == "" {
		return "", s.Command(app), func(bool) {}
	}
	key := hotKey{ns: ns, platform: platform, mods: moduleGraph(dir)}
	// A compile of the key that just succeeded is filling the hot tier: that is soon
	// done, and this compile then runs on it.
	s.hot.mu.Lock()
	filling := s.hot.filling[key]
	s.hot.mu.Unlock()
	if filling != nil {
		select {
		case <-filling:
		case <-time.After(fillWait):
		}
	}
	s.hot.mu.Lock()
	warm := s.hot.warm[key] && !s.hot.trimming
	if warm {
		s.hot.active++
	}
	s.hot.mu.Unlock()
	if warm {
		s.stats.HotCompiles.Add(1)
		start := time.Now()
		var once sync.Once
		return s.GoCacheDir(ns), "", func(ok bool) {
			once.Do(func() {
				s.hot.mu.Lock()
				s.hot.active--
				s.hot.mu.Unlock()
				s.background(func() { s.collect(ns, start) })
			})
		}
	}
	id := rand.Text()
	se := &session{key: key, actions: map[string]bool{}, ended: make(chan struct{})}
	s.hot.mu.Lock()
	s.hot.sessions[id] = se
	s.hot.mu.Unlock()
	var once sync.Once
	return "", s.command(app, id), func(ok bool) {
		once.Do(func() {
			var filled chan struct{}
			if ok {
				filled = make(chan struct{})
				s.hot.mu.Lock()
				s.hot.filling[key] = filled
				s.hot.mu.Unlock()
			}
			if !s.background(func() { s.warmUp(id, se, ok, filled) }) {
				s.warmUp(id, se, false, filled)
			}
		})
	}
}

// fillWait bounds how long a compile waits for the hot tier to be filled for its key
// before it goes through the program instead.
const fillWait = 30 * time.Second

// background runs f beside the compiles, unless the server is closing; Close waits for
// it.
func (s *Server) background(f func()) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.bgPending.Add(1)
	s.bg.Go(func() {
		defer s.bgPending.Add(-1)
		f()
	})
	return true
}

// sessionOf is the compile session id names, if it is one of the server's.
func (s *Server) sessionOf(id string) *session {
	if id == "" {
		return nil
	}
	s.hot.mu.Lock()
	defer s.hot.mu.Unlock()
	return s.hot.sessions[id]
}

// sessionWait bounds how long a finished compile waits for its program's connection to
// end (the program ends with the go command, so at once).
const sessionWait = 10 * time.Second

// warmUp ends a compile through the program: when it succeeded, what it used goes into
// the namespace's hot GOCACHE, and its key becomes warm.
func (s *Server) warmUp(id string, se *session, ok bool, filled chan struct{}) {
	defer func() {
		s.hot.mu.Lock()
		delete(s.hot.sessions, id)
		if filled != nil {
			if s.hot.filling[se.key] == filled {
				delete(s.hot.filling, se.key)
			}
			close(filled)
		}
		s.hot.mu.Unlock()
	}()
	if !ok {
		return
	}
	select {
	case <-se.ended:
	case <-time.After(sessionWait):
		return
	}
	se.mu.Lock()
	actions := make([]string, 0, len(se.actions))
	for a := range se.actions {
		actions = append(actions, a)
	}
	se.mu.Unlock()
	if err := s.export(se.key.ns, actions); err != nil {
		s.opts.log.Warn("build cache: filling the hot GOCACHE", "namespace", se.key.ns, "err", err)
		return
	}
	s.hot.mu.Lock()
	s.hot.warm[se.key] = true
	s.hot.mu.Unlock()
}

// export copies the entries of actions in ns, and their outputs, from the local tier
// into the namespace's hot GOCACHE, in the go command's own format. An entry the local
// tier no longer holds is left out: the go command will miss it and build it.
func (s *Server) export(ns string, actions []string) error {
	root, err := s.hotRoot(ns)
	if err != nil {
		return err
	}
	defer root.Close()
	s.hot.collectMu.Lock()
	defer s.hot.collectMu.Unlock()
	seen := s.seenIn(ns)
	for _, a := range actions {
		e, path, ok := s.local.get(ns, a)
		if !ok {
			continue
		}
		out := filepath.Join(e.Output[:2], e.Output+"-d")
		if fi, err := root.Lstat(out); err != nil || !fi.Mode().IsRegular() || fi.Size() != e.Size {
			if err := s.hotWrite(root, out, func(w io.Writer) error { return copyFile(w, path) }); err != nil {
				return err
			}
		}
		line := nativeEntry(a, e.Output, e.Size, e.Time)
		if err := s.hotWrite(root, filepath.Join(a[:2], a+"-a"), func(w io.Writer) error {
			_, err := w.Write(line)
			return err
		}); err != nil {
			return err
		}
		seen[a] = true
	}
	return nil
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// hotRoot opens the hot GOCACHE of ns, making it if it is missing. Compiles write there,
// so the server's own reads and writes stay inside it (os.Root): a link a compile left
// cannot lead them elsewhere. The namespace's directory is the sandbox user's, with
// WithSandboxUser, as the go command, running as that user, writes there too; the hot
// tier's own directory above it stays slipway's, so no compile can replace it.
func (s *Server) hotRoot(ns string) (*os.Root, error) {
	if err := checkNamespace(ns); err != nil {
		return nil, err
	}
	top, err := os.OpenRoot(s.hot.dir)
	if err != nil {
		return nil, err
	}
	defer top.Close()
	if err := top.Mkdir(ns, 0o755); err == nil {
		if s.opts.sandboxUID >= 0 {
			if err := top.Lchown(ns, s.opts.sandboxUID, s.opts.sandboxGID); err != nil {
				return nil, err
			}
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return top.OpenRoot(ns)
}

// hotWrite writes the file name of a hot GOCACHE whole: into a temporary file beside it,
// renamed into place, the sandbox user's with WithSandboxUser.
func (s *Server) hotWrite(root *os.Root, name string, fill func(io.Writer) error) error {
	dir := filepath.Dir(name)
	if err := root.Mkdir(dir, 0o755); err == nil {
		if s.opts.sandboxUID >= 0 {
			if err := root.Lchown(dir, s.opts.sandboxUID, s.opts.sandboxGID); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return err
	}
	tmp := filepath.Join(dir, ".slipway-"+rand.Text())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer root.Remove(tmp) // after the rename, a no-op
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && s.opts.sandboxUID >= 0 {
		err = root.Lchown(tmp, s.opts.sandboxUID, s.opts.sandboxGID)
	}
	if err != nil {
		return err
	}
	return root.Rename(tmp, name)
}

// collectSlack is how much earlier than a compile's start an entry may be dated and
// still be taken for one of its own: the file system's times are coarse.
const collectSlack = 2 * time.Second

// collect takes the entries a compile on the hot GOCACHE of ns wrote (those dated since
// start, in directories changed since start) into the local tier, each once its
// output's bytes hash to its output ID, and queues their upload to the blob store, as
// puts are.
func (s *Server) collect(ns string, start time.Time) {
	root, err := s.hotRoot(ns)
	if err != nil {
		return
	}
	defer root.Close()
	since := start.Add(-collectSlack)
	s.hot.collectMu.Lock()
	defer s.hot.collectMu.Unlock()
	seen := s.seenIn(ns)
	for i := range 256 {
		sub := fmt.Sprintf("%02x", i)
		// A directory no file was made in since the compile started is skipped: making
		// one sets the directory's time, setting a file's time does not.
		if di, err := root.Lstat(sub); err != nil || !di.IsDir() || di.ModTime().Before(since) {
			continue
		}
		// Names only: listing a directory with its entries' types may stat each one.
		d, err := root.Open(sub)
		if err != nil {
			continue
		}
		names, _ := d.Readdirnames(-1)
		d.Close()
		for _, fn := range names {
			name, ok := strings.CutSuffix(fn, "-a")
			if !ok || seen[name] || !isHashHex(name) || name[:2] != sub {
				continue
			}
			fi, err := root.Lstat(filepath.Join(sub, fn))
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if fi.ModTime().Before(since) {
				seen[name] = true
				continue
			}
			if err := s.collectOne(ns, root, name); err != nil {
				s.opts.log.Warn("build cache: taking an entry of the hot GOCACHE", "namespace", ns, "action", name, "err", err)
				continue
			}
			seen[name] = true
		}
	}
}

// seenIn is the seen set of ns (hot.seen), with collectMu held.
func (s *Server) seenIn(ns string) map[string]bool {
	if s.hot.seenStale.Swap(false) {
		clear(s.hot.seen)
	}
	seen := s.hot.seen[ns]
	if seen == nil {
		seen = map[string]bool{}
		s.hot.seen[ns] = seen
	}
	return seen
}

// collectOne takes the hot GOCACHE's entry of action into the local tier, unless it is
// there already.
func (s *Server) collectOne(ns string, root *os.Root, action string) error {
	f, err := openRegular(root, filepath.Join(action[:2], action+"-a"))
	if err != nil {
		return nil // trimmed meanwhile
	}
	b, err := io.ReadAll(io.LimitReader(f, 256))
	f.Close()
	if err != nil {
		return err
	}
	out, size, t, err := parseNativeEntry(b, action)
	if err != nil {
		return err
	}
	if e, _, ok := s.local.get(ns, action); ok && e.Output == out {
		return nil
	}
	if f, err = openRegular(root, filepath.Join(out[:2], out+"-d")); err != nil {
		return nil // an entry whose output the go command never keeps, or trimmed
	}
	defer f.Close()
	path, err := s.local.putOutput(out, size, f) // checks the bytes against out
	if err != nil {
		return err
	}
	e := entry{Output: out, Size: size, Time: t.UTC().Truncate(time.Millisecond)}
	if err := s.local.putEntry(ns, action, e); err != nil {
		return err
	}
	s.stats.Puts.Add(1)
	s.enqueue(upload{ns: ns, action: action, entry: e, path: path})
	return nil
}

// openRegular opens name in root for reading if it is a regular file, without waiting on
// anything else a compile may have left there (a FIFO).
func openRegular(root *os.Root, name string) (*os.File, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	return f, nil
}

// nativeEntry is the go command's own encoding of an entry (cmd/go/internal/cache).
func nativeEntry(action, out string, size int64, t time.Time) []byte {
	return fmt.Appendf(nil, "v1 %s %s %20d %20d\n", action, out, size, t.UnixNano())
}

// parseNativeEntry reads an entry of the go command's own cache, of action.
func parseNativeEntry(b []byte, action string) (out string, size int64, t time.Time, err error) {
	f := strings.Fields(string(b))
	if len(b) != 2+1+64+1+64+1+20+1+20+1 || len(f) != 5 || f[0] != "v1" || f[1] != action || !isHashHex(f[2]) {
		return "", 0, time.Time{}, fmt.Errorf("%w: not an entry of the go command's cache", ErrCorrupt)
	}
	size, err1 := strconv.ParseInt(f[3], 10, 64)
	ns, err2 := strconv.ParseInt(f[4], 10, 64)
	if err1 != nil || err2 != nil || size < 0 || ns < 0 {
		return "", 0, time.Time{}, fmt.Errorf("%w: not an entry of the go command's cache", ErrCorrupt)
	}
	return f[2], size, time.Unix(0, ns), nil
}

// moduleGraph is what names dir's module graph for the hot tier: the hash of its go.mod,
// go.sum and vendor/modules.txt, each read inside dir (a link out of it reads as none).
func moduleGraph(dir string) string {
	h := sha256.New()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return ""
	}
	defer root.Close()
	for _, name := range []string{"go.mod", "go.sum", "vendor/modules.txt"} {
		fmt.Fprintf(h, "%s\n", name)
		f, err := root.Open(name)
		if err != nil {
			continue
		}
		n, _ := io.Copy(h, f)
		f.Close()
		fmt.Fprintf(h, "\n%d\n", n)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hotTrimBegin says whether a trim may remove files of the hot tier now: not while a
// compile uses it (the go command sets its files' times only once an hour, so a file
// it is about to read may look unused), and, once it said yes, no compile starts there
// until hotTrimEnd.
func (s *Server) hotTrimBegin() bool {
	s.hot.mu.Lock()
	defer s.hot.mu.Unlock()
	if s.hot.active > 0 {
		return false
	}
	s.hot.trimming = true
	return true
}

// hotTrimEnd ends what hotTrimBegin began. When the trim removed files of the hot tier,
// every warm key is forgotten: their next compiles go through the program, which finds
// what is left in the local tier or the blob store, and fills the hot tier again.
func (s *Server) hotTrimEnd(removed bool) {
	s.hot.mu.Lock()
	defer s.hot.mu.Unlock()
	s.hot.trimming = false
	if removed {
		clear(s.hot.warm)
		s.hot.seenStale.Store(true)
	}
}
