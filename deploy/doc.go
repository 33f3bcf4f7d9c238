// Package deploy holds the checks of slipway's deployment manifests: its tests render
// every kustomize overlay of kubernetes/ and decode each object strictly into its API
// type. It is a module of its own, so that the Kubernetes and KEDA API types stay out
// of slipway's.
package deploy
