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


def test_history_visibility_joined_hides_earlier_messages(homeserver):
    api = homeserver.url + "/_matrix/client/v3"
    owner, oh = register(homeserver, "owner")
    newcomer, nh = register(homeserver, "newcomer")
    room = requests.post(api + "/createRoom", headers=oh, json={
        "name": "Fallbesprechung",
        "initial_state": [{"type": "m.room.history_visibility", "state_key": "",
                           "content": {"history_visibility": "joined"}}]}).json()["room_id"]
    secret = requests.put(api + f"/rooms/{room}/send/m.room.message/s1", headers=oh,
                          json={"msgtype": "m.text", "body": "vor deiner Zeit"}).json()["event_id"]
    requests.post(api + f"/rooms/{room}/invite", headers=oh, json={"user_id": newcomer})
    assert requests.post(api + f"/rooms/{room}/join", headers=nh, json={}).status_code == 200
    requests.put(api + f"/rooms/{room}/send/m.room.message/s2", headers=oh,
                 json={"msgtype": "m.text", "body": "willkommen"})

    bodies = [e["content"].get("body") for e in
              requests.get(api + f"/rooms/{room}/messages?dir=b&limit=50", headers=nh).json()["chunk"]]
    assert "willkommen" in bodies and "vor deiner Zeit" not in bodies, bodies
    r = requests.get(api + f"/rooms/{room}/event/{secret}", headers=nh)
    assert r.status_code == 404, r.text
    sync = requests.get(api + "/sync", headers=nh).json()
    timeline = sync["rooms"]["join"][room]["timeline"]["events"]
    assert "vor deiner Zeit" not in [e["content"].get("body") for e in timeline]

    # With the default (shared) visibility, a newcomer reads the history before their join.
    shared = requests.post(api + "/createRoom", headers=oh, json={"invite": [newcomer]}).json()["room_id"]
    requests.put(api + f"/rooms/{shared}/send/m.room.message/s3", headers=oh, json={"msgtype": "m.text", "body": "alt"})
    requests.post(api + f"/rooms/{shared}/join", headers=nh, json={})
    bodies = [e["content"].get("body") for e in
              requests.get(api + f"/rooms/{shared}/messages?dir=b&limit=50", headers=nh).json()["chunk"]]
    assert "alt" in bodies, bodies


def test_knocking(homeserver):
    api = homeserver.url + "/_matrix/client/v3"
    owner, oh = register(homeserver, "owner")
    visitor, vh = register(homeserver, "visitor")
    room = requests.post(api + "/createRoom", headers=oh, json={
        "room_version": "11",
        "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]}).json()["room_id"]
    # Not invited: joining is refused, knocking is allowed.
    assert requests.post(api + f"/rooms/{room}/join", headers=vh, json={}).status_code == 403
    r = requests.post(api + f"/knock/{room}", headers=vh, json={"reason": "Termin um 10 Uhr"})
    assert r.status_code == 200 and r.json()["room_id"] == room, r.text
    s = requests.get(api + "/sync", headers=vh).json()
    assert room in s["rooms"].get("knock", {}), s["rooms"]
    knock_types = [e["type"] for e in s["rooms"]["knock"][room]["knock_state"]["events"]]
    assert "m.room.join_rules" in knock_types and "m.room.member" in knock_types
    members = requests.get(api + f"/rooms/{room}/members?membership=knock", headers=oh).json()["chunk"]
    assert [(m["state_key"], m["content"].get("reason")) for m in members] == [(visitor, "Termin um 10 Uhr")]
    # The owner lets the visitor in.
    assert requests.post(api + f"/rooms/{room}/invite", headers=oh, json={"user_id": visitor}).status_code == 200
    assert requests.post(api + f"/rooms/{room}/join", headers=vh, json={}).status_code == 200
    joined = requests.get(api + f"/rooms/{room}/joined_members", headers=vh).json()["joined"]
    assert visitor in joined


def test_restricted_join_via_another_room(homeserver):
    api = homeserver.url + "/_matrix/client/v3"
    owner, oh = register(homeserver, "owner")
    staff, sh = register(homeserver, "staff")
    outsider, xh = register(homeserver, "outsider")
    team = requests.post(api + "/createRoom", headers=oh, json={"name": "Team", "invite": [staff]}).json()["room_id"]
    assert requests.post(api + f"/rooms/{team}/join", headers=sh, json={}).status_code == 200
    restricted = requests.post(api + "/createRoom", headers=oh, json={
        "name": "Nur fürs Team",
        "initial_state": [{"type": "m.room.join_rules", "state_key": "",
                           "content": {"join_rule": "restricted",
                                       "allow": [{"type": "m.room_membership", "room_id": team}]}}]}).json()["room_id"]
    # Team members join without an invite; others cannot.
    r = requests.post(api + f"/rooms/{restricted}/join", headers=sh, json={})
    assert r.status_code == 200, r.text
    r = requests.post(api + f"/rooms/{restricted}/join", headers=xh, json={})
    assert r.status_code == 403, r.text


def test_messages_filter(homeserver):
    api = homeserver.url + "/_matrix/client/v3"
    owner, oh = register(homeserver, "owner")
    guest, gh = register(homeserver, "guest")
    room = requests.post(api + "/createRoom", headers=oh, json={"invite": [guest]}).json()["room_id"]
    requests.post(api + f"/rooms/{room}/join", headers=gh, json={})
    requests.put(api + f"/rooms/{room}/send/m.room.message/f1", headers=gh, json={"msgtype": "m.text", "body": "hi"})
    requests.put(api + f"/rooms/{room}/send/org.example.ping/f2", headers=oh, json={"n": 1})
    import json as _json
    flt = _json.dumps({"types": ["m.room.message"], "lazy_load_members": True})
    page = requests.get(api + f"/rooms/{room}/messages", headers=oh, params={"dir": "b", "limit": 10, "filter": flt}).json()
    assert [e["type"] for e in page["chunk"]] == ["m.room.message"], page["chunk"]
    members = [e["state_key"] for e in page.get("state", []) if e["type"] == "m.room.member"]
    assert guest in members, page.get("state")


def test_a_leaver_sees_its_own_leave_event(homeserver):
    """The leave event is how a client learns it left (matrix-js-sdk keeps the room otherwise),
    whatever the room's history visibility."""
    from test_e2ee_protocol import register, shared_room

    a, b = register(homeserver, "a"), register(homeserver, "b")
    room = shared_room(a, b, encrypted=False)
    a.ok("PUT", f"/_matrix/client/v3/rooms/{room}/state/m.room.history_visibility/",
         {"history_visibility": "joined"})
    b.sync()
    b.ok("POST", f"/_matrix/client/v3/rooms/{room}/leave", {})
    left = b.sync()["rooms"]["leave"][room]
    events = [(e["type"], e.get("state_key"), e["content"].get("membership")) for e in left["timeline"]["events"]]
    assert ("m.room.member", b.user, "leave") in events, left


def test_state_events_carry_what_they_replaced(homeserver):
    """`unsigned.prev_content` lets clients say "changed the topic from … to …"."""
    from test_e2ee_protocol import register

    a = register(homeserver, "a")
    room = a.ok("POST", "/_matrix/client/v3/createRoom", {"topic": "Dienstplan"})["room_id"]
    first = a.ok("GET", f"/_matrix/client/v3/rooms/{room}/state/m.room.topic/")
    assert first["topic"] == "Dienstplan"
    a.ok("PUT", f"/_matrix/client/v3/rooms/{room}/state/m.room.topic/", {"topic": "Urlaubsplan"})
    msgs = a.ok("GET", f"/_matrix/client/v3/rooms/{room}/messages", params={"dir": "b", "limit": 5})["chunk"]
    topic = next(e for e in msgs if e["type"] == "m.room.topic")
    assert topic["content"]["topic"] == "Urlaubsplan"
    assert topic["unsigned"]["prev_content"]["topic"] == "Dienstplan", topic
    assert topic["unsigned"].get("replaces_state", "").startswith("$")
