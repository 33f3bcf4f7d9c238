// Package bench holds slipway's end-to-end benchmarks: the real binary against real Redis
// and S3, compared side by side with plain go build in the same run. docs/PERFORMANCE.md
// says how to run them and what they found.
package bench
