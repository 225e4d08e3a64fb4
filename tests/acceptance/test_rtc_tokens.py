"""Conferencing access tokens: what LiveKit's own SDK mints is accepted by Ward, and what is
wrong with a refused token is said in words at /rtc/validate, which livekit-client asks after a
failed connection and shows to the user.

Ward-only (not `portable`): conferencing is not part of the Matrix spec, Synapse has no SFU.
"""

import base64
import datetime
import json
import os
import stat
import subprocess

import jwt
import pytest
import requests
from livekit import api

from harness import WardServer, ward_binary

KEY = "praxis"
SECRET = "a-conferencing-secret-of-at-least-32-characters"
ROOM = "sprechstunde"
VALIDATE_PATHS = ["/rtc/validate"]


def lk_token(key=KEY, secret=SECRET, identity="anna", grants=None, ttl=datetime.timedelta(minutes=10)):
    if grants is None:
        grants = api.VideoGrants(room_join=True, room=ROOM)
    return (api.AccessToken(key, secret).with_identity(identity).with_name("Anna")
            .with_grants(grants).with_ttl(ttl).to_jwt())


def signed(video, alg="HS256", secret=SECRET):
    """Claims the SDK refuses to mint (it checks for a room itself), signed with PyJWT."""
    now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
    claims = {"iss": KEY, "sub": "anna", "nbf": now, "exp": now + 600, "video": video}
    return jwt.encode(claims, secret, algorithm=alg)


def validate(server, token=None, path="/rtc/validate", **extra):
    params = dict(extra)
    if token is not None:
        params["access_token"] = token
    return requests.get(server.url + path, params=params, timeout=30)


@pytest.fixture(scope="module")
def server():
    s = WardServer(rtc_api_key=KEY, rtc_api_secret=SECRET)
    try:
        yield s.start()
    finally:
        s.cleanup()


@pytest.mark.parametrize("path", VALIDATE_PATHS)
def test_token_from_livekit_sdk_is_accepted(server, path):
    # The query livekit-client sends along (v0 style); extra parameters must not matter.
    r = validate(server, lk_token(), path=path, auto_subscribe="1", sdk="js", protocol="16")
    assert r.status_code == 200, r.text
    assert r.text == "success"
    assert r.headers.get("cache-control") == "no-store"
    r = requests.get(server.url + path, headers={"Authorization": f"Bearer {lk_token()}"}, timeout=30)
    assert r.status_code == 200, r.text


def test_newer_signalling_path_is_not_found_so_clients_fall_back(server):
    # livekit-client tries /rtc/v1 first and falls back to /rtc when its validate call answers
    # 404 — readable from a page on another origin, so with CORS.
    r = requests.get(server.url + "/rtc/v1/validate", params={"access_token": lk_token()},
                     headers={"Origin": "https://app.example"}, timeout=30)
    assert r.status_code == 404
    assert r.headers.get("access-control-allow-origin") == "*"
    assert requests.get(server.url + "/rtc/v1", timeout=30).status_code == 404


def test_browsers_may_ask(server):
    r = requests.get(server.url + "/rtc/validate", params={"access_token": lk_token()},
                     headers={"Origin": "https://app.example"}, timeout=30)
    assert r.status_code == 200
    assert r.headers.get("access-control-allow-origin") == "*"


@pytest.mark.parametrize("path", VALIDATE_PATHS)
@pytest.mark.parametrize("case, token, words", [
    ("wrong secret", lambda: lk_token(secret="another-secret-that-is-also-long-enough-123"), "signature"),
    ("expired", lambda: lk_token(ttl=datetime.timedelta(minutes=-10)), "expired"),
    ("no roomJoin", lambda: lk_token(grants=api.VideoGrants(room=ROOM)), "roomJoin"),
    ("roomJoin false", lambda: lk_token(grants=api.VideoGrants(room_join=False, room=ROOM)), "roomJoin"),
    ("no room", lambda: signed({"roomJoin": True}), "names no room"),
    ("HS512", lambda: signed({"roomJoin": True, "room": ROOM}, alg="HS512", secret=SECRET * 2), "only HS256"),
    ("other api key", lambda: lk_token(key="someone-else"), "API key `someone-else`"),
    ("not a jwt", lambda: "not-a-token", "malformed"),
    ("missing", lambda: None, "no access token"),
    ("empty", lambda: "", "no access token"),
])
def test_bad_tokens_are_refused_with_the_reason(server, path, case, token, words):
    r = validate(server, token(), path=path)
    assert r.status_code == 401, (case, r.status_code, r.text)
    assert words in r.text, (case, r.text)


def test_alg_none_is_refused(server):
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
    claims = {"iss": KEY, "sub": "mallory", "nbf": now, "exp": now + 600,
              "video": {"roomJoin": True, "room": ROOM}}
    r = validate(server, f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.")
    assert r.status_code == 401
    assert "HS256" in r.text, r.text


def test_oversized_token_is_refused(server):
    r = validate(server, "a" * 9000)
    assert r.status_code == 401
    assert "longer" in r.text, r.text


def test_admin_rtc_token_validates_here_and_with_livekit(server):
    token = server.rtc_token("--room", ROOM, "--identity", "monitor", "--name", "Monitor", "--ttl", "30m",
                             "--no-publish", "--hidden")
    r = validate(server, token)
    assert r.status_code == 200, r.text
    claims = api.TokenVerifier(KEY, SECRET).verify(token)
    assert claims.identity == "monitor" and claims.name == "Monitor"
    assert claims.video.room == ROOM and claims.video.room_join
    assert claims.video.can_publish is False and claims.video.can_subscribe is True
    assert claims.video.hidden is True
    r = server.admin("rtc-token", "--room", ROOM, "--identity", "x", "--ttl", "7h")
    assert r.returncode != 0 and "rtc_token_max_ttl_ms" in r.stderr, r.stderr


def test_generated_secret_is_kept_and_survives_restarts(ward_factory, tmp_path):
    s = ward_factory("token", data_dir=tmp_path)
    key, secret = s.rtc_keys()
    assert key == "ward" and len(secret) >= 32
    path = tmp_path / "data" / "rtc_api_secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = lk_token(key=key, secret=secret, ttl=datetime.timedelta(hours=1))
    admin_token = s.rtc_token("--room", ROOM, "--identity", "bernd")
    assert validate(s, token).status_code == 200
    s.stop()
    s.start()
    assert s.rtc_keys() == (key, secret)
    for t in (token, admin_token):
        r = validate(s, t)
        assert r.status_code == 200, r.text


def test_conferencing_off(ward_factory):
    s = ward_factory("token", env={"WARD_RTC_ENABLED": "false"})
    assert validate(s, lk_token()).status_code == 404
    r = s.admin("rtc-token", "--room", ROOM, "--identity", "x")
    assert r.returncode != 0 and "rtc_enabled" in r.stderr, r.stderr


def test_unannounceable_udp_bind_is_a_config_error(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WARD_")}
    data = tmp_path / "data"
    for extra, key in [({}, "rtc_public_ip"), ({"WARD_RTC_API_SECRET": "too-short"}, "rtc_api_secret")]:
        env = {**clean, "WARD_DATA_DIR": str(data), "WARD_RTC_UDP_BIND": "0.0.0.0", **extra}
        r = subprocess.run([str(ward_binary()), "serve"], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2, r.stderr
        assert f"`{key}`" in r.stderr, r.stderr
        assert not data.exists(), "an invalid config must not create anything"
