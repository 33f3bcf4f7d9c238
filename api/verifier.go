package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/builder/vulns"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/webhook"
)

// ErrNoVulnDB means no vulnerability database is configured, so nothing can be scanned.
var ErrNoVulnDB = errors.New("no vulnerability database is configured (SLIPWAY_VULN_DB)")

// The gate names of the require gates.
const (
	GateSigned     = "signed"
	GateProvenance = "provenance"
	GateVulns      = "vulns"
)

// maxSignatureBlob bounds a signature manifest or payload read from the blob store.
const maxSignatureBlob = 4 << 20

// VerifierDeps are what a Verifier reads.
type VerifierDeps struct {
	// Builds finds a release's build; *builder.Builds implements it.
	Builds interface {
		Get(ctx context.Context, app, id string) (builder.Build, error)
	}
	// Blobs holds the builds' signatures and binaries; every read is checked against its
	// digest.
	Blobs store.Blobs
	// Channels, when set, says which release a channel has before the move, for the
	// check requests' current; *release.Channels implements it.
	Channels interface {
		Get(ctx context.Context, app, name string) (release.ChannelState, error)
	}
	// Checks, when set, calls the check gates' hooks; without it every check fails.
	Checks *webhook.Checker
	// Vulns, when set, scans the binaries for the vulns gate; without it that gate fails.
	Vulns *vulns.Scanner
	// SigningKeys are the keys the server trusts now: the signed and provenance gates
	// pass only for a signature by one of them.
	SigningKeys []sign.PublicKey
	// Metrics, when set, gets slipway_gate_checks_total{result} and
	// slipway_vuln_scans_total.
	Metrics prometheus.Registerer
	// Log, when set, gets the scans that fail (the gate says only that they did).
	Log *slog.Logger
}

// Verifier evaluates the gates that need more than Redis: checks (HTTP hooks), and the
// require gates signed, provenance and vulns, from the release's build record.
type Verifier struct {
	d      VerifierDeps
	blobs  store.Blobs
	checks *prometheus.CounterVec
	now    func() time.Time
}

var _ release.Verifier = (*Verifier)(nil)

// NewVerifier returns the Verifier of d.
func NewVerifier(d VerifierDeps) (*Verifier, error) {
	if d.Builds == nil || d.Blobs == nil {
		return nil, errors.New("api: VerifierDeps needs Builds and Blobs")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{d: d, blobs: store.Verified(d.Blobs), now: time.Now}
	v.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "slipway_gate_checks_total",
		Help: "Check gate evaluations that called their hook, by result (passed, failed); results reused within their freshness are not counted.",
	}, []string{"result"})
	if d.Metrics != nil {
		for _, c := range v.Collectors() {
			if err := d.Metrics.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// Collectors are the Verifier's metrics, for a registry VerifierDeps.Metrics did not name:
// slipway_gate_checks_total{result}, and slipway_vuln_scans_total when it scans.
func (v *Verifier) Collectors() []prometheus.Collector {
	out := []prometheus.Collector{v.checks}
	if s := v.d.Vulns; s != nil {
		out = append(out, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "slipway_vuln_scans_total",
			Help: "Binaries scanned for known vulnerabilities (not the scans read back from Redis).",
		}, func() float64 { return float64(s.Scans()) }))
	}
	return out
}

// Verify implements release.Verifier: the states of c's channel's checks (in their
// order), then of its require gates signed, provenance and vulns (those it asks for).
// The checks and the require gates are evaluated at the same time.
func (v *Verifier) Verify(ctx context.Context, c release.Candidate) []release.GateState {
	g := c.Channel.Gates
	if g == nil {
		return nil
	}
	var checks, reqs []release.GateState
	var wg sync.WaitGroup
	if len(g.Checks) > 0 {
		wg.Go(func() { checks = v.runChecks(ctx, c) })
	}
	if r := g.Require; r != nil && (r.Signed || r.Provenance || r.Vulns != "") {
		wg.Go(func() { reqs = v.require(ctx, c, *r) })
	}
	wg.Wait()
	return append(checks, reqs...)
}

func (v *Verifier) state(gate, status, detail string) release.GateState {
	at := v.now().UTC()
	return release.GateState{Gate: gate, Status: status, Detail: detail, CheckedAt: &at}
}

// runChecks calls the channel's check hooks.
func (v *Verifier) runChecks(ctx context.Context, c release.Candidate) []release.GateState {
	checks := c.Channel.Gates.Checks
	out := make([]release.GateState, len(checks))
	fail := func(i int, detail string) { out[i] = v.state("check:"+checks[i].Name, release.GateFailed, detail) }
	if v.d.Checks == nil {
		for i := range checks {
			fail(i, "this server calls no check hooks")
		}
		return out
	}
	cand := webhook.Candidate{App: c.App.Name, Channel: c.Channel.Name, Version: c.Release.Version,
		ImageDigest: c.Release.ImageDigest, BuildID: c.Release.BuildID}
	if v.d.Channels != nil {
		st, err := v.d.Channels.Get(ctx, c.App.Name, c.Channel.Name)
		if err != nil {
			for i := range checks {
				fail(i, "the hook was not called: the channel's current release could not be read")
			}
			return out
		}
		if st.Release != "" {
			cand.Current = &webhook.CurrentRelease{Version: st.Release, ImageDigest: st.ImageDigest}
		}
	}
	var specs []webhook.CheckSpec
	var index []int // specs[j] is checks[index[j]]
	for i, ch := range checks {
		timeout, err1 := parseOptionalDuration(ch.Timeout)
		deadline, err2 := parseOptionalDuration(ch.Deadline)
		switch {
		case err1 != nil:
			fail(i, fmt.Sprintf("timeout %q is not a duration such as 10s", ch.Timeout))
		case err2 != nil:
			fail(i, fmt.Sprintf("deadline %q is not a duration such as 1m", ch.Deadline))
		default:
			specs = append(specs, webhook.CheckSpec{Name: ch.Name, URL: ch.URL, Timeout: timeout, Deadline: deadline})
			index = append(index, i)
		}
	}
	for j, r := range v.d.Checks.Run(ctx, cand, specs) {
		at := r.At
		out[index[j]] = release.GateState{Gate: "check:" + r.Name, Status: r.Status, Detail: r.Detail, CheckedAt: &at}
		if !r.Cached {
			v.checks.WithLabelValues(r.Status).Inc()
		}
	}
	return out
}

func parseOptionalDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d <= 0 {
		err = errors.New("not positive")
	}
	return d, err
}

// require evaluates the require gates r asks for from the release's build.
func (v *Verifier) require(ctx context.Context, c release.Candidate, r release.Require) []release.GateState {
	var gates []string
	if r.Signed {
		gates = append(gates, GateSigned)
	}
	if r.Provenance {
		gates = append(gates, GateProvenance)
	}
	if r.Vulns != "" {
		gates = append(gates, GateVulns)
	}
	b, err := v.d.Builds.Get(ctx, c.App.Name, c.Release.BuildID)
	if err != nil {
		detail := fmt.Sprintf("the release's build %s could not be read", c.Release.BuildID)
		if errors.Is(err, builder.ErrNotFound) {
			detail = fmt.Sprintf("the release's build %s no longer exists", c.Release.BuildID)
		}
		out := make([]release.GateState, len(gates))
		for i, g := range gates {
			out[i] = v.state(g, release.GateFailed, detail)
		}
		return out
	}
	out := make([]release.GateState, len(gates))
	var wg sync.WaitGroup
	for i, g := range gates {
		wg.Go(func() {
			switch g {
			case GateSigned:
				out[i] = v.signed(ctx, c, b)
			case GateProvenance:
				out[i] = v.provenance(ctx, c, b)
			case GateVulns:
				out[i] = v.vulnsGate(ctx, c, b, r.Vulns)
			}
		})
	}
	wg.Wait()
	return out
}

// unsigned says why a build has no signature to check, or "" when it has one.
func (v *Verifier) unsigned(b builder.Build) string {
	switch {
	case len(v.d.SigningKeys) == 0:
		return "this server has no signing key (SLIPWAY_SIGNING_KEYS), so it can check no signature"
	case b.Signing == nil:
		return fmt.Sprintf("build %s was made when the server had no signing key, so it is not signed; rebuild it", b.ID)
	}
	return ""
}

func (v *Verifier) readBlob(ctx context.Context, digest string) ([]byte, error) {
	d, err := store.ParseDigest(digest)
	if err != nil {
		return nil, err
	}
	rc, _, err := v.blobs.Get(ctx, store.BlobKey(d), 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, maxSignatureBlob))
}

// signed passes when the release's image has a signature, by a key the server trusts
// now, over the simple-signing payload of that image.
func (v *Verifier) signed(ctx context.Context, c release.Candidate, b builder.Build) release.GateState {
	if why := v.unsigned(b); why != "" {
		return v.state(GateSigned, release.GateFailed, why)
	}
	manifest, err := v.readBlob(ctx, b.Signing.Signature)
	if err != nil {
		return v.state(GateSigned, release.GateFailed, fmt.Sprintf("the signature of build %s could not be read from the blob store", b.ID))
	}
	sigs, err := sign.SignaturesOf(manifest)
	if err != nil {
		return v.state(GateSigned, release.GateFailed, fmt.Sprintf("the signature manifest of build %s is not cosign's: %v", b.ID, err))
	}
	for _, s := range sigs {
		payload, err := v.readBlob(ctx, s.Payload)
		if err != nil {
			continue
		}
		if id, err := sign.VerifyImagePayload(v.d.SigningKeys, payload, s.Sig, c.Release.ImageDigest); err == nil {
			return v.state(GateSigned, release.GatePassed, fmt.Sprintf("the image %s is signed by key %s", c.Release.ImageDigest, id))
		}
	}
	return v.state(GateSigned, release.GateFailed, fmt.Sprintf(
		"the image %s has no signature by a key this server trusts now (build %s was signed by key %s); rebuild it to sign it with the current key",
		c.Release.ImageDigest, b.ID, b.Signing.KeyID))
}

// provenance passes when the build has a SLSA provenance attestation about the release's
// image, signed by a key the server trusts now.
func (v *Verifier) provenance(ctx context.Context, c release.Candidate, b builder.Build) release.GateState {
	if why := v.unsigned(b); why != "" {
		return v.state(GateProvenance, release.GateFailed, strings.Replace(why, "is not signed", "has no provenance", 1))
	}
	if b.Signing.Provenance == "" || b.Signing.Attestation == "" {
		return v.state(GateProvenance, release.GateFailed, fmt.Sprintf("build %s has no provenance attestation; rebuild it", b.ID))
	}
	env, err := v.readBlob(ctx, b.Signing.Provenance)
	if err != nil {
		return v.state(GateProvenance, release.GateFailed, fmt.Sprintf("the provenance of build %s could not be read from the blob store", b.ID))
	}
	payload, id, err := sign.OpenEnvelope(v.d.SigningKeys, env)
	if err != nil {
		return v.state(GateProvenance, release.GateFailed, fmt.Sprintf(
			"the provenance of build %s is not signed by a key this server trusts now (it was signed by key %s); rebuild it",
			b.ID, b.Signing.KeyID))
	}
	if _, err := sign.ParseProvenance(payload, c.Release.ImageDigest); err != nil {
		return v.state(GateProvenance, release.GateFailed, fmt.Sprintf("the provenance of build %s does not describe the image %s: %v",
			b.ID, c.Release.ImageDigest, err))
	}
	return v.state(GateProvenance, release.GatePassed, fmt.Sprintf("SLSA provenance of %s, signed by key %s", c.Release.ImageDigest, id))
}

// vulnsGate passes for "none" when the binaries hold no known vulnerable code, and for
// "no-critical" when none of what they hold is critical (vulns.IsCritical).
func (v *Verifier) vulnsGate(ctx context.Context, c release.Candidate, b builder.Build, want string) release.GateState {
	if want != "none" && want != "no-critical" {
		return v.state(GateVulns, release.GateFailed, fmt.Sprintf("vulns %q is not none or no-critical", want))
	}
	found, err := v.scan(ctx, b)
	switch {
	case errors.Is(err, ErrNoVulnDB):
		return v.state(GateVulns, release.GateFailed, "this server has no vulnerability database (SLIPWAY_VULN_DB), so it cannot scan the binaries")
	case err != nil:
		v.d.Log.WarnContext(ctx, "scanning a build for vulnerabilities", "app", b.App, "build", b.ID, "err", err)
		return v.state(GateVulns, release.GateFailed, fmt.Sprintf("the binaries of build %s could not be scanned", b.ID))
	}
	var critical []vulns.Finding
	for _, f := range found {
		if f.Critical {
			critical = append(critical, f)
		}
	}
	switch {
	case want == "none" && len(found) > 0:
		return v.state(GateVulns, release.GateFailed, fmt.Sprintf("%s in the binaries: %s", count(len(found), "known vulnerability", "known vulnerabilities"), describeFindings(found)))
	case want == "no-critical" && len(critical) > 0:
		return v.state(GateVulns, release.GateFailed, fmt.Sprintf("%s in the binaries: %s", count(len(critical), "critical vulnerability", "critical vulnerabilities"), describeFindings(critical)))
	case len(found) > 0:
		return v.state(GateVulns, release.GatePassed, fmt.Sprintf("no critical vulnerability; %s: %s", count(len(found), "other", "others"), describeFindings(found)))
	}
	return v.state(GateVulns, release.GatePassed, fmt.Sprintf("no known vulnerability in the binaries of %s", strings.Join(b.Platforms, ", ")))
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// describeFindings names up to 5 findings with what each is in.
func describeFindings(fs []vulns.Finding) string {
	var parts []string
	for i, f := range fs {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(fs)-5))
			break
		}
		p := f.ID
		if f.Score > 0 {
			p += fmt.Sprintf(" (CVSS %.1f)", f.Score)
		}
		if len(f.Symbols) > 0 {
			p += " in " + f.Symbols[0]
		}
		if f.FixedVersion != "" {
			p += ", fixed in " + f.Module + " " + f.FixedVersion
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

// Vulns returns the known vulnerabilities whose code the binaries of app's build hold,
// each once (its symbols from every platform), in id order. It returns an error wrapping
// ErrNoVulnDB when no database is configured.
func (v *Verifier) Vulns(ctx context.Context, app, buildID string) ([]vulns.Finding, error) {
	b, err := v.d.Builds.Get(ctx, app, buildID)
	if err != nil {
		return nil, err
	}
	return v.scan(ctx, b)
}

// VulnIDs lists the ids of the vulnerabilities Vulns finds in a build; it is the
// VulnLister diffs compare with.
func (v *Verifier) VulnIDs(ctx context.Context, app, buildID string) ([]string, error) {
	found, err := v.Vulns(ctx, app, buildID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(found))
	for i, f := range found {
		ids[i] = f.ID
	}
	return ids, nil
}

// scan scans every binary of b.
func (v *Verifier) scan(ctx context.Context, b builder.Build) ([]vulns.Finding, error) {
	if v.d.Vulns == nil {
		return nil, ErrNoVulnDB
	}
	byID := map[string]*vulns.Finding{}
	for _, a := range b.Artifacts {
		d, err := store.ParseDigest(a.Digest)
		if err != nil {
			return nil, fmt.Errorf("artifact %s: %w", a.Platform, err)
		}
		found, err := v.d.Vulns.Scan(ctx, b.App, d, func(ctx context.Context) (io.ReadCloser, error) {
			return builder.OpenArtifact(ctx, v.blobs, b.App, a)
		})
		if err != nil {
			return nil, fmt.Errorf("scanning the %s binary of build %s: %w", a.Platform, b.ID, err)
		}
		for _, f := range found {
			if have, ok := byID[f.ID]; ok {
				for _, s := range f.Symbols {
					if !slices.Contains(have.Symbols, s) {
						have.Symbols = append(have.Symbols, s)
					}
				}
				continue
			}
			f.Symbols = slices.Clone(f.Symbols)
			byID[f.ID] = &f
		}
	}
	out := make([]vulns.Finding, 0, len(byID))
	for _, f := range byID {
		slices.Sort(f.Symbols)
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b vulns.Finding) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
