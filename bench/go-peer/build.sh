#!/usr/bin/env bash
# Builds the Go peer into bench/go-peer/bin/ with Debian's Go toolchain and Debian's
# packaged client_golang, offline. No module proxy is reachable here, so the build runs
# in GOPATH mode: GO111MODULE=off makes `go build` resolve imports from GOPATH, and
# /usr/share/gocode is where Debian's golang-*-dev packages put their sources.
# Needs: apt-get install golang-go golang-github-prometheus-client-golang-dev
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/bin/example-service-go"

if ! command -v go >/dev/null; then
    echo "build.sh: go not found; install it with: apt-get install golang-go" >&2
    exit 1
fi
if [[ ! -d /usr/share/gocode/src/github.com/prometheus/client_golang/prometheus ]]; then
    echo "build.sh: client_golang not found; install it with:" \
        "apt-get install golang-github-prometheus-client-golang-dev" >&2
    exit 1
fi

# A private GOPATH entry first keeps anything `go` writes out of /usr/share/gocode, and
# a private cache keeps the build working when HOME is read-only or unset.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$here/bin"

cd "$here"
env -u GOFLAGS \
    GO111MODULE=off \
    GOPATH="$scratch/gopath:/usr/share/gocode" \
    GOCACHE="${GOCACHE:-$scratch/cache}" \
    GOPROXY=off \
    CGO_ENABLED=0 \
    go build -trimpath -o "$out.tmp" main.go
mv "$out.tmp" "$out"
echo "$out"
