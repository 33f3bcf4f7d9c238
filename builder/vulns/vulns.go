package vulns

import (
	"bytes"
	"context"
	"debug/elf"
	"debug/gosym"
	"debug/macho"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/vuln/scan"

	"github.com/slipway/slipway/store"
)

// retention is how long the findings of one binary by one database stay in Redis.
const retention = 30 * 24 * time.Hour

// maxEntry bounds a file read from the database.
const maxEntry = 16 << 20

// Finding is a known vulnerability whose vulnerable code a binary holds.
type Finding struct {
	ID      string   `json:"id"`
	Aliases []string `json:"aliases,omitempty"`
	Summary string   `json:"summary,omitempty"`
	// Module is the module the code is in ("stdlib" for the standard library), at Version
	// in the binary; FixedVersion is the first version without it ("" for none yet).
	Module       string `json:"module"`
	Version      string `json:"version,omitempty"`
	FixedVersion string `json:"fixed_version,omitempty"`
	// Symbols are the vulnerable functions the binary holds, as package.Receiver.Function.
	Symbols []string `json:"symbols"`
	// Score is the highest CVSS base score of the entry's severity (0 when it has none);
	// Critical is what the vulns: no-critical gate refuses (see IsCritical).
	Score    float64 `json:"score,omitempty"`
	Critical bool    `json:"critical"`
}

// Scanner finds the known vulnerabilities of Go binaries with govulncheck
// (golang.org/x/vuln) in binary mode, against one vulnerability database, and keeps what
// it found per binary and database version in Redis (see store/paths.go).
type Scanner struct {
	rdb   redis.UniversalClient
	db    string
	dir   string // "" for a file:// database
	http  *http.Client
	tmp   string
	sem   chan struct{}
	scans atomic.Int64
}

// New returns a Scanner of the database at db: a file:// URL of a directory in the layout
// of the Go vulnerability database (index/db.json, index/modules.json, ID/<id>.json) or
// an https:// URL serving it (as https://vuln.go.dev does). Binaries are written to tmp
// ("" for the system's) while they are scanned, one at a time per Scanner.
func New(rdb redis.UniversalClient, db, tmp string) (*Scanner, error) {
	u, err := url.Parse(db)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %q is not a URL", db)
	}
	s := &Scanner{rdb: rdb, db: strings.TrimRight(db, "/"), tmp: tmp, sem: make(chan struct{}, 1)}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("vulnerability database %q: a file URL names a local directory (file:///path)", db)
		}
		s.dir = filepath.FromSlash(u.Path)
		if _, err := os.Stat(filepath.Join(s.dir, "index", "db.json")); err != nil {
			return nil, fmt.Errorf("vulnerability database %q: no index/db.json in %s", db, s.dir)
		}
	case "https":
		s.http = &http.Client{Timeout: 30 * time.Second}
	default:
		return nil, fmt.Errorf("vulnerability database %q is not a file:// or https:// URL", db)
	}
	return s, nil
}

// DB is the database's URL.
func (s *Scanner) DB() string { return s.db }

// Scans counts the binaries this Scanner has scanned (not those it found in Redis).
func (s *Scanner) Scans() int64 { return s.scans.Load() }

// get reads a file of the database by its path without extension ("index/db").
func (s *Scanner) get(ctx context.Context, path string) ([]byte, error) {
	if s.dir != "" {
		f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(path)+".json"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxEntry))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.db+"/"+path+".json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s.json: %s", path, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxEntry))
}

// Modified is when the database last changed: its index/db.json's modified time.
func (s *Scanner) Modified(ctx context.Context) (time.Time, error) {
	raw, err := s.get(ctx, "index/db")
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the vulnerability database's index: %w", err)
	}
	var meta struct {
		Modified time.Time `json:"modified"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil || meta.Modified.IsZero() {
		return time.Time{}, errors.New("the vulnerability database's index/db.json has no modified time")
	}
	return meta.Modified, nil
}

// Scan returns the known vulnerabilities of the binary with digest bin, whose bytes open
// reads (checked against bin). What it finds is kept in Redis under app for the
// database's current version, so the same binary is scanned once per database version.
func (s *Scanner) Scan(ctx context.Context, app string, bin store.Digest, open func(context.Context) (io.ReadCloser, error)) ([]Finding, error) {
	mod, err := s.Modified(ctx)
	if err != nil {
		return nil, err
	}
	key := store.VulnsKey(app, bin, mod.UnixMilli())
	raw, err := s.rdb.Get(ctx, key).Bytes()
	switch {
	case err == nil:
		var out []Finding
		if err := json.Unmarshal(raw, &out); err == nil {
			return out, nil
		}
	case !errors.Is(err, redis.Nil):
		return nil, fmt.Errorf("reading the scan of %s: %w", bin, err)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.sem }()
	out, err := s.scan(ctx, bin, open)
	if err != nil {
		return nil, err
	}
	s.scans.Add(1)
	doc, _ := json.Marshal(out) // strings, numbers, bools: cannot fail
	if err := s.rdb.Set(ctx, key, doc, retention).Err(); err != nil {
		return nil, fmt.Errorf("recording the scan of %s: %w", bin, err)
	}
	return out, nil
}

func (s *Scanner) scan(ctx context.Context, bin store.Digest, open func(context.Context) (io.ReadCloser, error)) ([]Finding, error) {
	f, err := os.CreateTemp(s.tmp, "vulnscan-*")
	if err != nil {
		return nil, fmt.Errorf("spooling the binary: %w", err)
	}
	defer os.Remove(f.Name())
	rc, err := open(ctx)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the binary %s: %w", bin, err)
	}
	_, err = io.Copy(f, rc)
	rc.Close()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("reading the binary %s: %w", bin, err)
	}

	var stdout, stderr bytes.Buffer
	cmd := scan.Command(ctx, "-db", s.db, "-mode", "binary", "-scan", "symbol", "-format", "json", f.Name())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &stdout, &stderr
	cmd.Env = []string{}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting govulncheck: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[:500]
		}
		return nil, fmt.Errorf("govulncheck on %s: %v: %s", bin, err, msg)
	}
	out, err := parse(&stdout, functions(f.Name()))
	if err != nil {
		return nil, err
	}
	for i := range out {
		raw, err := s.get(ctx, "ID/"+out[i].ID)
		if err != nil {
			return nil, fmt.Errorf("reading the entry %s: %w", out[i].ID, err)
		}
		out[i].Score, out[i].Critical = IsCritical(raw)
	}
	return out, nil
}

// message is what this package reads of govulncheck's JSON stream.
type message struct {
	OSV *struct {
		ID      string   `json:"id"`
		Aliases []string `json:"aliases"`
		Summary string   `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
			Receiver string `json:"receiver"`
		} `json:"trace"`
	} `json:"finding"`
}

// parse reads govulncheck's JSON stream: the findings at the level of symbols (the
// binary holds the vulnerable code), one per vulnerability with its symbols. present,
// when not nil, holds the functions the binary has: govulncheck cannot read the
// functions of a stripped binary (slipway's are, -s -w) and reports every vulnerable
// symbol of the modules' versions, so those it has not are dropped here.
func parse(r io.Reader, present map[string]bool) ([]Finding, error) {
	dec := json.NewDecoder(r)
	entries := map[string]Finding{}
	byID := map[string]*Finding{}
	var order []string
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading govulncheck's output: %w", err)
		}
		if m.OSV != nil {
			entries[m.OSV.ID] = Finding{ID: m.OSV.ID, Aliases: m.OSV.Aliases, Summary: m.OSV.Summary}
		}
		if m.Finding == nil || len(m.Finding.Trace) == 0 || m.Finding.Trace[0].Function == "" {
			continue // a module or package holding vulnerable code the binary does not include
		}
		fr := m.Finding.Trace[0]
		recv := strings.TrimPrefix(fr.Receiver, "*")
		if present != nil && !present[fr.Package+"."+fr.Function] && !present[fr.Package+".(*"+recv+")."+fr.Function] &&
			!present[fr.Package+"."+recv+"."+fr.Function] {
			continue
		}
		f, ok := byID[m.Finding.OSV]
		if !ok {
			f = &Finding{ID: m.Finding.OSV, Module: fr.Module, Version: fr.Version, FixedVersion: m.Finding.FixedVersion, Symbols: []string{}}
			byID[f.ID] = f
			order = append(order, f.ID)
		}
		sym := fr.Package + "." + fr.Function
		if recv != "" {
			sym = fr.Package + "." + recv + "." + fr.Function
		}
		if !slices.Contains(f.Symbols, sym) {
			f.Symbols = append(f.Symbols, sym)
		}
	}
	out := make([]Finding, 0, len(order))
	for _, id := range order {
		f := *byID[id]
		e := entries[id]
		f.Aliases, f.Summary = e.Aliases, e.Summary
		slices.Sort(f.Symbols)
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Finding) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// functions returns the names of the functions a Go binary holds, read from its PC-line
// table (which stripping keeps), with type parameters cut ("pkg.(*T[...]).M" as
// "pkg.(*T).M"); nil when the table cannot be found (a Windows binary, whose table only
// its symbols locate, or not a Go binary), and then every symbol govulncheck reports
// counts.
func functions(path string) map[string]bool {
	var data []byte
	var text uint64
	if f, err := elf.Open(path); err == nil {
		defer f.Close()
		s, t := f.Section(".gopclntab"), f.Section(".text")
		if s == nil || t == nil {
			return nil
		}
		data, _ = s.Data()
		text = t.Addr
	} else if f, err := macho.Open(path); err == nil {
		defer f.Close()
		s, t := f.Section("__gopclntab"), f.Section("__text")
		if s == nil || t == nil {
			return nil
		}
		data, _ = s.Data()
		text = t.Addr
	}
	if len(data) == 0 {
		return nil
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text))
	if err != nil || len(tab.Funcs) == 0 {
		return nil
	}
	out := make(map[string]bool, len(tab.Funcs))
	for _, fn := range tab.Funcs {
		out[strings.ReplaceAll(fn.Name, "[...]", "")] = true
	}
	return out
}

// CriticalScore is the CVSS base score from which a vulnerability is critical.
const CriticalScore = 9.0

// IsCritical reads an OSV entry's severity: the highest CVSS base score among its
// severity entries (top-level and per affected package; a number, or a CVSS v3 vector
// whose base score is computed), and whether the entry is critical: that score is at
// least CriticalScore, or its database_specific.severity (or an affected package's) is
// "CRITICAL". An entry with neither, as most of the Go database's are, is not critical.
func IsCritical(entry []byte) (score float64, critical bool) {
	type severity struct {
		Type  string `json:"type"`
		Score string `json:"score"`
	}
	type specific struct {
		Severity string `json:"severity"`
	}
	var e struct {
		Severity         []severity `json:"severity"`
		DatabaseSpecific *specific  `json:"database_specific"`
		Affected         []struct {
			Severity         []severity `json:"severity"`
			DatabaseSpecific *specific  `json:"database_specific"`
		} `json:"affected"`
	}
	if err := json.Unmarshal(entry, &e); err != nil {
		return 0, false
	}
	sevs := e.Severity
	specs := []*specific{e.DatabaseSpecific}
	for _, a := range e.Affected {
		sevs = append(sevs, a.Severity...)
		specs = append(specs, a.DatabaseSpecific)
	}
	for _, s := range sevs {
		score = max(score, baseScore(s.Score))
	}
	critical = score >= CriticalScore
	for _, sp := range specs {
		if sp != nil && strings.EqualFold(strings.TrimSpace(sp.Severity), "critical") {
			critical = true
		}
	}
	return score, critical
}

// baseScore is a severity's score: a number as it is, a CVSS v3.x vector's base score,
// or 0.
func baseScore(s string) float64 {
	if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && f >= 0 && f <= 10 {
		return f
	}
	if strings.HasPrefix(s, "CVSS:3.") {
		return cvss3(s)
	}
	return 0
}

// cvss3 is the base score of a CVSS v3.0 or v3.1 vector (FIRST's specification, 7.1), 0
// when a base metric is missing or unknown.
func cvss3(vector string) float64 {
	m := map[string]string{}
	for part := range strings.SplitSeq(vector, "/") {
		if k, v, ok := strings.Cut(part, ":"); ok {
			m[k] = v
		}
	}
	weights := map[string]map[string]float64{
		"AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
		"AC": {"L": 0.77, "H": 0.44},
		"UI": {"N": 0.85, "R": 0.62},
		"C":  {"H": 0.56, "L": 0.22, "N": 0},
		"I":  {"H": 0.56, "L": 0.22, "N": 0},
		"A":  {"H": 0.56, "L": 0.22, "N": 0},
	}
	w := map[string]float64{}
	for k, vals := range weights {
		v, ok := vals[m[k]]
		if !ok {
			return 0
		}
		w[k] = v
	}
	changed := m["S"] == "C"
	if m["S"] != "C" && m["S"] != "U" {
		return 0
	}
	pr := map[string]float64{"N": 0.85, "L": 0.62, "H": 0.27}
	if changed {
		pr = map[string]float64{"N": 0.85, "L": 0.68, "H": 0.5}
	}
	prw, ok := pr[m["PR"]]
	if !ok {
		return 0
	}
	iss := 1 - (1-w["C"])*(1-w["I"])*(1-w["A"])
	impact := 6.42 * iss
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*pow15(iss-0.02)
	}
	if impact <= 0 {
		return 0
	}
	expl := 8.22 * w["AV"] * w["AC"] * prw * w["UI"]
	if changed {
		return roundUp(min(1.08*(impact+expl), 10))
	}
	return roundUp(min(impact+expl, 10))
}

func pow15(x float64) float64 {
	r := 1.0
	for range 15 {
		r *= x
	}
	return r
}

// roundUp is CVSS v3.1's Roundup: the smallest number of one decimal at least x.
func roundUp(x float64) float64 {
	i := int64(x*100000 + 0.5)
	if i%10000 == 0 {
		return float64(i) / 100000
	}
	return float64(i/10000+1) / 10
}
