#!/usr/bin/env bash
# Build the container image (Containerfile) with Podman from Debian's packages and smoke-test it.
#
# What these machines allow (docs/OPERATIONS.md, Container image): `podman build` runs its RUN steps only with
# --isolation chroot (crun: "cgroups in hybrid mode not supported"), and `podman run` cannot start a container
# at all (crun and runc: "setrlimit RLIMIT_NOFILE/RLIMIT_NPROC: Operation not permitted"). So the image is
# built for real, and then its own command, user and health check (read from the image's config) are run in a
# chroot of a container's root file system, inside a private network namespace where port 8080 is free.
# The base is Debian bookworm from Debian's own packages (debootstrap), imported once and reused.
#
#   .ci/container_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=localhost/erapi-ci-base:bookworm
IMAGE=localhost/erapi-ci:smoke
work=$(mktemp -d)
container=""
cleanup() {
    if [[ -n $container ]]; then
        podman umount "$container" >/dev/null 2>&1 || true
        podman rm --force "$container" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "container smoke: $*" >&2; exit 1; }
started=$SECONDS

if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman debootstrap >/dev/null
fi

if ! podman image exists "$BASE"; then
    echo "== container smoke: a Debian bookworm base from Debian's packages"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/root" \
        http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
    tar -C "$work/root" -c . | podman import --quiet - "$BASE" >/dev/null
    rm -rf "$work/root"
fi

echo "== container smoke: podman build"
podman rmi --ignore "$IMAGE" >/dev/null  # the previous run's image: a rebuild would leave it dangling
ca_options=()
ca_bundle=${PIP_CERT:-${REQUESTS_CA_BUNDLE:-}}
if [[ -z $ca_bundle && -f /etc/ssl/certs/ca-certificates.crt ]]; then
    ca_bundle=/etc/ssl/certs/ca-certificates.crt  # the system's trust store, whatever CA this host added to it
fi
if [[ -n $ca_bundle ]]; then  # pip in the build trusts what pip here trusts (a TLS-intercepting proxy's CA)
    ca_options=(-v "$ca_bundle:/run/erapi-ci-ca.crt:ro" --build-arg PIP_CERT=/run/erapi-ci-ca.crt)
fi
podman build --quiet --layers=false --isolation chroot --format docker --build-arg "BASE=$BASE" "${ca_options[@]}" \
    -t "$IMAGE" . >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; fail "podman build failed"; }
echo "built in $((SECONDS - started)) s"

# the image's own settings, as a runtime would use them
inspect() { podman image inspect --format "{{json $1}}" "$IMAGE"; }
user=$(inspect .Config.User | python3 -c 'import json, sys; print(json.load(sys.stdin))')
[[ $user == 10001:10001 ]] || fail "the image runs as $user, not the non-root user 10001"
inspect .Config.Cmd | python3 -c 'import json, sys; sys.stdout.write("\0".join(json.load(sys.stdin)))' >"$work/cmd"
inspect .Config.Healthcheck.Test | python3 -c '
import json, sys
test = json.load(sys.stdin)
assert test[0] == "CMD" and any("/healthz" in part for part in test), test
sys.stdout.write("\0".join(test[1:]))' >"$work/healthcheck" || fail "the image has no health check on /healthz"
inspect .Config.Env | python3 -c 'import json, sys; sys.stdout.write("\0".join(json.load(sys.stdin)))' >"$work/env"

container=$(podman create --no-healthcheck "$IMAGE")  # no systemd here to run its timer; the smoke runs the check
root=$(podman mount "$container")

echo "== container smoke: the image's command and health check, as its user, port 8080 of a private network"
export root work
unshare --net bash -euo pipefail -c '
    ip link set lo up
    mapfile -d "" -t cmd <"$work/cmd"
    mapfile -d "" -t check <"$work/healthcheck"
    mapfile -d "" -t environment <"$work/env"
    in_image() { chroot --userspec=10001:10001 "$root" /usr/bin/env -i "${environment[@]}" HOME=/home/erapi "$@"; }
    # a simple command, not the function: $! is then the server itself, which SIGTERM must reach
    chroot --userspec=10001:10001 "$root" /usr/bin/env -i "${environment[@]}" HOME=/home/erapi "${cmd[@]}" \
        >"$work/serve.log" 2>&1 &
    server=$!
    trap "kill -TERM $server 2>/dev/null || true; wait $server || true" EXIT
    healthy=""
    for _ in $(seq 60); do
        if in_image "${check[@]}" 2>/dev/null; then healthy=yes; break; fi
        kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
        sleep 0.5
    done
    [[ -n $healthy ]] || { cat "$work/serve.log" >&2; echo "health check never passed" >&2; exit 1; }
    grep -q "listening on http://0.0.0.0:8080" "$work/serve.log"
    token=$(in_image erapi token --subject alice)
    curl --silent --show-error --fail-with-body -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
        http://127.0.0.1:8080/apollo/collections -d "{\"collectionId\": \"site\"}" >/dev/null
    listed=$(curl --silent --show-error --fail-with-body -H "Authorization: Bearer $token" \
        http://127.0.0.1:8080/apollo/collections)
    [[ $(jq -r "[.data[].collectionId] | join(\" \")" <<<"$listed") == site ]] || { echo "listed: $listed" >&2; exit 1; }
    curl --silent --fail --output /dev/null http://127.0.0.1:8080/apollo/docs
    kill -TERM "$server"
    wait "$server"
    trap - EXIT
' || fail "the image did not serve (log: above)"
echo "container smoke: passed in $((SECONDS - started)) s"
