package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// newSigningEnv is an API with authentication whose worker signs with a new key, which
// (with an older, rotated-out key after it) /v1/signing-keys serves.
func newSigningEnv(t *testing.T) (*env, *sign.Keys) {
	t.Helper()
	gen := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	s, err := sign.NewSigner(gen())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := sign.NewKeys(s, &gen().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, storetest.Redis(t), nil, func(d *api.Deps) { d.SigningKeys = keys.Public() }, api.WithAdminToken(adminToken))
	tc, goEnv := buildertest.Toolchain(t)
	w, err := builder.NewWorker(e.builds, e.blobs, tc, builder.WorkerOptions{DataDir: e.data, Go: goEnv,
		Visibility: 5 * time.Second, Signer: keys.Signer()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e, keys
}

// TestSigningKeys: the public keys are served to anyone, as a JWKS (signing key first)
// or as the current key's PEM; never a private key; a server without keys says 404.
func TestSigningKeys(t *testing.T) {
	e, keys := newSigningEnv(t)
	r := e.do("GET", "/v1/signing-keys", nil, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/signing-keys = %d %s", r.status, r.body)
	}
	got, err := sign.ParseJWKS(r.body)
	if err != nil || len(got) != 2 || got[0].ID != keys.Signer().KeyID() || !got[0].Key.Equal(keys.Public()[0].Key) ||
		!got[1].Key.Equal(keys.Public()[1].Key) {
		t.Errorf("GET /v1/signing-keys = %s (%v), want the signing key then the older one", r.body, err)
	}
	r = e.do("GET", "/v1/signing-keys", map[string]string{"Accept": "application/x-pem-file"}, "")
	pems, err := sign.ParsePublicPEM(r.body)
	if r.status != http.StatusOK || err != nil || len(pems) != 1 || !pems[0].Key.Equal(keys.Public()[0].Key) ||
		r.header.Get("Slipway-Key-Id") != keys.Signer().KeyID() {
		t.Errorf("GET /v1/signing-keys as PEM = %d %s (%v)", r.status, r.body, err)
	}
	for _, body := range [][]byte{r.body} {
		if bytes.Contains(body, []byte("PRIVATE")) || bytes.Contains(body, []byte(`"d"`)) {
			t.Errorf("a signing-keys answer holds a private key: %s", body)
		}
	}

	plain := newEnv(t, storetest.Redis(t))
	if r := plain.do("GET", "/v1/signing-keys", nil, ""); r.status != http.StatusNotFound {
		t.Errorf("GET /v1/signing-keys without keys = %d %s, want 404", r.status, r.body)
	}
}

// TestSignedBuildOverHTTP: a signed build's provenance and checksums.sig verify with the
// server's keys; cosign's tags resolve under the app; a private app's signatures are not
// served under another app's name, which answers as for a digest nobody stored.
func TestSignedBuildOverHTTP(t *testing.T) {
	e, keys := newSigningEnv(t)
	admin := bearer(adminToken)
	e.do("PUT", "/v1/apps/pub", admin, `{"platforms":["linux/amd64"],"public":true}`)
	e.do("PUT", "/v1/apps/priv", admin, `{"platforms":["linux/amd64","linux/arm64"]}`)
	src := buildertest.Module(t, "priv", map[string]string{"main.go": buildertest.HelloMain})
	r := e.do("POST", "/v1/apps/priv/builds?version=1.0.0", map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/gzip"}, string(src))
	if r.status != http.StatusAccepted {
		t.Fatalf("POST build = %d %s", r.status, r.body)
	}
	b := e.waitBuildAs("priv", r.build(t).Id, admin)
	if b.Status != openapi.BuildStatusSucceeded || b.Signing == nil || b.Signing.KeyId != keys.Signer().KeyID() {
		t.Fatalf("build = %s %+v, signing %+v", b.Status, b.Error, b.Signing)
	}
	path := "/v1/apps/priv/builds/" + b.Id

	prov := e.do("GET", path+"/provenance", admin, "")
	if prov.status != http.StatusOK || prov.header.Get("Content-Type") != "application/vnd.dsse.envelope.v1+json" {
		t.Fatalf("GET provenance = %d %s %s", prov.status, prov.header.Get("Content-Type"), prov.body)
	}
	stmt, _, err := sign.OpenEnvelope(keys.Public(), prov.body)
	if err != nil {
		t.Fatalf("the provenance does not verify: %v", err)
	}
	st, err := sign.ParseProvenance(stmt, b.Image.Digest)
	if err != nil || st.Predicate.BuildDefinition.ExternalParameters.SourceDigest != b.SourceDigest {
		t.Errorf("provenance = %+v, %v; want the build's source %s", st, err, b.SourceDigest)
	}
	sums := e.do("GET", path+"/checksums", admin, "")
	sig := e.do("GET", path+"/checksums.sig", admin, "")
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sig.body)))
	if _, err := sign.VerifyMessage(keys.Public(), sums.body, raw); sig.status != http.StatusOK || err != nil {
		t.Errorf("checksums.sig = %d %s: %v", sig.status, sig.body, err)
	}
	for _, p := range []string{path + "/provenance", path + "/checksums.sig"} {
		if r := e.do("GET", p, nil, ""); r.status != http.StatusUnauthorized {
			t.Errorf("GET %s without a token = %d, want 401", p, r.status)
		}
	}
	if r := e.do("GET", "/v1/apps/pub/builds/"+b.Id+"/provenance", admin, ""); r.status != http.StatusNotFound {
		t.Errorf("GET priv's provenance under pub = %d, want 404", r.status)
	}

	// cosign's tags, under the app.
	for tag, want := range map[string]string{
		sign.SignatureTag(b.Image.Digest):   b.Signing.Signature,
		sign.AttestationTag(b.Image.Digest): b.Signing.Attestation,
	} {
		r := e.do("GET", "/v2/priv/manifests/"+tag, admin, "")
		if r.status != http.StatusOK || r.header.Get("Docker-Content-Digest") != want {
			t.Errorf("GET /v2/priv/manifests/%s = %d %s, want %s", tag, r.status, r.header.Get("Docker-Content-Digest"), want)
		}
	}

	// Under pub's name: what a digest or tag nobody stored gets.
	nobody := "sha256:" + strings.Repeat("ab", 32)
	nobodyHex, privHex := strings.Repeat("ab", 32), strings.TrimPrefix(b.Image.Digest, "sha256:")
	answer := func(r response, hex string) string {
		return r.header.Get("Content-Type") + " " + strings.ReplaceAll(registryAnswer(r, "x"), hex, "<hex>")
	}
	for _, who := range []map[string]string{nil, bearer(e.token("pub-reader", []string{"read"}, []string{"pub"}))} {
		for _, suffix := range []string{".sig", ".att"} {
			got := e.do("GET", "/v2/pub/manifests/sha256-"+privHex+suffix, who, "")
			want := e.do("GET", "/v2/pub/manifests/sha256-"+nobodyHex+suffix, who, "")
			if got.status != http.StatusNotFound || answer(got, privHex) != answer(want, nobodyHex) {
				t.Errorf("GET /v2/pub/manifests/<priv's %s tag> = %s; want %s", suffix, answer(got, privHex), answer(want, nobodyHex))
			}
		}
		sigBlobs := []string{b.Signing.Signature, b.Signing.Attestation, b.Signing.Provenance}
		for _, d := range sigBlobs {
			for _, kind := range []string{"manifests", "blobs"} {
				got := e.do("GET", "/v2/pub/"+kind+"/"+d, who, "")
				want := e.do("GET", "/v2/pub/"+kind+"/"+nobody, who, "")
				if got.status != http.StatusNotFound ||
					strings.ReplaceAll(string(got.body), d, "") != strings.ReplaceAll(string(want.body), nobody, "") {
					t.Errorf("GET /v2/pub/%s/<priv's %s> = %d %s; want %d %s", kind, d, got.status, got.body, want.status, want.body)
				}
			}
		}
		refs := e.do("GET", "/v2/pub/referrers/"+b.Image.Digest, who, "")
		if refs.status != http.StatusOK || bytes.Contains(refs.body, []byte(b.Signing.Signature)) {
			t.Errorf("GET /v2/pub/referrers/<priv's index> = %d %s", refs.status, refs.body)
		}
	}
	// The private app's own tags need a token.
	if r := e.do("GET", "/v2/priv/manifests/"+sign.SignatureTag(b.Image.Digest), nil, ""); r.status != http.StatusUnauthorized {
		t.Errorf("GET priv's signature anonymously = %d, want 401", r.status)
	}
	// Builds recorded before links existed are linked on first use, signatures included.
	if err := e.rdb.Del(context.Background(), store.LinksKey("priv"), store.LinksCompleteKey("priv")).Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v2/priv/manifests/" + b.Signing.Attestation, "/v2/priv/blobs/" + b.Signing.Provenance} {
		if r := e.do("GET", p, admin, ""); r.status != http.StatusOK {
			t.Errorf("GET %s after priv's links were lost = %d, want 200 (relinked)", p, r.status)
		}
	}
	// The tags list has cosign's tags, under the app only.
	for app, want := range map[string]bool{"priv": true, "pub": false} {
		r := e.do("GET", "/v2/"+app+"/tags/list", admin, "")
		for _, tag := range []string{sign.SignatureTag(b.Image.Digest), sign.AttestationTag(b.Image.Digest)} {
			if got := bytes.Contains(r.body, []byte(`"`+tag+`"`)); got != want {
				t.Errorf("GET /v2/%s/tags/list = %s; has %s: %v, want %v", app, r.body, tag, got, want)
			}
		}
	}
	// The referrers of the index list the signature and the attestation.
	refs := e.do("GET", "/v2/priv/referrers/"+b.Image.Digest, admin, "")
	for _, d := range []string{b.Signing.Signature, b.Signing.Attestation} {
		if !bytes.Contains(refs.body, []byte(d)) {
			t.Errorf("referrers of priv's index %s lack %s", refs.body, d)
		}
	}
}
