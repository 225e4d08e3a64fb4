#!/usr/bin/env bash
# Ward and Synapse side by side, in one run, on this machine.
#
# Installs Synapse from PyPI (scripts/install-synapse), builds Ward and ward-bench in release
# mode, then for each server: starts it on a free loopback port with a fresh data directory,
# runs ward-bench against it, and stops it. Prints both servers' figures and the ratio
# Ward/Synapse; the JSON results stay in bench/results/<timestamp>/.
#
# Extra arguments go to `ward-bench run` (e.g. --clients 16 --duration-s 5). With `sliding` as
# the first argument it runs `ward-bench sliding` instead (sliding sync per request as one user's
# room count grows; the rest go to it, e.g. --steps 10,100,1000 --repeat 5) and prints its
# table per server (bench/sliding.sh is that), then restarts the server and measures the first
# requests on the connections it left (`ward-bench sliding-resume`). Every process this script starts is stopped when
# it ends, also on Ctrl-C or failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scenario=run
out="bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
if [ "${1:-}" = sliding ]; then
    scenario=sliding
    out="bench/results/sliding-$(date -u +%Y%m%dT%H%M%SZ)"
    shift
fi

started=()
cleanup() {
    for pid in "${started[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_up() {
    local url=$1 pid=$2
    for _ in $(seq 1 600); do
        if ! kill -0 "$pid" 2>/dev/null; then echo "server exited early" >&2; return 1; fi
        if curl -sf "$url/_matrix/client/versions" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "server did not come up" >&2
    return 1
}

# `run` prints progress (the comparison comes at the end), `sliding` its table per server.
bench() {
    if [ "$scenario" = run ]; then "$@" >&2; else "$@"; fi
}

stop() {
    local pid=$1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

mkdir -p "$out"
work="$(mktemp -d)"

echo "==> installing Synapse" >&2
synapse_venv="$(scripts/install-synapse)"

echo "==> building Ward and ward-bench (release)" >&2
cargo build --release --locked -p ward -p ward-bench >&2
target="${CARGO_TARGET_DIR:-$PWD/target}/release"

start_ward() {
    WARD_LISTEN="127.0.0.1:$port" WARD_DATA_DIR="$work/ward/data" WARD_REGISTRATION=open WARD_LOG_LEVEL=warn \
        "$target/ward" serve >>"$out/ward.log" 2>&1 &
    ward_pid=$!
    started+=("$ward_pid")
    wait_up "http://127.0.0.1:$port" "$ward_pid"
}

start_synapse() {
    # shellcheck disable=SC2086
    (cd "$work/synapse" && exec "$synapse_venv/bin/python" -m synapse.app.homeserver $config_args) >>"$out/synapse.log" 2>&1 &
    synapse_pid=$!
    started+=("$synapse_pid")
    wait_up "http://127.0.0.1:$port" "$synapse_pid"
}

# `sliding` keeps its connections and measures their first requests after a restart of the
# server (same data directory and port): `ward-bench sliding-resume`.
state_args() { if [ "$scenario" = sliding ]; then echo "--state-out $out/$1-state.json"; fi; }
# resume NAME LABEL START_FUNCTION PID_VARIABLE: restarts the server, then measures.
resume() {
    local name=$1 label=$2 start=$3 pid_var=$4
    [ "$scenario" = sliding ] || return 0
    stop "${!pid_var}"
    "$start"
    "$target/ward-bench" sliding-resume --url "http://127.0.0.1:$port" --label "$label" \
        --state "$out/$name-state.json" --out "$out/$name-resume.json"
}

echo "==> Ward" >&2
port=$(free_port)
mkdir -p "$work/ward"
start_ward
# shellcheck disable=SC2046
bench "$target/ward-bench" "$scenario" --url "http://127.0.0.1:$port" --label Ward --pid "$ward_pid" --out "$out/ward.json" $(state_args ward) "$@"
resume ward Ward start_ward ward_pid
stop "$ward_pid"

echo "==> Synapse" >&2
port=$(free_port)
mkdir -p "$work/synapse"
config_args=$("$synapse_venv/bin/python" scripts/synapse_config.py "$work/synapse" "$port" --open)
start_synapse
# shellcheck disable=SC2046
bench "$target/ward-bench" "$scenario" --url "http://127.0.0.1:$port" --label Synapse --pid "$synapse_pid" --out "$out/synapse.json" $(state_args synapse) "$@"
resume synapse Synapse start_synapse synapse_pid
stop "$synapse_pid"

synapse_version=$("$synapse_venv/bin/python" -c 'import synapse; print(synapse.__version__)')
echo
echo "$("$target/ward" --version) vs Synapse $synapse_version — $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(date -u +%Y-%m-%d)"
if [ "$scenario" = run ]; then
    "$target/ward-bench" compare "$out/ward.json" "$out/synapse.json"
fi
echo
echo "results: $out" >&2
rm -rf "$work"
