package builder_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/store"
)

// readBlob reads a stored blob whole.
func readBlob(t *testing.T, blobs store.Blobs, d string) []byte {
	t.Helper()
	rc, _, err := blobs.Get(context.Background(), store.BlobKey(store.Digest(d)), 0, -1)
	if err != nil {
		t.Fatalf("reading %s: %v", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signedResult is what one signed build produced.
type signedResult struct {
	build      builder.Build
	payload    []byte // the simple-signing payload
	statement  sign.Statement
	checksums  []byte
	provenance []byte // the envelope
}

// TestSignedBuildsReproducible builds the same source in two separate systems, each
// with a key of its own: the signed payloads (the image's simple-signing payload,
// SHA256SUMS, the provenance's build definition) are the same bytes, each system's
// signatures verify with its key only, and the provenance says what was built from what.
func TestSignedBuildsReproducible(t *testing.T) {
	var results []signedResult
	var keys [][]sign.PublicKey
	for range 2 {
		r := newRig(t, fsBlobs(t))
		pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s, err := sign.NewSigner(pk)
		if err != nil {
			t.Fatal(err)
		}
		k, _ := sign.NewKeys(s)
		keys = append(keys, k.Public())
		r.worker(builder.WorkerOptions{Signer: s, Builder: builder.BuilderID{ID: "slipway:test", Version: "v0.0.0-test"}})
		b, _, err := r.submit("same", builder.Request{Version: "1.0.0", Commit: "abc123", SourceDateEpoch: 1700000000,
			Platforms: []string{"linux/amd64", "linux/arm64"}},
			buildertest.Module(t, "same", map[string]string{"main.go": buildertest.HelloMain}))
		if err != nil {
			t.Fatal(err)
		}
		b = r.wait("same", b.ID, 3*time.Minute)
		if b.Status != builder.StatusSucceeded || b.Signing == nil {
			t.Fatalf("build = %s %+v, signing %+v", b.Status, b.Error, b.Signing)
		}
		if b.Signing.KeyID != s.KeyID() {
			t.Errorf("Signing.KeyID = %s, want %s", b.Signing.KeyID, s.KeyID())
		}
		var res signedResult
		res.build = b
		sigs, err := sign.SignaturesOf(readBlob(t, r.blobs, b.Signing.Signature))
		if err != nil || len(sigs) != 1 {
			t.Fatalf("signature manifest: %d signatures, %v", len(sigs), err)
		}
		res.payload = readBlob(t, r.blobs, sigs[0].Payload)
		if _, err := sign.VerifyImagePayload(k.Public(), res.payload, sigs[0].Sig, b.Image.Digest); err != nil {
			t.Errorf("the image signature does not verify: %v", err)
		}
		res.provenance = readBlob(t, r.blobs, b.Signing.Provenance)
		stmt, _, err := sign.OpenEnvelope(k.Public(), res.provenance)
		if err != nil {
			t.Fatalf("the provenance does not verify: %v", err)
		}
		st, err := sign.ParseProvenance(stmt, b.Image.Digest)
		if err != nil {
			t.Fatal(err)
		}
		res.statement = *st
		res.checksums = builder.Checksums(b)
		sig, _ := base64.StdEncoding.DecodeString(b.Signing.Checksums)
		if _, err := sign.VerifyMessage(k.Public(), res.checksums, sig); err != nil {
			t.Errorf("the SHA256SUMS signature does not verify: %v", err)
		}
		// The attestation manifest holds the envelope; both refer to the index.
		att := readBlob(t, r.blobs, b.Signing.Attestation)
		if !bytes.Contains(att, []byte(b.Signing.Provenance)) || !bytes.Contains(att, []byte(b.Image.Digest)) {
			t.Errorf("attestation manifest %s does not hold the envelope and the index as subject", att)
		}
		refs, err := r.builds.Referrers(context.Background(), "same", store.Digest(b.Image.Digest), "")
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ref := range refs {
			types = append(types, ref.ArtifactType)
		}
		for _, want := range []string{sign.SignatureArtifactType, sign.InTotoPayloadType} {
			if !strings.Contains(strings.Join(types, " "), want) {
				t.Errorf("referrers of the index are %v, want one of type %s", types, want)
			}
		}
		results = append(results, res)
	}

	a, b := results[0], results[1]
	if sign.Digest(a.payload) != sign.Digest(b.payload) {
		t.Errorf("image payloads differ:\n%s\n%s", a.payload, b.payload)
	}
	if sign.Digest(a.checksums) != sign.Digest(b.checksums) {
		t.Errorf("SHA256SUMS differ:\n%s\n%s", a.checksums, b.checksums)
	}
	defA, _ := json.Marshal(a.statement.Predicate.BuildDefinition)
	defB, _ := json.Marshal(b.statement.Predicate.BuildDefinition)
	if !bytes.Equal(defA, defB) {
		t.Errorf("build definitions differ:\n%s\n%s", defA, defB)
	}
	// Each system's signatures verify with its key, not the other's.
	if _, _, err := sign.OpenEnvelope(keys[1], a.provenance); err == nil {
		t.Error("the first system's provenance verifies with the second system's key")
	}

	st, bld := a.statement, a.build
	p := st.Predicate.BuildDefinition.ExternalParameters
	if p.SourceDigest != bld.SourceDigest || p.Version != "1.0.0" || p.Commit != "abc123" ||
		strings.Join(p.Platforms, ",") != "linux/amd64,linux/arm64" || p.Ldflags != bld.Ldflags || p.App != "same" {
		t.Errorf("external parameters = %+v, build %+v", p, bld)
	}
	var haveGo, haveBase, haveMain bool
	for _, d := range st.Predicate.BuildDefinition.ResolvedDependencies {
		haveGo = haveGo || (d.Name == "go" && strings.HasSuffix(d.URI, "@"+bld.GoVersion))
		haveBase = haveBase || (d.Name == "base" && d.Digest["sha256"] != "")
		haveMain = haveMain || d.Name == "example.com/same"
	}
	if !haveGo || !haveBase || !haveMain {
		t.Errorf("resolved dependencies %+v lack the toolchain (%v), the base digest (%v) or the main module (%v)",
			st.Predicate.BuildDefinition.ResolvedDependencies, haveGo, haveBase, haveMain)
	}
	rd := st.Predicate.RunDetails
	if rd.Builder.ID != "slipway:test" || rd.Builder.Version["slipway"] != "v0.0.0-test" || rd.Metadata.InvocationID != bld.ID ||
		rd.Metadata.StartedOn.IsZero() || rd.Metadata.FinishedOn.Before(rd.Metadata.StartedOn) {
		t.Errorf("run details = %+v", rd)
	}
	if st.Subject[0].Name != "same" || "sha256:"+st.Subject[0].Digest["sha256"] != bld.Image.Digest {
		t.Errorf("subject = %+v, want the index %s", st.Subject, bld.Image.Digest)
	}
}
