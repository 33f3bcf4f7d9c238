package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway/slipway/builder/image"
)

// testLayer is a Docker-typed gzip layer of the given files.
func testLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.DockerLayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testBase is a Docker-typed image for p with two layers: a marker file and a file that
// the second layer whites out.
func testBase(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image,
		testLayer(t, map[string]string{"etc/base-marker": p.String(), "etc/gone": "whited out"}),
		testLayer(t, map[string]string{"etc/.wh.gone": ""}))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config.Env = []string{"PATH=/bin", "BASE=1"}
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Config.Labels = map[string]string{"base.label": "kept"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestRemoteBase(t *testing.T) {
	f := hello(t)
	ctx := context.Background()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	// A two-platform Docker manifest list, linux/amd64 and linux/arm64/v8.
	platforms := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}}
	var baseIdx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	baseImages := map[string]v1.Image{}
	for _, p := range platforms {
		img := testBase(t, p)
		baseImages[p.Architecture] = img
		baseIdx = mutate.AppendManifests(baseIdx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	ref := host + "/base/static:v1"
	tag, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, baseIdx); err != nil {
		t.Fatalf("remote.WriteIndex(%s) = %v", ref, err)
	}
	baseDigest, err := baseIdx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	single := host + "/base/single:v1"
	if err := remote.Write(must(name.ParseReference(single)), baseImages["amd64"]); err != nil {
		t.Fatalf("remote.Write(%s) = %v", single, err)
	}

	blobs := newStore(t)
	opts := builtinOptions(f)
	opts.Base = image.Remote(ref)
	res, err := image.Assemble(ctx, blobs, f.bins, opts)
	if err != nil {
		t.Fatalf("Assemble(base %s) = %v", ref, err)
	}
	if res.BaseName != ref || res.BaseDigest.String() != baseDigest.String() {
		t.Errorf("Assemble() base = %s %s, want %s %s", res.BaseName, res.BaseDigest, ref, baseDigest)
	}
	idx := validateAll(t, blobs, res.Index)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if got := im.Annotations[image.AnnotationBaseDigest]; got != baseDigest.String() {
		t.Errorf("index %s = %s, want %s", image.AnnotationBaseDigest, got, baseDigest)
	}
	if got := im.Annotations[image.AnnotationBaseName]; got != ref {
		t.Errorf("index %s = %s, want %s", image.AnnotationBaseName, got, ref)
	}

	for _, pi := range res.Images {
		t.Run(pi.Platform, func(t *testing.T) {
			arch := strings.Split(pi.Platform, "/")[1]
			base := baseImages[arch]
			img := platformImage(t, idx, pi.Platform)
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			baseManifest, err := base.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, l := range baseManifest.Layers {
				want = append(want, l.Digest.String())
			}
			want = append(want, pi.Layer.String())
			var got []string
			for _, l := range m.Layers {
				got = append(got, l.Digest.String())
				if l.MediaType != types.OCILayer {
					t.Errorf("layer %s mediaType = %s, want %s", l.Digest, l.MediaType, types.OCILayer)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("layers = %v, want the base's then the binary's %v", got, want)
			}
			if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("manifest, config mediaType = %s, %s, want OCI", m.MediaType, m.Config.MediaType)
			}
			bd, err := base.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Annotations[image.AnnotationBaseDigest]; got != bd.String() {
				t.Errorf("manifest %s = %s, want the base's %s manifest %s", image.AnnotationBaseDigest, got, pi.Platform, bd)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			wantEnv := []string{"PATH=/usr/local/bin:/usr/bin:/bin:/app", "BASE=1", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
			if !slices.Equal(cfg.Config.Env, wantEnv) {
				t.Errorf("env = %v, want %v", cfg.Config.Env, wantEnv)
			}
			if cfg.Config.Cmd != nil || !slices.Equal(cfg.Config.Entrypoint, []string{"/app/hello"}) || cfg.Config.User != "65532:65532" {
				t.Errorf("cmd, entrypoint, user = %v, %v, %q, want none, [/app/hello], 65532:65532", cfg.Config.Cmd, cfg.Config.Entrypoint, cfg.Config.User)
			}
			if cfg.Config.Labels["base.label"] != "kept" || cfg.Config.Labels[image.AnnotationBaseDigest] != bd.String() {
				t.Errorf("labels = %v, want the base's and slipway's", cfg.Config.Labels)
			}
			if len(cfg.History) != 3 {
				t.Errorf("len(history) = %d, want 3", len(cfg.History))
			}

			fs := unpack(t, img)
			if got := string(fs.read(t, "/etc/base-marker")); !strings.HasPrefix(got, "linux/"+arch) {
				t.Errorf("/etc/base-marker = %q, want the %s base's", got, arch)
			}
			if _, ok := fs.headers["/etc/gone"]; ok {
				t.Errorf("/etc/gone is in the image, want it whited out")
			}
			if arch == "amd64" && runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
				out, err := exec.Command(filepath.Join(fs.dir, "app", "hello")).Output()
				if err != nil || strings.TrimSpace(string(out)) != helloVersion {
					t.Errorf("/app/hello = %q, %v, want %q", out, err, helloVersion)
				}
			}
		})
	}

	t.Run("missing platform", func(t *testing.T) {
		s390x := image.Binary{Platform: image.Platform{OS: "linux", Arch: "s390x"}, Path: f.bins[0].Path}
		_, err := image.Assemble(ctx, newStore(t), append(slices.Clone(f.bins), s390x), opts)
		if !errors.Is(err, image.ErrPlatformMissing) {
			t.Fatalf("Assemble(+linux/s390x) = %v, want ErrPlatformMissing", err)
		}
		var mp *image.MissingPlatformError
		if !errors.As(err, &mp) {
			t.Fatalf("Assemble(+linux/s390x) = %T, want *MissingPlatformError", err)
		}
		if want := []string{"linux/s390x"}; !slices.Equal(mp.Missing, want) {
			t.Errorf("Missing = %v, want %v", mp.Missing, want)
		}
		if want := []string{"linux/amd64", "linux/arm64/v8"}; !slices.Equal(mp.Offered, want) {
			t.Errorf("Offered = %v, want %v", mp.Offered, want)
		}
		for _, s := range []string{"linux/s390x", "linux/amd64", ref} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Assemble(+linux/s390x) = %q, want it to name %s", err, s)
			}
		}
	})

	t.Run("single image", func(t *testing.T) {
		o := opts
		o.Base = image.Remote(single)
		tests := []struct {
			name string
			bins []image.Binary
			want error
		}{
			{"its platform", f.bins[:1], nil},
			{"another platform", f.bins, image.ErrPlatformMissing},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s := newStore(t)
				res, err := image.Assemble(ctx, s, tc.bins, o)
				if !errors.Is(err, tc.want) {
					t.Fatalf("Assemble(base %s) = %v, want %v", single, err, tc.want)
				}
				if err == nil {
					validateAll(t, s, res.Index)
				}
			})
		}
	})

	t.Run("from the store", func(t *testing.T) {
		// The registry is gone; the base by digest comes from the blob store alone.
		srv.Close()
		pinned := host + "/base/static@" + baseDigest.String()
		o := opts
		o.Base = image.Remote(pinned)
		again, err := image.Assemble(ctx, blobs, f.bins, o)
		if err != nil {
			t.Fatalf("Assemble(base %s) with the registry down = %v", pinned, err)
		}
		if again.BaseDigest != res.BaseDigest {
			t.Errorf("Assemble(base %s).BaseDigest = %s, want %s", pinned, again.BaseDigest, res.BaseDigest)
		}
		for i := range again.Images {
			if again.Images[i].Layer != res.Images[i].Layer {
				t.Errorf("binary layer = %s, want %s", again.Images[i].Layer, res.Images[i].Layer)
			}
		}
		validateAll(t, blobs, again.Index)

		// A tag needs the registry.
		o.Base = image.Remote(ref)
		if _, err := image.Assemble(ctx, newStore(t), f.bins, o); err == nil {
			t.Errorf("Assemble(base %s) with the registry down = nil, want an error", ref)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
