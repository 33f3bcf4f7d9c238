package builder

import "testing"

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
