package api

import (
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/slipway/slipway/openapi"
)

// reprDigest reads the SHA-256 member of a Repr-Digest field (RFC 9530: a structured
// dictionary such as `sha-256=:<base64>:, sha-512=:...:`) as "sha256:<hex>". It is ""
// when the field is empty or names no SHA-256; a SHA-256 member that is not 32 bytes of
// base64 between colons is an invalid-parameter problem.
func reprDigest(field string) (string, error) {
	for member := range strings.SplitSeq(field, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(member), "=")
		if !ok || strings.ToLower(strings.TrimSpace(key)) != "sha-256" {
			continue
		}
		value = strings.TrimSpace(value)
		if v, _, params := strings.Cut(value, ";"); params {
			value = v // parameters of a member say nothing about the bytes
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(strings.TrimPrefix(value, ":"), ":"))
		if len(value) < 2 || value[0] != ':' || value[len(value)-1] != ':' || err != nil || len(raw) != 32 {
			return "", newProblem(openapi.ProblemInvalidParameter,
				"Repr-Digest: sha-256 must be the 32 bytes of the body's SHA-256 in base64 between colons, as in sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:")
		}
		return "sha256:" + hex.EncodeToString(raw), nil
	}
	return "", nil
}
