package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store"
)

// cosignVersion is the cosign scripts/test.sh installs; the tests run it as deployers do.
const cosignVersion = "v2.6.1"

// cosignBinary returns the cosign the tests run: SLIPWAY_TEST_COSIGN, which the test
// script sets, or cosign on PATH. Without one the test fails under CI=true and is
// skipped otherwise.
func cosignBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("SLIPWAY_TEST_COSIGN")
	if path == "" {
		path, _ = exec.LookPath("cosign")
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cosign %s is not installed (scripts/test.sh installs it), and CI=true", cosignVersion)
		}
		t.Skipf("cosign %s is not installed: run ./scripts/test.sh, which installs it", cosignVersion)
	}
	return path
}

// cosign runs cosign with args, offline: no transparency log, a private home.
func cosign(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "TUF_ROOT=" + filepath.Join(home, "tuf"), "PATH=" + os.Getenv("PATH"),
		"COSIGN_YES=true"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// signedBuild creates app (if new) and builds a module in it whose binary holds greeting
// (and whose source, not its binary, holds comment), waiting for the build to succeed.
func signedBuild(t *testing.T, base, app, greeting string, comment ...string) openapi.Build {
	t.Helper()
	req, _ := http.NewRequest("PUT", base+"/v1/apps/"+app, strings.NewReader(`{"platforms":["linux/amd64","linux/arm64"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	greet := "package main\n\n// " + strings.Join(comment, " ") + "\n\nimport \"os\"\n\n" +
		"func init() {\n\tif len(os.Args) > 9 {\n\t\tos.Stdout.WriteString(" + strconv.Quote(greeting) + ")\n\t}\n}\n"
	src := buildertest.Module(t, app, map[string]string{"main.go": buildertest.HelloMain, "greet.go": greet})
	resp, err = http.Post(base+"/v1/apps/"+app+"/builds?version=1.0.0", "application/gzip", bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	var queued openapi.Build
	_ = json.NewDecoder(resp.Body).Decode(&queued)
	resp.Body.Close()
	b := waitStatus(t, base, app, queued.Id, 3*time.Minute, func(b openapi.Build) bool {
		return b.Status != openapi.BuildStatusQueued && b.Status != openapi.BuildStatusRunning
	})
	if b.Status != openapi.BuildStatusSucceeded {
		t.Fatalf("build = %s %+v", b.Status, b.Error)
	}
	if b.Signing == nil {
		t.Fatalf("build %s has no signing record", b.Id)
	}
	return b
}

// get fetches base+path and returns its status and body.
func get(t *testing.T, url string, header ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// writeFile writes data to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCosignVerifiesBuilds runs the real cosign against slipway as a deployer would:
// verify (the image's signature at sha256-<hex>.sig), verify-attestation (the SLSA
// provenance at sha256-<hex>.att) and verify-blob (checksums.sig over SHA256SUMS) accept
// a fresh build; each fails when what it checks was tampered with; a key rotated out
// still verifies its builds and signs no new ones; and one app's signatures are not
// served under another app's name.
func TestCosignVerifiesBuilds(t *testing.T) {
	bin := cosignBinary(t)
	env := buildEnv(t)
	keys := t.TempDir()
	oldKey, newKey := filepath.Join(keys, "old.pem"), filepath.Join(keys, "new.pem")
	p := startServe(t, append(env, "SLIPWAY_SIGNING_KEYS="+oldKey, "SLIPWAY_SIGNING_KEY_GENERATE=true"))
	host := strings.TrimPrefix(p.url, "http://")
	dir := t.TempDir()

	b := signedBuild(t, p.url, "signed", "first")
	status, pemBody := get(t, p.url+"/v1/signing-keys", "Accept", "application/x-pem-file")
	if status != http.StatusOK || !bytes.HasPrefix(pemBody, []byte("-----BEGIN PUBLIC KEY-----")) {
		t.Fatalf("GET /v1/signing-keys as PEM = %d %s", status, pemBody)
	}
	if bytes.Contains(pemBody, []byte("PRIVATE")) {
		t.Fatal("the signing-keys answer holds a private key")
	}
	oldPub := writeFile(t, dir, "old.pub", pemBody)
	image := host + "/signed@" + b.Image.Digest
	verify := []string{"--allow-insecure-registry", "--insecure-ignore-tlog"}
	mustCosign := func(args ...string) {
		t.Helper()
		if out, err := cosign(t, bin, args...); err != nil {
			t.Fatalf("cosign %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	mustFail := func(why string, args ...string) {
		t.Helper()
		out, err := cosign(t, bin, args...)
		if err == nil {
			t.Errorf("%s: cosign %s succeeded, want a failure\n%s", why, strings.Join(args, " "), out)
			return
		}
		for line := range strings.Lines(out) {
			if strings.HasPrefix(line, "Error: ") {
				t.Logf("%s: cosign says %s", why, strings.TrimSpace(line))
			}
		}
	}

	t.Run("fresh build", func(t *testing.T) {
		mustCosign(append([]string{"verify", "--key", oldPub}, append(verify, image)...)...)
		mustCosign(append([]string{"verify", "--key", oldPub}, append(verify, host+"/signed:build-"+b.Id)...)...)
		mustCosign(append([]string{"verify-attestation", "--type", "slsaprovenance1", "--key", oldPub}, append(verify, image)...)...)
		_, sums := get(t, p.url+"/v1/apps/signed/builds/"+b.Id+"/checksums")
		status, sig := get(t, p.url+"/v1/apps/signed/builds/"+b.Id+"/checksums.sig")
		if status != http.StatusOK {
			t.Fatalf("GET checksums.sig = %d %s", status, sig)
		}
		mustCosign("verify-blob", "--key", oldPub, "--insecure-ignore-tlog", "--signature",
			writeFile(t, dir, "checksums.sig", sig), writeFile(t, dir, "SHA256SUMS", sums))

		// The OCI 1.1 form: with the sha256-<hex>.sig tag gone, cosign finds the same
		// signature manifest through slipway's referrers API.
		rdb := redisOf(t, env)
		tag := sign.SignatureTag(b.Image.Digest)
		if err := rdb.HDel(context.Background(), store.CosignTagsKey("signed"), tag).Err(); err != nil {
			t.Fatal(err)
		}
		mustFail("no signature tag, without OCI 1.1", append([]string{"verify", "--key", oldPub}, append(verify, image)...)...)
		mustCosign(append([]string{"verify", "--experimental-oci11", "--key", oldPub}, append(verify, image)...)...)
		if err := rdb.HSet(context.Background(), store.CosignTagsKey("signed"), tag, b.Signing.Signature).Err(); err != nil {
			t.Fatal(err)
		}

		// Tampered SHA256SUMS: one digit of the first digest changed.
		bad := bytes.Clone(sums)
		bad[0] ^= 1
		mustFail("a tampered SHA256SUMS", "verify-blob", "--key", oldPub, "--insecure-ignore-tlog", "--signature",
			filepath.Join(dir, "checksums.sig"), writeFile(t, dir, "SHA256SUMS.bad", bad))
	})

	t.Run("tampered index and provenance", func(t *testing.T) {
		// A copy of the image and its signature and attestation in a registry an
		// attacker controls, where the index and the provenance are changed.
		evil := httptest.NewServer(registry.New())
		defer evil.Close()
		evilHost := strings.TrimPrefix(evil.URL, "http://")
		src, _ := name.ParseReference(image, name.Insecure)
		idx, err := remote.Index(src)
		if err != nil {
			t.Fatal(err)
		}
		copyTo := func(tag string, raw []byte, mt string) string {
			t.Helper()
			ref, _ := name.ParseReference(evilHost+"/signed:"+tag, name.Insecure)
			if err := remote.Put(ref, rawManifest{raw, mt}); err != nil {
				t.Fatal(err)
			}
			return evilHost + "/signed:" + tag
		}
		copyBlob := func(digest string) {
			t.Helper()
			_, data := get(t, p.url+"/v2/signed/blobs/"+digest)
			resp, err := http.Post(evil.URL+"/v2/signed/blobs/uploads/?digest="+digest, "application/octet-stream", bytes.NewReader(data))
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("copying %s: %v %v", digest, resp, err)
			}
			resp.Body.Close()
		}
		if err := remote.WriteIndex(mustRef(t, evilHost+"/signed:orig"), idx); err != nil {
			t.Fatal(err)
		}
		rawIdx, _ := idx.RawManifest()
		// The index with one annotation more, and the true signature beside it.
		var doc map[string]any
		_ = json.Unmarshal(rawIdx, &doc)
		doc["annotations"] = map[string]string{"evil": "yes"}
		tampered, _ := json.Marshal(doc)
		tamperedRef := copyTo("tampered", tampered, "application/vnd.oci.image.index.v1+json")
		tamperedDigest := sign.Digest(tampered)
		_, sigManifest := get(t, p.url+"/v2/signed/manifests/"+b.Signing.Signature)
		var m sign.Manifest
		_ = json.Unmarshal(sigManifest, &m)
		copyBlob(m.Config.Digest)
		for _, l := range m.Layers {
			copyBlob(l.Digest)
		}
		copyTo(sign.SignatureTag(tamperedDigest), sigManifest, "application/vnd.oci.image.manifest.v1+json")
		copyTo(sign.SignatureTag(b.Image.Digest), sigManifest, "application/vnd.oci.image.manifest.v1+json")
		// The copy of the true index verifies there too; the tampered one does not.
		mustCosign(append([]string{"verify", "--key", oldPub}, append(verify, evilHost+"/signed@"+b.Image.Digest)...)...)
		mustFail("a tampered index", append([]string{"verify", "--key", oldPub}, append(verify, tamperedRef)...)...)

		// The provenance with its payload changed (another source digest), the
		// signature kept.
		_, attManifest := get(t, p.url+"/v2/signed/manifests/"+b.Signing.Attestation)
		var am sign.Manifest
		_ = json.Unmarshal(attManifest, &am)
		_, envRaw := get(t, p.url+"/v2/signed/blobs/"+am.Layers[0].Digest)
		var envl sign.Envelope
		_ = json.Unmarshal(envRaw, &envl)
		payload, _ := base64.StdEncoding.DecodeString(envl.Payload)
		payload = bytes.Replace(payload, []byte(b.SourceDigest), []byte("sha256:"+strings.Repeat("0", 64)), 1)
		envl.Payload = base64.StdEncoding.EncodeToString(payload)
		evilEnv, _ := json.Marshal(envl)
		evilLayer := sign.Digest(evilEnv)
		resp, err := http.Post(evil.URL+"/v2/signed/blobs/uploads/?digest="+evilLayer, "application/octet-stream", bytes.NewReader(evilEnv))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("uploading the tampered envelope: %v %v", resp, err)
		}
		resp.Body.Close()
		copyBlob(am.Config.Digest)
		am.Layers[0].Digest, am.Layers[0].Size = evilLayer, int64(len(evilEnv))
		evilAtt, _ := json.Marshal(am)
		copyTo(sign.AttestationTag(b.Image.Digest), evilAtt, "application/vnd.oci.image.manifest.v1+json")
		mustFail("a tampered provenance", append([]string{"verify-attestation", "--type", "slsaprovenance1", "--key", oldPub},
			append(verify, evilHost+"/signed@"+b.Image.Digest)...)...)
	})

	t.Run("another app's name", func(t *testing.T) {
		signedBuild(t, p.url, "other", "other")
		unknown := "sha256:" + strings.Repeat("ab", 32)
		for _, tc := range []struct{ path, twin string }{
			{"/v2/other/manifests/" + sign.SignatureTag(b.Image.Digest), "/v2/other/manifests/" + sign.SignatureTag(unknown)},
			{"/v2/other/manifests/" + sign.AttestationTag(b.Image.Digest), "/v2/other/manifests/" + sign.AttestationTag(unknown)},
			{"/v2/other/manifests/" + b.Signing.Signature, "/v2/other/manifests/" + unknown},
			{"/v2/other/manifests/" + b.Signing.Attestation, "/v2/other/manifests/" + unknown},
			{"/v2/other/blobs/" + b.Signing.Provenance, "/v2/other/blobs/" + unknown},
		} {
			status, body := get(t, p.url+tc.path)
			twinStatus, twinBody := get(t, p.url+tc.twin)
			if status != http.StatusNotFound || twinStatus != http.StatusNotFound {
				t.Errorf("GET %s = %d, and for an unknown digest %d; want 404 for both", tc.path, status, twinStatus)
			}
			if code(body) != code(twinBody) {
				t.Errorf("GET %s answers %s, an unknown digest %s", tc.path, body, twinBody)
			}
		}
		mustFail("the signature under another app's name",
			append([]string{"verify", "--key", oldPub}, append(verify, host+"/other@"+b.Image.Digest)...)...)
	})

	t.Run("rotation", func(t *testing.T) {
		stopServe(t, p)
		p2 := startServe(t, append(env, "SLIPWAY_SIGNING_KEYS="+newKey+","+oldKey, "SLIPWAY_SIGNING_KEY_GENERATE=true"))
		host2 := strings.TrimPrefix(p2.url, "http://")
		_, newPEM := get(t, p2.url+"/v1/signing-keys", "Accept", "application/x-pem-file")
		newPub := writeFile(t, dir, "new.pub", newPEM)
		if bytes.Equal(newPEM, pemBody) {
			t.Fatal("the current key did not change with the new key first")
		}
		_, jwks := get(t, p2.url+"/v1/signing-keys")
		set, err := sign.ParseJWKS(jwks)
		if err != nil || len(set) != 2 {
			t.Fatalf("JWKS after rotation = %s (%v), want 2 keys", jwks, err)
		}
		// The old build still verifies with the old key.
		mustCosign(append([]string{"verify", "--key", oldPub}, append(verify, host2+"/signed@"+b.Image.Digest)...)...)
		mustCosign(append([]string{"verify-attestation", "--type", "slsaprovenance1", "--key", oldPub},
			append(verify, host2+"/signed@"+b.Image.Digest)...)...)
		// A new build is signed with the new key only.
		nb := signedBuild(t, p2.url, "signed", "second")
		if nb.Signing.KeyId != set[0].ID || nb.Signing.KeyId == b.Signing.KeyId {
			t.Errorf("new build signed by %s, want the new key %s", nb.Signing.KeyId, set[0].ID)
		}
		newImage := host2 + "/signed@" + nb.Image.Digest
		mustCosign(append([]string{"verify", "--key", newPub}, append(verify, newImage)...)...)
		mustCosign(append([]string{"verify-attestation", "--type", "slsaprovenance1", "--key", newPub}, append(verify, newImage)...)...)
		mustFail("a new build with the rotated-out key", append([]string{"verify", "--key", oldPub}, append(verify, newImage)...)...)
		mustFail("a new provenance with the rotated-out key", append([]string{"verify-attestation", "--type", "slsaprovenance1", "--key", oldPub}, append(verify, newImage)...)...)

		// A new build of the old image (the source changed, the binary did not) adds the
		// new key's signature and provenance beside the old ones: both keys verify it.
		same := signedBuild(t, p2.url, "signed", "first", "a comment")
		if same.Image.Digest != b.Image.Digest || same.Id == b.Id {
			t.Fatalf("rebuild = %s %s, want a new build of image %s", same.Id, same.Image.Digest, b.Image.Digest)
		}
		for _, pub := range []string{oldPub, newPub} {
			mustCosign(append([]string{"verify", "--key", pub}, append(verify, host2+"/signed@"+b.Image.Digest)...)...)
			mustCosign(append([]string{"verify-attestation", "--type", "slsaprovenance1", "--key", pub}, append(verify, host2+"/signed@"+b.Image.Digest)...)...)
		}
	})
}

// rawManifest is a manifest to put as is.
type rawManifest struct {
	raw []byte
	mt  string
}

func (r rawManifest) RawManifest() ([]byte, error) { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) {
	return types.MediaType(r.mt), nil
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// code is the first error code of a registry error answer.
func code(body []byte) string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(body, &e)
	if len(e.Errors) == 0 {
		return string(body)
	}
	return e.Errors[0].Code
}
