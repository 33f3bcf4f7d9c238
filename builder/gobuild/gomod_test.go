package gobuild

import (
	"strings"
	"testing"
)

func TestCheckGoMod(t *testing.T) {
	for _, tc := range []struct {
		name, mod string
		ok        bool
	}{
		{"plain", "module x\n\ngo 1.22\n", true},
		{"same go", "module x\n\ngo 1.26.8\n", true},
		{"newer go", "module x\n\ngo 1.99.0\n", false},
		{"newer toolchain", "module x\n\ngo 1.22\n\ntoolchain go1.99.0\n", false},
		{"older toolchain", "module x\n\ngo 1.22\n\ntoolchain go1.22.1\n", true},
		{"replace version", "module x\n\ngo 1.22\n\nreplace a.b/c => a.b/d v1.0.0\n", true},
		{"replace inside", "module x\n\ngo 1.22\n\nreplace a.b/c => ./third_party/c\n", true},
		{"replace parent", "module x\n\ngo 1.22\n\nreplace a.b/c => ../c\n", false},
		{"replace sneaky parent", "module x\n\ngo 1.22\n\nreplace a.b/c => ./x/../../c\n", false},
		{"replace absolute", "module x\n\ngo 1.22\n\nreplace a.b/c => /etc\n", false},
		{"no module", "go 1.22\n", false},
		{"garbage", "module x\n\ngo = {\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckGoMod([]byte(tc.mod), "go1.26.8"); (err == nil) != tc.ok {
				t.Errorf("CheckGoMod(%q) = %v, want ok %v", tc.mod, err, tc.ok)
			}
		})
	}
}

// TestCheckGoModVersions compares the go and toolchain lines with the server's Go as the
// go command does (go/version): release candidates, language versions and custom
// toolchain names included.
func TestCheckGoModVersions(t *testing.T) {
	for _, tc := range []struct {
		name, mod, server string
		ok                bool
		detail            string // in the error, when not ok
	}{
		{"go rc newer", "module x\n\ngo 1.99rc1\n", "go1.26.8", false, "1.99rc1"},
		{"go next minor", "module x\n\ngo 1.27\n", "go1.26.8", false, "needs go 1.27"},
		{"go next minor rc", "module x\n\ngo 1.27rc1\n", "go1.26.8", false, "needs go 1.27rc1"},
		{"go next patch", "module x\n\ngo 1.26.99\n", "go1.26.8", false, "needs go 1.26.99"},
		{"go language version", "module x\n\ngo 1.26\n", "go1.26.8", true, ""},
		{"go same rc line", "module x\n\ngo 1.26rc1\n", "go1.26.8", true, ""},
		{"go older", "module x\n\ngo 1.21.0\n", "go1.26.8", true, ""},
		{"go same", "module x\n\ngo 1.26.8\n", "go1.26.8", true, ""},
		{"go patch rc", "module x\n\ngo 1.26.8rc1\n", "go1.26.8", false, "not a Go version"},
		{"go on an rc server", "module x\n\ngo 1.27rc1\n", "go1.27rc1", true, ""},
		{"go newer than an rc server", "module x\n\ngo 1.27.0\n", "go1.27rc2", false, "needs go 1.27.0"},
		{"go on an experiment server", "module x\n\ngo 1.26.8\n", "go1.26.8 X:boringcrypto", true, ""},
		{"go on a devel server", "module x\n\ngo 1.27\n", "devel go1.27-abcdef Tue Jan 1", true, ""},
		{"toolchain rc newer", "module x\n\ngo 1.22\n\ntoolchain go1.99rc1\n", "go1.26.8", false, "toolchain go1.99rc1"},
		{"toolchain next minor", "module x\n\ngo 1.22\n\ntoolchain go1.27\n", "go1.26.8", false, "toolchain go1.27"},
		{"toolchain next patch", "module x\n\ngo 1.22\n\ntoolchain go1.26.99\n", "go1.26.8", false, "toolchain go1.26.99"},
		{"toolchain same", "module x\n\ngo 1.22\n\ntoolchain go1.26.8\n", "go1.26.8", true, ""},
		{"toolchain custom", "module x\n\ngo 1.22\n\ntoolchain go1.26.1-bigcorp\n", "go1.26.8", true, ""},
		{"toolchain custom newer", "module x\n\ngo 1.22\n\ntoolchain go1.27.0-bigcorp\n", "go1.26.8", false, "go1.27.0-bigcorp"},
		{"toolchain default", "module x\n\ngo 1.22\n\ntoolchain default\n", "go1.26.8", true, ""},
		{"toolchain not a version", "module x\n\ngo 1.22\n\ntoolchain go1.x\n", "go1.26.8", false, "not a Go toolchain"},
		{"toolchain patch rc", "module x\n\ngo 1.22\n\ntoolchain go1.26.1rc1\n", "go1.26.8", false, "not a Go toolchain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckGoMod([]byte(tc.mod), tc.server)
			if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), tc.detail) {
				t.Errorf("CheckGoMod(%q, %q) = %v, want ok %v (an error naming %q)", tc.mod, tc.server, err, tc.ok, tc.detail)
			}
		})
	}
}
