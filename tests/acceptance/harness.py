"""Starting and stopping real homeservers for the acceptance tests.

`WardServer` runs the `ward` binary built by the test script; `SynapseServer` runs Synapse from
its own venv (scripts/test-against-synapse installs it), so that the portable tests can prove
they check the Matrix spec and not our reading of it. Both listen on 127.0.0.1 on a port picked
here, keep their data in a temporary directory, and are stopped by the test that started them.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from synapse_config import write_config  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/_matrix/client/versions", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server did not come up within {timeout_s}s:\n{log.read_text()}")


def http_json(method: str, url: str, body=None, token: str | None = None):
    """A tiny JSON request helper for harness chores (not for the tests themselves)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


# The browser tests (tests/browser, playwright-core driving Debian's Chromium).
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BROWSER_DIR = REPO / "tests" / "browser"
BROWSER_ARTIFACTS = BROWSER_DIR / "artifacts"
LIVEKIT_ESM = BROWSER_DIR / "node_modules" / "livekit-client" / "dist" / "livekit-client.esm.mjs"


def meeting_page(dest: Path) -> Path:
    """The conference test page (tests/browser/meeting/) with livekit-client's ESM build beside
    it, copied to `dest` for Ward to serve from WARD_WEB_DIR."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run scripts/setup-test-env"
    assert LIVEKIT_ESM.exists(), "livekit-client missing: run scripts/setup-test-env"
    shutil.copytree(BROWSER_DIR / "meeting", dest)
    shutil.copy(LIVEKIT_ESM, dest / LIVEKIT_ESM.name)
    return dest


def run_browser_script(argv: list[str], env: dict, cwd: Path, timeout_s: int, result_file: Path) -> dict:
    """Runs one of the tests/browser scripts, prints its progress, and returns the JSON of its
    last `RESULT <json>` line (also written to `result_file`, beside its screenshots)."""
    run = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    lines = run.stdout.splitlines()
    print("\n".join(line for line in lines if not line.startswith("RESULT ")))
    results = [line for line in lines if line.startswith("RESULT ")]
    assert run.returncode == 0 and results, f"{run.stdout[-5000:]}\n{run.stderr[-5000:]}"
    result = json.loads(results[-1].removeprefix("RESULT "))
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=1))
    return result


def ward_binary() -> Path:
    override = os.environ.get("WARD_BIN")
    if override:
        binary = Path(override)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        binary = target / "debug" / "ward"
    if not binary.is_file():
        # A run that forgot CARGO_TARGET_DIR (scripts/test and .ci/run set it) looked in ./target
        # and failed every test with a bare "No such file" far from the cause.
        pytest.exit(f"no Ward binary at {binary}: build it with `cargo build -p ward` and run with the "
                    "same CARGO_TARGET_DIR (or set WARD_BIN); scripts/test does both", returncode=4)
    return binary


class WardServer:
    kind = "ward"

    def __init__(self, registration: str = "token", env: dict | None = None, data_dir: Path | None = None,
                 rtc_api_key: str | None = None, rtc_api_secret: str | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server_name = "localhost"
        self._own_dir = data_dir is None
        self.dir = Path(tempfile.mkdtemp(prefix="ward-test-")) if data_dir is None else data_dir
        self.log = self.dir / "ward.log"
        self.env = {
            **os.environ,
            "WARD_LISTEN": f"127.0.0.1:{self.port}",
            "WARD_SERVER_NAME": self.server_name,
            "WARD_DATA_DIR": str(self.dir / "data"),
            "WARD_REGISTRATION": registration,
            "WARD_LOG_LEVEL": "debug",
            # Any free port for conferencing media, so servers started side by side never
            # compete for LiveKit's default 7882.
            "WARD_RTC_UDP_PORT": "0",
            "WARD_RTC_TCP_PORT": "0",
            **({"WARD_RTC_API_KEY": rtc_api_key} if rtc_api_key is not None else {}),
            **({"WARD_RTC_API_SECRET": rtc_api_secret} if rtc_api_secret is not None else {}),
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WardServer":
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(ward_binary()), "serve"], env=self.env, cwd=self.dir, stdout=logf, stderr=subprocess.STDOUT
        )
        logf.close()
        wait_until_up(self.url, self.proc, self.log)
        return self

    def admin(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        """Runs `ward admin …` against this server's data directory (while it runs)."""
        return subprocess.run(
            [str(ward_binary()), "admin", *args],
            env=self.env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            input=input,
            timeout=60,
        )

    def create_registration_token(self, uses: int) -> str:
        r = self.admin("registration-token", "create", "--uses", str(uses))
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def create_user(self, name: str, password: str, admin: bool = False) -> str:
        args = ["create-user", name, "--password-stdin"] + (["--admin"] if admin else [])
        r = self.admin(*args, input=password + "\n")
        assert r.returncode == 0, r.stderr
        return f"@{name}:{self.server_name}"

    def rtc_keys(self) -> tuple[str, str]:
        """The conferencing API key and secret this server signs and checks tokens with: the
        configured ones, else the secret Ward generated into its data directory."""
        key = self.env.get("WARD_RTC_API_KEY", "ward")
        secret = self.env.get("WARD_RTC_API_SECRET", "")
        if not secret:
            secret = (Path(self.env["WARD_DATA_DIR"]) / "rtc_api_secret").read_text().strip()
        return key, secret

    def rtc_token(self, *args: str) -> str:
        """A token from `ward admin rtc-token` (arguments as on the command line)."""
        r = self.admin("rtc-token", *args)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def restart(self) -> None:
        """Stops the server (SIGTERM) and starts it again on the same port and data."""
        self.stop()
        self.start()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> int | None:
        code = None
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        return code

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class SynapseServer:
    """Synapse from PyPI with SQLite, configured like a Ward in `token` registration mode."""

    kind = "synapse"

    def __init__(self):
        venv = Path(os.environ["WARD_SYNAPSE_VENV"])
        self.python = venv / "bin" / "python"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server_name = "localhost"
        self.dir = Path(tempfile.mkdtemp(prefix="synapse-test-"))
        self.log = self.dir / "synapse.out"
        self.proc: subprocess.Popen | None = None
        self.admin_token: str | None = None

    def start(self) -> "SynapseServer":
        config, overrides = write_config(str(self.python), self.dir, self.port, self.server_name)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(self.python), "-m", "synapse.app.homeserver", "--config-path", str(config),
             "--config-path", str(overrides)],
            cwd=self.dir, stdout=logf, stderr=subprocess.STDOUT,
        )
        logf.close()
        wait_until_up(self.url, self.proc, self.log, timeout_s=120)
        subprocess.run(
            [str(self.python), "-m", "synapse._scripts.register_new_matrix_user", "-c", str(config),
             "-u", "harness_admin", "-p", "harness-admin-pw", "--admin", self.url],
            check=True, capture_output=True, timeout=120,
        )
        status, body = http_json("POST", self.url + "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "harness_admin"},
            "password": "harness-admin-pw"})
        assert status == 200, body
        self.admin_token = body["access_token"]
        return self

    def restart(self) -> None:
        """Stops Synapse and starts it again on the same port and database."""
        self.stop()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(self.python), "-m", "synapse.app.homeserver", "--config-path", str(self.dir / "homeserver.yaml"),
             "--config-path", str(self.dir / "overrides.yaml")],
            cwd=self.dir, stdout=logf, stderr=subprocess.STDOUT,
        )
        logf.close()
        wait_until_up(self.url, self.proc, self.log, timeout_s=120)

    def create_registration_token(self, uses: int) -> str:
        status, body = http_json("POST", self.url + "/_synapse/admin/v1/registration_tokens/new",
                                 {"uses_allowed": uses}, token=self.admin_token)
        assert status == 200, body
        return body["token"]

    def stop(self) -> int | None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        return None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
