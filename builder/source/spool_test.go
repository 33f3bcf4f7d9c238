package source_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/slipway/slipway/builder/source"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

func checkEmptyDir(t *testing.T, dir string) {
	t.Helper()
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("spool directory has %d files, want none (first %q)", len(left), left[0].Name())
	}
}

func TestSpool(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int{1, 4096, 3<<20 + 17} {
		dir := t.TempDir()
		data := randomBytes(size)
		s, err := source.Spool(ctx, bytes.NewReader(data), dir, int64(size))
		if err != nil {
			t.Fatalf("Spool(%d bytes, max %d) = %v, want nil", size, size, err)
		}
		sum := sha256.Sum256(data)
		if want := "sha256:" + hex.EncodeToString(sum[:]); s.Digest != want || s.Size != int64(size) {
			t.Errorf("Spool(%d bytes) = size %d digest %s, want size %d digest %s", size, s.Size, s.Digest, size, want)
		}
		if got, err := os.ReadFile(s.Path); err != nil || !bytes.Equal(got, data) {
			t.Errorf("spooled file holds %d bytes (%v), want the %d bytes sent", len(got), err, size)
		}
		if err := s.Remove(); err != nil {
			t.Errorf("Remove() = %v", err)
		}
		if err := s.Remove(); err != nil {
			t.Errorf("second Remove() = %v, want nil", err)
		}
		checkEmptyDir(t, dir)
	}
}

func TestSpoolTooLarge(t *testing.T) {
	dir := t.TempDir()
	_, err := source.Spool(context.Background(), bytes.NewReader(randomBytes(1<<20+1)), dir, 1<<20)
	if !errors.Is(err, source.ErrTooLarge) || errors.Is(err, source.ErrInvalid) {
		t.Errorf("Spool(1 MiB + 1, max 1 MiB) = %v, want ErrTooLarge", err)
	} else {
		t.Log(err)
	}
	checkEmptyDir(t, dir)

	// An endless body stops at the limit.
	_, err = source.Spool(context.Background(), endless{}, dir, 1<<20)
	if !errors.Is(err, source.ErrTooLarge) {
		t.Errorf("Spool(endless, max 1 MiB) = %v, want ErrTooLarge", err)
	}
	checkEmptyDir(t, dir)
}

type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

func TestSpoolCanceled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The body cancels the upload after its first chunk.
	r := &cancelAfter{r: endless{}, cancel: cancel}
	if _, err := source.Spool(ctx, r, dir, 100<<20); !errors.Is(err, context.Canceled) {
		t.Errorf("Spool(canceled mid-way) = %v, want context.Canceled", err)
	}
	checkEmptyDir(t, dir)
	if _, err := source.Spool(ctx, bytes.NewReader([]byte("x")), dir, 100); !errors.Is(err, context.Canceled) {
		t.Errorf("Spool(canceled before) = %v, want context.Canceled", err)
	}
	checkEmptyDir(t, dir)
}

type cancelAfter struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	c.cancel()
	return c.r.Read(p)
}

func TestSpoolEmpty(t *testing.T) {
	dir := t.TempDir()
	_, err := source.Spool(context.Background(), bytes.NewReader(nil), dir, 100)
	var e *source.Error
	if !errors.As(err, &e) || !errors.Is(err, source.ErrInvalid) || e.Entry != "" {
		t.Errorf("Spool(empty body) = %v, want an *Error about the archive", err)
	}
	checkEmptyDir(t, dir)
}

func TestSpoolThenInspect(t *testing.T) {
	dir := t.TempDir()
	s, err := source.Spool(context.Background(), bytes.NewReader(zipOf(t, file("go.mod", goMod))), dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Remove()
	info, err := source.Inspect(context.Background(), s.Path, source.Zip, source.DefaultLimits())
	if err != nil || string(info.GoMod) != goMod {
		t.Errorf("Inspect(spooled zip) = %+v, %v; want its go.mod", info, err)
	}
}
