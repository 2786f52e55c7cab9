# Shared by .ci/ferretdb.sh and .ci/secantusdb.sh (sourced): a test server started in the background on a free
# 127.0.0.1 port, its pid in STATE_DIR/pid, its URI in STATE_DIR/uri, stopped by that pid.

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# await_server NAME PID PORT DIR LOG TRIES: wait (TRIES x 0.1 s) until PORT answers; write DIR/uri and print it.
# If the process exits first, show its LOG and fail; if it never answers, stop it and fail.
await_server() {
    local name=$1 pid=$2 port=$3 dir=$4 log_file=$5 tries=$6
    for _ in $(seq "$tries"); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited at start; its log:"
            cat "$log_file" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "mongodb://127.0.0.1:$port/" | tee "$dir/uri"
            return
        fi
        sleep 0.1
    done
    log "$name did not answer on 127.0.0.1:$port within $((tries / 10)) s"
    kill "$pid" 2>/dev/null || true
    exit 1
}

# stop_server DIR: stop the process whose pid DIR/pid holds (TERM, then KILL after 10 s)
stop_server() {
    local dir=$1 pid
    [[ -f $dir/pid ]] || return 0
    pid=$(cat "$dir/pid")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
}
