#!/usr/bin/env bash
# The GitHub Action's install step (action.yml, ci/setup/action.yml): builds the slipway
# CLI from the action's own checkout, the repository this script is in at the very ref
# the workflow's `uses:` names (a tag such as v1, a branch, or a commit SHA), into
# $RUNNER_TEMP/slipway/bin, and puts that directory on $GITHUB_PATH for the steps after
# it. No `go install ...@latest`, and no lookup of the ref: GitHub fetched the action's
# source already. The binary's version (slipway version) is SLIPWAY_ACTION_REF when set,
# else the ref in the path GitHub checks actions out to (_actions/OWNER/REPO/REF), since
# github.action_ref is empty inside composite actions (actions/runner#2473).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin="${RUNNER_TEMP:?RUNNER_TEMP is not set; run this step in a GitHub Actions job}/slipway/bin"
: "${GITHUB_PATH:?GITHUB_PATH is not set; run this step in a GitHub Actions job}"
mkdir -p "$bin"

ref=${SLIPWAY_ACTION_REF:-}
if [ -z "$ref" ] && [ "$(basename "$(dirname "$(dirname "$(dirname "$root")")")")" = _actions ]; then
	ref=$(basename "$root")
fi
ldflags=''
[ -z "$ref" ] || ldflags="-X main.buildVersion=$ref"

# The job's Go settings are for the user's module, not this one: no GOFLAGS, no
# workspace, the host's platform, and the Go version slipway's go.mod asks for.
(cd "$root" && env -u GOOS -u GOARCH -u GOARM -u GOAMD64 -u GOEXPERIMENT \
	GOFLAGS= GOWORK=off GOTOOLCHAIN=auto \
	go build -buildvcs=false -ldflags "$ldflags" -o "$bin/slipway" ./cmd/slipway)
echo "$bin" >>"$GITHUB_PATH"
"$bin/slipway" version
