"""Bad input to every implemented endpoint gets a 4xx with the right Matrix errcode: never a
5xx, never a crash, never a half-written record."""

import json

import pytest
import requests

from harness import WardServer

LIMIT = 4096
USER, PASSWORD = "erika", "a long enough password"

# (method, path, needs_auth, takes_json_body)
ENDPOINTS = [
    ("GET", "/.well-known/matrix/client", False, False),
    ("GET", "/_matrix/client/versions", False, False),
    ("GET", "/_matrix/client/v3/capabilities", True, False),
    ("GET", "/_matrix/client/v3/login", False, False),
    ("POST", "/_matrix/client/v3/login", False, True),
    ("POST", "/_matrix/client/v3/refresh", False, True),
    ("POST", "/_matrix/client/v3/logout", True, False),
    ("POST", "/_matrix/client/v3/logout/all", True, False),
    ("GET", "/_matrix/client/v3/account/whoami", True, False),
    ("POST", "/_matrix/client/v3/register", False, True),
    ("GET", "/_matrix/client/v3/register/available?username=x", False, False),
    ("GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=x", False, False),
    ("GET", "/_matrix/client/v3/devices", True, False),
    ("GET", "/_matrix/client/v3/devices/SOMEDEVICE", True, False),
    ("PUT", "/_matrix/client/v3/devices/SOMEDEVICE", True, True),
    ("DELETE", "/_matrix/client/v3/devices/SOMEDEVICE", True, True),
    ("POST", "/_matrix/client/v3/delete_devices", True, True),
    ("POST", "/_matrix/client/v3/account/password", True, True),
    ("POST", "/_matrix/client/v3/account/deactivate", True, True),
    ("GET", "/_matrix/client/v3/profile/@erika:localhost", True, False),
    ("GET", "/_matrix/client/v3/profile/@erika:localhost/displayname", True, False),
    ("PUT", "/_matrix/client/v3/profile/@erika:localhost/displayname", True, True),
    ("GET", "/_matrix/client/v3/profile/@erika:localhost/avatar_url", True, False),
    ("PUT", "/_matrix/client/v3/profile/@erika:localhost/avatar_url", True, True),
    ("POST", "/_matrix/client/v3/createRoom", True, True),
    ("GET", "/_matrix/client/v3/joined_rooms", True, False),
    ("PUT", "/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}", True, True),
    ("PUT", "/_matrix/client/v3/rooms/{room}/state/m.room.topic/", True, True),
    ("PUT", "/_matrix/client/v3/rooms/{room}/state/m.room.topic", True, True),
    ("PUT", "/_matrix/client/v3/rooms/{room}/state/org.example.custom/key", True, True),
    ("GET", "/_matrix/client/v3/rooms/{room}/state/m.room.name/", True, False),
    ("GET", "/_matrix/client/v3/rooms/{room}/state/m.room.create/", True, False),
    ("GET", "/_matrix/client/v3/rooms/{room}/state", True, False),
    ("PUT", "/_matrix/client/v3/rooms/{room}/redact/{event}/{txn}", True, True),
    ("GET", "/_matrix/client/v3/rooms/{room}/event/{event}", True, False),
    ("GET", "/_matrix/client/v3/rooms/{room}/messages?dir=b", True, False),
    ("GET", "/_matrix/client/v3/rooms/{room}/members", True, False),
    ("GET", "/_matrix/client/v3/rooms/{room}/joined_members", True, False),
    ("POST", "/_matrix/client/v3/rooms/{room}/invite", True, True),
    ("POST", "/_matrix/client/v3/rooms/{room}/join", True, True),
    ("POST", "/_matrix/client/v3/join/{room}", True, True),
    ("POST", "/_matrix/client/v3/rooms/{room}/kick", True, True),
    ("POST", "/_matrix/client/v3/rooms/{room}/ban", True, True),
    ("POST", "/_matrix/client/v3/rooms/{room}/unban", True, True),
    ("POST", "/_matrix/client/v3/rooms/{other_room}/leave", True, True),
    ("GET", "/_matrix/client/v3/sync", True, False),
    ("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", True, True),
    ("PUT", "/_matrix/client/v3/user/@erika:localhost/account_data/org.example.x", True, True),
    ("GET", "/_matrix/client/v3/user/@erika:localhost/account_data/org.example.x", True, False),
    ("PUT", "/_matrix/client/v3/user/@erika:localhost/rooms/{room}/account_data/org.example.x", True, True),
    ("GET", "/_matrix/client/v3/user/@erika:localhost/rooms/{room}/tags", True, False),
    ("PUT", "/_matrix/client/v3/user/@erika:localhost/rooms/{room}/tags/u.work", True, True),
    ("DELETE", "/_matrix/client/v3/user/@erika:localhost/rooms/{room}/tags/u.work", True, False),
    ("POST", "/_matrix/client/v3/user/@erika:localhost/filter", True, True),
    ("GET", "/_matrix/client/v3/user/@erika:localhost/filter/0", True, False),
    ("GET", "/_matrix/client/v3/pushrules/", True, False),
    ("PUT", "/_matrix/client/v3/pushrules/global/content/kw", True, True),
    ("PUT", "/_matrix/client/v3/pushrules/global/content/kw/enabled", True, True),
    ("PUT", "/_matrix/client/v3/pushrules/global/content/kw/actions", True, True),
    ("PUT", "/_matrix/client/v3/rooms/{room}/typing/@erika:localhost", True, True),
    ("POST", "/_matrix/client/v3/rooms/{room}/receipt/m.read/{event}", True, True),
    ("POST", "/_matrix/client/v3/rooms/{room}/read_markers", True, True),
    ("PUT", "/_matrix/client/v3/directory/room/%23bad-input:localhost", True, True),
    ("PUT", "/_matrix/client/v3/directory/list/room/{room}", True, True),
    ("POST", "/_matrix/client/v3/publicRooms", True, True),
    ("GET", "/_matrix/client/v3/publicRooms", True, False),
    ("GET", "/_matrix/client/v3/rooms/{room}/context/{event}", True, False),
    ("GET", "/_matrix/client/v1/rooms/{room}/relations/{event}", True, False),
    ("GET", "/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts=0&dir=f", True, False),
    ("POST", "/_matrix/client/v3/user_directory/search", True, True),
    ("PUT", "/_matrix/client/v3/presence/@erika:localhost/status", True, True),
    ("GET", "/_matrix/client/v3/pushers", True, False),
    ("POST", "/_matrix/client/v3/pushers/set", True, True),
    ("GET", "/_matrix/client/v3/notifications", True, False),
    ("POST", "/_matrix/client/v3/knock/{other_room}", True, True),
    ("GET", "/_matrix/client/v3/rooms/{room}/members?at=s1", True, False),
    ("GET", "/_ward/admin/v1/registration_tokens", True, False),
    ("POST", "/_ward/admin/v1/registration_tokens", True, True),
    ("DELETE", "/_ward/admin/v1/registration_tokens/x", True, False),
    ("POST", "/_ward/meet/v1/meetings", True, True),
    ("GET", "/_ward/meet/v1/meetings", True, False),
    ("GET", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA", False, False),
    ("POST", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/join", True, False),
    ("POST", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/knock", False, True),
    ("GET", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/knock/BBBBBBBBBBBBBBBBBBBBBB", False, False),
    ("DELETE", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/knock/BBBBBBBBBBBBBBBBBBBBBB", False, False),
    ("GET", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/lobby", True, False),
    ("POST", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/lobby/BBBBBBBBBBBBBBBBBBBBBB/admit", True, False),
    ("POST", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/lobby/BBBBBBBBBBBBBBBBBBBBBB/reject", True, False),
    ("PUT", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/lock", True, True),
    ("PUT", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/pin", True, True),
    ("POST", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/participants/guest-x/remove", True, False),
    ("POST", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/participants/guest-x/mute", True, True),
    ("POST", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/end", True, False),
    ("POST", "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/patient-links", True, True),
    ("GET", "/_ward/meet/v1/patient-links/ward_pl_x", False, False),
    ("POST", "/_ward/meet/v1/patient-links/ward_pl_x/knock", False, True),
    ("POST", "/_matrix/client/v3/keys/upload", True, True),
    ("POST", "/_matrix/client/v3/keys/query", True, True),
    ("POST", "/_matrix/client/v3/keys/claim", True, True),
    ("GET", "/_matrix/client/v3/keys/changes?from=s0&to=s1", True, False),
    ("POST", "/_matrix/client/v3/keys/device_signing/upload", True, True),
    ("POST", "/_matrix/client/v3/keys/signatures/upload", True, True),
    ("PUT", "/_matrix/client/v3/sendToDevice/m.test/{txn}", True, True),
    ("POST", "/_matrix/client/v3/room_keys/version", True, True),
    ("GET", "/_matrix/client/v3/room_keys/version", True, False),
    ("GET", "/_matrix/client/v3/room_keys/version/1", True, False),
    ("PUT", "/_matrix/client/v3/room_keys/version/1", True, True),
    ("DELETE", "/_matrix/client/v3/room_keys/version/1", True, False),
    ("PUT", "/_matrix/client/v3/room_keys/keys?version=1", True, True),
    ("GET", "/_matrix/client/v3/room_keys/keys?version=1", True, False),
    ("DELETE", "/_matrix/client/v3/room_keys/keys?version=1", True, False),
    ("PUT", "/_matrix/client/v3/room_keys/keys/{room}?version=1", True, True),
    ("GET", "/_matrix/client/v3/room_keys/keys/{room}?version=1", True, False),
    ("DELETE", "/_matrix/client/v3/room_keys/keys/{room}?version=1", True, False),
    ("PUT", "/_matrix/client/v3/room_keys/keys/{room}/sess?version=1", True, True),
    ("GET", "/_matrix/client/v3/room_keys/keys/{room}/sess?version=1", True, False),
    ("DELETE", "/_matrix/client/v3/room_keys/keys/{room}/sess?version=1", True, False),
    ("GET", "/_matrix/client/v3/voip/turnServer", True, False),
    ("GET", "/_matrix/client/v3/thirdparty/protocols", True, False),
    ("GET", "/_matrix/client/v3/thirdparty/protocol/irc", True, False),
    ("GET", "/_matrix/client/v3/thirdparty/location/irc", True, False),
    ("GET", "/_matrix/client/v3/thirdparty/user/irc", True, False),
    ("GET", "/_matrix/client/v3/thirdparty/location?alias=%23x:localhost", True, False),
    ("GET", "/_matrix/client/v3/thirdparty/user?userid=@x:localhost", True, False),
    ("GET", "/_matrix/client/v3/account/3pid", True, False),
    ("POST", "/_matrix/client/v3/account/3pid/add", True, True),
    ("POST", "/_matrix/client/v3/account/3pid/bind", True, True),
    ("POST", "/_matrix/client/v3/account/3pid/delete", True, True),
    ("POST", "/_matrix/client/v3/account/3pid/unbind", True, True),
    ("POST", "/_matrix/client/v3/account/3pid/email/requestToken", True, True),
    ("POST", "/_matrix/client/v3/account/3pid/msisdn/requestToken", True, True),
    ("GET", "/_matrix/client/v1/rooms/{room}/hierarchy", True, False),
    ("POST", "/_matrix/client/v3/search", True, True),
    ("POST", "/_matrix/client/v3/rooms/{room}/report/{event}", True, True),
    ("POST", "/_matrix/client/v3/rooms/{room}/report", True, True),
    ("POST", "/_matrix/client/v3/rooms/{other_room}/upgrade", True, True),
    # Media: uploads are raw bytes, not JSON, with their own size limit (test_media.py).
    ("POST", "/_matrix/media/v3/upload?filename=x.txt", True, False),
    ("POST", "/_matrix/media/v1/create", True, False),
    ("PUT", "/_matrix/media/v3/upload/localhost/noSuchMedia", True, False),
    ("GET", "/_matrix/client/v1/media/config", True, False),
    ("GET", "/_matrix/media/v3/config", True, False),
    ("GET", "/_matrix/client/v1/media/download/localhost/noSuchMedia", True, False),
    ("GET", "/_matrix/client/v1/media/download/localhost/noSuchMedia/x.txt", True, False),
    ("GET", "/_matrix/client/v1/media/thumbnail/localhost/noSuchMedia?width=32&height=32", True, False),
    ("GET", "/_matrix/media/v3/download/localhost/noSuchMedia", False, False),
    ("GET", "/_matrix/media/v3/thumbnail/localhost/noSuchMedia?width=32&height=32", False, False),
    ("GET", "/_matrix/client/v1/media/preview_url?url=https://example.org/", False, False),
    ("GET", "/_matrix/media/v3/preview_url?url=https://example.org/", False, False),
]
AUTHED = [e for e in ENDPOINTS if e[2]]
WITH_BODY = [e for e in ENDPOINTS if e[3]]

# A body of the right shape but wrong types, per endpoint.
WRONG_TYPES = {
    "/_matrix/client/v3/login": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": 5}, "password": []},
    "/_matrix/client/v3/refresh": {"refresh_token": 12},
    "/_matrix/client/v3/register": {"username": 42, "password": True},
    "/_matrix/client/v3/devices/SOMEDEVICE": {"display_name": {"nested": 1}},
    "/_matrix/client/v3/delete_devices": {"devices": "ABC"},
    "/_matrix/client/v3/account/password": {"new_password": 123456789},
    "/_matrix/client/v3/account/deactivate": {"auth": "password"},
    "/_matrix/client/v3/profile/@erika:localhost/displayname": {"displayname": 7},
    "/_matrix/client/v3/profile/@erika:localhost/avatar_url": {"avatar_url": ["mxc://x/y"]},
    "/_matrix/client/v3/createRoom": {"name": 5, "invite": "@erika:localhost"},
    "/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}": ["not", "an", "object"],
    "/_matrix/client/v3/rooms/{room}/state/m.room.topic/": "topic",
    "/_matrix/client/v3/rooms/{room}/redact/{event}/{txn}": {"reason": 42},
    "/_matrix/client/v3/rooms/{room}/invite": {"user_id": 42},
    "/_matrix/client/v3/rooms/{room}/kick": {"user_id": ["@x:localhost"]},
    "/_matrix/client/v3/rooms/{room}/ban": {"user_id": None},
    "/_matrix/client/v3/user/@erika:localhost/filter": {"room": {"timeline": {"limit": "ten"}}},
    "/_matrix/client/v3/pushrules/global/content/kw": {"pattern": 5, "actions": "notify"},
    "/_matrix/client/v3/pushrules/global/content/kw/enabled": {"enabled": "yes"},
    "/_matrix/client/v3/rooms/{room}/typing/@erika:localhost": {"typing": "yes"},
    "/_matrix/client/v3/rooms/{room}/read_markers": {"m.fully_read": 5},
    "/_matrix/client/v3/publicRooms": {"limit": "many"},
    "/_matrix/client/v3/user_directory/search": {"search_term": 5},
    "/_matrix/client/v3/presence/@erika:localhost/status": {"presence": 5},
    "/_matrix/client/v3/pushers/set": {"app_id": 5, "pushkey": [], "kind": "http"},
    "/_matrix/client/v3/keys/upload": {"device_keys": 5, "one_time_keys": []},
    "/_matrix/client/v3/keys/query": {"device_keys": {"@erika:localhost": "all"}},
    "/_matrix/client/v3/keys/claim": {"one_time_keys": {"@erika:localhost": ["DEV"]}},
    "/_matrix/client/v3/keys/device_signing/upload": {"master_key": "key"},
    "/_matrix/client/v3/keys/signatures/upload": {"@erika:localhost": ["sig"]},
    "/_matrix/client/v3/sendToDevice/m.test/{txn}": {"messages": {"@erika:localhost": {"DEV": 5}}},
    "/_matrix/client/v3/room_keys/version": {"algorithm": 5, "auth_data": "x"},
    "/_matrix/client/v3/room_keys/version/1": {"algorithm": [], "auth_data": {}},
    "/_matrix/client/v3/room_keys/keys?version=1": {"rooms": {"!r:localhost": {"sessions": {"s": 5}}}},
    "/_matrix/client/v3/room_keys/keys/{room}?version=1": {"sessions": {"s": {"first_message_index": "0"}}},
    "/_matrix/client/v3/room_keys/keys/{room}/sess?version=1": {"first_message_index": -1},
    "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync": {"lists": {"a": {"ranges": "all"}}},
    "/_matrix/client/v3/search": {"search_categories": {"room_events": {"search_term": 5}}},
    "/_matrix/client/v3/rooms/{room}/report/{event}": {"reason": 5, "score": "bad"},
    "/_matrix/client/v3/rooms/{room}/report": {"reason": []},
    "/_matrix/client/v3/rooms/{other_room}/upgrade": {"new_version": 11},
    "/_matrix/client/v3/account/3pid/delete": {"medium": 5, "address": []},
    "/_ward/meet/v1/meetings": {"kind": 5, "members_enter": "yes"},
    "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/knock": {"display_name": ["Gast"]},
    "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/lock": {"locked": "yes"},
    "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/pin": {"pin": 1234},
    "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/participants/guest-x/mute": {"track_sid": 5},
    "/_ward/meet/v1/meetings/AAAAAAAAAAAAAAAAAAAAAA/patient-links": {"expires_in_ms": "soon"},
    "/_ward/meet/v1/patient-links/ward_pl_x/knock": {"display_name": 5},
}


@pytest.fixture(scope="module")
def server():
    s = WardServer("open", env={"WARD_MAX_REQUEST_BODY_BYTES": str(LIMIT)}).start()
    s.create_user(USER, PASSWORD)
    yield s
    log = s.log.read_text()
    s.cleanup()
    assert "panicked" not in log, log


@pytest.fixture(scope="module")
def token(server):
    r = requests.post(server.url + "/_matrix/client/v3/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": USER}, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


CTX = {}
TXN = __import__("itertools").count()


@pytest.fixture(scope="module")
def room(server, token):
    h = {"Authorization": f"Bearer {token}"}
    api = server.url + "/_matrix/client/v3"
    CTX["room"] = requests.post(api + "/createRoom", headers=h, json={"name": "x"}).json()["room_id"]
    CTX["other_room"] = requests.post(api + "/createRoom", headers=h, json={}).json()["room_id"]
    CTX["event"] = requests.put(api + f"/rooms/{CTX['room']}/send/m.room.message/seed", headers=h,
                                json={"msgtype": "m.text", "body": "seed"}).json()["event_id"]
    return CTX


def send(server, method, path, token=None, data=None, headers=None):
    path = path.format(txn=f"t{next(TXN)}", **CTX) if "{" in path else path
    h = {"Content-Type": "application/json", **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    return requests.request(method, server.url + path, data=data, headers=h, timeout=30)


def expect(r, status, *errcodes):
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    body = r.json()
    assert body.get("errcode") in errcodes, (r.request.method, r.request.url, body)
    assert body.get("error"), body


def test_every_endpoint_answers_well_formed(server, room, token):
    for method, path, needs_auth, _ in ENDPOINTS:
        if path.endswith("/logout") or path.endswith("/logout/all"):
            continue  # would end the shared session
        r = send(server, method, path, token if needs_auth else None, "{}" if method != "GET" else None)
        assert r.status_code < 500, (method, path, r.status_code, r.text)
        r.json()


@pytest.mark.parametrize("method,path", [(m, p) for m, p, _, _ in AUTHED])
def test_missing_and_unknown_tokens(server, room, method, path):
    expect(send(server, method, path), 401, "M_MISSING_TOKEN")
    expect(send(server, method, path, token="ward_at_not-a-real-token"), 401, "M_UNKNOWN_TOKEN")
    expect(send(server, method, path, headers={"Authorization": "Basic dXNlcjpwdw=="}), 401, "M_MISSING_TOKEN")


@pytest.mark.parametrize("method,path", [(m, p) for m, p, _, _ in WITH_BODY])
def test_malformed_json(server, room, token, method, path):
    expect(send(server, method, path, token, data="{not json"), 400, "M_NOT_JSON")
    expect(send(server, method, path, token, data=b"\xff\xfe{}"), 400, "M_NOT_JSON")
    expect(send(server, method, path, token, data='{"a": 1,}'), 400, "M_NOT_JSON")


@pytest.mark.parametrize("method,path", [(m, p) for m, p, _, _ in WITH_BODY])
def test_non_object_json(server, room, token, method, path):
    expect(send(server, method, path, token, data="[1, 2, 3]"), 400, "M_NOT_JSON", "M_BAD_JSON", "M_INVALID_PARAM")


@pytest.mark.parametrize("method,path", [(m, p) for m, p, _, _ in WITH_BODY])
def test_oversized_body(server, room, token, method, path):
    big = json.dumps({"padding": "x" * (LIMIT * 2)})
    expect(send(server, method, path, token, data=big), 413, "M_TOO_LARGE")

    def chunks():  # no Content-Length: the limit must hold for streamed bodies too
        yield b'{"padding": "'
        for _ in range(64):
            yield b"x" * 1024
        yield b'"}'

    expect(send(server, method, path, token, data=chunks()), 413, "M_TOO_LARGE")


@pytest.mark.parametrize("path,body", list(WRONG_TYPES.items()))
def test_wrong_types(server, room, token, path, body):
    method = next(m for m, p, _, b in WITH_BODY if p == path)
    expect(send(server, method, path, token, data=json.dumps(body)), 400, "M_BAD_JSON", "M_INVALID_PARAM",
           "M_NOT_JSON")


def test_missing_fields(server, token):
    expect(send(server, "POST", "/_matrix/client/v3/account/password", token, data="{}"), 400, "M_MISSING_PARAM")
    expect(send(server, "POST", "/_matrix/client/v3/delete_devices", token, data="{}"), 400, "M_MISSING_PARAM")
    expect(send(server, "POST", "/_matrix/client/v3/refresh", data="{}"), 400, "M_MISSING_PARAM", "M_BAD_JSON")
    expect(send(server, "POST", "/_matrix/client/v3/login", data='{"type": "m.login.password"}'), 400,
           "M_MISSING_PARAM", "M_BAD_JSON")
    expect(send(server, "GET", "/_matrix/client/v3/register/available"), 400, "M_MISSING_PARAM")
    expect(send(server, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity"), 400,
           "M_MISSING_PARAM")
    # A password stage without a password.
    r = send(server, "POST", "/_matrix/client/v3/delete_devices", token,
             data=json.dumps({"devices": [], "auth": {"type": "m.login.password"}}))
    expect(r, 400, "M_MISSING_PARAM")


def test_invalid_params(server, token):
    expect(send(server, "GET", "/_matrix/client/v3/profile/not-a-user-id", token), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", "/_matrix/client/v3/profile/%40nobody%3Alocalhost", token), 404, "M_NOT_FOUND")
    expect(send(server, "GET", "/_matrix/client/v3/devices/NOSUCHDEVICE", token), 404, "M_NOT_FOUND")
    expect(send(server, "PUT", "/_matrix/client/v3/devices/NOSUCHDEVICE", token, data='{"display_name": "x"}'), 404,
           "M_NOT_FOUND")
    expect(send(server, "DELETE", "/_matrix/client/v3/devices/NOSUCHDEVICE", token, data="{}"), 404, "M_NOT_FOUND")
    expect(send(server, "PUT", "/_matrix/client/v3/profile/@erika:localhost/displayname", token,
                data=json.dumps({"displayname": "x" * 300})), 400, "M_INVALID_PARAM")
    expect(send(server, "PUT", "/_matrix/client/v3/profile/@erika:localhost/avatar_url", token,
                data=json.dumps({"avatar_url": "https://tracker.example/pixel.png"})), 400, "M_INVALID_PARAM")
    expect(send(server, "PUT", "/_matrix/client/v3/profile/@someoneelse:localhost/displayname", token,
                data=json.dumps({"displayname": "x"})), 403, "M_FORBIDDEN")
    expect(send(server, "POST", "/_matrix/client/v3/register?kind=robot", data="{}"), 400, "M_INVALID_PARAM")
    expect(send(server, "POST", "/_matrix/client/v3/register?kind=guest", data="{}"), 403, "M_GUEST_ACCESS_FORBIDDEN")
    expect(send(server, "POST", "/_matrix/client/v3/login", data=json.dumps({"type": "m.login.token", "token": "x"})),
           400, "M_UNKNOWN")
    expect(send(server, "POST", "/_matrix/client/v3/login", data=json.dumps({"type": "m.login.password",
           "identifier": {"type": "m.id.user", "user": USER}, "password": PASSWORD, "device_id": "D" * 300})),
           400, "M_INVALID_PARAM")
    expect(send(server, "POST", "/_matrix/client/v3/refresh", data=json.dumps({"refresh_token": "nope"})), 401,
           "M_UNKNOWN_TOKEN")
    expect(send(server, "POST", "/_matrix/client/v3/delete_devices", token,
                data=json.dumps({"devices": [], "auth": {"type": "m.login.recaptcha", "session": "x"}})),
           400, "M_UNKNOWN", "M_UNRECOGNIZED")


def test_sliding_sync_limits(server, token):
    path = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

    def sync(list_):
        return send(server, "POST", path, token, data=json.dumps({"lists": {"a": list_}, "timeout": 0}))

    ok = {"ranges": [[0, 9]], "timeline_limit": 1, "required_state": [["m.room.name", "x" * 255]],
          "filters": {"tags": ["t"] * 64}}
    r = sync(ok)
    assert r.status_code == 200, r.text
    # Event types and state keys beyond 255 bytes, and filters with more than 64 values.
    for bad in (
        {"required_state": [["x" * 256, ""]]},
        {"required_state": [["m.room.member", "x" * 256]]},
        {"filters": {"tags": ["t"] * 65}},
        {"filters": {"not_tags": ["t"] * 65}},
        {"filters": {"spaces": ["!s:localhost"] * 65}},
        {"filters": {"room_types": ["m.space"] * 65}},
        {"filters": {"not_room_types": ["m.space"] * 65}},
    ):
        expect(sync({**ok, **bad}), 400, "M_INVALID_PARAM")


def test_registration_input(server):
    reg = "/_matrix/client/v3/register"
    expect(send(server, "POST", reg, data=json.dumps({"username": "Bad Name!", "password": PASSWORD})), 400,
           "M_INVALID_USERNAME")
    expect(send(server, "POST", reg, data=json.dumps({"username": USER, "password": PASSWORD})), 400, "M_USER_IN_USE")
    expect(send(server, "POST", reg, data=json.dumps({"username": "admin", "password": PASSWORD})), 400, "M_EXCLUSIVE")
    expect(send(server, "POST", reg, data=json.dumps({"username": "shorty", "password": "short"})), 400,
           "M_WEAK_PASSWORD")
    expect(send(server, "POST", reg, data=json.dumps({"username": "x" * 300, "password": PASSWORD})), 400,
           "M_INVALID_USERNAME")
    expect(send(server, "POST", reg, data=json.dumps({"auth": {"type": "m.login.dummy", "session": "forged"}})), 400,
           "M_UNKNOWN")
    expect(send(server, "GET", "/_matrix/client/v3/register/available?username=erika"), 400, "M_USER_IN_USE")
    expect(send(server, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=x"), 403,
           "M_FORBIDDEN")
    # Nothing of the refused attempts was written.
    for name in ["shorty", "admin"]:
        r = send(server, "GET", f"/_matrix/client/v3/register/available?username={name}")
        assert r.status_code in (200, 400) and r.json().get("errcode") != "M_USER_IN_USE", r.text


def test_unknown_endpoints_and_methods(server, token):
    expect(send(server, "GET", "/_matrix/client/v3/no/such/endpoint"), 404, "M_UNRECOGNIZED")
    # Outside the API prefixes is the browser app: a plain 404.
    assert send(server, "GET", "/nothing-here").status_code == 404
    expect(send(server, "GET", "/_ward/nothing-here"), 404, "M_UNRECOGNIZED")
    expect(send(server, "POST", "/_matrix/client/v3/preview_url", token, data="{}"), 404, "M_UNRECOGNIZED")
    expect(send(server, "DELETE", "/_matrix/client/versions"), 405, "M_UNRECOGNIZED")
    expect(send(server, "PUT", "/_matrix/client/v3/login", data="{}"), 405, "M_UNRECOGNIZED")
    expect(send(server, "GET", "/_matrix/client/v3/delete_devices", token), 405, "M_UNRECOGNIZED")


def test_cors_for_browser_clients(server):
    r = requests.options(server.url + "/_matrix/client/v3/login", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"}, timeout=10)
    assert r.status_code in (200, 204), r.text
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    methods = r.headers["Access-Control-Allow-Methods"]
    for m in ["GET", "POST", "PUT", "DELETE", "OPTIONS"]:
        assert m in methods
    allowed = r.headers["Access-Control-Allow-Headers"].lower()
    for h in ["authorization", "content-type", "x-requested-with"]:
        assert h in allowed
    r = requests.get(server.url + "/_matrix/client/versions", headers={"Origin": "https://app.example"}, timeout=10)
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_room_input(server, token, room):
    h = token
    api = "/_matrix/client/v3"
    expect(send(server, "POST", api + "/createRoom", h, data=json.dumps({"room_version": "99"})), 400,
           "M_UNSUPPORTED_ROOM_VERSION")
    expect(send(server, "POST", api + "/createRoom", h, data=json.dumps({"preset": "party"})), 400,
           "M_BAD_JSON", "M_INVALID_PARAM")
    expect(send(server, "POST", api + "/createRoom", h, data=json.dumps({"invite": ["@nobody:localhost"]})), 404,
           "M_NOT_FOUND")
    expect(send(server, "POST", api + "/createRoom", h, data=json.dumps({"invite": ["not a user"]})), 400,
           "M_BAD_JSON", "M_INVALID_PARAM")
    expect(send(server, "POST", api + "/createRoom", h, data=json.dumps(
        {"initial_state": [{"type": "m.room.power_levels", "content": {"users": {"@erika:localhost": "lots"}}}]})), 400,
        "M_INVALID_ROOM_STATE", "M_BAD_JSON", "M_INVALID_PARAM")
    expect(send(server, "GET", api + "/rooms/!nope:localhost/messages?dir=b", h), 403, "M_FORBIDDEN")
    expect(send(server, "GET", api + "/rooms/not-a-room/messages?dir=b", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", api + "/rooms/{room}/messages?dir=sideways", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", api + "/rooms/{room}/messages?dir=b&from=garbage", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", api + "/rooms/{room}/messages?dir=b&limit=-1", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", api + "/rooms/{room}/event/$nope", h), 404, "M_NOT_FOUND")
    expect(send(server, "GET", api + "/rooms/{room}/state/m.room.avatar/", h), 404, "M_NOT_FOUND")
    expect(send(server, "GET", api + "/sync?since=garbage", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", api + "/sync?timeout=soon", h), 400, "M_INVALID_PARAM")
    expect(send(server, "PUT", api + "/rooms/{room}/send/m.room.message/" + "t" * 300, h, data="{}"), 400,
           "M_INVALID_PARAM")
    big = json.dumps({"msgtype": "m.text", "body": "x" * 70_000})
    expect(send(server, "PUT", api + "/rooms/{room}/send/m.room.message/{txn}", h, data=big,
                headers={}), 413, "M_TOO_LARGE")
    expect(send(server, "POST", api + "/rooms/{room}/invite", h, data=json.dumps({"user_id": "@ghost:localhost"})),
           404, "M_NOT_FOUND")
    expect(send(server, "POST", api + "/rooms/{room}/invite", h, data=json.dumps({"user_id": "@x:elsewhere.example"})),
           403, "M_FORBIDDEN")
    expect(send(server, "POST", api + "/join/%23alias:localhost", h, data="{}"), 404, "M_NOT_FOUND")
    expect(send(server, "POST", api + "/rooms/!nope:localhost/join", h, data="{}"), 404, "M_NOT_FOUND")
    expect(send(server, "PUT", api + "/rooms/{room}/redact/$nope/{txn}", h, data="{}"), 404, "M_NOT_FOUND")


def test_user_data_input(server, token, room):
    h = token
    api = "/_matrix/client/v3"
    expect(send(server, "PUT", api + "/user/@erika:localhost/account_data/m.push_rules", h, data="{}"), 400,
           "M_BAD_JSON")
    expect(send(server, "GET", api + "/user/@erika:localhost/account_data/org.example.none", h), 404, "M_NOT_FOUND")
    expect(send(server, "PUT", api + "/user/@other:localhost/account_data/x", h, data="{}"), 403, "M_FORBIDDEN")
    expect(send(server, "GET", api + "/user/@erika:localhost/filter/999", h), 404, "M_NOT_FOUND")
    expect(send(server, "GET", api + "/pushrules/global/override/.nope", h), 404, "M_NOT_FOUND")
    expect(send(server, "DELETE", api + "/pushrules/global/override/.m.rule.master", h), 403, "M_FORBIDDEN")
    expect(send(server, "PUT", api + "/pushrules/global/content/.reserved", h,
                data=json.dumps({"pattern": "x", "actions": []})), 400, "M_INVALID_PARAM")
    expect(send(server, "PUT", api + "/rooms/{room}/typing/@other:localhost", h, data='{"typing": true, "timeout": 1000}'), 403,
           "M_FORBIDDEN")
    expect(send(server, "POST", api + "/rooms/{room}/receipt/m.read/$nope", h, data="{}"), 404, "M_NOT_FOUND")
    expect(send(server, "POST", api + "/rooms/{room}/receipt/m.bogus/{event}", h, data="{}"), 400,
           "M_INVALID_PARAM", "M_BAD_JSON")
    expect(send(server, "PUT", api + "/directory/room/no-hash", h, data=json.dumps({"room_id": CTX["room"]})), 400,
           "M_INVALID_PARAM")
    expect(send(server, "PUT", api + "/directory/room/%23x:elsewhere.example", h,
                data=json.dumps({"room_id": CTX["room"]})), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", api + "/directory/room/%23unknown:localhost"), 404, "M_NOT_FOUND")
    expect(send(server, "GET", api + "/publicRooms?since=garbage", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", api + "/publicRooms"), 401, "M_MISSING_TOKEN")
    expect(send(server, "POST", api + "/rooms/{room}/forget", h, data="{}"), 400, "M_UNKNOWN")
    expect(send(server, "GET", api + "/rooms/{room}/context/$nope", h), 404, "M_NOT_FOUND")
    expect(send(server, "GET", "/_matrix/client/v1/rooms/{room}/relations/{event}?dir=f", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", "/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts=9999999999999&dir=f", h), 404,
           "M_NOT_FOUND")
    expect(send(server, "GET", api + "/presence/@ghost:localhost/status", h), 404, "M_NOT_FOUND")
    expect(send(server, "POST", api + "/pushers/set", h, data=json.dumps({"app_id": "a", "pushkey": "k", "kind": "http",
                                                                          "data": {}})), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", api + "/notifications?from=garbage", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", api + "/rooms/{room}/members?at=garbage", h), 400, "M_INVALID_PARAM")
    expect(send(server, "POST", api + "/knock/!nope:localhost", h, data="{}"), 404, "M_NOT_FOUND")
    expect(send(server, "POST", api + "/knock/{room}", h, data="{}"), 403, "M_FORBIDDEN")


def test_search_hierarchy_report_upgrade_input(server, token, room):
    h = token
    api = "/_matrix/client/v3"
    expect(send(server, "GET", "/_matrix/client/v1/rooms/{room}/hierarchy?limit=0", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", "/_matrix/client/v1/rooms/{room}/hierarchy?max_depth=-1", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", "/_matrix/client/v1/rooms/{room}/hierarchy?from=garbage", h), 400, "M_INVALID_PARAM")
    expect(send(server, "GET", "/_matrix/client/v1/rooms/!nope:localhost/hierarchy", h), 403, "M_FORBIDDEN")
    expect(send(server, "POST", api + "/search?next_batch=garbage", h,
                data=json.dumps({"search_categories": {"room_events": {"search_term": "x"}}})), 400, "M_INVALID_PARAM")
    expect(send(server, "POST", api + "/search", h, data=json.dumps({"search_categories": {"room_events": {}}})), 400,
           "M_MISSING_PARAM", "M_BAD_JSON")
    expect(send(server, "POST", api + "/search", h, data="{}"), 400, "M_MISSING_PARAM", "M_BAD_JSON")
    expect(send(server, "POST", api + "/rooms/{room}/report/$nope", h, data="{}"), 404, "M_NOT_FOUND")
    expect(send(server, "POST", api + "/rooms/{room}/report/{event}", h, data=json.dumps({"score": -500})), 400,
           "M_INVALID_PARAM")
    expect(send(server, "POST", api + "/rooms/!nope:localhost/report", h, data="{}"), 404, "M_NOT_FOUND")
    expect(send(server, "POST", api + "/rooms/{room}/upgrade", h, data=json.dumps({"new_version": "99"})), 400,
           "M_UNSUPPORTED_ROOM_VERSION")
    expect(send(server, "POST", api + "/rooms/!nope:localhost/upgrade", h, data=json.dumps({"new_version": "11"})),
           404, "M_NOT_FOUND")
    expect(send(server, "POST", api + "/rooms/{room}/upgrade", h, data="{}"), 400, "M_MISSING_PARAM", "M_BAD_JSON")
