package builder

import (
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/slipway/slipway/builder/sign"
)

// TestModulesFromBuildInfo lists the modules of this test binary: its main module and
// every dependency the go command recorded, each once, with its go.sum hash.
func TestModulesFromBuildInfo(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Skip("the test binary has no build info")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	got, err := modules([]string{exe, exe})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(bi.Deps)+1 {
		t.Errorf("modules() = %d modules, want %d (main + deps)", len(got), len(bi.Deps)+1)
	}
	if !slices.IsSortedFunc(got, func(a, b sign.ResourceDescriptor) int { return strings.Compare(a.URI, b.URI) }) {
		t.Errorf("modules() is not sorted")
	}
	for _, d := range bi.Deps {
		m := d
		if m.Replace != nil {
			m = m.Replace
		}
		i := slices.IndexFunc(got, func(r sign.ResourceDescriptor) bool { return r.URI == "pkg:golang/"+m.Path+"@"+m.Version })
		if i < 0 {
			t.Errorf("modules() lacks %s@%s", m.Path, m.Version)
			continue
		}
		if m.Sum != "" && got[i].Digest["dirHash1"] == "" {
			t.Errorf("modules()[%s] has no hash, the binary says %s", m.Path, m.Sum)
		}
	}
}
