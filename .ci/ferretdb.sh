#!/usr/bin/env bash
# Build FerretDB (the MongoDB wire-protocol server the tests run against) and start or stop it.
#
#   .ci/ferretdb.sh build            build once into $ERAPI_FERRETDB_BIN (default below); print its path
#   .ci/ferretdb.sh start STATE_DIR  build if needed, start it on a free 127.0.0.1 port with its SQLite files in
#                                    STATE_DIR; write STATE_DIR/pid, STATE_DIR/uri and STATE_DIR/ferretdb.log;
#                                    print the URI
#   .ci/ferretdb.sh stop STATE_DIR   stop the process started there (by its pid)
#
# Why not just `go install`: the module zip of v1.24.2 lacks build/version/version.txt (it is generated in
# FerretDB's own repository), so the installed binary panics at start with "Invalid build/version/version.txt
# file content". `go install` still fills the module cache and the build cache; we then copy the module
# source, write the version file and build from the copy. GOPATH and GOCACHE keep Go's defaults under $HOME,
# so a second run reuses them, and the build is skipped when the binary already reports the version.
# SQLite runs with synchronous(OFF): no fsync per commit, which a test server does not need.
set -euo pipefail

FERRETDB_VERSION=v1.24.2
FERRETDB_MODULE=github.com/FerretDB/FerretDB
export HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
FERRETDB_BIN=${ERAPI_FERRETDB_BIN:-$HOME/.cache/erapi/ferretdb-$FERRETDB_VERSION/ferretdb}

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH=/usr/local/go/bin:$PATH
fi

log() { echo "ferretdb.sh: $*" >&2; }
# shellcheck source=.ci/server_process.sh
source "$(dirname "${BASH_SOURCE[0]}")/server_process.sh"

has_version() {
    local reported
    [[ -x $FERRETDB_BIN ]] && reported=$("$FERRETDB_BIN" --version 2>/dev/null) &&
        grep -qx "version: $FERRETDB_VERSION" <<<"$reported"
}

build() {
    if has_version; then
        echo "$FERRETDB_BIN"
        return
    fi
    command -v go >/dev/null || { log "Go is needed to build FerretDB and is not on PATH"; exit 1; }
    local started=$SECONDS work source
    work=$(mktemp -d)
    # The binary go install makes is the broken one: keep it out of GOPATH/bin.
    GOBIN=$work/gobin go install "$FERRETDB_MODULE/cmd/ferretdb@$FERRETDB_VERSION" >&2
    source=$(go mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
    [[ -d $source ]] || { log "module source of $FERRETDB_MODULE@$FERRETDB_VERSION not found"; exit 1; }
    cp -r "$source" "$work/src"
    chmod -R u+w "$work/src"
    printf '%s\n' "$FERRETDB_VERSION" >"$work/src/build/version/version.txt"
    mkdir -p "$(dirname "$FERRETDB_BIN")"
    (cd "$work/src" && GOFLAGS=-buildvcs=false go build -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb) >&2
    mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
    rm -rf "$work"
    has_version || { log "$FERRETDB_BIN does not report $FERRETDB_VERSION"; exit 1; }
    log "built $FERRETDB_BIN in $((SECONDS - started)) s"
    echo "$FERRETDB_BIN"
}

start() {
    local dir=${1:?usage: ferretdb.sh start STATE_DIR} port
    build >/dev/null
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    port=$(free_port)
    "$FERRETDB_BIN" --handler=sqlite --sqlite-url="file:$dir/data/?_pragma=synchronous(OFF)" --state-dir="$dir" \
        --listen-addr="127.0.0.1:$port" --debug-addr=- --telemetry=disable --log-level=ERROR \
        </dev/null >"$dir/ferretdb.log" 2>&1 &
    echo "$!" >"$dir/pid"
    await_server FerretDB "$!" "$port" "$dir" "$dir/ferretdb.log" 300
}

stop() {
    stop_server "${1:?usage: ferretdb.sh stop STATE_DIR}"
}

case ${1:-} in
    build) build ;;
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *)
        echo "usage: $0 build | start STATE_DIR | stop STATE_DIR" >&2
        exit 2
        ;;
esac
