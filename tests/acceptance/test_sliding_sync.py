"""Simplified sliding sync (MSC4186), the sync Element X uses.

`test_element_x_services_…` runs the `sliding` scenario of tests/rust-client: matrix-sdk-ui 0.18's
SyncService and RoomListService (what Element X runs) for two users and a later device, with a
restart of the server in the middle, which this test performs when the client asks for it.
Portable: runs against Synapse too (scripts/test-against-synapse).

The other tests drive the endpoint with plain HTTP: positions, long-polls, to-device delivery
shared with /v3/sync, and bad input (always a 4xx with the right errcode)."""

import json
import os
import subprocess
import threading
import time

import pytest

from harness import http_json
from test_js_sdk import register
from test_rust_sdk import SCENARIO_TIMEOUT_S, client_binary, require_e2ee_endpoints

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


def run_with_restart(server, scenario: str, users: list[dict]) -> dict:
    """Runs a ward-testclient scenario; when it prints RESTART_SERVER the server is restarted
    and the client told RESTARTED on its stdin."""
    require_e2ee_endpoints(server)
    binary = client_binary()
    assert binary.exists(), f"{binary} is missing: build tests/rust-client (scripts/test does)"
    env = {**os.environ, "WARD_TESTCLIENT_USERS": json.dumps(users), "RUST_LOG": os.environ.get("RUST_LOG", "info")}
    proc = subprocess.Popen([str(binary), server.url, scenario], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True)
    reader.start()
    out = []
    restarts = 0
    deadline = time.monotonic() + SCENARIO_TIMEOUT_S + 60
    try:
        for line in proc.stdout:
            if line.strip() == "RESTART_SERVER":
                server.restart()
                restarts += 1
                proc.stdin.write("RESTARTED\n")
                proc.stdin.flush()
                continue
            out.append(line)
            if time.monotonic() > deadline:
                break
        proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    stderr = "".join(log)
    assert proc.returncode == 0, f"ward-testclient {scenario} exited {proc.returncode}\nstdout:\n{''.join(out)}\n" \
                                 f"log (last 20000 characters):\n{stderr[-20000:]}"
    result = json.loads(out[-1])
    assert result["ok"] is True and result["scenario"] == scenario, result
    print(json.dumps(result))
    return {**result["report"], "restarts": restarts}


@pytest.mark.portable
def test_element_x_services_over_sliding_sync_with_a_restart(homeserver):
    report = run_with_restart(homeserver, "sliding", [register(homeserver, "ssalice"), register(homeserver, "ssbob")])
    assert report["restarts"] == 1
    assert len({report["device_a"], report["device_b"], report["device_b2"]}) == 3
    if homeserver.kind == "ward":
        # The clients used sliding sync only; positions stayed valid across the restart.
        log = homeserver.log.read_text()
        sliding = [line for line in log.splitlines() if "simplified_msc3575/sync" in line and "request" in line]
        assert sliding, "no sliding sync request in the log"
        assert "/_matrix/client/v3/sync" not in log and "/_matrix/client/r0/sync" not in log
        print(json.dumps({"sliding_requests": len(sliding),
                          "unknown_pos": sum("status=400" in line for line in sliding)}))


def login(server, prefix: str) -> tuple[str, str]:
    user = register(server, prefix)
    status, body = http_json("POST", f"{server.url}/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user["user"]},
        "password": user["password"]})
    assert status == 200, body
    return body["access_token"], body["user_id"]


def ss(server, token: str, body: dict, pos: str | None = None, timeout_ms: int | None = None):
    query = []
    if pos is not None:
        query.append(f"pos={pos}")
    if timeout_ms is not None:
        query.append(f"timeout={timeout_ms}")
    url = server.url + SS + ("?" + "&".join(query) if query else "")
    return http_json("POST", url, body, token=token)


LIST = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 5,
                          "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"]]}}}


@pytest.mark.portable
def test_versions_advertise_simplified_sliding_sync(homeserver):
    status, body = http_json("GET", f"{homeserver.url}/_matrix/client/versions")
    assert status == 200
    assert body.get("unstable_features", {}).get("org.matrix.simplified_msc3575") is True


@pytest.mark.portable
def test_lists_positions_and_long_poll(homeserver):
    token, me = login(homeserver, "sslist")
    rooms = []
    for name in ["eins", "zwei", "drei"]:
        status, body = http_json("POST", f"{homeserver.url}/_matrix/client/v3/createRoom", {"name": name}, token=token)
        assert status == 200, body
        rooms.append(body["room_id"])
    status, first = ss(homeserver, token, LIST)
    assert status == 200, first
    assert first["lists"]["all"]["count"] == 3
    assert set(first["rooms"]) == set(rooms)
    room = first["rooms"][rooms[0]]
    assert room["initial"] is True and room["name"] == "eins"
    assert [e["type"] for e in room["required_state"]].count("m.room.name") == 1, room["required_state"]
    assert any(e["type"] == "m.room.member" and e["state_key"] == me for e in room["required_state"])
    # Newest activity first: "drei" was created last.
    order = sorted(first["rooms"], key=lambda r: -first["rooms"][r]["bump_stamp"])
    assert order == list(reversed(rooms))

    # A long-poll returns when a message arrives, with only that room.
    result = {}

    def poll():
        result["resp"] = ss(homeserver, token, LIST, pos=first["pos"], timeout_ms=10000)

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    status, body = http_json("PUT", f"{homeserver.url}/_matrix/client/v3/rooms/{rooms[0]}/send/m.room.message/t1",
                             {"msgtype": "m.text", "body": "Hallo"}, token=token)
    assert status == 200, body
    t.join(timeout=15)
    status, second = result["resp"]
    assert status == 200, second
    assert list(second["rooms"]) == [rooms[0]]
    assert [e["content"].get("body") for e in second["rooms"][rooms[0]]["timeline"]] == ["Hallo"]
    assert second["rooms"][rooms[0]].get("initial") is not True
    # Repeating the older position (a lost response) still works.
    status, again = ss(homeserver, token, LIST, pos=first["pos"])
    assert status == 200, again
    assert [e["content"].get("body") for e in again["rooms"][rooms[0]]["timeline"]] == ["Hallo"]


@pytest.mark.portable
def test_invites_show_and_a_withdrawn_invite_goes(homeserver):
    a_token, _ = login(homeserver, "ssinva")
    b_token, b_user = login(homeserver, "ssinvb")
    status, body = http_json("POST", f"{homeserver.url}/_matrix/client/v3/createRoom",
                             {"name": "Einladung", "invite": [b_user]}, token=a_token)
    assert status == 200, body
    room = body["room_id"]
    status, first = ss(homeserver, b_token, LIST)
    assert status == 200, first
    invite = first["rooms"][room]
    assert invite.get("initial") is True
    assert any(e["type"] == "m.room.name" for e in invite["invite_state"])
    assert any(e["type"] == "m.room.member" and e["state_key"] == b_user for e in invite["invite_state"])
    assert first["lists"]["all"]["count"] == 1
    status, _ = http_json("POST", f"{homeserver.url}/_matrix/client/v3/rooms/{room}/kick",
                          {"user_id": b_user, "reason": "falsche Person"}, token=a_token)
    assert status == 200
    status, second = ss(homeserver, b_token, LIST, pos=first["pos"], timeout_ms=5000)
    assert status == 200, second
    timeline = second["rooms"][room]["timeline"]
    assert any(e["type"] == "m.room.member" and e["state_key"] == b_user and e["content"]["membership"] == "leave"
               for e in timeline), timeline
    if homeserver.kind == "ward":
        # Ward lists joined, invited and knocked rooms only; Synapse keeps rooms left during
        # the connection in its lists (both tell the client of the departure).
        assert second["lists"]["all"]["count"] == 0


@pytest.mark.portable
def test_list_filters(homeserver):
    token, me = login(homeserver, "ssfilter")
    ids = {}
    for name, body in [("plain", {}), ("secret", {"initial_state": [
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]}),
                       ("space", {"creation_content": {"type": "m.space"}}), ("fav", {})]:
        status, resp = http_json("POST", f"{homeserver.url}/_matrix/client/v3/createRoom",
                                 {"name": name, "preset": "public_chat", **body}, token=token)
        assert status == 200, resp
        ids[name] = resp["room_id"]
    status, _ = http_json("PUT", f"{homeserver.url}/_matrix/client/v3/user/{me}/rooms/{ids['fav']}/tags/m.favourite",
                          {}, token=token)
    assert status == 200
    server_name = me.split(":", 1)[1]
    status, _ = http_json("PUT", f"{homeserver.url}/_matrix/client/v3/rooms/{ids['space']}/state/m.space.child/"
                          f"{ids['plain']}", {"via": [server_name]}, token=token)
    assert status == 200

    def names(filters):
        status, body = ss(homeserver, token, {"lists": {"l": {"ranges": [[0, 99]], "timeline_limit": 0,
                                                              "required_state": [], "filters": filters}}})
        assert status == 200, body
        return {n for n, i in ids.items() if i in body.get("rooms", {})}, body["lists"]["l"]["count"]

    assert names({"is_encrypted": True}) == ({"secret"}, 1)
    assert names({"room_types": ["m.space"]}) == ({"space"}, 1)
    assert names({"not_room_types": ["m.space"]})[0] == {"plain", "secret", "fav"}
    assert names({"tags": ["m.favourite"]}) == ({"fav"}, 1)
    assert names({"not_tags": ["m.favourite"]})[0] == {"plain", "secret", "space"}
    if homeserver.kind != "synapse":  # Synapse 1.163 answers the `spaces` filter with a 500
        assert names({"spaces": [ids["space"]]}) == ({"plain"}, 1)
    assert names({"is_invite": True}) == (set(), 0)


def test_unknown_position(homeserver):
    """Not portable: Synapse answers a position it cannot parse with M_UNKNOWN ("Invalid stream
    token"); Ward answers every position it does not know with M_UNKNOWN_POS, so the client
    starts over."""
    token, _ = login(homeserver, "sspos")
    for pos in ["garbage", "999_1_1", "0"]:
        status, body = ss(homeserver, token, LIST, pos=pos)
        assert status == 400, body
        assert body["errcode"] == "M_UNKNOWN_POS", body


def test_a_response_stops_at_its_event_budget(homeserver):
    """Not portable: Ward's EVENTS_PER_RESPONSE_MAX (1000 timeline and required_state events):
    rooms beyond it follow, whole, in the next responses."""
    token, _ = login(homeserver, "ssbudget")
    rooms = set()
    for i in range(12):
        status, body = http_json("POST", f"{homeserver.url}/_matrix/client/v3/createRoom", {"name": f"b{i}"},
                                 token=token)
        assert status == 200, body
        rooms.add(body["room_id"])
        for j in range(95):
            status, _ = http_json("PUT", f"{homeserver.url}/_matrix/client/v3/rooms/{body['room_id']}/send/"
                                  f"m.room.message/b{i}_{j}", {"msgtype": "m.text", "body": str(j)}, token=token)
            assert status == 200
    req = {"lists": {"all": {"ranges": [[0, 19]], "timeline_limit": 100, "required_state": [["*", "*"]]}}}
    seen: dict[str, int] = {}
    pos = None
    for _ in range(4):
        status, resp = ss(homeserver, token, req, pos=pos, timeout_ms=0)
        assert status == 200, resp
        pos = resp["pos"]
        got = resp.get("rooms", {})
        events = sum(len(r.get("timeline", [])) + len(r.get("required_state", [])) for r in got.values())
        # The budget, overshot by at most the last room's own events.
        assert events <= 1000 + 100 + 20, events
        for room_id, room in got.items():
            assert room.get("initial") is True and len(room["timeline"]) == 100, room_id
            seen[room_id] = seen.get(room_id, 0) + 1
        if len(seen) == len(rooms):
            break
        assert got, "a response with rooms deferred must make progress"
    assert set(seen) == rooms and all(n == 1 for n in seen.values()), seen
    # Once all were sent, nothing is sent again.
    status, resp = ss(homeserver, token, req, pos=pos, timeout_ms=0)
    assert status == 200 and not resp.get("rooms"), resp

    # Rooms the client has can be deferred too: a second connection has all with one event, then
    # asks for 100 (expanded timelines, 1200 events). A deferred room the user then leaves must
    # still be told as left; the other deferred ones come whole.
    small = {"conn_id": "two", "lists": {"all": {**req["lists"]["all"], "timeline_limit": 1}}}
    status, resp = ss(homeserver, token, small, timeout_ms=0)
    assert status == 200 and set(resp["rooms"]) == rooms, resp
    big = {**req, "conn_id": "two"}
    status, resp = ss(homeserver, token, big, pos=resp["pos"], timeout_ms=0)
    assert status == 200, resp
    deferred = rooms - set(resp.get("rooms", {}))
    assert deferred, "the expanded timelines exceed the budget"
    gone = sorted(deferred)[0]
    _post(homeserver, token, f"rooms/{gone}/leave")
    status, resp = ss(homeserver, token, big, pos=resp["pos"], timeout_ms=0)
    assert status == 200, resp
    got = resp.get("rooms", {})
    assert gone in got, f"the departure from a deferred room was lost: {sorted(got)}"
    assert any(e["type"] == "m.room.member" and e["content"]["membership"] == "leave"
               for e in got[gone]["timeline"]), got[gone]
    for room_id in deferred - {gone}:
        assert got[room_id].get("initial") is True and len(got[room_id]["timeline"]) == 100, room_id


def test_a_position_of_an_evicted_connection_is_refused_after_its_id_is_reused(homeserver):
    """Not portable: Ward keeps 16 connections per device. A connection evicted and started again
    under the same ID must not accept the old connection's positions."""
    token, _ = login(homeserver, "ssreuse")
    status, old = ss(homeserver, token, {**LIST, "conn_id": "main"})
    assert status == 200, old
    for i in range(16):
        status, body = ss(homeserver, token, {**LIST, "conn_id": f"other{i}"})
        assert status == 200, body
    status, body = ss(homeserver, token, {**LIST, "conn_id": "main"}, pos=old["pos"])
    assert status == 400 and body["errcode"] == "M_UNKNOWN_POS", body
    status, new = ss(homeserver, token, {**LIST, "conn_id": "main"})
    assert status == 200, new
    status, body = ss(homeserver, token, {**LIST, "conn_id": "main"}, pos=old["pos"])
    assert status == 400 and body["errcode"] == "M_UNKNOWN_POS", body


@pytest.mark.portable
def test_a_replaced_long_poll_does_not_invalidate_the_newer_position(homeserver):
    """Clients replace a long-poll by dropping it and asking again with the same position (to
    change their lists). The dropped request, still waiting on the server, must not record its
    answer over the newer one's."""
    token, _ = login(homeserver, "ssreplace")
    rooms = []
    for name in ["alt", "neu"]:
        status, body = http_json("POST", f"{homeserver.url}/_matrix/client/v3/createRoom", {"name": name}, token=token)
        rooms.append(body["room_id"])
    one = {"lists": {"all": {**LIST["lists"]["all"], "ranges": [[0, 0]]}}}
    status, first = ss(homeserver, token, one)
    assert status == 200 and list(first["rooms"]) == [rooms[1]]
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r1", ss(homeserver, token, one, pos=first["pos"],
                                                                    timeout_ms=5000)))
    t.start()
    time.sleep(0.5)
    status, second = ss(homeserver, token, LIST, pos=first["pos"], timeout_ms=0)  # a wider range
    assert status == 200 and rooms[0] in second["rooms"], second
    # A message in the older room moves it into the first request's range, so that request
    # (woken by it) would have a different record to write.
    http_json("PUT", f"{homeserver.url}/_matrix/client/v3/rooms/{rooms[0]}/send/m.room.message/t1",
              {"msgtype": "m.text", "body": "wach"}, token=token)
    t.join(timeout=10)
    status, third = ss(homeserver, token, LIST, pos=second["pos"])
    assert status == 200, third
    assert [e["content"].get("body") for e in third["rooms"][rooms[0]]["timeline"]] == ["wach"]


def test_position_survives_a_restart(ward_factory):
    server = ward_factory(registration="open")
    status, body = http_json("POST", f"{server.url}/_matrix/client/v3/register", {
        "username": "ssrestart", "password": "ein-langes-passwort", "auth": {"type": "m.login.dummy"}})
    assert status == 200, body
    token = body["access_token"]
    status, body = http_json("POST", f"{server.url}/_matrix/client/v3/createRoom", {"name": "r"}, token=token)
    room = body["room_id"]
    status, first = ss(server, token, LIST)
    assert status == 200
    server.restart()
    http_json("PUT", f"{server.url}/_matrix/client/v3/rooms/{room}/send/m.room.message/t1",
              {"msgtype": "m.text", "body": "nach Neustart"}, token=token)
    status, second = ss(server, token, LIST, pos=first["pos"])
    assert status == 200, second
    assert [e["content"].get("body") for e in second["rooms"][room]["timeline"]] == ["nach Neustart"]
    # After another restart, with nothing new, the long-poll waits (the fresh process knows no
    # room's history, which must not count as news).
    server.restart()
    started = time.monotonic()
    status, third = ss(server, token, LIST, pos=second["pos"], timeout_ms=1500)
    assert status == 200, third
    assert not third.get("rooms"), third
    assert time.monotonic() - started >= 1.2


def test_to_device_is_delivered_once_across_both_sync_endpoints(ward_factory):
    server = ward_factory(registration="open")
    tokens = {}
    for name in ["sstda", "sstdb"]:
        status, body = http_json("POST", f"{server.url}/_matrix/client/v3/register", {
            "username": name, "password": "ein-langes-passwort", "auth": {"type": "m.login.dummy"}})
        assert status == 200, body
        tokens[name] = (body["access_token"], body["user_id"], body["device_id"])
    a_token, _, _ = tokens["sstda"]
    b_token, b_user, b_device = tokens["sstdb"]
    ext = {"extensions": {"to_device": {"enabled": True}}}
    status, first = ss(server, b_token, ext)
    assert status == 200 and first["extensions"]["to_device"].get("events", []) == []
    status, _ = http_json("PUT", f"{server.url}/_matrix/client/v3/sendToDevice/m.test/t1",
                          {"messages": {b_user: {b_device: {"n": 1}}}}, token=a_token)
    assert status == 200
    since = first["extensions"]["to_device"]["next_batch"]
    body = {"extensions": {"to_device": {"enabled": True, "since": since}}}
    status, second = ss(server, b_token, body, pos=first["pos"], timeout_ms=5000)
    assert status == 200, second
    assert [e["content"] for e in second["extensions"]["to_device"].get("events", [])] == [{"n": 1}]
    # Acknowledged by the next sliding sync: /v3/sync (a fresh one) does not see it again.
    body = {"extensions": {"to_device": {"enabled": True, "since": second["extensions"]["to_device"]["next_batch"]}}}
    status, third = ss(server, b_token, body, pos=second["pos"])
    assert status == 200 and third["extensions"]["to_device"].get("events", []) == []
    status, v3 = http_json("GET", f"{server.url}/_matrix/client/v3/sync?timeout=0", token=b_token)
    assert status == 200
    assert v3["to_device"]["events"] == []


BAD = [
    ("not json", None, "M_NOT_JSON"),
    ({"lists": "nope"}, None, "M_BAD_JSON"),
    ({"lists": {"a": {"ranges": [[5, 1]], "timeline_limit": 1}}}, None, "M_INVALID_PARAM"),
    ({"lists": {"a": {"ranges": [[-1, 1]], "timeline_limit": 1}}}, None, "M_BAD_JSON"),
    ({"lists": {str(i): {"ranges": [[0, 1]], "timeline_limit": 1} for i in range(100)}}, None, "M_INVALID_PARAM"),
    ({"lists": {"a": {"ranges": [[0, 1]] * 100, "timeline_limit": 1}}}, None, "M_INVALID_PARAM"),
    ({"conn_id": "x" * 1000}, None, "M_INVALID_PARAM"),
    ({"room_subscriptions": {"!nope:x": {"timeline_limit": 1, "required_state": [["m.room.name", ""]] * 500}}}, None,
     "M_INVALID_PARAM"),
    ({"extensions": {"to_device": {"enabled": True, "since": "garbage"}}}, None, "M_INVALID_PARAM"),
    ({"lists": {"a": {"ranges": [[0, 1]], "timeline_limit": 1, "filters": {"tags": "m.favourite"}}}}, None,
     "M_BAD_JSON"),
]


def test_bad_input_is_a_clear_4xx(ward_factory):
    server = ward_factory(registration="open")
    status, body = http_json("POST", f"{server.url}/_matrix/client/v3/register", {
        "username": "ssbad", "password": "ein-langes-passwort", "auth": {"type": "m.login.dummy"}})
    token = body["access_token"]
    import urllib.request
    for payload, pos, errcode in BAD:
        if isinstance(payload, str):
            req = urllib.request.Request(server.url + SS, data=payload.encode(), method="POST",
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
            try:
                urllib.request.urlopen(req)
                raise AssertionError("accepted non-JSON")
            except urllib.error.HTTPError as e:
                status, body = e.code, json.loads(e.read())
        else:
            status, body = ss(server, token, payload, pos=pos)
        assert 400 <= status < 500, (payload, status, body)
        assert body.get("errcode") == errcode, (str(payload)[:200], body)
    # Huge ranges are clamped, not refused.
    status, body = ss(server, token, {"lists": {"a": {"ranges": [[0, 2**53 - 1]], "timeline_limit": 2**53 - 1}}})
    assert status == 200, body
    status, body = ss(server, None, LIST)
    assert status == 401 and body["errcode"] == "M_MISSING_TOKEN"


def _device(server, user: dict) -> str:
    status, body = http_json("POST", f"{server.url}/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user["user"]},
        "password": user["password"]})
    assert status == 200, body
    return body["access_token"]


def _room(server, token: str, **body) -> str:
    status, resp = http_json("POST", f"{server.url}/_matrix/client/v3/createRoom",
                             {"preset": "public_chat", **body}, token=token)
    assert status == 200, resp
    return resp["room_id"]


def _post(server, token: str, path: str, body: dict | None = None):
    status, resp = http_json("POST", f"{server.url}/_matrix/client/v3/{path}", body or {}, token=token)
    assert status == 200, resp
    return resp


def _say(server, token: str, room: str, text: str):
    status, resp = http_json("PUT", f"{server.url}/_matrix/client/v3/rooms/{room}/send/m.room.message/"
                             f"{time.monotonic_ns()}", {"msgtype": "m.text", "body": text}, token=token)
    assert status == 200, resp


def test_leaving_and_forgetting_on_one_device_is_told_to_another(homeserver):
    owner, _ = login(homeserver, "ssfgta")
    user = register(homeserver, "ssfgtb")
    device_a, device_b = _device(homeserver, user), _device(homeserver, user)
    room = _room(homeserver, owner, name="Vergessen")
    _post(homeserver, device_a, f"join/{room}")
    status, first = ss(homeserver, device_b, LIST)
    assert status == 200, first
    assert room in first["rooms"]
    _post(homeserver, device_a, f"rooms/{room}/leave")
    _post(homeserver, device_a, f"rooms/{room}/forget")
    status, second = ss(homeserver, device_b, LIST, pos=first["pos"], timeout_ms=5000)
    assert status == 200, second
    timeline = second.get("rooms", {}).get(room, {}).get("timeline", [])
    assert any(e["type"] == "m.room.member" and e["content"]["membership"] == "leave" for e in timeline), second


def test_lazy_members_of_a_limited_timeline(homeserver):
    """Element X's room list asks for one event: two messages make the timeline `limited`, and
    the sender (a member since before the position) must still come with its member event."""
    token, me = login(homeserver, "sslazya")
    other_token, other = login(homeserver, "sslazyb")
    room = _room(homeserver, token, name="Faul")
    _post(homeserver, other_token, f"join/{room}")
    _say(homeserver, token, room, "erste")
    one = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1,
                             "required_state": [["m.room.member", "$LAZY"]]}}}
    status, first = ss(homeserver, token, one)
    assert status == 200, first
    assert [e["sender"] for e in first["rooms"][room]["timeline"]] == [me]
    _say(homeserver, other_token, room, "zwei")
    _say(homeserver, other_token, room, "drei")
    status, second = ss(homeserver, token, one, pos=first["pos"], timeout_ms=5000)
    assert status == 200, second
    got = second["rooms"][room]
    assert [e["content"]["body"] for e in got["timeline"]] == ["drei"] and got["limited"] is True, got
    assert any(e["type"] == "m.room.member" and e["state_key"] == other for e in got.get("required_state", [])), got


def test_a_kicked_user_learns_nothing_of_later_members(homeserver):
    token, _ = login(homeserver, "sskicka")
    kicked_token, kicked = login(homeserver, "sskickb")
    later_token, later = login(homeserver, "sskickc")
    room = _room(homeserver, token)
    _post(homeserver, kicked_token, f"join/{room}")
    status, first = ss(homeserver, kicked_token, LIST)
    assert status == 200, first
    assert room in first["rooms"]
    _post(homeserver, token, f"rooms/{room}/kick", {"user_id": kicked})
    _post(homeserver, later_token, f"join/{room}")
    status, second = ss(homeserver, kicked_token, LIST, pos=first["pos"], timeout_ms=5000)
    assert status == 200, second
    got = second["rooms"][room]
    assert any(e["type"] == "m.room.member" and e["state_key"] == kicked for e in got["timeline"]), got
    assert later not in json.dumps(got), got
    if homeserver.kind == "ward":
        assert "joined_count" not in got and "heroes" not in got, got


@pytest.mark.portable
def test_a_larger_timeline_limit_resends_the_room_with_more_history(homeserver):
    """Element X's room list asks for one event per room; opening a room subscribes to it with a
    larger `timeline_limit`. The server sends the room again with the newest events up to the new
    limit, flagged `unstable_expanded_timeline` (Synapse's name on this unstable endpoint; Ward
    also sends the MSC's `expanded_timeline`), not as `initial`."""
    token, _ = login(homeserver, "ssexpand")
    room = _room(homeserver, token, name="Mehr")
    for i in range(5):
        _say(homeserver, token, room, f"m{i}")
    state = [["m.room.name", ""]]
    one = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1, "required_state": state}}}
    status, first = ss(homeserver, token, one)
    assert status == 200, first
    assert [e["content"].get("body") for e in first["rooms"][room]["timeline"]] == ["m4"]
    more = {**one, "room_subscriptions": {room: {"timeline_limit": 4, "required_state": state}}}
    status, second = ss(homeserver, token, more, pos=first["pos"], timeout_ms=0)
    assert status == 200, second
    got = second["rooms"][room]
    assert got.get("unstable_expanded_timeline") is True, got
    assert got.get("initial") is not True, got
    assert [e["content"].get("body") for e in got["timeline"]] == ["m1", "m2", "m3", "m4"], got
    assert got.get("limited") is True, got
    if homeserver.kind == "ward":
        assert got.get("expanded_timeline") is True, got
        assert not got.get("required_state"), got  # the state is not sent again
    # The same limit again: nothing new, the room is not sent.
    status, third = ss(homeserver, token, more, pos=second["pos"], timeout_ms=0)
    assert status == 200, third
    assert room not in third.get("rooms", {}), third
    # A message after that is plain news, not expanded.
    _say(homeserver, token, room, "m5")
    status, fourth = ss(homeserver, token, more, pos=third["pos"], timeout_ms=5000)
    assert status == 200, fourth
    got = fourth["rooms"][room]
    assert [e["content"].get("body") for e in got["timeline"]] == ["m5"], got
    assert "unstable_expanded_timeline" not in got and "expanded_timeline" not in got, got


WILDCARD_STATE_EVENTS_PER_ROOM_MAX = 200  # sliding/mod.rs `limits`


def test_wildcard_required_state_is_capped_per_room(homeserver):
    """Ward-only (Synapse has no such cap): a room with more state than
    WILDCARD_STATE_EVENTS_PER_ROOM_MAX answers `["*", "*"]` with that many events, the room's own
    state first; entries named without a wildcard still come; the connection goes on."""
    if homeserver.kind != "ward":
        pytest.skip("Ward's own limit")
    token, me = login(homeserver, "sscap")
    room = _room(homeserver, token, name="Viel Zustand")
    extra = WILDCARD_STATE_EVENTS_PER_ROOM_MAX + 20
    for i in range(extra):
        status, body = http_json("PUT", f"{homeserver.url}/_matrix/client/v3/rooms/{room}/state/org.example.s/k{i}",
                                 {"i": i}, token=token)
        assert status == 200, body
    star = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1,
                              "required_state": [["*", "*"], ["org.example.s", f"k{extra - 1}"]]}}}
    status, first = ss(homeserver, token, star)
    assert status == 200, first
    state = first["rooms"][room]["required_state"]
    keys = {(e["type"], e["state_key"]) for e in state}
    # The cap, plus the one named entry that was beyond it.
    assert len(state) == len(keys), "an entry came twice"
    assert len(state) == WILDCARD_STATE_EVENTS_PER_ROOM_MAX + 1, len(state)
    for kind in ["m.room.create", "m.room.name", "m.room.power_levels", "m.room.join_rules"]:
        assert (kind, "") in keys, kind
    assert ("org.example.s", f"k{extra - 1}") in keys
    assert first["rooms"][room]["name"] == "Viel Zustand"
    # `[type, "*"]` is capped alike.
    typed = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1, "required_state": [["org.example.s", "*"]]}}}
    status, other = ss(homeserver, token, {**typed, "conn_id": "typed"})
    assert status == 200, other
    assert len(other["rooms"][room]["required_state"]) == WILDCARD_STATE_EVENTS_PER_ROOM_MAX
    # The connection goes on: news arrives as usual.
    _say(homeserver, token, room, "weiter")
    status, second = ss(homeserver, token, star, pos=first["pos"], timeout_ms=5000)
    assert status == 200, second
    assert [e["content"].get("body") for e in second["rooms"][room]["timeline"]] == ["weiter"]
