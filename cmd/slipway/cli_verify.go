package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/openapi"
)

// verifyFlags are the flags and arguments of `slipway verify`.
type verifyFlags struct {
	downloadFlags
	key string
	// ref is an image reference, A@sha256:<hex> or A:<tag>, when one was given instead
	// of a build.
	ref string
}

func parseVerifyFlags(e *cliEnv, cmd *clientCommand, args []string) (*verifyFlags, error) {
	f := &verifyFlags{}
	fs := newFlagSet(cmd, &f.cf, false)
	fs.StringVar(&f.version, "version", "", "the build that release `V` was made from")
	fs.StringVar(&f.channel, "channel", "", "the build of the release channel `CH` holds")
	fs.StringVar(&f.key, "key", "", "trust only the public keys in PEM `FILE` (such as slipway.pub) instead of the server's /v1/signing-keys")
	pos, err := parseArgs(fs, e, cmd, args, 1, 2)
	if err != nil {
		return nil, err
	}
	f.app = pos[0]
	if app, _, ok := strings.Cut(pos[0], "@"); ok {
		f.app, f.ref = app, pos[0]
	} else if app, _, ok := strings.Cut(pos[0], ":"); ok {
		f.app, f.ref = app, pos[0]
	}
	if len(pos) == 2 {
		f.build = pos[1]
	}
	if f.ref != "" && countSet(f.build, f.version, f.channel) == 0 {
		return f, nil
	}
	if f.ref != "" || countSet(f.build, f.version, f.channel) != 1 {
		return nil, &usageError{"verify needs A@DIGEST, A:TAG, or A with one of BUILD, --version V or --channel CH (see slipway verify --help)"}
	}
	return f, nil
}

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// cmdVerify is `slipway verify`.
func cmdVerify(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	f, err := parseVerifyFlags(e, cmd, args)
	if err != nil {
		return err
	}
	c, err := f.cf.client(e)
	if err != nil {
		return err
	}
	keys, err := c.trustedKeys(ctx, f.key)
	if err != nil {
		return err
	}
	var digest string
	if f.ref != "" {
		if f.build, digest, err = c.buildOfImage(ctx, keys, f.app, f.ref); err != nil {
			return err
		}
	}
	b, _, err := c.buildToDownload(ctx, &f.downloadFlags)
	if err != nil {
		return err
	}
	if digest != "" && (b.Image == nil || b.Image.Digest != digest) {
		return &verifyError{build: b.Id, what: "the provenance", err: fmt.Errorf("%w: it names build %s, whose image is not %s", sign.ErrMismatch, b.Id, digest)}
	}
	v, err := c.verifyBuild(ctx, keys, f.app, b)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "image %s: signature verified (key %s)\n", b.Image.Digest, v.imageKey)
	fmt.Fprintf(e.stdout, "provenance: verified (key %s); source %s, version %s, platforms %s, built by %s\n",
		v.provenanceKey, b.SourceDigest, b.Version, strings.Join(b.Platforms, ","), v.builder)
	fmt.Fprintf(e.stdout, "%s: signature verified (key %s)\n", sumsName, v.sumsKey)
	return nil
}

// buildOfImage finds the build that made the image ref (A@sha256:<hex>, or A:<tag>
// resolved by the registry) from the image's provenance attestation: the build its
// first provenance signed by one of keys names. verifyBuild then checks that build.
func (c *client) buildOfImage(ctx context.Context, keys []sign.PublicKey, app, ref string) (build, digest string, err error) {
	digest, ok := strings.CutPrefix(ref, app+"@")
	if !ok {
		tag := strings.TrimPrefix(ref, app+":")
		u := c.base.JoinPath("v2", app, "manifests", tag)
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
		if err != nil {
			return "", "", err
		}
		req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json")
		resp, err := c.Do(req)
		if err != nil {
			return "", "", err
		}
		resp.Body.Close()
		digest = resp.Header.Get("Docker-Content-Digest")
	}
	if _, _, ok := sign.ParseCosignTag(sign.AttestationTag(digest)); !ok {
		return "", "", &usageError{fmt.Sprintf("%s does not name an image by its sha256 digest", ref)}
	}
	fail := func(err error) error { return &verifyError{build: "of " + ref, what: "the provenance", err: err} }
	att, err := c.registryGet(ctx, app, "manifests", sign.AttestationTag(digest), "")
	if err != nil {
		return "", "", fail(err)
	}
	layers, err := sign.Layers(att)
	if err != nil {
		return "", "", fail(err)
	}
	for _, l := range layers {
		if l.MediaType != sign.DSSEMediaType {
			continue
		}
		env, err := c.registryGet(ctx, app, "blobs", l.Digest, l.Digest)
		if err != nil {
			return "", "", fail(err)
		}
		stmt, _, err := sign.OpenEnvelope(keys, env)
		if err != nil {
			continue
		}
		st, err := sign.ParseProvenance(stmt, digest)
		if err == nil && st.Predicate.RunDetails.Metadata.InvocationID != "" {
			return st.Predicate.RunDetails.Metadata.InvocationID, digest, nil
		}
	}
	return "", "", fail(sign.ErrBadSignature)
}

// verified is what verifyBuild checked, and the keys that signed each part.
type verified struct {
	imageKey, provenanceKey, sumsKey, builder string
	sums                                      []byte
}

// trustedKeys are the keys in the PEM file path, or else the server's.
func (c *client) trustedKeys(ctx context.Context, path string) ([]sign.PublicKey, error) {
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		keys, err := sign.ParsePublicPEM(raw)
		if err != nil {
			return nil, fmt.Errorf("--key %s: %w", path, err)
		}
		return keys, nil
	}
	r, err := c.api.GetSigningKeysWithResponse(ctx)
	if err != nil {
		return nil, err
	}
	if r.StatusCode() != http.StatusOK {
		return nil, unexpected("reading the signing keys", r.HTTPResponse, r.Body)
	}
	return sign.ParseJWKS(r.Body)
}

// verifyBuild checks build b of app against keys: the image index's signature where
// cosign finds it, the provenance's signature and that it describes b (its image, source
// digest and parameters), and the signature of SHA256SUMS. It returns the SHA256SUMS it
// verified.
func (c *client) verifyBuild(ctx context.Context, keys []sign.PublicKey, app string, b *openapi.Build) (*verified, error) {
	fail := func(what string, err error) error {
		return &verifyError{build: b.Id, what: what, err: err}
	}
	if b.Image == nil || b.Signing == nil {
		return nil, fail("signatures", fmt.Errorf("build %s is not signed (it is %s, and the server signed nothing for it)", b.Id, b.Status))
	}
	v := &verified{}
	index := b.Image.Digest

	// The image: the signature manifest at cosign's tag, its payload, its signature.
	sigManifest, err := c.registryGet(ctx, app, "manifests", sign.SignatureTag(index), "")
	if err != nil {
		return nil, fail("the image signature", err)
	}
	sigs, err := sign.SignaturesOf(sigManifest)
	if err != nil {
		return nil, fail("the image signature", err)
	}
	// Each build of the same image added a signature: one by a trusted key is enough,
	// as for cosign.
	payloads := map[string][]byte{}
	err = sign.ErrBadSignature
	for _, s := range sigs {
		payload, ok := payloads[s.Payload]
		if !ok {
			if payload, err = c.registryGet(ctx, app, "blobs", s.Payload, s.Payload); err != nil {
				return nil, fail("the image signature", err)
			}
			payloads[s.Payload] = payload
		}
		if v.imageKey, err = sign.VerifyImagePayload(keys, payload, s.Sig, index); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fail("the image signature", err)
	}
	if _, err := c.registryGet(ctx, app, "manifests", index, index); err != nil {
		return nil, fail("the image index", err)
	}

	// The provenance: signed, about this image, and saying what the build says.
	r, err := c.api.GetBuildProvenanceWithResponse(ctx, app, b.Id)
	if err != nil {
		return nil, err
	}
	if r.StatusCode() != http.StatusOK {
		return nil, unexpected("reading the provenance", r.HTTPResponse, r.Body)
	}
	stmtRaw, key, err := sign.OpenEnvelope(keys, r.Body)
	if err != nil {
		return nil, fail("the provenance", err)
	}
	v.provenanceKey = key
	st, err := sign.ParseProvenance(stmtRaw, index)
	if err != nil {
		return nil, fail("the provenance", err)
	}
	if err := matchProvenance(st, app, b); err != nil {
		return nil, fail("the provenance", err)
	}
	v.builder = st.Predicate.RunDetails.Builder.ID

	// SHA256SUMS.
	sums, err := c.api.GetBuildChecksumsWithResponse(ctx, app, b.Id)
	if err != nil {
		return nil, err
	}
	sr, err := c.api.GetBuildChecksumsSignatureWithResponse(ctx, app, b.Id)
	if err != nil {
		return nil, err
	}
	sumsSig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sr.Body)))
	if err != nil {
		return nil, fail(sumsName, fmt.Errorf("checksums.sig is not base64"))
	}
	if v.sumsKey, err = sign.VerifyMessage(keys, sums.Body, sumsSig); err != nil {
		return nil, fail(sumsName, err)
	}
	v.sums = sums.Body
	return v, nil
}

// matchProvenance checks that the provenance's parameters are the build's.
func matchProvenance(st *sign.Statement, app string, b *openapi.Build) error {
	p := st.Predicate.BuildDefinition.ExternalParameters
	type field struct{ name, got, want string }
	fields := []field{
		{"app", p.App, app},
		{"source digest", p.SourceDigest, b.SourceDigest},
		{"version", p.Version, b.Version},
		{"commit", p.Commit, deref(b.Commit)},
		{"main package", p.Main, b.Main},
		{"base image", p.BaseImage, deref(b.BaseImage)},
		{"platforms", strings.Join(p.Platforms, ","), strings.Join(b.Platforms, ",")},
		{"source date", fmt.Sprint(p.SourceDateEpoch), fmt.Sprint(b.SourceDateEpoch)},
		{"build id", st.Predicate.RunDetails.Metadata.InvocationID, b.Id},
	}
	for _, f := range fields {
		if f.got != f.want {
			return fmt.Errorf("%w: its %s is %q, the build's %q", sign.ErrMismatch, f.name, f.got, f.want)
		}
	}
	if st.Predicate.BuildDefinition.BuildType != sign.BuildType {
		return fmt.Errorf("%w: build type %q", sign.ErrMismatch, st.Predicate.BuildDefinition.BuildType)
	}
	if !slices.ContainsFunc(st.Predicate.BuildDefinition.ResolvedDependencies, func(d sign.ResourceDescriptor) bool {
		return d.Name == "go" && strings.HasSuffix(d.URI, "@"+b.GoVersion)
	}) {
		return fmt.Errorf("%w: it names no Go toolchain %s", sign.ErrMismatch, b.GoVersion)
	}
	return nil
}

// registryGet reads /v2/<app>/<kind>/<ref> from slipway's registry and, when digest is
// set, checks that the bytes have that digest.
func (c *client) registryGet(ctx context.Context, app, kind, ref, digest string) ([]byte, error) {
	u := c.base.JoinPath("v2", app, kind, ref)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if kind == "manifests" {
		req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if digest != "" && sign.Digest(body) != digest {
		return nil, fmt.Errorf("%w: %s %s has digest %s", sign.ErrMismatch, kind, ref, sign.Digest(body))
	}
	return body, nil
}

// verifyError is a signature or provenance that does not verify.
type verifyError struct {
	build, what string
	err         error
}

func (e *verifyError) Error() string {
	return fmt.Sprintf("build %s: %s does not verify: %v", e.build, e.what, e.err)
}

func (e *verifyError) Unwrap() error { return e.err }

// ExitCode is 1: the build cannot be trusted.
func (e *verifyError) ExitCode() int { return exitFailed }

// deref is *s, or "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
