// Package sign holds slipway's signing keys and the documents it signs: cosign's
// simple-signing payload for an image, in-toto statements with SLSA provenance in DSSE
// envelopes, and plain signatures over files such as SHA256SUMS, with the checks that
// verify each against a set of public keys.
package sign
