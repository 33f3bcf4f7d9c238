package store_test

import (
	"errors"
	"testing"

	"github.com/slipway/slipway/store"
)

func TestParseDigest(t *testing.T) {
	good := store.DigestBytes([]byte("x"))
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{good.String(), true},
		{"sha256:" + good.Hex()[:63], false},
		{"sha512:" + good.Hex(), false},
		{"sha256:" + good.Hex()[:63] + "G", false},
		{"sha256:" + good.Hex()[:63] + "A", false},
		{"", false},
	} {
		_, err := store.ParseDigest(tc.in)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, store.ErrInvalidDigest)) {
			t.Errorf("ParseDigest(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}
