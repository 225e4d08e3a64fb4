"""Ward's web app in Debian's Chromium (tests/browser/chat.mjs, playwright-core).

Ward serves the built app (web/dist, via WARD_WEB_DIR) on its own origin. An admin creates an
invite link in the app, a colleague signs up with it in a second browser context, they chat in an
encrypted DM both ways; a matrix-nio client invited into the same room decrypts the browser's
message and answers, and both browsers decrypt the answer. The script fails if any request of
the pages leaves Ward's origin or the pages report a CSP violation. It also verifies a second
browser of the admin by emoji, checks the upload limit and a cancelled upload, focus handling in
dialogs and that the crypto store in IndexedDB is encrypted (see the script's header).
Screenshots land in tests/browser/artifacts/ (printed).

Not portable: the app needs Ward's admin API for invite links and Ward serving the app."""

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from nio import JoinResponse, MegolmEvent, RoomMessageText

from harness import REPO

ADMIN = "chefin"
ADMIN_PASSWORD = "praxis admin passwort"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WEB_DIST = REPO / "web" / "dist"
ARTIFACTS = REPO / "tests" / "browser" / "artifacts"
SCRIPT = REPO / "tests" / "browser" / "chat.mjs"
# The whole browser scenario: two sign-ins, wasm crypto start, key exchange, a third client.
SCENARIO_TIMEOUT_S = 300
# Small, so that the app's size check and its upload progress can be tried with small files.
MAX_UPLOAD_BYTES = 1024 * 1024


@pytest.fixture
def web_ward(ward_factory):
    if os.environ.get("WARD_TEST_TARGET") == "synapse":
        pytest.skip("the browser app is Ward's own")
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run scripts/setup-test-env"
    assert (WEB_DIST / "index.html").exists(), "web/dist missing: run scripts/setup-test-env"
    assert (SCRIPT.parent / "node_modules" / "playwright-core").exists(), "run scripts/setup-test-env"
    server = ward_factory(registration="token", env={"WARD_WEB_DIR": str(WEB_DIST),
                                                             "WARD_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)})
    server.create_user(ADMIN, ADMIN_PASSWORD, admin=True)
    return server


def test_browser_invite_signup_encrypted_dm_and_nio(web_ward, tmp_path):
    asyncio.run(scenario(web_ward, tmp_path))


async def scenario(server, tmp_path):
    from test_e2ee import assert_no_plaintext, new_user, send, settle

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    nio = await new_user(server, tmp_path, "niopeer")
    env = {**os.environ, "WARD_URL": server.url, "WARD_ADMIN_USER": ADMIN, "WARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "WARD_ARTIFACTS": str(ARTIFACTS), "WARD_PEER": nio.user_id, "CHROMIUM": CHROMIUM,
           "WARD_MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}
    node = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), env=env, cwd=SCRIPT.parent,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out: list[str] = []

    async def line_starting(prefix: str) -> str:
        while True:
            line = (await asyncio.wait_for(node.stdout.readline(), SCENARIO_TIMEOUT_S)).decode()
            if not line:
                err = (await node.stderr.read()).decode()
                raise AssertionError("browser script ended early:\n" + "".join(out) + err[-5000:])
            out.append(line)
            if line.startswith(prefix):
                return line

    try:
        room = (await line_starting("ROOM ")).split()[1]
        await settle(nio)
        assert isinstance(await nio.join(room), JoinResponse)
        await settle(nio)
        node.stdin.write(b"joined\n")
        await node.stdin.drain()
        event = await receive_decrypted(nio, room, "Hallo an alle drei", timeout_s=120)
        assert event.decrypted, "the browser's message must have arrived as m.room.encrypted"
        await send(nio, room, "Hallo von nio")
        rest, err = await asyncio.wait_for(node.communicate(), SCENARIO_TIMEOUT_S)
        out.append(rest.decode())
        stdout = "".join(out)
        print(stdout)
        assert node.returncode == 0 and "PASS" in stdout, f"{stdout}\n{err.decode()[-5000:]}"
        print(f"browser screenshots: {ARTIFACTS}")
        assert_no_plaintext(server, ["Hallo, hier ist die neue Kollegin!", "Willkommen im Team!", "Hallo an alle drei"])
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
        await nio.close()


async def receive_decrypted(c, room_id: str, body: str, timeout_s: float) -> RoomMessageText:
    """Syncs until `body` arrives; returns the (decrypted) event."""
    from test_e2ee import settle

    undecrypted = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        s = await settle(c, timeout_ms=1000)
        room = s.rooms.join.get(room_id)
        for e in room.timeline.events if room else []:
            if isinstance(e, RoomMessageText) and e.body == body:
                return e
            if isinstance(e, MegolmEvent):
                undecrypted.append(e)
    raise AssertionError(f"{c.user_id} never decrypted {body!r}; undecrypted: {undecrypted}")
