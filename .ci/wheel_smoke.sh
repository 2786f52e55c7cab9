#!/usr/bin/env bash
# The package as a user gets it: build the sdist, build the wheel from that sdist (so both must be complete),
# install the wheel into a new virtualenv outside the checkout, start `erapi serve` from there and run the
# README's worked session against it. Any unexpected answer fails; the server is stopped by its pid however
# this script exits.
#
#   .ci/wheel_smoke.sh [PYTHON]     (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
python=$(command -v "${1:-python3}")  # an absolute path: PATH leads to the new virtualenv below

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "wheel smoke: $*" >&2; exit 1; }

echo "== wheel smoke: sdist, then the wheel from it"
# egg_info into the scratch directory: nothing is written into the checkout
"$python" setup.py -q egg_info --egg-base "$work" sdist --dist-dir "$work/dist" >/dev/null 2>"$work/sdist.log" || { cat "$work/sdist.log" >&2; exit 1; }
sdist=$(ls "$work"/dist/erapi-*.tar.gz)
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$sdist"
wheel=$(ls "$work"/dist/erapi-*.whl)

# every data file of the checkout, and py.typed, in both archives (schemas/ -> erapi/schemas/, config/ ->
# erapi/config_examples/)
tar tzf "$sdist" | sed 's|^[^/]*/||' | sort >"$work/sdist.files"
"$python" -m zipfile -l "$wheel" | awk 'NR > 1 {print $1}' | sort >"$work/wheel.files"
expected=$( (find schemas -type f -name '*.json' | sed 's|^|erapi/|'
             find config -type f -name '*.toml' | sed 's|^config/|erapi/config_examples/|'
             echo erapi/py.typed; echo storage_plugins/py.typed) | sort)
for archive in sdist wheel; do
    missing=$(comm -23 <(echo "$expected") "$work/$archive.files")
    [[ -z $missing ]] || fail "the $archive lacks: $missing"
done
echo "$(echo "$expected" | wc -l) data files in the sdist and the wheel ($SECONDS s)"

echo "== wheel smoke: a new virtualenv outside the checkout"
"$python" -m venv --without-pip "$work/venv"  # this pip installs into it (--python): no ensurepip run
"$python" -m pip --python "$work/venv/bin/python" install --quiet "$wheel"
echo "installed ($SECONDS s)"
cd "$work"
export HOME=$work/home PATH=$work/venv/bin:$PATH
mkdir -p "$HOME"
unset PYTHONPATH ERAPI_CONFIG ERAPI_STORAGE ERAPI_MONGODB_URI ERAPI_AUTH_SECRET ERAPI_PUBLIC_URL
[[ $(command -v erapi) == "$work/venv/bin/erapi" ]] || fail "erapi is not the virtualenv's"
erapi --version
[[ $(python -m erapi --version) == "$(erapi --version)" ]] || fail "python -m erapi --version differs"
erapi config example mongodb >"$work/mongodb.toml"
grep -q '^storage = "mongodb"' "$work/mongodb.toml" || fail "erapi config example mongodb printed no mongodb config"
python -c 'import erapi, storage_plugins, sys; sys.exit(0 if erapi.__file__.startswith(sys.prefix) else 1)' \
    || fail "erapi is imported from outside the virtualenv"

# py.typed: a third-party storage plugin type-checks against the installed storage_plugins.base (without the
# marker mypy would skip the module, and the wrong type below would pass unseen)
"$python" -m pip --python "$work/venv/bin/python" install --quiet "mypy>=1.10"
cat >"$work/third_party_plugin.py" <<'PLUGIN'
from storage_plugins.base import Storage


class ThirdPartyStorage(Storage):
    name = 42
PLUGIN
mypy --no-incremental "$work/third_party_plugin.py" >"$work/mypy.out" 2>&1 && fail "mypy found nothing: $(cat "$work/mypy.out")"
grep -q 'base class "Storage" defined the type as "str"' "$work/mypy.out" \
    || fail "mypy did not check against storage_plugins.base: $(cat "$work/mypy.out")"

port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
erapi serve --port "$port" >"$work/serve.stdout" 2>"$work/serve.stderr" &
server_pid=$!
for _ in $(seq 300); do
    grep -q "listening on http://127.0.0.1:$port" "$work/serve.stderr" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.stderr" >&2; fail "erapi serve exited"; }
    sleep 0.1
done
grep -q "http://127.0.0.1:$port/apollo/docs" "$work/serve.stderr" || fail "the banner names no docs page"
base=http://127.0.0.1:$port

echo "== wheel smoke: the README's worked session"
# the README's first sh block after its worked-session heading, against this server; every curl fails on a
# 4xx or 5xx and ends its answer with a newline
{
    echo 'set -euo pipefail'
    echo 'curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }'
    awk '/^## A worked session/ {inside = 1} inside && /^```sh$/ {block = 1; next} block && /^```$/ {exit}
         block {print}' "$repo/README.md" | sed "s|http://127.0.0.1:8080|$base|g"
} >"$work/session.sh"
grep -q 'apollo/er/relationships' "$work/session.sh" || fail "no worked session found in README.md"
bash "$work/session.sh" >"$work/session.out" || { cat "$work/session.out" >&2; fail "the README session failed"; }

# the last answer is the relationship's 207; follow its tracker to the item's Completed status record
answer=$(grep -v '^$' "$work/session.out" | tail -n 1)
[[ $(jq -r '.status.code' <<<"$answer") == 207 ]] || fail "relationship answer: $answer"
[[ $(jq '.data.responses.success | length' <<<"$answer") == 1 ]] || fail "relationship answer: $answer"
[[ $(jq '.data.responses.failure | length' <<<"$answer") == 0 ]] || fail "relationship answer: $answer"
tracker=$(jq -r '.data.responses.success[0].tracker' <<<"$answer")
token=$(erapi token --subject alice --scopes "apollo_read apollo_write")
status=$(curl --silent --show-error --fail-with-body -H "Authorization: Bearer $token" \
    -H "ercollectionid: august_14_81" "$tracker")
[[ $(jq -r '[.data[].state] | join(" ")' <<<"$status") == Completed ]] || fail "tracker answer: $status"

# the documentation page and its assets come from the installed packages
for path in /apollo/docs /apollo/docs/assets/swagger-ui-bundle.js /apollo/openapi.json /healthz; do
    curl --silent --fail --output /dev/null "$base$path" || fail "GET $path failed"
done

kill -TERM "$server_pid"
wait "$server_pid" || fail "erapi serve exited with status $? after SIGTERM"
server_pid=""
echo "wheel smoke: passed in $SECONDS s"
