#!/usr/bin/env bash
# Start or stop SecantusDB, the second MongoDB wire-protocol server the tests run against.
#
#   .ci/secantusdb.sh start STATE_DIR  start it on a free 127.0.0.1 port with its WiredTiger files in
#                                      STATE_DIR/data; write STATE_DIR/pid, STATE_DIR/uri and
#                                      STATE_DIR/secantusdb.log; print the URI
#   .ci/secantusdb.sh stop STATE_DIR   stop the process started there (by its pid)
#
# SecantusDB (PyPI: secantusdb, installed by the `test` extra) is a MongoDB-compatible server in Python on
# WiredTiger; it reports MongoDB 8.2 and advertises itself as a single-node replica set, so the MongoDB plugin
# takes its MongoDB dialect there (FerretDB 1.x gets the ferretdb1 workarounds). Writes are not fsynced per
# commit (its default, like FerretDB's synchronous(OFF) here): a test server does not need it.
# PYTHON names the interpreter whose site-packages hold it (default python3).
set -euo pipefail

PYTHON=${PYTHON:-python3}

log() { echo "secantusdb.sh: $*" >&2; }
# shellcheck source=.ci/server_process.sh
source "$(dirname "${BASH_SOURCE[0]}")/server_process.sh"

start() {
    local dir=${1:?usage: secantusdb.sh start STATE_DIR} port
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    port=$(free_port)
    # from STATE_DIR: SecantusDB reads a ./secantusd.toml when there is one, and there is none there
    (cd "$dir" && exec "$PYTHON" -m secantus --host 127.0.0.1 --port "$port" --storage-path "$dir/data" \
        --log-level WARNING </dev/null >"$dir/secantusdb.log" 2>&1) &
    echo "$!" >"$dir/pid"
    await_server SecantusDB "$!" "$port" "$dir" "$dir/secantusdb.log" 600
}

stop() {
    stop_server "${1:?usage: secantusdb.sh stop STATE_DIR}"
}

case ${1:-} in
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *)
        echo "usage: $0 start STATE_DIR | stop STATE_DIR" >&2
        exit 2
        ;;
esac
