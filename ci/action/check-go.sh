#!/usr/bin/env bash
# The GitHub Action's first step (action.yml, ci/setup/action.yml): says whether the job
# needs Go set up before install.sh can build the slipway CLI. Any Go 1.21 or newer on
# PATH will do, since it fetches the toolchain go.mod asks for (GOTOOLCHAIN=auto); with
# none, it writes setup=true to $GITHUB_OUTPUT and the action runs actions/setup-go.
set -euo pipefail

minor=0
if command -v go >/dev/null; then
	v=$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || true) # go1.22.2
	v=${v#go1.}
	minor=${v%%[!0-9]*}
fi
if [ "${minor:-0}" -ge 21 ]; then
	echo "slipway: using $(command -v go) ($(GOTOOLCHAIN=local go env GOVERSION)) to build the CLI"
	echo "setup=false" >>"${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
else
	echo "slipway: no Go 1.21 or newer on PATH; setting up the Go of slipway's go.mod"
	echo "setup=true" >>"${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
fi
