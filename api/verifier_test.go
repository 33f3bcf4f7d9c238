package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/builder/vulns"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
	"github.com/slipway/slipway/webhook"
)

// fixtureVulnDB is the file:// URL of vulns' test database: GO-2099-0001 (critical) in
// encoding/csv's reader and GO-2099-0002 (CVSS 3.7) in encoding/base32's encoder.
func fixtureVulnDB(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../builder/vulns/testdata/vulndb")
	if err != nil {
		t.Fatal(err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// buildApp builds the main.go of vulns' fixture program fixture as app's version
// version, and waits for it to succeed.
func buildApp(t *testing.T, e *env, app, version, fixture string) openapi.Build {
	t.Helper()
	main, err := os.ReadFile(filepath.Join("../builder/vulns/testdata", fixture, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	src := buildertest.Module(t, app, map[string]string{"main.go": string(main)})
	r := e.do("POST", "/v1/apps/"+app+"/builds?version="+version, map[string]string{"Authorization": "Bearer " + adminToken,
		"Content-Type": "application/gzip"}, string(src))
	if r.status != http.StatusAccepted {
		t.Fatalf("POST build = %d %s", r.status, r.body)
	}
	b := e.waitBuildAs(app, r.build(t).Id, bearer(adminToken))
	if b.Status != openapi.BuildStatusSucceeded {
		t.Fatalf("build %s = %s %+v", fixture, b.Status, b.Error)
	}
	return b
}

func candidate(app string, b openapi.Build, req *release.Require, checks ...release.Check) release.Candidate {
	return release.Candidate{
		App:     release.App{Name: app},
		Channel: release.Channel{Name: "prod", From: "staging", Gates: &release.Gates{Require: req, Checks: checks}},
		Release: release.Release{App: app, Version: b.Version, BuildID: b.Id, ImageDigest: b.Image.Digest},
	}
}

func gateStates(states []release.GateState) map[string]release.GateState {
	out := map[string]release.GateState{}
	for _, s := range states {
		out[s.Gate] = s
	}
	return out
}

// TestVerifierRequire: signed and provenance pass for a build signed by a key the server
// trusts and fail, saying why, for an unsigned build, a key rotated out, and a server
// without keys; vulns: none fails on a binary that calls a vulnerable function and
// passes on one that does not; no-critical goes by severity; a binary is scanned once.
func TestVerifierRequire(t *testing.T) {
	e, keys := newSigningEnv(t)
	ctx := context.Background()
	e.do("PUT", "/v1/apps/gated", bearer(adminToken), `{"platforms":["linux/amd64"]}`)
	plain := buildApp(t, e, "gated", "1.0.0", "plainapp")
	csv := buildApp(t, e, "gated", "1.1.0", "csvapp")
	b32 := buildApp(t, e, "gated", "1.2.0", "b32app")

	scanner, err := vulns.New(e.rdb, fixtureVulnDB(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	v, err := api.NewVerifier(api.VerifierDeps{Builds: e.builds, Blobs: e.blobs, Vulns: scanner, SigningKeys: keys.Public(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	type want struct{ signed, provenance, vulns, detail string }
	for _, tc := range []struct {
		name  string
		build openapi.Build
		vulns string
		want  want
	}{
		{"plain none", plain, "none", want{release.GatePassed, release.GatePassed, release.GatePassed, "no known vulnerability"}},
		{"csv none", csv, "none", want{release.GatePassed, release.GatePassed, release.GateFailed, "1 known vulnerability in the binaries: GO-2099-0001 (CVSS 9.8) in encoding/csv.Reader.ReadAll"}},
		{"csv no-critical", csv, "no-critical", want{release.GatePassed, release.GatePassed, release.GateFailed, "1 critical vulnerability"}},
		{"b32 none", b32, "none", want{release.GatePassed, release.GatePassed, release.GateFailed, "1 known vulnerability in the binaries: GO-2099-0002 (CVSS 3.7) in encoding/base32.Encoding.Encode"}},
		{"b32 no-critical", b32, "no-critical", want{release.GatePassed, release.GatePassed, release.GatePassed, "no critical vulnerability; 1 other: GO-2099-0002"}},
	} {
		got := v.Verify(ctx, candidate("gated", tc.build, &release.Require{Signed: true, Provenance: true, Vulns: tc.vulns}))
		if len(got) != 3 || got[0].Gate != "signed" || got[1].Gate != "provenance" || got[2].Gate != "vulns" {
			t.Fatalf("%s: Verify = %+v, want signed, provenance, vulns", tc.name, got)
		}
		if got[0].Status != tc.want.signed || got[1].Status != tc.want.provenance || got[2].Status != tc.want.vulns ||
			!strings.HasPrefix(got[2].Detail, tc.want.detail) || got[2].CheckedAt == nil {
			t.Errorf("%s: Verify = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// Three binaries, each scanned once, however often they were asked about.
	if n := scanner.Scans(); n != 3 {
		t.Errorf("scans = %d, want 3 (the rest from Redis)", n)
	}
	v.Verify(ctx, candidate("gated", csv, &release.Require{Vulns: "none"}))
	if got := metricValue(t, reg, "slipway_vuln_scans_total"); got != 3 {
		t.Errorf("slipway_vuln_scans_total = %v after asking again, want 3", got)
	}
	found, err := v.Vulns(ctx, "gated", csv.Id)
	if err != nil || len(found) != 1 || found[0].ID != "GO-2099-0001" || !found[0].Critical {
		t.Errorf("Vulns(csv) = %+v, %v", found, err)
	}

	// A build made before the server had a key: its record has no signing.
	key := store.BuildKey("gated", plain.Id)
	doc, err := e.rdb.HGet(ctx, key, "doc").Result()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "signing")
	raw, _ := json.Marshal(m)
	if err := e.rdb.HSet(ctx, key, "doc", raw).Err(); err != nil {
		t.Fatal(err)
	}
	got := gateStates(v.Verify(ctx, candidate("gated", plain, &release.Require{Signed: true, Provenance: true})))
	for _, g := range []string{"signed", "provenance"} {
		if got[g].Status != release.GateFailed || !strings.Contains(got[g].Detail, "had no signing key") ||
			!strings.Contains(got[g].Detail, "rebuild it") {
			t.Errorf("unsigned build: %s = %+v", g, got[g])
		}
	}

	// A server that trusts another key only, or none, or has no database.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherID, _ := sign.KeyID(&other.PublicKey)
	for _, tc := range []struct {
		name   string
		deps   api.VerifierDeps
		detail map[string]string
	}{
		{"rotated out", api.VerifierDeps{SigningKeys: []sign.PublicKey{{ID: otherID, Key: &other.PublicKey}}},
			map[string]string{"signed": "no signature by a key this server trusts now", "provenance": "not signed by a key this server trusts now"}},
		{"no keys", api.VerifierDeps{},
			map[string]string{"signed": "this server has no signing key", "provenance": "this server has no signing key",
				"vulns": "this server has no vulnerability database (SLIPWAY_VULN_DB)"}},
	} {
		d := tc.deps
		d.Builds, d.Blobs = e.builds, e.blobs
		v2, err := api.NewVerifier(d)
		if err != nil {
			t.Fatal(err)
		}
		got := gateStates(v2.Verify(ctx, candidate("gated", csv, &release.Require{Signed: true, Provenance: true, Vulns: "no-critical"})))
		for g, detail := range tc.detail {
			if got[g].Status != release.GateFailed || !strings.Contains(got[g].Detail, detail) {
				t.Errorf("%s: %s = %+v, want failed: %s", tc.name, g, got[g], detail)
			}
		}
	}
	if got := v.Verify(ctx, candidate("gated", csv, nil)); len(got) != 0 {
		t.Errorf("Verify without require or checks = %+v, want nothing", got)
	}
}

// metricValue is the sum of the counter name's series in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestVerifierChecks: the check hooks get requests that verify with the app's checks
// secret as GET /v1/apps/{app}/checks/secret shows it, before and after a rotation; a
// dry run and the promotion right after it call a hook once; results are counted.
func TestVerifierChecks(t *testing.T) {
	rdb := storetest.Redis(t)
	checker, err := webhook.NewChecker(rdb, webhook.WithAllowNets([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, rdb, nil, func(d *api.Deps) { d.ChecksSecrets = checker }, api.WithAdminToken(adminToken))
	admin := bearer(adminToken)
	if r := e.do("PUT", "/v1/apps/gated", admin, `{}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	if r := e.do("GET", "/v1/apps/gated/checks/secret", bearer(e.token("reader", []string{"read"}, nil)), ""); r.status != http.StatusForbidden {
		t.Errorf("GET checks secret as a reader = %d, want 403", r.status)
	}
	if r := e.do("GET", "/v1/apps/nope/checks/secret", admin, ""); r.status != http.StatusNotFound {
		t.Errorf("GET checks secret of no app = %d, want 404", r.status)
	}
	secretOf := func(r response) openapi.ChecksSecret {
		t.Helper()
		var s openapi.ChecksSecret
		if r.status != http.StatusOK || json.Unmarshal(r.body, &s) != nil || !strings.HasPrefix(s.Secret, "whsec_") ||
			r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("checks secret = %d %s", r.status, r.body)
		}
		return s
	}
	first := secretOf(e.do("GET", "/v1/apps/gated/checks/secret", admin, ""))

	var secrets atomic.Value
	secrets.Store([]string{first.Secret})
	var calls atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secrets.Load().([]string), r.Header.Get(webhook.HeaderSignature), body, time.Now()); err != nil {
			http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
		var req webhook.CheckRequest
		if json.Unmarshal(body, &req) != nil || req.App != "gated" || req.Channel != "prod" || req.Version != "1.0.0" {
			http.Error(w, "unexpected body", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)

	reg := prometheus.NewRegistry()
	v, err := api.NewVerifier(api.VerifierDeps{Builds: e.builds, Blobs: e.blobs, Checks: checker,
		Channels: release.NewChannels(rdb, release.NewApps(rdb, builder.AppChecker{Toolchain: loadToolchain(t)})), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	b := openapi.Build{Id: "01JD3Y7Q9V6K2M8N4P5R7S9T1W", Version: "1.0.0", Image: &openapi.BuildImage{Digest: "sha256:" + strings.Repeat("ab", 32)}}
	c := candidate("gated", b, nil, release.Check{Name: "smoke", URL: hook.URL}, release.Check{Name: "bad", URL: hook.URL, Timeout: "soon"})
	for range 2 { // the dry run, then the promotion
		got := v.Verify(context.Background(), c)
		if len(got) != 2 || got[0].Gate != "check:smoke" || got[0].Status != release.GatePassed || got[0].CheckedAt == nil ||
			got[1].Gate != "check:bad" || got[1].Status != release.GateFailed || !strings.Contains(got[1].Detail, `timeout "soon"`) {
			t.Fatalf("Verify = %+v", got)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("the hook was called %d times for a dry run and a promotion, want 1", calls.Load())
	}
	if n := metricValue(t, reg, "slipway_gate_checks_total"); n != 1 {
		t.Errorf("slipway_gate_checks_total = %v, want 1", n)
	}

	// After a rotation both secrets sign; a hook that knows only the new one accepts.
	rot := secretOf(e.do("POST", "/v1/apps/gated/checks/secret", admin, ""))
	if rot.Secret == first.Secret || rot.PreviousSecretExpiresAt == nil {
		t.Errorf("rotated secret = %+v", rot)
	}
	secrets.Store([]string{rot.Secret})
	c.Channel.Gates.Checks = c.Channel.Gates.Checks[:1]
	c.Channel.Gates.Checks[0].Name = "smoke-2"
	if got := v.Verify(context.Background(), c); got[0].Status != release.GatePassed {
		t.Errorf("Verify after the rotation = %+v", got)
	}
	if got := secretOf(e.do("GET", "/v1/apps/gated/checks/secret", admin, "")); got.Secret != rot.Secret || got.PreviousSecretExpiresAt == nil {
		t.Errorf("GET after rotation = %+v", got)
	}
}
