// Command slipway-gocacheprog is the program the go command runs as its GOCACHEPROG in
// slipway's builds: a relay to the worker's build cache (docs/build-cache.md). It is
// `slipway gocacheprog` without the rest of slipway, so that it starts at once; a worker
// uses it when it lies beside the slipway executable.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/slipway/slipway/builder/gocache/cacheprog"
)

func main() {
	if err := cacheprog.Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "slipway-gocacheprog: "+err.Error())
		os.Exit(1)
	}
}
