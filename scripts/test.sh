#!/usr/bin/env bash
# Runs every slipway test against real servers: it installs what is missing
# (redis-server from the system packages; versitygw, the OCI conformance test and oras
# with go install), starts its own redis-server, Redis Clusters (3 masters each, made with
# redis-cli --cluster create) and versitygw on free loopback ports in a temporary
# directory, runs `go vet` and `go test -race ./...` against them (and the tests of
# examples/hello and deploy/, modules of their own), runs the tests of the packages that
# keep things in Redis once more on a Redis Cluster each, and stops the servers on exit. When the packages
# include ./openapi (or ./...), it first lints openapi/openapi.yaml with Spectral and
# Redocly at pinned versions through npx (Node.js 20.19+ with npm). When they include
# ./cmd/slipway (or ./...), it lints the CI front doors: the GitHub workflows of docs/ci.md
# with actionlint (go install, pinned), run against action.yml and ci/setup/action.yml as
# local actions so that their metadata is checked too; the scripts of ci/ with shellcheck;
# README.md, docs/ci.md and docs/chatops.md with markdownlint-cli2 (npx, pinned). Without
# npx it says how to install it and goes on, except under CI=true, where it fails; it
# installs shellcheck from the system packages when it is missing. When they include
# ./api, it installs Debian's chromium when missing and fetches axe-core (npm, pinned) for
# the portal's browser test.
#
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh ./store/...     # only some packages (any go test arguments)
#   RACE=0 ./scripts/test.sh -run '^$' -bench . ./bench/   # benchmarks, without -race
set -euo pipefail

cd "$(dirname "$0")/.."

VERSITYGW_VERSION=v1.8.0
# The OCI distribution-spec conformance test (a main package; pinned by pseudo-version).
OCI_CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111
# oras, the OCI artifacts client: the API tests run `oras discover` as a user would.
ORAS_VERSION=v1.3.6
# actionlint lints the GitHub workflows of docs/ci.md and the action metadata they use.
ACTIONLINT_VERSION=v1.7.12
# cosign verifies slipway's image signatures, provenance and signed checksums in the tests.
COSIGN_VERSION=v2.6.1

log() { printf 'test.sh: %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		log "need root to run: $*"
		return 1
	fi
}

# The OpenAPI linters and the Markdown linter (npm packages, run with npx; exact versions).
SPECTRAL_VERSION=6.16.3
REDOCLY_VERSION=2.77.0
MARKDOWNLINT_CLI2_VERSION=0.24.1

# --- tools -------------------------------------------------------------------------------
command -v go >/dev/null || { log "Go is not installed: see https://go.dev/doc/install"; exit 1; }

# system_install CMD APT_PACKAGE [OTHER_PACKAGE]: installs the package that provides CMD
# from the system's package manager when CMD is missing (OTHER_PACKAGE names it for apk,
# dnf and brew when their name differs from Debian's).
APT_UPDATED=
system_install() {
	local cmd=$1 apt=$2 other=${3:-$2}
	command -v "$cmd" >/dev/null && return 0
	log "installing $apt from the system packages"
	if command -v apt-get >/dev/null; then
		[ -n "$APT_UPDATED" ] || { as_root apt-get update -qq && APT_UPDATED=1; } &&
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$apt" >/dev/null
	elif command -v apk >/dev/null; then
		as_root apk add --no-cache "$other"
	elif command -v dnf >/dev/null; then
		as_root dnf install -y "$other"
	elif command -v brew >/dev/null; then
		brew install "$other"
	else
		log "no known package manager: install $apt and run again"
		return 1
	fi
}

system_install redis-server redis-server redis || exit 1

GOBIN_DIR="$(go env GOBIN)"
[ -n "$GOBIN_DIR" ] || GOBIN_DIR="$(go env GOPATH)/bin"
export PATH="$GOBIN_DIR:$PATH"
if ! command -v versitygw >/dev/null ||
	! go version -m "$(command -v versitygw)" 2>/dev/null | grep -q "github.com/versity/versitygw[[:space:]]*$VERSITYGW_VERSION"; then
	log "installing versitygw $VERSITYGW_VERSION (S3-compatible server) with go install"
	go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi

if ! go version -m "$GOBIN_DIR/conformance" 2>/dev/null |
	grep -q "github.com/opencontainers/distribution-spec/conformance[[:space:]]*$OCI_CONFORMANCE_VERSION"; then
	log "installing the OCI distribution-spec conformance test $OCI_CONFORMANCE_VERSION with go install"
	go install "github.com/opencontainers/distribution-spec/conformance@$OCI_CONFORMANCE_VERSION"
fi
export SLIPWAY_TEST_OCI_CONFORMANCE="$GOBIN_DIR/conformance"

if ! go version -m "$GOBIN_DIR/oras" 2>/dev/null | grep -q "oras.land/oras[[:space:]]*$ORAS_VERSION"; then
	log "installing oras $ORAS_VERSION with go install"
	go install "oras.land/oras/cmd/oras@$ORAS_VERSION"
fi

if ! go version -m "$GOBIN_DIR/actionlint" 2>/dev/null | grep -q "github.com/rhysd/actionlint[[:space:]]*$ACTIONLINT_VERSION"; then
	log "installing actionlint $ACTIONLINT_VERSION with go install"
	go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi

# cosign, as deployers run it: the signing tests verify slipway's signatures,
# attestations and signed checksums with it. Without it they fail under CI=true and are
# skipped otherwise.
if ! go version -m "$GOBIN_DIR/cosign" 2>/dev/null | grep -q "github.com/sigstore/cosign/v2[[:space:]]*$COSIGN_VERSION"; then
	log "installing cosign $COSIGN_VERSION with go install"
	go install "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION" ||
		log "cosign $COSIGN_VERSION could not be installed: the signing tests will fail under CI=true, and be skipped otherwise"
fi
if [ -x "$GOBIN_DIR/cosign" ]; then export SLIPWAY_TEST_COSIGN="$GOBIN_DIR/cosign"; fi

# --- the portal's browser test ------------------------------------------------------------
# api/'s browser test drives Debian's Chromium (/usr/bin/chromium, installed here when
# missing) and checks each page with axe-core, fetched from npm at a pinned version into
# the run's temporary directory. Without either it fails under CI=true and is skipped (or
# its accessibility checks are) otherwise, saying how to install what is missing.
AXE_CORE_VERSION=4.11.0

install_chromium() {
	[ -n "${SLIPWAY_TEST_CHROMIUM:-}" ] && return 0
	[ -x /usr/bin/chromium ] && return 0
	system_install chromium chromium && [ -x /usr/bin/chromium ] && return 0
	log "chromium could not be installed, so the portal's browser test is skipped: apt-get install chromium"
	[ "${CI:-}" = true ] && { log "CI=true: failing, as CI must run the browser test"; return 1; }
	return 0
}

# fetch_axe puts axe-core's axe.min.js in the run's directory and exports its path.
fetch_axe() {
	if command -v npm >/dev/null &&
		(cd "$WORK" && npm pack --silent "axe-core@$AXE_CORE_VERSION" >/dev/null &&
			tar -xzf "axe-core-$AXE_CORE_VERSION.tgz" package/axe.min.js); then
		export SLIPWAY_TEST_AXE="$WORK/package/axe.min.js"
		return 0
	fi
	log "axe-core $AXE_CORE_VERSION could not be fetched with npm, so the portal's accessibility checks are skipped: install Node.js with npm"
	[ "${CI:-}" = true ] && { log "CI=true: failing, as CI must check the portal's accessibility"; return 1; }
	return 0
}

# --- the contract ------------------------------------------------------------------------
# lint_openapi lints the contract with Spectral's spectral:oas rules and Redocly's
# recommended ones (configured in openapi/); either one's error fails the run.
lint_openapi() {
	if ! command -v npx >/dev/null; then
		log "npx is missing, so openapi/openapi.yaml is not linted: install Node.js 20.19+ with npm"
		log "  (apt-get install nodejs npm, brew install node, or https://nodejs.org)"
		[ "${CI:-}" = true ] && { log "CI=true: failing, as CI must lint the contract"; return 1; }
		return 0
	fi
	log "linting openapi/openapi.yaml (spectral $SPECTRAL_VERSION, redocly $REDOCLY_VERSION)"
	npx --yes "@stoplight/spectral-cli@$SPECTRAL_VERSION" lint --ruleset openapi/.spectral.yaml \
		--fail-severity error --display-only-failures openapi/openapi.yaml
	npx --yes "@redocly/cli@$REDOCLY_VERSION" lint --config openapi/redocly.yaml --format stylish \
		openapi/openapi.yaml
}

# --- the CI front doors --------------------------------------------------------------------
# lint_ci lints what docs/ci.md tells users to copy and what it points them at. Each fenced
# yaml block after <!-- workflow: .github/workflows/NAME.yml --> becomes that file in a
# scratch repository beside action.yml and ci/setup/action.yml, and its uses: of
# slipway/slipway@v1 and slipway/slipway/ci/setup@v1 point at those local copies, so that
# actionlint checks the workflows (and their run: scripts, with shellcheck) and the action
# metadata: inputs, outputs, runs.
lint_ci() {
	local dir n
	dir="$(mktemp -d "${TMPDIR:-/tmp}/slipway-ci-lint.XXXXXX")"
	mkdir -p "$dir/.github/workflows" "$dir/ci/setup"
	cp action.yml "$dir/action.yml"
	cp ci/setup/action.yml "$dir/ci/setup/action.yml"
	awk -v dir="$dir" '
		/^<!-- workflow: .* -->$/ { name = $3; next }
		name != "" && /^```yaml$/ { out = dir "/" name; inblock = 1; next }
		inblock && /^```$/ { inblock = 0; name = ""; close(out); next }
		inblock { print > out }
	' docs/ci.md
	n=$(find "$dir/.github/workflows" -name '*.yml' | wc -l)
	if [ "$n" -lt 2 ]; then
		log "docs/ci.md has $n GitHub workflows marked <!-- workflow: ... -->, want 2 or more"
		rm -rf "$dir"
		return 1
	fi
	sed -i.orig -e 's#uses: slipway/slipway/ci/setup@v1$#uses: ./ci/setup#' \
		-e 's#uses: slipway/slipway@v1$#uses: ./#' "$dir"/.github/workflows/*.yml
	rm -f "$dir"/.github/workflows/*.orig
	git -C "$dir" init -q
	log "linting the $n GitHub workflows of docs/ci.md, action.yml and ci/setup/action.yml (actionlint $ACTIONLINT_VERSION)"
	(cd "$dir" && "$GOBIN_DIR/actionlint") || { rm -rf "$dir"; return 1; }
	rm -rf "$dir"

	system_install shellcheck shellcheck || true
	if command -v shellcheck >/dev/null; then
		log "checking ci/action/*.sh and scripts/test.sh with $(shellcheck --version | sed -n 's/^version: /shellcheck /p')"
		shellcheck ci/action/*.sh scripts/test.sh
	else
		log "shellcheck is missing, so ci/action/*.sh and the workflows' run: scripts are not checked:"
		log "  apt-get install shellcheck, brew install shellcheck, or https://www.shellcheck.net"
		[ "${CI:-}" = true ] && { log "CI=true: failing, as CI must check the scripts"; return 1; }
	fi

	if ! command -v npx >/dev/null; then
		log "npx is missing, so README.md, docs/ci.md and docs/chatops.md are not linted: install Node.js 20.19+ with npm"
		[ "${CI:-}" = true ] && { log "CI=true: failing, as CI must lint the docs"; return 1; }
		return 0
	fi
	log "linting README.md, docs/ci.md and docs/chatops.md (markdownlint-cli2 $MARKDOWNLINT_CLI2_VERSION, .markdownlint-cli2.yaml)"
	npx --yes "markdownlint-cli2@$MARKDOWNLINT_CLI2_VERSION" README.md docs/ci.md docs/chatops.md
}

# The packages to test; the contract and the CI front doors are linted first when they
# include them.
PKGS=()
# A package may be named with a trailing slash (./cmd/slipway/): it is the same package.
for a in "$@"; do case "$a" in ./*/ | ../*/) PKGS+=("${a%/}") ;; ./* | ../*) PKGS+=("$a") ;; esac; done
if [ "${#PKGS[@]}" = 0 ]; then PKGS=(./...); set -- "$@" ./...; fi
for p in "${PKGS[@]}"; do
	case "$p" in ./... | ./openapi | ./openapi/*) lint_openapi; break ;; esac
done
for p in "${PKGS[@]}"; do
	case "$p" in ./... | ./cmd/slipway | ./cmd/slipway/...) lint_ci; break ;; esac
done

# --- servers -----------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/slipway-test.XXXXXX")"
PIDS=()
cleanup() {
	local code=$?
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [ "$code" != 0 ]; then
		for f in "$WORK"/*.log; do [ -s "$f" ] && { log "--- $f (last lines)"; tail -n 20 "$f" >&2; }; done
	fi
	rm -rf "$WORK"
	exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a loopback TCP port nobody is listening on.
free_port() {
	local port low
	# Below the kernel's ephemeral range, which the tests' own connections use up in
	# numbers: a port taken by one of them makes a server fail to listen.
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$low" -gt 12000 ] 2>/dev/null || low=32768
	for _ in $(seq 1 100); do
		port=$((10000 + RANDOM % (low - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# wait_port waits until something accepts connections on the port, or the process dies.
wait_port() {
	local port=$1 pid=$2 name=$3
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		kill -0 "$pid" 2>/dev/null || { log "$name exited at start"; return 1; }
		sleep 0.1
	done
	log "$name did not listen on 127.0.0.1:$port within 30s"
	return 1
}

start_redis() {
	for _ in 1 2 3; do
		REDIS_PORT=$(free_port)
		mkdir -p "$WORK/redis"
		redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$WORK/redis" \
			--appendonly yes --save "" --databases 1024 --daemonize no \
			--logfile "$WORK/redis.log" &
		REDIS_PID=$!
		if wait_port "$REDIS_PORT" "$REDIS_PID" redis-server; then
			PIDS+=("$REDIS_PID")
			return 0
		fi
	done
	return 1
}

start_s3() {
	for _ in 1 2 3; do
		S3_PORT=$(free_port)
		mkdir -p "$WORK/s3"
		ROOT_ACCESS_KEY_ID=slipwaytest ROOT_SECRET_ACCESS_KEY=slipwaytestsecret \
			versitygw --port "127.0.0.1:$S3_PORT" --quiet posix "$WORK/s3" >"$WORK/versitygw.log" 2>&1 &
		S3_PID=$!
		if wait_port "$S3_PORT" "$S3_PID" versitygw; then
			PIDS+=("$S3_PID")
			return 0
		fi
	done
	return 1
}

# start_cluster_nodes starts the 3 nodes of a Redis Cluster, each on free loopback ports
# (its own and its cluster bus's) with nothing kept on disk, and adds their addresses,
# comma-separated, to REDIS_CLUSTERS.
start_cluster_nodes() {
	local name=$1 addrs=() n port bus pid dir
	for n in 1 2 3; do
		for _ in 1 2 3; do
			port=$(free_port)
			bus=$(free_port)
			dir="$WORK/$name-$n"
			mkdir -p "$dir"
			redis-server --bind 127.0.0.1 --port "$port" --cluster-port "$bus" --dir "$dir" \
				--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
				--appendonly no --save "" --daemonize no --logfile "$WORK/$name-$n.log" &
			pid=$!
			if wait_port "$port" "$pid" "redis-server ($name)"; then
				PIDS+=("$pid")
				addrs+=("127.0.0.1:$port")
				break
			fi
		done
	done
	[ "${#addrs[@]}" = 3 ] || return 1
	REDIS_CLUSTERS="${REDIS_CLUSTERS:+$REDIS_CLUSTERS }$(IFS=,; echo "${addrs[*]}")"
}

# join_clusters makes a cluster of the nodes of each of REDIS_CLUSTERS with redis-cli, all
# at once, and waits until every node says its cluster is ok.
join_clusters() {
	local cl addrs creating=() i=0 pid a ok
	for cl in $REDIS_CLUSTERS; do
		i=$((i + 1))
		IFS=, read -r -a addrs <<<"$cl"
		redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$WORK/cluster$i-create.log" 2>&1 &
		creating+=("$!")
	done
	for pid in "${creating[@]}"; do
		wait "$pid" || { log "redis-cli --cluster create failed"; return 1; }
	done
	for _ in $(seq 1 300); do
		ok=1
		for a in ${REDIS_CLUSTERS//,/ }; do
			redis-cli -h 127.0.0.1 -p "${a##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || { ok=0; break; }
		done
		[ "$ok" = 1 ] && return 0
		sleep 0.1
	done
	log "the Redis Clusters $REDIS_CLUSTERS were not ok within 30s"
	return 1
}

start_redis
start_s3
# Redis Clusters for the tests: as many as go test runs packages at once (one per core, at
# most 4), since each test holds a whole cluster while it runs (store/storetest).
REDIS_CLUSTERS=
CLUSTERS=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
[ "$CLUSTERS" -gt 4 ] && CLUSTERS=4
[ "$CLUSTERS" -lt 2 ] && CLUSTERS=2
for i in $(seq 1 "$CLUSTERS"); do start_cluster_nodes "cluster$i"; done
join_clusters
log "redis-server on 127.0.0.1:$REDIS_PORT, versitygw on 127.0.0.1:$S3_PORT, Redis Clusters $REDIS_CLUSTERS, data in $WORK"

for p in "${PKGS[@]}"; do
	case "$p" in ./... | ./api | ./api/...) install_chromium; fetch_axe; break ;; esac
done

export SLIPWAY_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export SLIPWAY_TEST_REDIS_CLUSTERS="$REDIS_CLUSTERS"
export SLIPWAY_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
export AWS_ACCESS_KEY_ID=slipwaytest
export AWS_SECRET_ACCESS_KEY=slipwaytestsecret
export AWS_REGION=us-east-1

# --- tests -------------------------------------------------------------------------------
go vet "${PKGS[@]}"
# RACE=0 drops the race detector, for benchmarks: ./scripts/test.sh -run '^$' -bench . ./bench/
RACEFLAG=-race
[ "${RACE:-1}" = 0 ] && RACEFLAG=
go test $RACEFLAG -count=1 -timeout 60m "$@"
# The packages that keep things in Redis run once more with a Redis Cluster for each
# test (SLIPWAY_TEST_REDIS=cluster), where a command over keys of several hash slots
# fails; those of the arguments' packages, with the same go test flags.
CLUSTER_PKGS=()
for c in ./store ./release ./builder ./api ./events ./webhook ./auth ./chatops ./builder/vulns; do
	for p in "${PKGS[@]}"; do
		case "$p" in ./... | "$c" | "$c/..." | "${c%/*}/...") CLUSTER_PKGS+=("$c"); break ;; esac
	done
done
if [ "${#CLUSTER_PKGS[@]}" -gt 0 ]; then
	FLAGS=()
	for a in "$@"; do case "$a" in ./* | ../*) ;; *) FLAGS+=("$a") ;; esac; done
	log "again on Redis Cluster: ${CLUSTER_PKGS[*]}"
	SLIPWAY_TEST_REDIS=cluster go test $RACEFLAG -count=1 -timeout 60m "${CLUSTER_PKGS[@]}" "${FLAGS[@]}"
fi
# examples/hello is a module of its own (the quick start builds it), so ./... leaves it out;
# so is deploy/, whose tests render every kustomize overlay (kubectl) and decode each object
# strictly into its Kubernetes or KEDA API type (declarative checks: no -race).
for p in "${PKGS[@]}"; do
	if [ "$p" = ./... ]; then
		(cd examples/hello && go vet ./... && go test -count=1 ./...)
		(cd deploy && go vet ./... && go test -count=1 ./...)
		# The fleet's benchmarks run once each, as checks that they work: the shared build
		# cache (cold, fresh worker, warm) and what each unit of work costs Redis and S3.
		# Their figures are in docs/PERFORMANCE.md and docs/SCALING.md; a benchmark reports
		# its ratios and never fails on a target.
		go test -count=1 -run '^$' -bench 'BuildCache|ScalingCosts' -benchtime 1x ./bench/
		break
	fi
done
