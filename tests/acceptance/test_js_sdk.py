"""The core chat scenario driven by matrix-js-sdk in Node (tests/js/scenario.mjs).

Portable: runs against Synapse too."""

import asyncio
import json
import os
import subprocess
import uuid

import pytest
import requests

from harness import REPO
from nio import JoinResponse

pytestmark = pytest.mark.portable

PASSWORD = "correct horse battery"


def register(server, prefix):
    token = server.create_registration_token(uses=1)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = server.url + "/_matrix/client/v3/register"
    session = requests.post(url, json={"username": name, "password": PASSWORD}).json()["session"]
    requests.post(url, json={"username": name, "password": PASSWORD,
                             "auth": {"type": "m.login.registration_token", "token": token, "session": session}})
    r = requests.post(url, json={"username": name, "password": PASSWORD,
                                 "auth": {"type": "m.login.dummy", "session": session}, "inhibit_login": True})
    assert r.status_code == 200, r.text
    return {"user": name, "password": PASSWORD}


def test_matrix_js_sdk_scenario(homeserver):
    users = [register(homeserver, "jsalice"), register(homeserver, "jsbob")]
    env = {**os.environ, "WARD_JS_HOMESERVER": homeserver.url, "WARD_JS_USERS": json.dumps(users)}
    r = subprocess.run(["node", str(REPO / "tests" / "js" / "scenario.mjs")], env=env, capture_output=True,
                       text=True, timeout=120, cwd=REPO / "tests" / "js")
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr[-5000:]}"
    assert "1 passed, 0 failed" in r.stdout


def test_js_sdk_and_nio_exchange_encrypted_messages(homeserver, tmp_path):
    """Two independent crypto stacks (matrix-js-sdk's Rust crypto, nio's vodozemac) talk
    through Ward's key distribution: device keys, one-time key claims, to-device room keys."""
    asyncio.run(js_and_nio(homeserver, tmp_path))


async def js_and_nio(server, tmp_path):
    from test_e2ee import new_user, receive, send, settle

    js_user = register(server, "jsenc")
    bob = await new_user(server, tmp_path, "niobob")
    env = {**os.environ, "WARD_JS_HOMESERVER": server.url, "WARD_JS_USER": json.dumps(js_user),
           "WARD_JS_PEER": bob.user_id}
    node = await asyncio.create_subprocess_exec(
        "node", str(REPO / "tests" / "js" / "e2ee.mjs"), env=env, cwd=REPO / "tests" / "js",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        room = None
        while room is None:
            # matrix-js-sdk logs its requests on stdout too.
            line = (await asyncio.wait_for(node.stdout.readline(), 60)).decode()
            assert line, "node ended early:\n" + (await node.stderr.read()).decode()[-5000:]
            if line.startswith("ROOM "):
                room = line.split()[1]
        await settle(bob)
        assert isinstance(await bob.join(room), JoinResponse)
        await receive(bob, room, "hallo von js", timeout_s=60)
        await send(bob, room, "hallo von nio")
        out, err = await asyncio.wait_for(node.communicate(), 60)
        assert node.returncode == 0 and "OK" in out.decode(), f"{out.decode()}\n{err.decode()[-5000:]}"
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()
        await bob.close()
