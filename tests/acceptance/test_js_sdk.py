"""The core chat scenario driven by matrix-js-sdk in Node (tests/js/scenario.mjs).

Portable: runs against Synapse too."""

import json
import os
import subprocess
import uuid

import pytest
import requests

from harness import REPO

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
