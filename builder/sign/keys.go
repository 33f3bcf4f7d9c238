package sign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Signer makes signatures with a private key it may keep elsewhere: in this process
// (a key file), or in a KMS. sigstore's signature package has KMS signers for AWS, GCP,
// Azure and Vault; an adapter of its SignerVerifier to this interface is all a KMS key
// needs.
type Signer interface {
	// KeyID names the key: the JWK thumbprint (RFC 7638) of its public key.
	KeyID() string
	// PublicKey is the key that verifies the signatures (an *ecdsa.PublicKey on P-256).
	PublicKey() crypto.PublicKey
	// SignMessage returns the ASN.1 DER ECDSA signature over the SHA-256 of msg, as
	// cosign makes and verifies them.
	SignMessage(ctx context.Context, msg []byte) ([]byte, error)
}

// PublicKey is a key that verifies slipway's signatures, with its id.
type PublicKey struct {
	ID  string
	Key *ecdsa.PublicKey
}

// Keys are the signing keys of a server: the first signs, every one verifies. The
// private keys stay in their Signers; nothing here writes them anywhere.
type Keys struct {
	signer Signer
	public []PublicKey
}

// NewKeys returns the keys with s signing and verifying, and the public keys of
// earlier keys (rotated out) verifying only.
func NewKeys(s Signer, older ...*ecdsa.PublicKey) (*Keys, error) {
	pk, ok := s.PublicKey().(*ecdsa.PublicKey)
	if !ok || pk.Curve != elliptic.P256() {
		return nil, errors.New("signing key is not ECDSA P-256")
	}
	k := &Keys{signer: s, public: []PublicKey{{ID: s.KeyID(), Key: pk}}}
	for _, o := range older {
		id, err := KeyID(o)
		if err != nil {
			return nil, err
		}
		k.public = append(k.public, PublicKey{ID: id, Key: o})
	}
	return k, nil
}

// Signer is the key that signs.
func (k *Keys) Signer() Signer { return k.signer }

// Public returns every verifying key, the signing key's first.
func (k *Keys) Public() []PublicKey { return append([]PublicKey(nil), k.public...) }

// fileSigner is an ECDSA P-256 key held in this process.
type fileSigner struct {
	key *ecdsa.PrivateKey
	id  string
}

var _ Signer = (*fileSigner)(nil)

func (f *fileSigner) KeyID() string               { return f.id }
func (f *fileSigner) PublicKey() crypto.PublicKey { return &f.key.PublicKey }

func (f *fileSigner) SignMessage(_ context.Context, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	return ecdsa.SignASN1(rand.Reader, f.key, h[:])
}

// NewSigner returns a Signer of an ECDSA P-256 private key.
func NewSigner(key *ecdsa.PrivateKey) (Signer, error) {
	if key.Curve != elliptic.P256() {
		return nil, errors.New("signing key is not ECDSA P-256")
	}
	id, err := KeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &fileSigner{key: key, id: id}, nil
}

// LoadKeys reads PEM private keys (PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY", ECDSA
// P-256) from paths: the first signs, the others verify only. With generate, a first
// path that does not exist is made: a new key written there (0600, PKCS#8 PEM, the
// form a Kubernetes secret holds as is).
func LoadKeys(paths []string, generate bool) (*Keys, error) {
	if len(paths) == 0 {
		return nil, ErrNoKeys
	}
	var signer Signer
	var older []*ecdsa.PublicKey
	for i, p := range paths {
		key, err := readKey(p)
		if i == 0 && generate && errors.Is(err, fs.ErrNotExist) {
			key, err = generateKey(p)
		}
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if signer, err = NewSigner(key); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			continue
		}
		older = append(older, &key.PublicKey)
	}
	return NewKeys(signer, older...)
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	key, err := ParsePrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return key, nil
}

// ParsePrivateKey reads an ECDSA P-256 private key from PEM: PKCS#8 or SEC1.
func ParsePrivateKey(raw []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key (want PRIVATE KEY or EC PRIVATE KEY; an encrypted key must be decrypted first)", block.Type)
	}
	if err != nil {
		return nil, errors.New("the private key does not parse")
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("the private key is not ECDSA P-256")
	}
	return ec, nil
}

// generateKey makes a new P-256 key and writes it to path, failing if path exists (so
// two processes starting at once cannot both write it: the loser reads the winner's).
func generateKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the signing key's directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("writing a new signing key: %w", err)
	}
	err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("writing a new signing key: %w", err)
	}
	return key, nil
}

// KeyID is the JWK thumbprint (RFC 7638, SHA-256, base64url) of a P-256 public key.
func KeyID(pk *ecdsa.PublicKey) (string, error) {
	j, err := jwk(pk)
	if err != nil {
		return "", err
	}
	// The members in lexical order, no white space: RFC 7638 section 3.
	canon := fmt.Sprintf(`{"crv":%q,"kty":%q,"x":%q,"y":%q}`, j.Crv, j.Kty, j.X, j.Y)
	h := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(h[:]), nil
}

// JWK is a public key as RFC 7517 writes it.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

func jwk(pk *ecdsa.PublicKey) (JWK, error) {
	if pk.Curve != elliptic.P256() {
		return JWK{}, errors.New("key is not ECDSA P-256")
	}
	raw, err := pk.Bytes() // 0x04 || X || Y, 32 bytes each
	if err != nil {
		return JWK{}, err
	}
	enc := base64.RawURLEncoding.EncodeToString
	return JWK{Kty: "EC", Crv: "P-256", X: enc(raw[1:33]), Y: enc(raw[33:65]), Use: "sig", Alg: "ES256"}, nil
}

// JWKS returns keys as the members of a JSON Web Key Set, in order.
func JWKS(keys []PublicKey) []JWK {
	out := make([]JWK, 0, len(keys))
	for _, p := range keys {
		j, err := jwk(p.Key)
		if err != nil {
			continue // NewKeys admits P-256 keys only
		}
		j.Kid = p.ID
		out = append(out, j)
	}
	return out
}

// ParseJWKS reads the keys of a JSON Web Key Set, skipping keys that are not P-256.
func ParseJWKS(raw []byte) ([]PublicKey, error) {
	var set struct {
		Keys []JWK `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("decoding the key set: %w", err)
	}
	var out []PublicKey
	for _, j := range set.Keys {
		if j.Kty != "EC" || j.Crv != "P-256" {
			continue
		}
		x, errx := base64.RawURLEncoding.DecodeString(j.X)
		y, erry := base64.RawURLEncoding.DecodeString(j.Y)
		if errx != nil || erry != nil || len(x) != 32 || len(y) != 32 {
			return nil, fmt.Errorf("key %q: bad coordinates", j.Kid)
		}
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", j.Kid, err)
		}
		id, _ := KeyID(pk)
		out = append(out, PublicKey{ID: id, Key: pk})
	}
	if len(out) == 0 {
		return nil, errors.New("the key set has no ECDSA P-256 key")
	}
	return out, nil
}

// PublicPEM returns a public key as a PKIX "PUBLIC KEY" PEM block, the form cosign's
// --key reads.
func PublicPEM(pk *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pk)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicPEM reads PKIX "PUBLIC KEY" PEM blocks (cosign's .pub files), each an
// ECDSA P-256 key.
func ParsePublicPEM(raw []byte) ([]PublicKey, error) {
	var out []PublicKey
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			continue
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key: %w", err)
		}
		ec, ok := k.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, errors.New("public key is not ECDSA P-256")
		}
		id, _ := KeyID(ec)
		out = append(out, PublicKey{ID: id, Key: ec})
	}
	if len(out) == 0 {
		return nil, errors.New("no PUBLIC KEY PEM block")
	}
	return out, nil
}

// VerifyMessage checks an ASN.1 DER ECDSA signature over the SHA-256 of msg against
// each key, returning the id of the key that made it.
func VerifyMessage(keys []PublicKey, msg, sig []byte) (string, error) {
	h := sha256.Sum256(msg)
	for _, k := range keys {
		if ecdsa.VerifyASN1(k.Key, h[:], sig) {
			return k.ID, nil
		}
	}
	return "", ErrBadSignature
}
