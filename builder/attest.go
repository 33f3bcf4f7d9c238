package builder

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/store"
)

// Signing is what a build's signatures are: the key that made them, the cosign
// signature and attestation manifests that refer to the image index, the DSSE envelope
// of the build's SLSA provenance, and the signature of its SHA256SUMS.
type Signing struct {
	KeyID string `json:"key_id"`
	// Signature is the manifest holding the simple-signing payload of the index and its
	// signature (at the tag sha256-<hex>.sig, and a referrer of the index).
	Signature string `json:"signature"`
	// Attestation is the manifest holding the provenance envelope (at the tag
	// sha256-<hex>.att, and a referrer of the index); Provenance the envelope's digest.
	Attestation string `json:"attestation"`
	Provenance  string `json:"provenance"`
	// Checksums is the base64 ASN.1 DER ECDSA signature over Checksums(build), as
	// cosign verify-blob --signature reads it.
	Checksums string `json:"checksums"`
}

// Checksums is the build's SHA256SUMS: one line per binary, "<hex>  <file name>", as
// sha256sum -c reads it. The same build always gives the same bytes.
func Checksums(b Build) []byte {
	var sb bytes.Buffer
	for _, a := range b.Artifacts {
		d, _ := store.ParseDigest(a.Digest)
		fmt.Fprintf(&sb, "%s  %s\n", d.Hex(), ArtifactName(b.App, a.Platform))
	}
	return sb.Bytes()
}

// ArtifactName is the file name of a platform's binary: hello_linux_arm64 (with .exe
// for windows).
func ArtifactName(app, platform string) string {
	name := app + "_" + strings.ReplaceAll(platform, "/", "_")
	if strings.HasPrefix(platform, "windows/") {
		name += ".exe"
	}
	return name
}

// BuilderID names this builder in provenance: the slipway instance and its version.
type BuilderID struct {
	ID      string
	Version string
}

// signed is what signing a build stored: its record, the referrers of the index to
// record, every blob to link, and cosign's tags with the manifests they now name.
type signed struct {
	rec   Signing
	refs  []referrer
	blobs []store.Digest
	tags  map[string]string
}

// sign signs b's image index res and its SHA256SUMS with the worker's signing key, and
// stores the signature and provenance attestation in the blob store. arts are the
// build's artifacts, which SHA256SUMS lists; bins the
// binaries the build made, whose build info lists the modules in the provenance.
func (w *Worker) sign(ctx context.Context, b *Build, arts []Artifact, res *image.Result, bins []string) (*signed, error) {
	s := w.opts.Signer
	info, err := w.blobs.Stat(ctx, store.BlobKey(res.Index))
	if err != nil {
		return nil, fmt.Errorf("reading the index: %w", err)
	}
	subject := sign.Descriptor{MediaType: indexMediaType, Digest: res.Index.String(), Size: info.Size}

	sigTag, attTag := sign.SignatureTag(res.Index.String()), sign.AttestationTag(res.Index.String())
	priorSigs, err := w.priorLayers(ctx, b.App, sigTag)
	if err != nil {
		return nil, err
	}
	priorAtts, err := w.priorLayers(ctx, b.App, attTag)
	if err != nil {
		return nil, err
	}

	payload := sign.ImagePayload(b.App, res.Index.String())
	sig, err := s.SignMessage(ctx, payload)
	if err != nil {
		return nil, fmt.Errorf("signing the image: %w", err)
	}
	sigArt, err := sign.SignatureManifest(subject, priorSigs, payload, sig)
	if err != nil {
		return nil, err
	}

	prov, err := w.provenance(b, res, bins)
	if err != nil {
		return nil, err
	}
	stmt, err := sign.ProvenanceStatement(b.App, res.Index.String(), prov)
	if err != nil {
		return nil, err
	}
	env, err := sign.SignEnvelope(ctx, s, sign.InTotoPayloadType, stmt)
	if err != nil {
		return nil, err
	}
	attArt, err := sign.AttestationManifest(subject, priorAtts, env, sign.SLSAProvenanceV1)
	if err != nil {
		return nil, err
	}

	withArts := *b
	withArts.Artifacts = arts
	sums, err := s.SignMessage(ctx, Checksums(withArts))
	if err != nil {
		return nil, fmt.Errorf("signing SHA256SUMS: %w", err)
	}

	out := &signed{rec: Signing{
		KeyID: s.KeyID(), Signature: sigArt.Manifest.Digest, Attestation: attArt.Manifest.Digest,
		Provenance: sign.Digest(env), Checksums: base64.StdEncoding.EncodeToString(sums),
	}, tags: map[string]string{sigTag: sigArt.Manifest.Digest, attTag: attArt.Manifest.Digest}}
	for _, a := range []struct {
		art          sign.Artifact
		artifactType string
	}{{sigArt, sign.SignatureArtifactType}, {attArt, sign.InTotoPayloadType}} {
		for _, blob := range a.art.All() {
			d := store.Digest(blob.Digest)
			if _, err := w.blobs.Put(ctx, store.BlobKey(d), bytes.NewReader(blob.Data), d); err != nil && !errors.Is(err, store.ErrExists) {
				return nil, fmt.Errorf("storing %s: %w", d, err)
			}
			out.blobs = append(out.blobs, d)
		}
		out.refs = append(out.refs, referrer{subject: res.Index, digest: store.Digest(a.art.Manifest.Digest),
			size: int64(len(a.art.Manifest.Data)), artifactType: a.artifactType})
	}
	return out, nil
}

const indexMediaType = "application/vnd.oci.image.index.v1+json"

// priorLayers returns the layers of the manifest the app's cosign tag names now (the
// signatures or attestations earlier builds of the same image made), or none.
func (w *Worker) priorLayers(ctx context.Context, app, tag string) ([]sign.Descriptor, error) {
	d, err := w.builds.CosignTag(ctx, app, tag)
	if err != nil || d == "" {
		return nil, err
	}
	rc, _, err := w.blobs.Get(ctx, store.BlobKey(d), 0, -1)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest at %s: %w", tag, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the manifest at %s: %w", tag, err)
	}
	return sign.Layers(raw)
}

// provenance is b's SLSA provenance: its parameters, the toolchain, base and modules it
// was built with, and the run.
func (w *Worker) provenance(b *Build, res *image.Result, bins []string) (sign.Provenance, error) {
	deps := []sign.ResourceDescriptor{{Name: "source", URI: sourceURI(b), Digest: digestSet(b.SourceDigest)}}
	deps = append(deps, sign.ResourceDescriptor{Name: "go", URI: "pkg:golang/toolchain@" + b.GoVersion})
	base := sign.ResourceDescriptor{Name: "base", URI: "slipway:builtin-base"}
	if b.BaseImage != "" {
		base.URI = "docker://" + b.BaseImage
	}
	if res.BaseDigest != "" {
		base.Digest = digestSet(res.BaseDigest.String())
	}
	deps = append(deps, base)
	mods, err := modules(bins)
	if err != nil {
		return sign.Provenance{}, err
	}
	deps = append(deps, mods...)
	started := time.Unix(0, 0)
	if b.StartedAt != nil {
		started = *b.StartedAt
	}
	return sign.Provenance{
		BuildDefinition: sign.BuildDefinition{
			BuildType: sign.BuildType,
			ExternalParameters: sign.ExternalParameters{
				App: b.App, SourceDigest: b.SourceDigest, SourceURL: b.SourceURL, Version: b.Version,
				Commit: b.Commit, Platforms: b.Platforms, Main: b.Main, Ldflags: b.Ldflags,
				BaseImage: b.BaseImage, SourceDateEpoch: b.SourceDateEpoch,
			},
			ResolvedDependencies: deps,
		},
		RunDetails: sign.RunDetails{
			Builder: sign.Builder{ID: w.opts.Builder.ID, Version: map[string]string{"slipway": w.opts.Builder.Version}},
			Metadata: sign.RunMetadata{
				InvocationID: b.ID, StartedOn: started, FinishedOn: w.builds.now(),
			},
		},
	}, nil
}

// modules lists every module the binaries were built with (their main modules and
// dependencies, replacements resolved), once each, sorted.
func modules(bins []string) ([]sign.ResourceDescriptor, error) {
	seen := map[string]sign.ResourceDescriptor{}
	for _, p := range bins {
		bi, err := buildinfo.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading the build info of a binary: %w", err)
		}
		for _, m := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
			if m.Replace != nil {
				m = m.Replace
			}
			uri := "pkg:golang/" + m.Path + "@" + m.Version
			rd := sign.ResourceDescriptor{Name: m.Path, URI: uri}
			if h, ok := strings.CutPrefix(m.Sum, "h1:"); ok {
				rd.Digest = map[string]string{"dirHash1": h}
			}
			seen[uri] = rd
		}
	}
	out := make([]sign.ResourceDescriptor, 0, len(seen))
	for _, rd := range seen {
		out = append(out, rd)
	}
	slices.SortFunc(out, func(a, b sign.ResourceDescriptor) int { return strings.Compare(a.URI, b.URI) })
	return out, nil
}

// sourceURI names a build's source: the URL it was fetched from, or its stored copy.
func sourceURI(b *Build) string {
	if b.SourceURL != "" {
		return b.SourceURL
	}
	return "slipway:" + store.SourceKey(store.Digest(b.SourceDigest))
}

func digestSet(d string) map[string]string {
	algo, hexpart, ok := strings.Cut(d, ":")
	if !ok {
		return nil
	}
	return map[string]string{algo: hexpart}
}
