package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Tolerance is how far a signature's timestamp may be from the receiver's clock.
const Tolerance = 5 * time.Minute

// The request headers of a delivery.
const (
	HeaderEvent     = "Slipway-Event"
	HeaderDelivery  = "Slipway-Delivery"
	HeaderSignature = "Slipway-Signature"
)

// secretPrefix starts every secret, so that one found in a file says what it is.
const secretPrefix = "whsec_"

// newSecret returns a random signing secret.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return secretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Sign returns the Slipway-Signature header for body sent at t: the timestamp and one
// v1 entry per secret, each the hex HMAC-SHA256 of "<t>.<body>".
func Sign(secrets []string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(ts)
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(mac(s, ts, body)))
	}
	return b.String()
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Slipway-Signature header against the raw request body: one of its v1
// entries must be the HMAC of the body under one of secrets (pass both while a secret is
// being rotated), and its timestamp must be within Tolerance of now. It returns nil, or
// an error wrapping ErrSignatureHeader, ErrSignatureExpired or ErrSignatureMismatch.
func Verify(secrets []string, header string, body []byte, now time.Time) error {
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%w: %q is not key=value", ErrSignatureHeader, part)
		}
		switch k {
		case "t":
			if ts != "" {
				return fmt.Errorf("%w: two timestamps", ErrSignatureHeader)
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return fmt.Errorf("%w: a v1 entry is not 64 hex digits", ErrSignatureHeader)
			}
			sigs = append(sigs, sig)
		}
		// Other schemes are for other receivers; they are ignored.
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no t=<unix seconds>", ErrSignatureHeader)
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: no v1 signature", ErrSignatureHeader)
	}
	age := now.Sub(time.Unix(unix, 0))
	if age > Tolerance {
		return fmt.Errorf("%w: signed %s ago, more than %s", ErrSignatureExpired, age.Round(time.Second), Tolerance)
	}
	if age < -Tolerance {
		return fmt.Errorf("%w: signed %s in the future, more than %s", ErrSignatureExpired, (-age).Round(time.Second), Tolerance)
	}
	for _, s := range secrets {
		want := mac(s, ts, body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return ErrSignatureMismatch
}
