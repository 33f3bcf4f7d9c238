package vulns_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slipway/slipway/builder/vulns"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// fixtureDB is the file:// URL of the test database: GO-2099-0001 (critical, CVSS 9.8) in
// encoding/csv's reader and GO-2099-0002 (CVSS 3.7) in encoding/base32's encoder, both
// for every Go version.
func fixtureDB(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata/vulndb")
	if err != nil {
		t.Fatal(err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// buildFixture compiles testdata/<name> as slipway does (stripped, trimmed paths) and
// returns the binary.
func buildFixture(t *testing.T, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, ".")
	cmd.Dir = filepath.Join("testdata", name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func digest(b []byte) store.Digest {
	h := sha256.Sum256(b)
	return store.Digest("sha256:" + hex.EncodeToString(h[:]))
}

func opener(b []byte) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// TestScan: a binary that calls a vulnerable symbol has that vulnerability, with its
// severity; one that does not has none; the second scan of a binary is Redis's answer.
func TestScan(t *testing.T) {
	rdb := storetest.Redis(t)
	s, err := vulns.New(rdb, fixtureDB(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		app      string
		ids      []string
		symbol   string
		critical bool
	}{
		{"csvapp", []string{"GO-2099-0001"}, "encoding/csv.Reader.ReadAll", true},
		{"b32app", []string{"GO-2099-0002"}, "encoding/base32.Encoding.EncodeToString", false},
		{"plainapp", nil, "", false},
	} {
		t.Run(tc.app, func(t *testing.T) {
			bin := buildFixture(t, tc.app)
			before := s.Scans()
			got, err := s.Scan(ctx, "hello", digest(bin), opener(bin))
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, f := range got {
				ids = append(ids, f.ID)
			}
			if !slices.Equal(ids, tc.ids) || s.Scans() != before+1 {
				t.Fatalf("Scan(%s) = %+v, want %v scanned once", tc.app, got, tc.ids)
			}
			if len(got) > 0 {
				f := got[0]
				if !slices.Contains(f.Symbols, tc.symbol) || f.Critical != tc.critical || f.Module != "stdlib" ||
					f.FixedVersion != "v99.0.0" || f.Summary == "" {
					t.Errorf("Scan(%s) = %+v, want %s, critical %v", tc.app, f, tc.symbol, tc.critical)
				}
			}
			again, err := s.Scan(ctx, "hello", digest(bin), func(context.Context) (io.ReadCloser, error) {
				t.Error("the second scan read the binary")
				return nil, io.EOF
			})
			if err != nil || len(again) != len(got) || s.Scans() != before+1 {
				t.Errorf("Scan again = %+v, %v; scans %d, want the first answer from Redis", again, err, s.Scans()-before)
			}
		})
	}
	if _, err := vulns.New(rdb, "ftp://example.com/db", ""); err == nil {
		t.Error("New(ftp://...) = nil error")
	}
	if _, err := vulns.New(rdb, "file:///nonexistent", ""); err == nil || !strings.Contains(err.Error(), "index/db.json") {
		t.Errorf("New(file:///nonexistent) = %v", err)
	}
}

func TestIsCritical(t *testing.T) {
	for _, tc := range []struct {
		entry    string
		score    float64
		critical bool
	}{
		{`{}`, 0, false},
		{`{"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}`, 9.8, true},
		{`{"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}]}`, 10, true},
		{`{"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N"}]}`, 6.5, false},
		{`{"severity":[{"type":"CVSS_V3","score":"CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N"}]}`, 0, false},
		{`{"severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]}`, 0, false},
		{`{"severity":[{"type":"X","score":"9.1"}]}`, 9.1, true},
		{`{"database_specific":{"severity":"CRITICAL"}}`, 0, true},
		{`{"affected":[{"database_specific":{"severity":"critical"}}]}`, 0, true},
		{`{"database_specific":{"severity":"HIGH"}}`, 0, false},
	} {
		score, critical := vulns.IsCritical([]byte(tc.entry))
		if score != tc.score || critical != tc.critical {
			t.Errorf("IsCritical(%s) = %v, %v; want %v, %v", tc.entry, score, critical, tc.score, tc.critical)
		}
	}
}
