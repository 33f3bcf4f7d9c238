package sign

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadKeys reads PKCS#8 and SEC1 keys, the first signing; generates a missing first
// key only when asked; refuses other curves, public keys and garbage.
func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k1)
	sec1, _ := x509.MarshalECPrivateKey(k2)
	der384, _ := x509.MarshalPKCS8PrivateKey(p384)
	pub, _ := x509.MarshalPKIXPublicKey(&k1.PublicKey)
	a := writePEM(t, dir, "a.pem", "PRIVATE KEY", pkcs8)
	b := writePEM(t, dir, "b.pem", "EC PRIVATE KEY", sec1)

	keys, err := LoadKeys([]string{a, b}, false)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := KeyID(&k1.PublicKey)
	id2, _ := KeyID(&k2.PublicKey)
	if keys.Signer().KeyID() != id1 || len(keys.Public()) != 2 || keys.Public()[1].ID != id2 {
		t.Errorf("LoadKeys(a, b) signs with %s, verifies %v; want %s then %s", keys.Signer().KeyID(), keys.Public(), id1, id2)
	}
	sig, err := keys.Signer().SignMessage(context.Background(), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := VerifyMessage(keys.Public(), []byte("hello"), sig); err != nil || id != id1 {
		t.Errorf("VerifyMessage = %s, %v; want %s", id, err, id1)
	}
	if _, err := VerifyMessage(keys.Public(), []byte("hellO"), sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifyMessage(changed message) = %v, want ErrBadSignature", err)
	}

	for _, tc := range []struct {
		name  string
		paths []string
		gen   bool
		want  string
	}{
		{"none", nil, false, "no signing key"},
		{"missing", []string{filepath.Join(dir, "missing.pem")}, false, "no such file"},
		{"missing older key", []string{a, filepath.Join(dir, "missing.pem")}, true, "no such file"},
		{"P-384", []string{writePEM(t, dir, "p384.pem", "PRIVATE KEY", der384)}, false, "not ECDSA P-256"},
		{"public key", []string{writePEM(t, dir, "pub.pem", "PUBLIC KEY", pub)}, false, "not a private key"},
		{"garbage", []string{writePEM(t, dir, "bad.pem", "PRIVATE KEY", []byte("nope"))}, false, "does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKeys(tc.paths, tc.gen)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadKeys(%v) = %v, want an error saying %q", tc.paths, err, tc.want)
			}
		})
	}

	gen := filepath.Join(dir, "secret", "signing.pem")
	first, err := LoadKeys([]string{gen, a}, true)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(gen)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("generated key file: %v, mode %v; want 0600", err, st.Mode())
	}
	again, err := LoadKeys([]string{gen}, true)
	if err != nil || again.Signer().KeyID() != first.Signer().KeyID() {
		t.Errorf("a generated key was not kept: %v", err)
	}
	raw, _ := os.ReadFile(gen)
	if _, err := ParsePrivateKey(raw); err != nil || !strings.Contains(string(raw), "BEGIN PRIVATE KEY") {
		t.Errorf("generated key is not PKCS#8 PEM: %v", err)
	}
}

// TestKeyFormats: the JWK thumbprint is RFC 7638's (its appendix A.1 has no P-256
// example, so it is checked by hand here), and JWKS and PEM round-trip.
func TestKeyFormats(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := NewSigner(k)
	keys, _ := NewKeys(s)
	set, _ := json.Marshal(map[string]any{"keys": JWKS(keys.Public())})
	back, err := ParseJWKS(set)
	if err != nil || len(back) != 1 || back[0].ID != s.KeyID() || !back[0].Key.Equal(&k.PublicKey) {
		t.Errorf("ParseJWKS(JWKS()) = %v, %v", back, err)
	}
	if strings.Contains(string(set), `"d"`) {
		t.Errorf("JWKS holds a private member: %s", set)
	}
	p, _ := PublicPEM(&k.PublicKey)
	pems, err := ParsePublicPEM(p)
	if err != nil || len(pems) != 1 || pems[0].ID != s.KeyID() {
		t.Errorf("ParsePublicPEM(PublicPEM()) = %v, %v", pems, err)
	}
	j, _ := jwk(&k.PublicKey)
	if len(s.KeyID()) != 43 || !strings.Contains(string(set), j.X) {
		t.Errorf("KeyID = %q, want 43 base64url characters", s.KeyID())
	}
}

// TestEnvelope: a DSSE envelope verifies with its key; a changed payload, payload type
// or signature does not.
func TestEnvelope(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := NewSigner(k)
	keys, _ := NewKeys(s)
	stmt, err := ProvenanceStatement("app", "sha256:"+strings.Repeat("0", 64), Provenance{
		RunDetails: RunDetails{Metadata: RunMetadata{StartedOn: time.Unix(1, 0), FinishedOn: time.Unix(2, 0)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := ProvenanceStatement("app", "sha256:"+strings.Repeat("0", 64), Provenance{
		RunDetails: RunDetails{Metadata: RunMetadata{StartedOn: time.Unix(1, 0).In(time.FixedZone("x", 3600)), FinishedOn: time.Unix(2, 0)}},
	})
	if string(stmt) != string(again) {
		t.Errorf("the same statement encoded twice differs:\n%s\n%s", stmt, again)
	}
	env, err := SignEnvelope(context.Background(), s, InTotoPayloadType, stmt)
	if err != nil {
		t.Fatal(err)
	}
	if got, id, err := OpenEnvelope(keys.Public(), env); err != nil || string(got) != string(stmt) || id != s.KeyID() {
		t.Fatalf("OpenEnvelope = %s, %s, %v", got, id, err)
	}
	if _, err := ParseProvenance(stmt, "sha256:"+strings.Repeat("1", 64)); !errors.Is(err, ErrMismatch) {
		t.Errorf("ParseProvenance(another digest) = %v, want ErrMismatch", err)
	}
	tamper := func(f func(*Envelope)) []byte {
		var e Envelope
		_ = json.Unmarshal(env, &e)
		f(&e)
		b, _ := json.Marshal(e)
		return b
	}
	for name, bad := range map[string][]byte{
		"payload": tamper(func(e *Envelope) {
			e.Payload = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(stmt), `"app"`, `"evil"`, 1)))
		}),
		"payload type": tamper(func(e *Envelope) { e.PayloadType = "text/plain" }),
		"signature":    tamper(func(e *Envelope) { e.Signatures[0].Sig = base64.StdEncoding.EncodeToString([]byte("x")) }),
	} {
		if _, _, err := OpenEnvelope(keys.Public(), bad); !errors.Is(err, ErrBadSignature) {
			t.Errorf("OpenEnvelope(changed %s) = %v, want ErrBadSignature", name, err)
		}
	}
}

// TestImagePayload: the payload is cosign's simple signing, the same bytes each time,
// and verifies only for its digest.
func TestImagePayload(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	p := ImagePayload("hello", d)
	want := `{"critical":{"identity":{"docker-reference":"hello"},"image":{"docker-manifest-digest":"` + d +
		`"},"type":"cosign container image signature"},"optional":null}`
	if string(p) != want {
		t.Errorf("ImagePayload = %s\nwant %s", p, want)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := NewSigner(k)
	keys, _ := NewKeys(s)
	sig, _ := s.SignMessage(context.Background(), p)
	if _, err := VerifyImagePayload(keys.Public(), p, sig, d); err != nil {
		t.Error(err)
	}
	if _, err := VerifyImagePayload(keys.Public(), p, sig, "sha256:"+strings.Repeat("b", 64)); !errors.Is(err, ErrMismatch) {
		t.Errorf("VerifyImagePayload(another digest) = %v, want ErrMismatch", err)
	}
}

func TestParseCosignTag(t *testing.T) {
	hex := strings.Repeat("0f", 32)
	for _, tc := range []struct {
		tag, digest, suffix string
		ok                  bool
	}{
		{"sha256-" + hex + ".sig", "sha256:" + hex, "sig", true},
		{"sha256-" + hex + ".att", "sha256:" + hex, "att", true},
		{"sha256-" + hex + ".sbom", "", "", false},
		{"sha256-" + strings.ToUpper(hex) + ".sig", "", "", false},
		{"sha256-" + hex[:10] + ".sig", "", "", false},
		{"sha512-" + hex + ".sig", "", "", false},
		{"1.0.0", "", "", false},
	} {
		d, s, ok := ParseCosignTag(tc.tag)
		if d != tc.digest || s != tc.suffix || ok != tc.ok {
			t.Errorf("ParseCosignTag(%q) = %q, %q, %v; want %q, %q, %v", tc.tag, d, s, ok, tc.digest, tc.suffix, tc.ok)
		}
	}
	if got := SignatureTag("sha256:" + hex); got != "sha256-"+hex+".sig" {
		t.Errorf("SignatureTag = %s", got)
	}
}
