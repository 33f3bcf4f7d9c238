package sign

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The media types and annotations of cosign's signatures and attestations, as cosign
// stores them in a registry (github.com/sigstore/cosign pkg/types and pkg/oci/static).
const (
	// SimpleSigningMediaType is the layer of a signature manifest: the signed payload.
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureArtifactType is the artifactType of a signature manifest found as an
	// OCI 1.1 referrer (cosign's ArtifactType("sig")).
	SignatureArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	// DSSEMediaType is the layer of an attestation manifest: a DSSE envelope.
	DSSEMediaType = "application/vnd.dsse.envelope.v1+json"
	// InTotoPayloadType is the payloadType of a DSSE envelope holding an in-toto
	// statement, and the artifactType of an attestation referrer.
	InTotoPayloadType = "application/vnd.in-toto+json"
	// SignatureAnnotation holds a layer's base64 signature.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// PredicateTypeAnnotation names an attestation layer's predicate type.
	PredicateTypeAnnotation = "predicateType"
	// simpleSigningType is the critical.type of cosign's image signature payload.
	simpleSigningType = "cosign container image signature"
)

// SimpleSigning is the payload cosign signs for an image (Red Hat's simple signing
// format, as github.com/sigstore/sigstore/pkg/signature/payload writes it).
type SimpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// ImagePayload returns the simple-signing payload for the image digest of repository
// ref: the same bytes for the same arguments, always.
func ImagePayload(ref, digest string) []byte {
	var p SimpleSigning
	p.Critical.Identity.DockerReference = ref
	p.Critical.Image.DockerManifestDigest = digest
	p.Critical.Type = simpleSigningType
	b, _ := json.Marshal(p) // a struct of strings and a nil map: cannot fail
	return b
}

// VerifyImagePayload checks sig over payload with keys and that the payload signs the
// image digest; it returns the id of the key that signed.
func VerifyImagePayload(keys []PublicKey, payload, sig []byte, digest string) (string, error) {
	id, err := VerifyMessage(keys, payload, sig)
	if err != nil {
		return "", err
	}
	var p SimpleSigning
	if err := json.Unmarshal(payload, &p); err != nil {
		return "", fmt.Errorf("%w: payload does not decode: %v", ErrMismatch, err)
	}
	if p.Critical.Type != simpleSigningType {
		return "", fmt.Errorf("%w: payload type %q", ErrMismatch, p.Critical.Type)
	}
	if p.Critical.Image.DockerManifestDigest != digest {
		return "", fmt.Errorf("%w: the signature is for %s, not %s", ErrMismatch, p.Critical.Image.DockerManifestDigest, digest)
	}
	return id, nil
}

// Envelope is a DSSE envelope (https://github.com/secure-systems-lab/dsse).
type Envelope struct {
	PayloadType string              `json:"payloadType"`
	Payload     string              `json:"payload"` // base64
	Signatures  []EnvelopeSignature `json:"signatures"`
}

// EnvelopeSignature is one signature of an envelope.
type EnvelopeSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"` // base64
}

// pae is DSSE's pre-authentication encoding: what a signature covers.
func pae(payloadType string, payload []byte) []byte {
	return fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload)
}

// SignEnvelope signs payload of payloadType with s and returns the envelope's JSON.
func SignEnvelope(ctx context.Context, s Signer, payloadType string, payload []byte) ([]byte, error) {
	sig, err := s.SignMessage(ctx, pae(payloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("signing an envelope: %w", err)
	}
	return json.Marshal(Envelope{
		PayloadType: payloadType,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []EnvelopeSignature{{KeyID: s.KeyID(), Sig: base64.StdEncoding.EncodeToString(sig)}},
	})
}

// OpenEnvelope verifies an envelope's signatures with keys (one good signature is
// enough) and returns its payload and the id of the key that signed it.
func OpenEnvelope(keys []PublicKey, raw []byte) (payload []byte, keyID string, err error) {
	var env Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, "", fmt.Errorf("%w: envelope does not decode: %v", ErrMismatch, err)
	}
	payload, err = base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, "", fmt.Errorf("%w: envelope payload is not base64", ErrMismatch)
	}
	msg := pae(env.PayloadType, payload)
	for _, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			continue
		}
		if id, err := VerifyMessage(keys, msg, sig); err == nil {
			if env.PayloadType != InTotoPayloadType {
				return nil, "", fmt.Errorf("%w: envelope payload type %q", ErrMismatch, env.PayloadType)
			}
			return payload, id, nil
		}
	}
	return nil, "", ErrBadSignature
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// Manifest is an OCI image manifest, with the OCI 1.1 artifactType and subject.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	ArtifactType  string       `json:"artifactType,omitempty"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
	Subject       *Descriptor  `json:"subject,omitempty"`
}

// Blob is a document to store under its digest.
type Blob struct {
	Digest string
	Data   []byte
}

func blobOf(data []byte) Blob {
	h := sha256.Sum256(data)
	return Blob{Digest: "sha256:" + hex.EncodeToString(h[:]), Data: data}
}

const (
	ociManifest    = "application/vnd.oci.image.manifest.v1+json"
	ociEmpty       = "application/vnd.oci.empty.v1+json"
	emptyJSON      = "{}"
	ociImageConfig = "application/vnd.oci.image.config.v1+json"
)

// Artifact is a signature or attestation manifest with every blob it references: the
// manifest last.
type Artifact struct {
	Manifest Blob
	Blobs    []Blob // config and layers
}

// All returns the artifact's blobs and its manifest.
func (a Artifact) All() []Blob { return append(append([]Blob(nil), a.Blobs...), a.Manifest) }

// SignatureManifest is the manifest cosign reads at the tag sha256-<hex>.sig of the
// image subject: the layers of the manifest that was there before (prior: earlier
// signatures of the same image, which still verify) and one simple-signing layer more,
// whose annotation holds the signature, as cosign appends a signature. It has subject
// and artifactType too, so the same manifest is the OCI 1.1 referrer form.
func SignatureManifest(subject Descriptor, prior []Descriptor, payload, sig []byte) (Artifact, error) {
	layer := blobOf(payload)
	layers := appendLayer(prior, Descriptor{
		MediaType: SimpleSigningMediaType, Digest: layer.Digest, Size: int64(len(layer.Data)),
		Annotations: map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
	})
	diffIDs := make([]string, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.Digest
	}
	// The config cosign writes: an image config listing the layers.
	cfg, err := json.Marshal(map[string]any{
		"architecture": "", "os": "", "config": map[string]any{},
		"created": "0001-01-01T00:00:00Z",
		"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return Artifact{}, err
	}
	config := blobOf(cfg)
	m := Manifest{
		SchemaVersion: 2, MediaType: ociManifest, ArtifactType: SignatureArtifactType,
		Config:  Descriptor{MediaType: ociImageConfig, Digest: config.Digest, Size: int64(len(config.Data))},
		Layers:  layers,
		Subject: &subject,
	}
	return artifact(m, config, layer)
}

// AttestationManifest is the manifest cosign reads at the tag sha256-<hex>.att of the
// image subject: prior's layers (earlier attestations of the same image) and one DSSE
// envelope layer more. It is also the OCI 1.1 referrer form.
func AttestationManifest(subject Descriptor, prior []Descriptor, envelope []byte, predicateType string) (Artifact, error) {
	layer := blobOf(envelope)
	config := blobOf([]byte(emptyJSON))
	m := Manifest{
		SchemaVersion: 2, MediaType: ociManifest, ArtifactType: InTotoPayloadType,
		Config: Descriptor{MediaType: ociEmpty, Digest: config.Digest, Size: int64(len(config.Data))},
		Layers: appendLayer(prior, Descriptor{
			MediaType: DSSEMediaType, Digest: layer.Digest, Size: int64(len(layer.Data)),
			Annotations: map[string]string{SignatureAnnotation: "", PredicateTypeAnnotation: predicateType},
		}),
		Subject: &subject,
	}
	return artifact(m, config, layer)
}

// appendLayer returns prior with l after it, unless prior holds l already.
func appendLayer(prior []Descriptor, l Descriptor) []Descriptor {
	for _, p := range prior {
		if p.Digest == l.Digest && p.MediaType == l.MediaType && maps.Equal(p.Annotations, l.Annotations) {
			return slices.Clone(prior)
		}
	}
	return append(slices.Clone(prior), l)
}

// Layers returns the layers of a manifest.
func Layers(manifest []byte) ([]Descriptor, error) {
	var m Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("decoding a manifest: %w", err)
	}
	return m.Layers, nil
}

func artifact(m Manifest, blobs ...Blob) (Artifact, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{Manifest: blobOf(raw), Blobs: blobs}, nil
}

// SignatureTag is the tag cosign looks for an image's signatures at; AttestationTag its
// attestations'.
func SignatureTag(digest string) string { return strings.Replace(digest, ":", "-", 1) + ".sig" }

// AttestationTag is the tag cosign looks for an image's attestations at.
func AttestationTag(digest string) string { return strings.Replace(digest, ":", "-", 1) + ".att" }

// ParseCosignTag splits a tag sha256-<hex>.sig or .att into the digest it names and
// its suffix ("sig" or "att").
func ParseCosignTag(tag string) (digest, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(tag, "sha256-")
	if !ok {
		return "", "", false
	}
	hexpart, suffix, ok := strings.Cut(rest, ".")
	if !ok || (suffix != "sig" && suffix != "att") || len(hexpart) != 64 {
		return "", "", false
	}
	if _, err := hex.DecodeString(hexpart); err != nil || strings.ToLower(hexpart) != hexpart {
		return "", "", false
	}
	return "sha256:" + hexpart, suffix, true
}

// Signature is one signature of a signature manifest: the digest of the payload it
// signs, and the signature.
type Signature struct {
	Payload string
	Sig     []byte
}

// SignaturesOf returns the signatures a signature manifest's layers carry.
func SignaturesOf(manifest []byte) ([]Signature, error) {
	var m Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("signature manifest: %w", err)
	}
	var out []Signature
	for _, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[SignatureAnnotation])
		if err != nil {
			return nil, fmt.Errorf("signature annotation: %w", err)
		}
		out = append(out, Signature{Payload: l.Digest, Sig: sig})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no simple-signing layer", ErrMismatch)
	}
	return out, nil
}

// Digest is the sha256 digest of data, "sha256:<hex>".
func Digest(data []byte) string { return blobOf(data).Digest }
