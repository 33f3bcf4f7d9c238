package invalid

import "testing"

func TestNormalizeVersion(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		changed  bool
	}{
		{"1.4.2", "1.4.2", false},
		{"v1.4.2", "1.4.2", true},
		{"v2.0.0-rc.1+build.5", "2.0.0-rc.1+build.5", true},
		{"v1", "v1", false},
		{"vv1.4.2", "vv1.4.2", false},
		{"V1.4.2", "V1.4.2", false},
		{"v", "v", false},
		{"", "", false},
	} {
		got, changed := NormalizeVersion(tc.in)
		if got != tc.want || changed != tc.changed {
			t.Errorf("NormalizeVersion(%q) = %q, %v, want %q, %v", tc.in, got, changed, tc.want, tc.changed)
		}
	}
}

func FuzzNormalizeVersion(f *testing.F) {
	for _, s := range []string{"v1.4.2", "1.4.2", "v", "v01.2.3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, changed := NormalizeVersion(v)
		if changed && (CheckVersion(got) != nil || "v"+got != v) {
			t.Errorf("NormalizeVersion(%q) = %q, true: not v plus a valid version", v, got)
		}
		if !changed && got != v {
			t.Errorf("NormalizeVersion(%q) = %q, false: changed it", v, got)
		}
	})
}
