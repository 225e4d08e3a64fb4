"""Who may read a room: an authorisation matrix over the read endpoints. Outsiders get
403 M_FORBIDDEN (404 M_NOT_FOUND for a single event, as the spec says); a user who left reads
history up to their departure and nothing after.

Portable: the same expectations hold on Synapse."""

import uuid

import pytest
import requests

pytestmark = pytest.mark.portable

PASSWORD = "correct horse battery"


def register(server, prefix):
    token = server.create_registration_token(uses=1)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = server.url + "/_matrix/client/v3/register"
    first = requests.post(url, json={"username": name, "password": PASSWORD}).json()
    session = first["session"]
    requests.post(url, json={"username": name, "password": PASSWORD,
                             "auth": {"type": "m.login.registration_token", "token": token, "session": session}})
    r = requests.post(url, json={"username": name, "password": PASSWORD,
                                 "auth": {"type": "m.login.dummy", "session": session}})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["user_id"], {"Authorization": f"Bearer {body['access_token']}"}


def test_read_authorisation_matrix(homeserver):
    api = homeserver.url + "/_matrix/client/v3"
    owner, oh = register(homeserver, "owner")
    member, mh = register(homeserver, "member")
    outsider, xh = register(homeserver, "outsider")

    room = requests.post(api + "/createRoom", headers=oh, json={"name": "Befunde", "invite": [member]}).json()["room_id"]
    assert requests.post(api + f"/rooms/{room}/join", headers=mh, json={}).status_code == 200
    before = requests.put(api + f"/rooms/{room}/send/m.room.message/a1", headers=oh,
                          json={"msgtype": "m.text", "body": "before"}).json()["event_id"]

    reads = {
        "state": ("GET", f"/rooms/{room}/state"),
        "state entry": ("GET", f"/rooms/{room}/state/m.room.name/"),
        "messages": ("GET", f"/rooms/{room}/messages?dir=b"),
        "members": ("GET", f"/rooms/{room}/members"),
        "joined_members": ("GET", f"/rooms/{room}/joined_members"),
    }
    for what, (method, path) in reads.items():
        r = requests.request(method, api + path, headers=xh)
        assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", (what, r.status_code, r.text)
        r = requests.request(method, api + path, headers=mh)
        assert r.status_code == 200, (what, r.text)
    r = requests.get(api + f"/rooms/{room}/event/{before}", headers=xh)
    assert r.status_code == 404 and r.json()["errcode"] == "M_NOT_FOUND", r.text
    r = requests.put(api + f"/rooms/{room}/send/m.room.message/x1", headers=xh, json={"msgtype": "m.text", "body": "x"})
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", r.text
    r = requests.put(api + f"/rooms/{room}/state/m.room.topic/", headers=xh, json={"topic": "x"})
    assert r.status_code == 403, r.text
    # An outsider cannot join an invite-only room.
    r = requests.post(api + f"/rooms/{room}/join", headers=xh, json={})
    assert r.status_code == 403 and r.json()["errcode"] == "M_FORBIDDEN", r.text

    # The member leaves; later messages are not theirs to read, earlier ones still are.
    assert requests.post(api + f"/rooms/{room}/leave", headers=mh, json={}).status_code == 200
    after = requests.put(api + f"/rooms/{room}/send/m.room.message/a2", headers=oh,
                         json={"msgtype": "m.text", "body": "after"}).json()["event_id"]
    assert requests.get(api + f"/rooms/{room}/event/{before}", headers=mh).status_code == 200
    r = requests.get(api + f"/rooms/{room}/event/{after}", headers=mh)
    assert r.status_code == 404, r.text
    bodies = [e["content"].get("body") for e in
              requests.get(api + f"/rooms/{room}/messages?dir=b&limit=50", headers=mh).json()["chunk"]]
    assert "before" in bodies and "after" not in bodies, bodies
    r = requests.put(api + f"/rooms/{room}/send/m.room.message/m9", headers=mh, json={"msgtype": "m.text", "body": "x"})
    assert r.status_code == 403, r.text
