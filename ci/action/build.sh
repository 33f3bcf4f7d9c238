#!/usr/bin/env bash
# Builds a Go module with slipway for a CI job: the build step of the GitHub Action
# (action.yml) and the script of the GitLab CI template (ci/slipway.gitlab-ci.yml). It
# reads everything from the environment, so it runs outside CI as well (docs/ci.md):
#
#   SLIPWAY_URL, SLIPWAY_TOKEN  the server, and a token with the build scope (and release,
#                      promote or promote:CH for what SLIPWAY_RELEASE and SLIPWAY_PROMOTE ask);
#                      both required in CI
#   SLIPWAY_APP        the app (default: the one SLIPWAY_PATH/slipway.yaml names)
#   SLIPWAY_PATH       the module's directory (default .)
#   SLIPWAY_PLATFORMS  GOOS/GOARCH list, by commas, spaces or lines (default: the app's)
#   SLIPWAY_VERSION    the version (default: the CI's tag with a leading v dropped, v1.2.3
#                      giving 1.2.3; none off a tag, so slipway names it 0.0.0-<build id>)
#   SLIPWAY_RELEASE    true to release the build once it succeeds (default false)
#   SLIPWAY_PROMOTE    a channel to promote the release to (implies SLIPWAY_RELEASE=true)
#   SLIPWAY_REASON     the promotion's reason (default: the CI run's or job's URL)
#   SLIPWAY_DOTENV     where to write the build's SLIPWAY_BUILD_ID, SLIPWAY_BUILD_VERSION,
#                      SLIPWAY_IMAGE_DIGEST, SLIPWAY_IMAGE and SLIPWAY_RELEASE_VERSION
#                      (default slipway.env; a temporary file on GitHub)
#
# On GitHub Actions (GITHUB_ACTIONS=true) the tag comes from GITHUB_REF, the commit from
# GITHUB_SHA, the Idempotency-Key from GITHUB_RUN_ID and GITHUB_RUN_ATTEMPT; the job
# summary goes to GITHUB_STEP_SUMMARY and the outputs build-id, image-digest, image and
# version to GITHUB_OUTPUT; the token is masked in the log. On GitLab CI (GITLAB_CI=true)
# they come from CI_COMMIT_TAG, CI_COMMIT_SHA and CI_JOB_ID. The outputs are written when
# the build failed too. The exit status is slipway build's (1 failed, 3 refused, 4
# unreachable; slipway help), or 2 for a bad input, which is named.
set -euo pipefail

github=false
[ "${GITHUB_ACTIONS:-}" = true ] && github=true

# fail says what is wrong with an input, as an error annotation on GitHub, and exits 2.
fail() {
	if $github; then echo "::error title=slipway::$*"; fi
	echo "slipway: $*" >&2
	exit 2
}

# The token never reaches the log, even one that did not come from a secret.
if $github && [ -n "${SLIPWAY_TOKEN:-}" ]; then echo "::add-mask::$SLIPWAY_TOKEN"; fi

tag='' commit='' key='' run_url='' summary='' ci='' dotenv=${SLIPWAY_DOTENV:-}
if $github; then
	ci="the url and token inputs"
	case ${GITHUB_REF:-} in refs/tags/*) tag=${GITHUB_REF#refs/tags/} ;; esac
	commit=${GITHUB_SHA:-}
	[ -n "${GITHUB_RUN_ID:-}" ] || fail "GITHUB_RUN_ID is not set; run this step in a GitHub Actions job"
	# One key per run attempt: a retry within the attempt gets the first answer; a
	# re-run of a failed job is a new attempt, so a failed build is built again.
	key="github-${GITHUB_RUN_ID}-${GITHUB_RUN_ATTEMPT:-1}"
	run_url="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID}"
	summary=${GITHUB_STEP_SUMMARY:-}
	[ -n "$dotenv" ] || dotenv=$(mktemp "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/slipway.env.XXXXXX")
elif [ "${GITLAB_CI:-}" = true ]; then
	ci="the CI/CD variables SLIPWAY_URL and SLIPWAY_TOKEN"
	tag=${CI_COMMIT_TAG:-}
	commit=${CI_COMMIT_SHA:-}
	[ -n "${CI_JOB_ID:-}" ] || fail "CI_JOB_ID is not set; run this script in a GitLab CI job"
	# GitLab has no attempts: a retried job is a new job with a new id.
	key="gitlab-${CI_JOB_ID}"
	run_url=${CI_JOB_URL:-}
fi
[ -n "$dotenv" ] || dotenv=slipway.env

if [ -n "$ci" ]; then
	[ -n "${SLIPWAY_URL:-}" ] || fail "the server's URL is empty: set $ci"
	# Secrets are not given to jobs of pull requests from forks (GitHub) or of
	# unprotected branches when the variable is protected (GitLab).
	[ -n "${SLIPWAY_TOKEN:-}" ] || fail "the token is empty: set $ci (a secret is empty in jobs that may not read it, such as pull requests from forks)"
fi
case ${SLIPWAY_URL:-} in
"" | http://* | https://*) ;;
*) fail "the URL \"$SLIPWAY_URL\" is not an http:// or https:// URL" ;;
esac

semver='^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'
version=${SLIPWAY_VERSION:-}
version=${version#v}
if [ -n "$version" ]; then
	[[ $version =~ $semver ]] || fail "the version \"$SLIPWAY_VERSION\" is not a SemVer version such as 1.2.3"
elif [ -n "$tag" ]; then
	version=${tag#v}
	[[ $version =~ $semver ]] || fail "the tag \"$tag\" is not a SemVer version such as v1.2.3; set the version input (SLIPWAY_VERSION)"
fi

release=$(printf '%s' "${SLIPWAY_RELEASE:-false}" | tr '[:upper:]' '[:lower:]')
case $release in
true | false | "") ;;
*) fail "the release input (SLIPWAY_RELEASE) is \"$SLIPWAY_RELEASE\"; want true or false" ;;
esac

platforms=${SLIPWAY_PLATFORMS:-}
platforms=$(printf '%s' "$platforms" | tr -s '\n\t ' ',,,')
platforms=${platforms#,}
platforms=${platforms%,}

args=(build "${SLIPWAY_PATH:-.}" --follow --dotenv "$dotenv")
[ -z "${SLIPWAY_APP:-}" ] || args+=(--app "$SLIPWAY_APP")
[ -z "$platforms" ] || args+=(--platform "$platforms")
[ -z "$version" ] || args+=(--version "$version")
[ -z "$commit" ] || args+=(--commit "$commit")
[ -z "$key" ] || args+=(--idempotency-key "$key")
[ -z "$summary" ] || args+=(--summary "$summary")
[ "$release" != true ] || args+=(--release)
if [ -n "${SLIPWAY_PROMOTE:-}" ]; then
	reason=${SLIPWAY_REASON:-${run_url:-slipway build --promote}}
	args+=(--promote "$SLIPWAY_PROMOTE" --reason "$reason")
fi

status=0
slipway "${args[@]}" || status=$?
# Created only now, so that it is not in the source of a module built from the job's
# directory; and always, for the dotenv report of a job that failed early.
touch "$dotenv"

if $github && [ -n "${GITHUB_OUTPUT:-}" ]; then
	while IFS='=' read -r name value; do
		case $name in
		SLIPWAY_BUILD_ID) echo "build-id=$value" ;;
		SLIPWAY_IMAGE_DIGEST) echo "image-digest=$value" ;;
		SLIPWAY_IMAGE) echo "image=$value" ;;
		SLIPWAY_BUILD_VERSION) echo "version=$value" ;;
		esac
	done <"$dotenv" >>"$GITHUB_OUTPUT"
fi
if [ "$status" = 3 ] && $github; then
	echo "::error title=slipway::the server refused a request; the log above says which and why (a token lacking a scope, a channel's policy, a bad input)"
fi
exit "$status"
