"""What an operator relies on: durability, the admin CLI while the server runs, configuration
errors, first-run guidance, graceful shutdown, metrics, token refresh."""

import asyncio
import os
import subprocess
import time
from pathlib import Path

import requests
from nio import AsyncClient, AsyncClientConfig, LoginError, LoginResponse, RegisterResponse

from harness import REPO, WardServer, ward_binary

PASSWORD = "a long enough password"
CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0)


async def nio_login(server, user, password):
    c = AsyncClient(server.url, user, config=CONFIG)
    try:
        return await c.login(password)
    finally:
        await c.close()


def login_json(server, user, password, **extra):
    return requests.post(server.url + "/_matrix/client/v3/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password,
        **extra}, timeout=30)


def test_acknowledged_registration_survives_kill_9(ward_factory):
    server = ward_factory("open")

    async def register():
        c = AsyncClient(server.url, "karl", config=CONFIG)
        try:
            r = await c.register("karl", PASSWORD, device_name="phone")
            assert isinstance(r, RegisterResponse), r
            await c.set_displayname("Karl Kühn")
        finally:
            await c.close()

    asyncio.run(register())
    # No graceful shutdown: the process dies the moment the responses were read.
    server.kill9()
    server.start()
    r = asyncio.run(nio_login(server, "karl", PASSWORD))
    assert isinstance(r, LoginResponse), r
    t = r.access_token
    p = requests.get(server.url + "/_matrix/client/v3/profile/@karl:localhost/displayname",
                     headers={"Authorization": f"Bearer {t}"}, timeout=10)
    assert p.json() == {"displayname": "Karl Kühn"}


def test_admin_cli_while_the_server_runs(ward_factory):
    server = ward_factory("closed")
    # Closed registration refuses the API…
    r = requests.post(server.url + "/_matrix/client/v3/register", json={"username": "x", "password": PASSWORD})
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", r.text
    # …but the operator can create users, with a generated password if none is given.
    out = server.admin("create-user", "doris", "--admin")
    assert out.returncode == 0, out.stderr
    assert "@doris:localhost" in out.stdout
    generated = next(line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("password: "))
    assert isinstance(asyncio.run(nio_login(server, "doris", generated)), LoginResponse)
    # Reserved names are the operator's to hand out.
    assert server.admin("create-user", "admin", "--password-stdin", input=PASSWORD + "\n").returncode == 0
    # Duplicate names and weak passwords are refused with a message.
    dup = server.admin("create-user", "doris", "--password-stdin", input=PASSWORD + "\n")
    assert dup.returncode != 0 and "taken" in dup.stderr
    weak = server.admin("create-user", "emil", "--password", "short")
    assert weak.returncode != 0 and "at least" in weak.stderr

    # Reset a password: logged out everywhere, old password gone.
    t = login_json(server, "doris", generated).json()["access_token"]
    assert server.admin("reset-password", "doris", "--password-stdin", input="brand new password\n").returncode == 0
    r = requests.get(server.url + "/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {t}"})
    assert r.status_code == 401 and r.json()["errcode"] == "M_UNKNOWN_TOKEN"
    assert login_json(server, "doris", generated).status_code == 403
    assert login_json(server, "doris", "brand new password").status_code == 200

    # Deactivate: can never log in again, the name stays taken, the profile is gone.
    assert server.admin("deactivate", "@doris:localhost").returncode == 0
    r = login_json(server, "doris", "brand new password")
    assert r.status_code == 403 and r.json()["errcode"] in ("M_USER_DEACTIVATED", "M_FORBIDDEN"), r.text
    assert server.admin("create-user", "doris", "--password", PASSWORD).returncode != 0
    assert server.admin("deactivate", "nobody").returncode != 0

    # Registration tokens: create, list, revoke.
    created = server.admin("registration-token", "create", "--uses", "3", "--expires-in-days", "7",
                           "--token", "praxis-2026")
    assert created.returncode == 0 and created.stdout.strip() == "praxis-2026", created.stderr
    listed = server.admin("registration-token", "list")
    assert "praxis-2026" in listed.stdout and "0/3 used" in listed.stdout and "expires" in listed.stdout
    assert server.admin("registration-token", "create", "--token", "praxis-2026").returncode != 0
    assert server.admin("registration-token", "create", "--token", "bad token!").returncode != 0
    assert server.admin("registration-token", "revoke", "praxis-2026").returncode == 0
    assert "praxis-2026" not in server.admin("registration-token", "list").stdout
    assert server.admin("registration-token", "revoke", "praxis-2026").returncode != 0


def test_registration_token_validity_and_open_mode(ward_factory):
    tokened = ward_factory("token")
    token = tokened.create_registration_token(1)
    url = tokened.url + "/_matrix/client/v1/register/m.login.registration_token/validity?token="
    assert requests.get(url + token).json() == {"valid": True}
    assert requests.get(url + "wrong").json() == {"valid": False}

    opened = ward_factory("open")
    assert "registration is OPEN" in opened.log.read_text()
    r = requests.post(opened.url + "/_matrix/client/v3/register", json={"username": "olga", "password": PASSWORD})
    assert r.status_code == 401 and r.json()["flows"] == [{"stages": ["m.login.dummy"]}]
    session = r.json()["session"]
    r = requests.post(opened.url + "/_matrix/client/v3/register", json={
        "username": "olga", "password": PASSWORD, "inhibit_login": True,
        "auth": {"type": "m.login.dummy", "session": session}})
    assert r.status_code == 200 and r.json()["user_id"] == "@olga:localhost" and "access_token" not in r.json()
    # The finished session cannot be replayed.
    r = requests.post(opened.url + "/_matrix/client/v3/register", json={
        "username": "olga2", "password": PASSWORD, "auth": {"type": "m.login.dummy", "session": session}})
    assert r.status_code == 400, r.text
    assert requests.get(opened.url + "/_matrix/client/v3/register/available?username=olga").json()["errcode"] \
        == "M_USER_IN_USE"
    assert requests.get(opened.url + "/_matrix/client/v3/register/available?username=Newbie").json() \
        == {"available": True}


def test_refresh_tokens_and_expiry(ward_factory):
    server = ward_factory("closed", env={"WARD_ACCESS_TOKEN_LIFETIME_MS": "1500"})
    server.create_user("fritz", PASSWORD)
    r = login_json(server, "fritz", PASSWORD, refresh_token=True).json()
    assert r["expires_in_ms"] == 1500 and r["refresh_token"]
    whoami = server.url + "/_matrix/client/v3/account/whoami"
    assert requests.get(whoami, headers={"Authorization": f"Bearer {r['access_token']}"}).status_code == 200

    fresh = requests.post(server.url + "/_matrix/client/v3/refresh", json={"refresh_token": r["refresh_token"]}).json()
    assert fresh["access_token"] != r["access_token"] and fresh["refresh_token"] != r["refresh_token"]
    w = requests.get(whoami, headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert w.status_code == 200 and w.json()["device_id"] == r["device_id"]
    # Once the new token was used, the old refresh token is spent.
    old = requests.post(server.url + "/_matrix/client/v3/refresh", json={"refresh_token": r["refresh_token"]})
    assert old.status_code == 401 and old.json()["errcode"] == "M_UNKNOWN_TOKEN"

    time.sleep(1.6)
    expired = requests.get(whoami, headers={"Authorization": f"Bearer {fresh['access_token']}"})
    assert expired.status_code == 401
    assert expired.json()["errcode"] == "M_UNKNOWN_TOKEN" and expired.json()["soft_logout"] is True

    # Clients that did not ask for refresh tokens get tokens without expiry.
    plain = login_json(server, "fritz", PASSWORD).json()
    assert "refresh_token" not in plain and "expires_in_ms" not in plain


def test_discovery(ward_factory):
    server = ward_factory("closed", env={"WARD_PUBLIC_BASE_URL": "https://matrix.praxis.example/"})
    wk = requests.get(server.url + "/.well-known/matrix/client").json()
    assert wk["m.homeserver"]["base_url"] == "https://matrix.praxis.example"
    assert "v1.1" in requests.get(server.url + "/_matrix/client/versions").json()["versions"]
    flows = requests.get(server.url + "/_matrix/client/v3/login").json()["flows"]
    assert {"type": "m.login.password"} in flows
    server.create_user("gabi", PASSWORD)
    t = login_json(server, "gabi", PASSWORD).json()["access_token"]
    caps = requests.get(server.url + "/_matrix/client/v3/capabilities",
                        headers={"Authorization": f"Bearer {t}"}).json()["capabilities"]
    # Absent means "enabled" for these (spec); ruma leaves defaults out.
    assert caps.get("m.change_password", {"enabled": True})["enabled"] is True
    assert caps["m.3pid_changes"]["enabled"] is False
    assert caps["m.room_versions"]["default"] == "12"


def test_first_run_sigterm_and_metrics(ward_factory):
    metrics_port = __import__("harness").free_port()
    server = ward_factory("closed", env={"WARD_METRICS_LISTEN": f"127.0.0.1:{metrics_port}"})
    assert "ward admin create-user NAME --admin" in server.log.read_text()
    requests.get(server.url + "/_matrix/client/versions")
    requests.get(server.url + "/_matrix/client/v3/no-such-thing")
    m = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
    assert m.status_code == 200
    assert 'ward_http_requests_total{method="GET",endpoint="/_matrix/client/versions",status="200"}' in m.text
    assert 'endpoint="unmatched",status="404"' in m.text
    # Metrics are not on the public listener.
    assert requests.get(server.url + "/metrics").status_code == 404
    # SIGTERM: a clean exit with status 0.
    assert server.stop() == 0
    assert "shutting down" in server.log.read_text()
    # The hint appears only while there are no accounts.
    server.create_user("hanna", PASSWORD)
    before = server.log.read_text().count("create-user NAME --admin")
    server.start()
    assert server.log.read_text().count("create-user NAME --admin") == before


def run_ward(tmp_path: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WARD_")}
    return subprocess.run([str(ward_binary()), *args], env={**clean, **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_invalid_configuration_names_the_key_and_touches_nothing(tmp_path):
    data = tmp_path / "data"
    cases = [
        ({"WARD_REGISTRATION": "sometimes"}, "registration"),
        ({"WARD_LISTEN": "not-an-address"}, "listen"),
        ({"WARD_SERVER_NAME": "bad name"}, "server_name"),
        ({"WARD_MAX_REQUEST_BODY_BYTES": "lots"}, "max_request_body_bytes"),
        ({"WARD_LOGIN_FAILURES_BURST": "0"}, "login_failures_burst"),
    ]
    for env, key in cases:
        r = run_ward(tmp_path, {"WARD_DATA_DIR": str(data), **env}, "serve")
        assert r.returncode not in (0, None), r
        assert f"`{key}`" in r.stderr and next(iter(env)) in r.stderr, r.stderr
        assert not data.exists(), "an invalid config must not create anything"

    cfg = tmp_path / "ward.toml"
    cfg.write_text('server_name = "praxis.example"\nlisten = 8008\n')
    r = run_ward(tmp_path, {"WARD_DATA_DIR": str(data)}, "--config", str(cfg), "serve")
    assert r.returncode != 0 and "`listen`" in r.stderr and "ward.toml" in r.stderr, r.stderr
    cfg.write_text('sever_name = "typo.example"\n')
    r = run_ward(tmp_path, {"WARD_DATA_DIR": str(data)}, "--config", str(cfg), "serve")
    assert r.returncode != 0 and "sever_name" in r.stderr, r.stderr
    r = run_ward(tmp_path, {}, "--config", str(tmp_path / "missing.toml"), "serve")
    assert r.returncode != 0 and "missing.toml" in r.stderr
    assert not data.exists()

    # The documented example is a valid config as it stands.
    example = REPO / "docs" / "ward.example.toml"
    r = run_ward(tmp_path, {"WARD_DATA_DIR": str(data)}, "--config", str(example), "admin", "registration-token",
                 "list")
    assert r.returncode == 0, r.stderr


def test_listen_address_in_use_is_a_clear_error(ward_factory, tmp_path):
    first = ward_factory("closed")
    r = run_ward(tmp_path, {"WARD_LISTEN": f"127.0.0.1:{first.port}", "WARD_DATA_DIR": str(tmp_path / "d")}, "serve")
    assert r.returncode != 0 and "cannot listen" in r.stderr, r.stderr


def uia_password(server, token, path, body, user, password):
    """Runs a request through m.login.password user-interactive auth."""
    h = {"Authorization": f"Bearer {token}"}
    first = requests.post(server.url + path, json=body, headers=h, timeout=30)
    assert first.status_code == 401, first.text
    session = first.json()["session"]
    wrong = requests.post(server.url + path, headers=h, timeout=30, json={**body, "auth": {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": "wrong",
        "session": session}})
    assert wrong.status_code == 401 and wrong.json()["errcode"] == "M_FORBIDDEN", wrong.text
    assert wrong.json()["session"] == session and wrong.json().get("completed", []) == []
    return requests.post(server.url + path, headers=h, timeout=30, json={**body, "auth": {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password,
        "session": session}})


def test_password_change_keeping_devices_and_deactivation(ward_factory):
    server = ward_factory("closed")
    server.create_user("ida", PASSWORD)
    a = login_json(server, "ida", PASSWORD).json()["access_token"]
    b = login_json(server, "ida", PASSWORD).json()["access_token"]
    whoami = server.url + "/_matrix/client/v3/account/whoami"

    r = uia_password(server, a, "/_matrix/client/v3/account/password",
                     {"new_password": "second password", "logout_devices": False}, "ida", PASSWORD)
    assert r.status_code == 200, r.text
    assert requests.get(whoami, headers={"Authorization": f"Bearer {b}"}).status_code == 200

    # Someone else's password does not authenticate me.
    server.create_user("jan", PASSWORD)
    h = {"Authorization": f"Bearer {a}"}
    first = requests.post(server.url + "/_matrix/client/v3/account/deactivate", json={}, headers=h).json()
    r = requests.post(server.url + "/_matrix/client/v3/account/deactivate", headers=h, json={"auth": {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "jan"}, "password": PASSWORD,
        "session": first["session"]}})
    assert r.status_code == 401 and r.json()["errcode"] == "M_FORBIDDEN", r.text

    r = uia_password(server, a, "/_matrix/client/v3/account/deactivate", {}, "ida", "second password")
    assert r.status_code == 200 and r.json() == {"id_server_unbind_result": "no-support"}, r.text
    for t in (a, b):
        assert requests.get(whoami, headers={"Authorization": f"Bearer {t}"}).status_code == 401
    assert login_json(server, "ida", "second password").status_code == 403
    r = requests.get(server.url + "/_matrix/client/v3/profile/@ida:localhost",
                     headers={"Authorization": f"Bearer {login_json(server, 'jan', PASSWORD).json()['access_token']}"})
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND"


def test_rooms_survive_restart_and_sync_tokens_stay_valid(ward_factory):
    """Restart between two halves of a conversation: history, membership and the client's
    last next_batch token all still work."""
    server = ward_factory("closed")
    server.create_user("lena", PASSWORD)
    server.create_user("max", PASSWORD)

    async def first_half():
        lena = AsyncClient(server.url, "lena", config=CONFIG)
        mx = AsyncClient(server.url, "max", config=CONFIG)
        await lena.login(PASSWORD)
        await mx.login(PASSWORD)
        room = (await lena.room_create(name="Labor", invite=["@max:localhost"])).room_id
        await mx.join(room)
        await lena.sync(timeout=0)
        for i in range(5):
            await lena.room_send(room, "m.room.message", {"msgtype": "m.text", "body": f"vorher {i}"})
        s = await mx.sync(timeout=0)
        state = (room, lena.access_token, mx.access_token, s.next_batch, lena.device_id, mx.device_id)
        await lena.close()
        await mx.close()
        return state

    room, lena_token, max_token, since, lena_dev, max_dev = asyncio.run(first_half())
    assert server.stop() == 0
    server.start()

    async def second_half():
        lena = AsyncClient(server.url, "@lena:localhost", device_id=lena_dev, config=CONFIG)
        lena.access_token = lena_token
        lena.user_id = "@lena:localhost"
        mx = AsyncClient(server.url, "@max:localhost", device_id=max_dev, config=CONFIG)
        mx.access_token = max_token
        mx.user_id = "@max:localhost"
        try:
            await lena.sync(timeout=0)
            for i in range(3):
                await lena.room_send(room, "m.room.message", {"msgtype": "m.text", "body": f"nachher {i}"})
            s = await mx.sync(timeout=0, since=since)
            got = [e.body for e in s.rooms.join[room].timeline.events if hasattr(e, "body")]
            assert got == [f"nachher {i}" for i in range(3)], got
            page = await mx.room_messages(room, start=s.next_batch, limit=50)
            bodies = [e.body for e in page.chunk if hasattr(e, "body")]
            assert bodies[:8] == [f"nachher {i}" for i in (2, 1, 0)] + [f"vorher {i}" for i in (4, 3, 2, 1, 0)]
            rooms = await mx.joined_rooms()
            assert room in rooms.rooms
        finally:
            await lena.close()
            await mx.close()

    asyncio.run(second_half())


def test_presence_when_enabled(ward_factory):
    server = ward_factory("closed", env={"WARD_PRESENCE_ENABLED": "true"})
    for name in ("petra", "paul", "fremd"):
        server.create_user(name, PASSWORD)
    tok = {n: login_json(server, n, PASSWORD).json()["access_token"] for n in ("petra", "paul", "fremd")}
    h = {n: {"Authorization": f"Bearer {t}"} for n, t in tok.items()}
    api = server.url + "/_matrix/client/v3"
    room = requests.post(api + "/createRoom", headers=h["petra"], json={"invite": ["@paul:localhost"]}).json()["room_id"]
    requests.post(api + f"/rooms/{room}/join", headers=h["paul"], json={})
    since = requests.get(api + "/sync?set_presence=offline", headers=h["paul"]).json()["next_batch"]
    r = requests.put(api + "/presence/@petra:localhost/status", headers=h["petra"],
                     json={"presence": "online", "status_msg": "In der Sprechstunde"})
    assert r.status_code == 200
    got = requests.get(api + "/presence/@petra:localhost/status", headers=h["paul"]).json()
    assert got["presence"] == "online" and got["status_msg"] == "In der Sprechstunde" and got["currently_active"]
    s = requests.get(api + f"/sync?since={since}&timeout=5000&set_presence=offline", headers=h["paul"]).json()
    events = [e for e in s["presence"]["events"] if e["sender"] == "@petra:localhost"]
    assert events and events[-1]["content"]["presence"] == "online", s["presence"]
    # Someone who shares no room does not get it in sync.
    s = requests.get(api + "/sync?set_presence=offline", headers=h["fremd"]).json()
    assert not [e for e in s["presence"]["events"] if e["sender"] == "@petra:localhost"]


def test_sync_state_after(ward_factory):
    server = ward_factory("closed")
    server.create_user("sara", PASSWORD)
    h = {"Authorization": f"Bearer {login_json(server, 'sara', PASSWORD).json()['access_token']}"}
    api = server.url + "/_matrix/client/v3"
    room = requests.post(api + "/createRoom", headers=h, json={"name": "Alt"}).json()["room_id"]
    s = requests.get(api + "/sync?use_state_after=true", headers=h).json()
    joined = s["rooms"]["join"][room]
    assert "state_after" in joined and "state" not in joined, joined.keys()
    names = [e["content"]["name"] for e in joined["state_after"]["events"] if e["type"] == "m.room.name"]
    assert names == ["Alt"], names
    requests.put(api + f"/rooms/{room}/state/m.room.name/", headers=h, json={"name": "Neu"})
    s2 = requests.get(api + f"/sync?use_state_after=true&since={s['next_batch']}", headers=h).json()
    after = s2["rooms"]["join"][room]["state_after"]["events"]
    assert [e["content"]["name"] for e in after if e["type"] == "m.room.name"] == ["Neu"], after
    # Without the option the classic `state` (before the timeline) is sent.
    s3 = requests.get(api + f"/sync?since={s['next_batch']}", headers=h).json()
    assert "state" in s3["rooms"]["join"][room] and "state_after" not in s3["rooms"]["join"][room]


def test_identical_create_room_calls_get_distinct_rooms(ward_factory):
    """v12 room IDs are hashes of the create event; identical createRoom calls in the same
    millisecond must still each get a room."""
    from concurrent.futures import ThreadPoolExecutor

    server = ward_factory("closed")
    server.create_user("uwe", PASSWORD)
    h = {"Authorization": f"Bearer {login_json(server, 'uwe', PASSWORD).json()['access_token']}"}
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: requests.post(server.url + "/_matrix/client/v3/createRoom", headers=h,
                                                        json={}), range(10)))
    assert [r.status_code for r in results] == [200] * 10, [r.text for r in results]
    assert len({r.json()["room_id"] for r in results}) == 10


def test_slow_requests_time_out_with_a_matrix_error(ward_factory):
    server = ward_factory("closed", env={"WARD_HTTP_REQUEST_TIMEOUT_MS": "400", "WARD_SYNC_TIMEOUT_MAX_MS": "200"})

    def trickle():
        yield b'{"type": "m.login.password",'
        time.sleep(1.0)
        yield b' "user": "x", "password": "y"}'

    r = requests.post(server.url + "/_matrix/client/v3/login", data=trickle(),
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 408, r.text
    assert r.json()["errcode"] == "M_UNKNOWN", r.text
