// Package image turns compiled Go binaries into a reproducible, multi-platform OCI image
// index in the blob store, on slipway's built-in distroless base or a registry base, with an
// SPDX SBOM attached to every platform image as an OCI 1.1 referrer.
package image
