package image_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/builder/image"
	"github.com/slipway/slipway/store"
)

// helloVersion is what the test binaries print: the linker sets it with -X.
const helloVersion = "1.2.3-test"

// helloMain prints its version from a goroutine of golang.org/x/sync/errgroup, so that
// the binary has a dependency (with a go.sum checksum) for the SBOM to list.
const helloMain = `package main

import (
	"fmt"

	"golang.org/x/sync/errgroup"
)

var version = "dev"

func main() {
	var g errgroup.Group
	g.Go(func() error { fmt.Println(version); return nil })
	_ = g.Wait()
}
`

// fixture is what every test shares: the hello binaries and the zone database path.
type fixture struct {
	bins        []image.Binary // linux/amd64, linux/arm64
	zoneinfo    string
	goVersion   string
	syncVersion string
	src         string // the module's source tree, with an Apache-2.0 LICENSE
	modCache    string // the module cache the binaries were built with
}

var (
	fixtureOnce sync.Once
	fixtureVal  *fixture
	fixtureErr  error
	fixtureDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// hello builds the fixture once per test binary with the real Go toolchain, sharing the
// machine's build cache.
func hello(t *testing.T) *fixture {
	t.Helper()
	fixtureOnce.Do(func() { fixtureVal, fixtureErr = buildFixture() })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureVal
}

func goEnv(name string) (string, error) {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func buildFixture() (*fixture, error) {
	var err error
	fixtureDir, err = os.MkdirTemp("", "slipway-image-test-")
	if err != nil {
		return nil, err
	}
	f := &fixture{}
	goroot, err := goEnv("GOROOT")
	if err != nil {
		return nil, err
	}
	f.zoneinfo = filepath.Join(goroot, "lib", "time", "zoneinfo.zip")
	if f.goVersion, err = goEnv("GOVERSION"); err != nil {
		return nil, err
	}
	gocache, err := goEnv("GOCACHE")
	if err != nil {
		return nil, err
	}
	if f.modCache, err = goEnv("GOMODCACHE"); err != nil {
		return nil, err
	}

	// The module requires the x/sync this module requires, so the module cache has it and
	// nothing is downloaded.
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "golang.org/x/sync").Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m golang.org/x/sync: %w", err)
	}
	f.syncVersion = strings.TrimSpace(string(out))
	src := filepath.Join(fixtureDir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return nil, err
	}
	files := map[string]string{
		"go.mod":  "module example.com/hello\n\ngo 1.22\n\nrequire golang.org/x/sync " + f.syncVersion + "\n",
		"main.go": helloMain,
		"LICENSE": buildertest.ApacheLicense,
	}
	f.src = src
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	for _, arch := range []string{"amd64", "arm64"} {
		out := filepath.Join(fixtureDir, "hello-linux-"+arch)
		cmd := exec.Command("go", "build", "-trimpath",
			"-ldflags", "-s -w -buildid= -X main.version="+helloVersion, "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(),
			"CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOCACHE="+gocache,
			"GOFLAGS=-mod=mod -buildvcs=false", "GOSUMDB=off", "GOTOOLCHAIN=local", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build for linux/%s: %w\n%s", arch, err, b)
		}
		f.bins = append(f.bins, image.Binary{Platform: image.Platform{OS: "linux", Arch: arch}, Path: out})
	}
	return f, nil
}

// newStore is a filesystem blob store in a fresh temporary directory.
func newStore(t *testing.T) *store.FS {
	t.Helper()
	s, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keys lists every key of the store.
func keys(t *testing.T, blobs store.Blobs) []string {
	t.Helper()
	var ks []string
	for info, err := range blobs.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, info.Key)
	}
	return ks
}

// countingStore counts Puts and remembers the largest body one sent.
type countingStore struct {
	store.Blobs
	puts    atomic.Int64
	largest atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader, want store.Digest) (store.Info, error) {
	c.puts.Add(1)
	cr := &countingReader{r: r}
	info, err := c.Blobs.Put(ctx, key, cr, want)
	for {
		l := c.largest.Load()
		if cr.n <= l || c.largest.CompareAndSwap(l, cr.n) {
			break
		}
	}
	return info, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// unpacked is an image's file system written to a directory, with the tar header of
// every path that is left after whiteouts.
type unpacked struct {
	dir     string
	headers map[string]*tar.Header
}

// unpack applies the layers of img in order into a new directory, whiteouts included.
func unpack(t *testing.T, img v1.Image) *unpacked {
	t.Helper()
	u := &unpacked{dir: t.TempDir(), headers: map[string]*tar.Header{}}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		if err := u.apply(tar.NewReader(rc)); err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		rc.Close()
	}
	return u
}

func (u *unpacked) apply(tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(path.Clean("/"+hdr.Name), "/")
		if name == "" {
			continue
		}
		dst := filepath.Join(u.dir, filepath.FromSlash(name))
		base := path.Base(name)
		if base == ".wh..wh..opq" {
			parent := path.Dir(name)
			entries, _ := os.ReadDir(filepath.Dir(dst))
			for _, e := range entries {
				os.RemoveAll(filepath.Join(filepath.Dir(dst), e.Name()))
			}
			for k := range u.headers {
				if strings.HasPrefix(k, parent+"/") {
					delete(u.headers, k)
				}
			}
			continue
		}
		if gone, ok := strings.CutPrefix(base, ".wh."); ok {
			target := path.Join(path.Dir(name), gone)
			os.RemoveAll(filepath.Join(u.dir, filepath.FromSlash(target)))
			for k := range u.headers {
				if k == target || strings.HasPrefix(k, target+"/") {
					delete(u.headers, k)
				}
			}
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			os.RemoveAll(dst)
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.Chmod(dst, os.FileMode(hdr.Mode).Perm()); err != nil {
				return err
			}
		case tar.TypeSymlink:
			os.RemoveAll(dst)
			if err := os.Symlink(hdr.Linkname, dst); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected tar type %q", hdr.Name, hdr.Typeflag)
		}
		u.headers[name] = hdr
	}
}

func (u *unpacked) read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(u.dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
