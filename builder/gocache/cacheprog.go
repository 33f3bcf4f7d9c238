package gocache

import (
	"context"
	"io"

	"github.com/slipway/slipway/builder/gocache/cacheprog"
)

// SharedNamespace is the namespace every app's builds share (SLIPWAY_BUILD_CACHE_SCOPE=shared).
const SharedNamespace = cacheprog.SharedNamespace

// RunProg is the cache program, as `slipway gocacheprog` runs it: cacheprog.Run.
func RunProg(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	return cacheprog.Run(ctx, args, stdin, stdout)
}

// What the server shares with the cache program, by the names the server uses.
type (
	entry    = cacheprog.Entry
	hello    = cacheprog.Hello
	request  = cacheprog.Request
	response = cacheprog.Response
)

var (
	parseEntry     = cacheprog.ParseEntry
	hashHex        = cacheprog.HashHex
	hit            = cacheprog.Hit
	checkNamespace = cacheprog.CheckNamespace
	isHashHex      = cacheprog.IsHashHex
)

const (
	maxEntry   = cacheprog.MaxEntry
	touchEvery = cacheprog.TouchEvery
	cmdUsed    = cacheprog.CmdUsed
	cmdHits    = cacheprog.CmdHits
)
