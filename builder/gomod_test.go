package builder

import "testing"

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

func TestValidateVersion(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"1.4.2", true}, {"0.0.0-01JD3Y7Q9V6K2M8N4P5R7S9T1W", true}, {"2.0.0-rc.1+build.5", true},
		{"v1.4.2", false}, {"1.4", false}, {"01.2.3", false}, {"1.2.3-", false}, {"", false}, {"1.2.3 ", false},
	} {
		if err := ValidateVersion(tc.v); (err == nil) != tc.ok {
			t.Errorf("ValidateVersion(%q) = %v, want ok %v", tc.v, err, tc.ok)
		}
	}
}
