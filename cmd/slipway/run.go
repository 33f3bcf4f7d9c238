package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/slipway/slipway/builder/gocache"
)

const usage = `slipway builds Go source into binaries and OCI images and moves releases through channels.

Usage:
  slipway serve [flags]     run the API server and build workers (flags: slipway serve --help)
  slipway worker [flags]    run build workers only, sharing Redis and the blob store
  slipway version           print the version and commit of this binary
  slipway cache prune --older-than DURATION
                            delete the shared Go build cache's old entries from the blob store
  slipway completion bash|zsh|fish
                            print a shell completion script (see slipway completion --help)

Settings come from flags or SLIPWAY_* environment variables; flags win.
` + clientUsage

// run is the whole program: main only supplies the process's context, arguments,
// environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &usageError{"no command given"}
	}
	switch args[0] {
	case "serve", "worker":
		cfg, err := parseServe(args[0], args[1:], getenv, stdout)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		if err != nil {
			return err
		}
		if args[0] == "worker" {
			return runWorkers(ctx, cfg, stderr)
		}
		return serve(ctx, cfg, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, readBuildInfo())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "completion":
		return runCompletion(args[1:], stdout)
	case "cache":
		return runCache(ctx, args[1:], getenv, stdout)
	case "gocacheprog": // not listed: the go command runs it (GOCACHEPROG) in builds
		return gocache.RunProg(ctx, args[1:], os.Stdin, stdout)
	}
	if ok, err := runClient(ctx, args, getenv, stdout, stderr); ok {
		if errors.Is(err, errHelpShown) {
			return nil
		}
		return err
	}
	return &usageError{fmt.Sprintf("unknown command %q%s (slipway help lists the commands)", args[0], didYouMean(args[0], commandNames()))}
}

// exitCode is the process's exit status for what run returned: 0 for nil, 2 for a
// usageError, the ExitCode of an error that has one (the client's 1, 3 and 4), else 1.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return exitFailed
}
