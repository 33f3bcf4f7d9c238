package webhook

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	now := time.Unix(1767225600, 0)
	body := []byte(`{"id":"01JD3Y7Q9V6K2M8N4P5R7S9T1W","type":"channel.promoted"}`)
	oneByte := append([]byte(nil), body...)
	oneByte[10] ^= 1
	old, cur := "whsec_old", "whsec_new"
	tests := []struct {
		name    string
		secrets []string
		header  string
		body    []byte
		now     time.Time
		want    error
	}{
		{"valid", []string{cur}, Sign([]string{cur}, now, body), body, now, nil},
		{"valid 299 s later", []string{cur}, Sign([]string{cur}, now, body), body, now.Add(299 * time.Second), nil},
		{"body changed by one byte", []string{cur}, Sign([]string{cur}, now, body), oneByte, now, ErrSignatureMismatch},
		{"timestamp 301 s old", []string{cur}, Sign([]string{cur}, now.Add(-301*time.Second), body), body, now, ErrSignatureExpired},
		{"timestamp 301 s ahead", []string{cur}, Sign([]string{cur}, now.Add(301*time.Second), body), body, now, ErrSignatureExpired},
		{"wrong secret", []string{"whsec_other"}, Sign([]string{cur}, now, body), body, now, ErrSignatureMismatch},
		{"rotation: old secret", []string{old}, Sign([]string{cur, old}, now, body), body, now, nil},
		{"rotation: new secret", []string{cur}, Sign([]string{cur, old}, now, body), body, now, nil},
		{"receiver holds both", []string{old, cur}, Sign([]string{cur}, now, body), body, now, nil},
		{"timestamp edited", []string{cur}, strings.Replace(Sign([]string{cur}, now, body), "t=1767225600", "t=1767225601", 1), body, now, ErrSignatureMismatch},
		{"empty", []string{cur}, "", body, now, ErrSignatureHeader},
		{"no timestamp", []string{cur}, "v1=" + strings.Repeat("ab", 32), body, now, ErrSignatureHeader},
		{"no v1", []string{cur}, "t=1767225600", body, now, ErrSignatureHeader},
		{"short v1", []string{cur}, "t=1767225600,v1=abcd", body, now, ErrSignatureHeader},
		{"two timestamps", []string{cur}, "t=1,t=2,v1=" + strings.Repeat("ab", 32), body, now, ErrSignatureHeader},
		{"other schemes ignored", []string{cur}, Sign([]string{cur}, now, body) + ",v0=whatever", body, now, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secrets, tc.header, tc.body, tc.now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("Verify(%q) = %v, want %v", tc.header, err, tc.want)
			}
		})
	}
}

func TestSignFormat(t *testing.T) {
	h := Sign([]string{"a", "b"}, time.Unix(42, 0), []byte("x"))
	parts := strings.Split(h, ",")
	if len(parts) != 3 || parts[0] != "t=42" || !strings.HasPrefix(parts[1], "v1=") || !strings.HasPrefix(parts[2], "v1=") || len(parts[1]) != 67 {
		t.Errorf("Sign = %q, want t=42 and two 64-digit v1 entries", h)
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1767225600, 0)
	f.Add(Sign([]string{"whsec_x"}, now, []byte("{}")), []byte("{}"))
	f.Add("t=1767225600,v1="+strings.Repeat("ab", 32), []byte("{}"))
	f.Add("t=,v1=,=,,", []byte(""))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if Verify([]string{"whsec_x"}, header, body, now) != nil {
			return
		}
		// A header that verifies holds the right MAC for its own timestamp.
		for part := range strings.SplitSeq(header, ",") {
			if ts, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok &&
				strings.Contains(strings.ToLower(header), hex.EncodeToString(mac("whsec_x", ts, body))) {
				return
			}
		}
		t.Errorf("Verify(%q) accepted a header without the right signature", header)
	})
}
