#!/usr/bin/env bash
# Sliding sync (MSC4186) per request as one user's room count grows, Ward and Synapse in one run.
#
# Like compare.sh: installs Synapse from PyPI, builds Ward and ward-bench in release mode, then
# for each server starts it on a free loopback port with a fresh data directory, runs
# `ward-bench sliding` (prints a table per server) and stops it. JSON results stay in
# bench/results/sliding-<timestamp>/.
#
# Extra arguments go to `ward-bench sliding` (e.g. --steps 10,100,1000 --repeat 5). Every
# process this script starts is stopped when it ends, also on Ctrl-C or failure.
set -euo pipefail
cd "$(dirname "$0")/.."

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

stop() {
    local pid=$1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

out="bench/results/sliding-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
work="$(mktemp -d)"

echo "==> installing Synapse" >&2
synapse_venv="$(scripts/install-synapse)"

echo "==> building Ward and ward-bench (release)" >&2
cargo build --release --locked -p ward -p ward-bench >&2
target="${CARGO_TARGET_DIR:-$PWD/target}/release"

echo "==> Ward" >&2
port=$(free_port)
mkdir -p "$work/ward"
WARD_LISTEN="127.0.0.1:$port" WARD_DATA_DIR="$work/ward/data" WARD_REGISTRATION=open WARD_LOG_LEVEL=warn \
    "$target/ward" serve >"$out/ward.log" 2>&1 &
ward_pid=$!
started+=("$ward_pid")
wait_up "http://127.0.0.1:$port" "$ward_pid"
"$target/ward-bench" sliding --url "http://127.0.0.1:$port" --label Ward --pid "$ward_pid" --out "$out/ward.json" "$@"
stop "$ward_pid"

echo "==> Synapse" >&2
port=$(free_port)
mkdir -p "$work/synapse"
config_args=$("$synapse_venv/bin/python" scripts/synapse_config.py "$work/synapse" "$port" --open)
# shellcheck disable=SC2086
(cd "$work/synapse" && exec "$synapse_venv/bin/python" -m synapse.app.homeserver $config_args) >"$out/synapse.log" 2>&1 &
synapse_pid=$!
started+=("$synapse_pid")
wait_up "http://127.0.0.1:$port" "$synapse_pid"
"$target/ward-bench" sliding --url "http://127.0.0.1:$port" --label Synapse --pid "$synapse_pid" --out "$out/synapse.json" "$@"
stop "$synapse_pid"

synapse_version=$("$synapse_venv/bin/python" -c 'import synapse; print(synapse.__version__)')
echo
echo "$("$target/ward" --version) vs Synapse $synapse_version — $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(date -u +%Y-%m-%d)"
echo "results: $out" >&2
rm -rf "$work"
