"""End-to-end encryption driven by matrix-rust-sdk 0.18 (tests/rust-client, the
`ward-testclient` binary): cross-signing, key backup and recovery on a second device, and
encrypted messages between two users.

Portable: runs against Synapse too. The client's log is shown only when a scenario fails."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import REPO, http_json
from test_js_sdk import register

pytestmark = pytest.mark.portable

# Above the client's own bound for a whole run (RUN_TIMEOUT_MS in tests/rust-client/src/main.rs).
SCENARIO_TIMEOUT_S = 150


def client_binary() -> Path:
    override = os.environ.get("WARD_TESTCLIENT_BIN")
    if override:
        return Path(override)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "ward-testclient"


def require_e2ee_endpoints(server):
    """Skips on a server without the E2EE key endpoints: a Ward from before the E2EE work of
    issue 5 answers them with 404 M_UNRECOGNIZED, an implemented one with 401 (no token)."""
    for method, path in [("POST", "keys/query"), ("POST", "keys/device_signing/upload"),
                         ("GET", "room_keys/version"), ("PUT", "sendToDevice/m.dummy/probe")]:
        status, body = http_json(method, f"{server.url}/_matrix/client/v3/{path}", None if method == "GET" else {})
        if status == 404 and body.get("errcode") == "M_UNRECOGNIZED":
            pytest.skip(f"{server.kind} has no {method} /{path} yet (E2EE key endpoints, issue 5)")


def run_scenario(server, scenario: str, users: list[dict]) -> dict:
    require_e2ee_endpoints(server)
    binary = client_binary()
    assert binary.exists(), (
        f"{binary} is missing: build it with `cargo build --manifest-path tests/rust-client/Cargo.toml` "
        "(scripts/test does)")
    env = {**os.environ, "WARD_TESTCLIENT_USERS": json.dumps(users),
           "RUST_LOG": os.environ.get("RUST_LOG", "info")}
    r = subprocess.run([str(binary), server.url, scenario], env=env, capture_output=True, text=True,
                       timeout=SCENARIO_TIMEOUT_S)
    assert r.returncode == 0, f"ward-testclient {scenario} exited {r.returncode}\nstdout:\n{r.stdout}\n" \
                              f"log (last 20000 characters):\n{r.stderr[-20000:]}"
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["ok"] is True and result["scenario"] == scenario, result
    print(json.dumps(result))  # what it checked and its timings, shown with -s
    return result["report"]


def test_cross_signing_backup_and_restore_on_a_new_device(homeserver):
    report = run_scenario(homeserver, "backup", [register(homeserver, "rsbackup")])
    assert report["device_a"] != report["device_b"]
    assert report["backed_up_sessions"] >= 1
    assert report["b_cross_signed_after_recovery"] is True


def test_encrypted_messages_both_ways(homeserver):
    report = run_scenario(homeserver, "chat", [register(homeserver, "rsalice"), register(homeserver, "rsbob")])
    assert report["device_a"] and report["device_b"]
