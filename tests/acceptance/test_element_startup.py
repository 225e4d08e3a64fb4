"""The rest of what Element-class clients call: start-up probes, TURN, third-party lookups and
identifiers, space hierarchy, server-side search, reporting, room upgrades.

matrix-nio where it has the call (space hierarchy), its authenticated raw `send` otherwise
(nio's `room_upgrade` upgrades on the client side and has no search). Tests marked portable
run against Synapse too."""

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
import urllib.parse

import pytest
import requests
from nio import SpaceGetHierarchyResponse

from test_rooms import new_user

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"


async def call(c, method, path, body=None):
    headers = {"Authorization": f"Bearer {c.access_token}", "Content-Type": "application/json"}
    resp = await c.send(method, path, json.dumps(body) if body is not None else None, headers)
    return resp.status, await resp.json()


def q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


async def send_text(c, room, body, txn=[0]):
    txn[0] += 1
    status, r = await call(c, "PUT", f"{V3}/rooms/{q(room)}/send/m.room.message/t{txn[0]}-{time.time_ns()}",
                           {"msgtype": "m.text", "body": body})
    assert status == 200, r
    return r["event_id"]


async def create_room(c, **body):
    status, r = await call(c, "POST", f"{V3}/createRoom", body)
    assert status == 200, r
    return r["room_id"]


async def close(*clients):
    for c in clients:
        await c.close()


# ---- start-up probes ----------------------------------------------------------------------

# What Element Web and Element X ask at start-up besides the endpoints Ward implements. Each must
# answer with a Matrix error or a spec'd body, never a 5xx or a non-JSON page.
PROBES = [
    ("GET", V1 + "/auth_metadata"),
    ("GET", "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer"),
    ("GET", "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata"),
    ("GET", "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"),
    ("GET", V3 + "/thirdparty/location"),
    ("GET", V1 + "/login/get_token"),
    ("GET", "/_matrix/client/unstable/im.nheko.summary/summary/%23nowhere%3Alocalhost"),
    ("GET", "/_matrix/client/unstable/im.nheko.summary/rooms/%21nowhere%3Alocalhost/summary"),
    ("GET", V1 + "/room_summary/%21nowhere%3Alocalhost"),
    ("GET", "/_matrix/client/unstable/uk.tcpip.msc4133/profile/@nobody:localhost/us.cloke.msc4175.tz"),
    ("GET", "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports"),
    ("GET", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"),
]
ANSWERS = [
    ("GET", V3 + "/pushrules/", 200),
    ("GET", V3 + "/thirdparty/protocols", 200),
    ("GET", V3 + "/account/3pid", 200),
    ("GET", V3 + "/voip/turnServer", 200),
    ("GET", V3 + "/capabilities", 200),
    ("GET", V1 + "/media/config", 200),
]


@pytest.mark.portable
def test_startup_probes_get_matrix_answers(homeserver):
    asyncio.run(startup_probes(homeserver))


async def startup_probes(server):
    anna = await new_user(server, "anna")
    try:
        for method, path in PROBES:
            status, body = await call(anna, method, path)
            assert status < 500, (path, status, body)
            if status >= 400:
                assert body.get("errcode", "").startswith("M_"), (path, status, body)
        for method, path, want in ANSWERS:
            status, body = await call(anna, method, path)
            assert status == want, (path, status, body)
        assert (await call(anna, "GET", V3 + "/thirdparty/protocols"))[1] == {}
        assert (await call(anna, "GET", V3 + "/account/3pid"))[1].get("threepids", []) == []
    finally:
        await close(anna)


def test_unimplemented_probes_are_unrecognized(ward_factory):
    """On Ward specifically: what it does not implement is 404 (or 405) M_UNRECOGNIZED."""
    server = ward_factory("open")
    server.create_user("probe", "a long enough password")
    token = requests.post(server.url + V3 + "/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "probe"},
        "password": "a long enough password"}).json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    for method, path in PROBES:
        if path.endswith("/thirdparty/location"):
            continue  # implemented: a lookup without `alias` is 400 M_MISSING_PARAM
        if "simplified_msc3575" in path:
            continue  # implemented (POST; a GET is 405 M_UNRECOGNIZED): test_sliding_sync.py
        r = requests.request(method, server.url + path, headers=h, timeout=10)
        assert r.status_code == 404 and r.json()["errcode"] == "M_UNRECOGNIZED", (path, r.status_code, r.text)
    r = requests.get(server.url + V3 + "/thirdparty/location", headers=h, timeout=10)
    assert r.status_code == 400 and r.json()["errcode"] == "M_MISSING_PARAM", r.text
    r = requests.delete(server.url + V3 + "/thirdparty/protocols", headers=h, timeout=10)
    assert r.status_code == 405 and r.json()["errcode"] == "M_UNRECOGNIZED", r.text


# ---- TURN, third-party identifiers ---------------------------------------------------------

def test_turn_credentials(ward_factory):
    secret = "turn-shared-secret-xyz"
    uris = ["turn:turn.praxis.example:3478?transport=udp", "turns:turn.praxis.example:5349?transport=tcp"]
    server = ward_factory("open", env={"WARD_TURN_URIS": ",".join(uris), "WARD_TURN_SHARED_SECRET": secret,
                                       "WARD_TURN_USER_LIFETIME_MS": "3600000"})
    server.create_user("caller", "a long enough password")
    token = requests.post(server.url + V3 + "/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "caller"},
        "password": "a long enough password"}).json()["access_token"]
    before = int(time.time())
    r = requests.get(server.url + V3 + "/voip/turnServer", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["uris"] == uris and body["ttl"] == 3600
    expiry, user = body["username"].split(":", 1)
    assert user == "@caller:localhost"
    assert before + 3600 - 2 <= int(expiry) <= int(time.time()) + 3600
    want = base64.b64encode(hmac.new(secret.encode(), body["username"].encode(), hashlib.sha1).digest()).decode()
    assert body["password"] == want
    assert requests.get(server.url + V3 + "/voip/turnServer").status_code == 401
    server.stop()
    assert secret not in server.log.read_text()

    # Without TURN configured: an empty object.
    plain = ward_factory("open")
    plain.create_user("caller", "a long enough password")
    token = requests.post(plain.url + V3 + "/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "caller"},
        "password": "a long enough password"}).json()["access_token"]
    r = requests.get(plain.url + V3 + "/voip/turnServer", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == {}, r.text


def test_turn_misconfiguration_is_refused(ward_factory):
    server = ward_factory("open", env={"WARD_TURN_URIS": "turn:turn.example"}, start=False)
    with pytest.raises(RuntimeError, match="turn_shared_secret"):
        server.start()


def test_threepids_are_not_kept(homeserver):
    if homeserver.kind != "ward":
        pytest.skip("Synapse supports 3PIDs")
    asyncio.run(threepids(homeserver))


async def threepids(server):
    anna = await new_user(server, "anna")
    try:
        assert await call(anna, "GET", V3 + "/account/3pid") == (200, {"threepids": []})
        status, body = await call(anna, "POST", V3 + "/account/3pid/add", {"client_secret": "abc", "sid": "s1"})
        assert (status, body["errcode"]) == (403, "M_THREEPID_DENIED"), body
        status, body = await call(anna, "POST", V3 + "/account/3pid/bind", {
            "client_secret": "abc", "sid": "s1", "id_server": "id.example", "id_access_token": "x"})
        assert (status, body["errcode"]) == (403, "M_THREEPID_DENIED"), body
        status, body = await call(anna, "POST", V3 + "/account/3pid/delete", {"medium": "email", "address": "a@b.c"})
        assert (status, body["errcode"]) == (400, "M_THREEPID_NOT_FOUND"), body
        status, body = await call(anna, "POST", V3 + "/account/3pid/email/requestToken", {
            "client_secret": "abc", "email": "a@b.c", "send_attempt": 1})
        assert (status, body["errcode"]) == (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"), body
        status, body = await call(anna, "GET", V3 + "/thirdparty/protocol/irc")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), body
    finally:
        await close(anna)


# ---- space hierarchy -----------------------------------------------------------------------

@pytest.mark.portable
def test_space_hierarchy(homeserver):
    asyncio.run(space_hierarchy(homeserver))


async def space_hierarchy(server):
    anna = await new_user(server, "anna")
    bob = await new_user(server, "bob")
    try:
        space = await create_room(anna, name="Praxis", preset="public_chat", creation_content={"type": "m.space"})
        sub = await create_room(anna, name="Team", preset="public_chat", creation_content={"type": "m.space"})
        lobby = await create_room(anna, name="Empfang", preset="public_chat")
        private = await create_room(anna, name="Leitung", preset="private_chat")
        deep = await create_room(anna, name="Labor", preset="public_chat")
        hidden_deep = await create_room(anna, name="Archiv", preset="private_chat")
        server_name = anna.user_id.split(":", 1)[1]

        async def child(parent, room, **extra):
            status, body = await call(anna, "PUT", f"{V3}/rooms/{q(parent)}/state/m.space.child/{q(room)}",
                                      {"via": [server_name], **extra})
            assert status == 200, body

        await child(space, lobby, order="b", suggested=True)
        await child(space, private, order="c")
        await child(space, sub, order="a")
        await child(sub, deep)
        await child(sub, hidden_deep)
        # A child without `via` is no child.
        status, _ = await call(anna, "PUT", f"{V3}/rooms/{q(space)}/state/m.space.child/{q(deep)}", {})
        assert status == 200

        r = await anna.space_get_hierarchy(space)
        assert isinstance(r, SpaceGetHierarchyResponse), r
        ids = [room["room_id"] for room in r.rooms]
        # Depth first, children by `order`.
        assert ids == [space, sub, deep, hidden_deep, lobby, private], ids
        top = r.rooms[0]
        assert top["room_type"] == "m.space" and top["name"] == "Praxis" and top["num_joined_members"] == 1
        assert {c["state_key"] for c in top["children_state"]} == {lobby, private, sub}
        assert all("origin_server_ts" in c for c in top["children_state"])
        lobby_entry = next(room for room in r.rooms if room["room_id"] == lobby)
        assert lobby_entry["children_state"] == [] and lobby_entry["join_rule"] == "public"

        # Someone outside sees only what they may see.
        r = await bob.space_get_hierarchy(space)
        assert isinstance(r, SpaceGetHierarchyResponse), r
        assert [room["room_id"] for room in r.rooms] == [space, sub, deep, lobby]

        # Paging, depth, suggested rooms.
        status, page = await call(anna, "GET", f"{V1}/rooms/{q(space)}/hierarchy?limit=2")
        assert status == 200 and [x["room_id"] for x in page["rooms"]] == [space, sub], page
        status, page2 = await call(anna, "GET", f"{V1}/rooms/{q(space)}/hierarchy?limit=2&from={q(page['next_batch'])}")
        assert status == 200 and [x["room_id"] for x in page2["rooms"]] == [deep, hidden_deep], page2
        status, body = await call(anna, "GET", f"{V1}/rooms/{q(space)}/hierarchy?limit=2&max_depth=0"
                                               f"&from={q(page['next_batch'])}")
        assert status == 400, body
        status, body = await call(anna, "GET", f"{V1}/rooms/{q(space)}/hierarchy?max_depth=0")
        assert status == 200 and [x["room_id"] for x in body["rooms"]] == [space], body
        status, body = await call(anna, "GET", f"{V1}/rooms/{q(space)}/hierarchy?suggested_only=true")
        assert status == 200 and [x["room_id"] for x in body["rooms"]] == [space, lobby], body
        # A room the user may not see.
        status, body = await call(bob, "GET", f"{V1}/rooms/{q(private)}/hierarchy")
        assert status == 403 and body["errcode"] == "M_FORBIDDEN", body
    finally:
        await close(anna, bob)


# ---- search --------------------------------------------------------------------------------

async def search(c, term, next_batch=None, **criteria):
    path = V3 + "/search" + (f"?next_batch={q(next_batch)}" if next_batch else "")
    status, body = await call(c, "POST", path, {"search_categories": {"room_events": {"search_term": term,
                                                                                      **criteria}}})
    assert status == 200, body
    return body["search_categories"]["room_events"]


def hit_ids(room_events):
    return [r["result"]["event_id"] for r in room_events.get("results", [])]


@pytest.mark.portable
def test_search(homeserver):
    asyncio.run(search_scenario(homeserver))


async def search_scenario(server):
    anna = await new_user(server, "anna")
    bob = await new_user(server, "bob")
    try:
        room = await create_room(anna, name="Befunde", preset="public_chat")
        assert (await call(bob, "POST", f"{V3}/join/{q(room)}", {}))[0] == 200
        e1 = await send_text(anna, room, "Laborbefund für Frau Müller ist da")
        e2 = await send_text(bob, room, "Danke, ich schaue mir den Laborbefund an")
        e3 = await send_text(anna, room, "Termin verschoben")
        # Not private_chat: Ward encrypts those by default, and encrypted rooms are never searched.
        other = await create_room(anna, name="Privat", preset="public_chat")
        e_private = await send_text(anna, other, "Laborbefund privat")

        got = await search(anna, "laborbefund")
        assert set(hit_ids(got)) == {e1, e2, e_private}, got
        assert got["count"] >= 3
        assert all(r["result"]["room_id"] in (room, other) for r in got["results"])
        # Bob was never in the private room.
        assert set(hit_ids(await search(bob, "laborbefund"))) == {e1, e2}
        assert hit_ids(await search(anna, "müller")) == [e1]
        assert hit_ids(await search(anna, "nothing-like-this-anywhere")) == []
        # Newest first, one per page.
        page = await search(anna, "laborbefund", order_by="recent", filter={"limit": 1, "rooms": [room]})
        assert hit_ids(page) == [e2] and page.get("next_batch"), page
        page2 = await search(anna, "laborbefund", page["next_batch"], order_by="recent",
                             filter={"limit": 1, "rooms": [room]})
        assert hit_ids(page2) == [e1], page2
        # Context around a result.
        ctx = await search(anna, "termin", event_context={"before_limit": 1, "after_limit": 1,
                                                        "include_profile": True})
        assert hit_ids(ctx) == [e3], ctx
        c = ctx["results"][0]["context"]
        assert [e["event_id"] for e in c["events_before"]] == [e2]
        assert c["events_after"] == [] and "start" in c and "end" in c
        assert anna.user_id in c["profile_info"] and bob.user_id in c["profile_info"]
        # Name events are searched with content.name; groupings are accepted.
        names = await search(anna, "befunde", keys=["content.name"], groupings={"group_by": [{"key": "room_id"}]})
        assert [r["result"]["type"] for r in names["results"]] == ["m.room.name"], names

        # After leaving, bob finds what was said before he left, nothing after.
        assert (await call(bob, "POST", f"{V3}/rooms/{q(room)}/leave", {}))[0] == 200
        e4 = await send_text(anna, room, "Laborbefund Nachtrag")
        assert e4 in hit_ids(await search(anna, "laborbefund"))
        after_leaving = set(hit_ids(await search(bob, "laborbefund")))
        assert e4 not in after_leaving
        if server.kind == "ward":
            # The spec includes rooms the user left (Synapse searches joined rooms only).
            assert after_leaving == {e1, e2}

        # A redacted event is not found any more.
        status, _ = await call(anna, "PUT", f"{V3}/rooms/{q(room)}/redact/{q(e3)}/r1", {})
        assert status == 200
        assert hit_ids(await search(anna, "termin")) == []
    finally:
        await close(anna, bob)


def test_search_skips_encrypted_rooms(homeserver):
    """Ward never indexes a room with m.room.encryption, even plaintext a client sent there, and
    drops a room's index when encryption is switched on (Synapse indexes such plaintext)."""
    if homeserver.kind != "ward":
        pytest.skip("Ward's rule")
    asyncio.run(encrypted_search(homeserver))


async def encrypted_search(server):
    anna = await new_user(server, "anna")
    try:
        enc = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        secret_room = await create_room(anna, name="Verschlüsselt", initial_state=[enc])
        await send_text(anna, secret_room, "Klartext im verschlüsselten Raum")
        later = await create_room(anna, name="Später verschlüsselt", preset="public_chat")
        await send_text(anna, later, "Klartext vor der Verschlüsselung")
        assert len(hit_ids(await search(anna, "klartext"))) == 1
        status, body = await call(anna, "PUT", f"{V3}/rooms/{q(later)}/state/m.room.encryption/",
                                  {"algorithm": "m.megolm.v1.aes-sha2"})
        assert status == 200, body
        assert hit_ids(await search(anna, "klartext")) == []
        assert hit_ids(await search(anna, "verschlüsselt", keys=["content.name"])) == []
        # Bad input.
        for criteria, code in [({"order_by": "sideways"}, "M_INVALID_PARAM"),
                               ({"keys": ["content.secret"]}, "M_INVALID_PARAM"),
                               ({"filter": {"limit": "ten"}}, "M_BAD_JSON")]:
            status, body = await call(anna, "POST", V3 + "/search", {
                "search_categories": {"room_events": {"search_term": "x", **criteria}}})
            assert (status, body["errcode"]) == (400, code), (criteria, body)
        status, body = await call(anna, "POST", V3 + "/search?next_batch=garbage", {
            "search_categories": {"room_events": {"search_term": "x"}}})
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body
        status, body = await call(anna, "POST", V3 + "/search", {
            "search_categories": {"room_events": {"search_term": "x " * 100}}})
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body
        # Query syntax in the term is just words.
        for term in ['"', "AND OR NOT", "*", "NEAR(a b)", "col:x", "(", "^x"]:
            assert hit_ids(await search(anna, term)) == []
    finally:
        await close(anna)


# ---- reports -------------------------------------------------------------------------------

@pytest.mark.portable
def test_reports(homeserver):
    asyncio.run(reports(homeserver))


async def reports(server):
    anna = await new_user(server, "anna")
    bob = await new_user(server, "bob")
    try:
        room = await create_room(anna, name="Meldungen", preset="private_chat")
        event = await send_text(anna, room, "Unangemessen")
        status, body = await call(anna, "POST", f"{V3}/rooms/{q(room)}/report/{q(event)}",
                                  {"reason": "Spam", "score": -100})
        assert (status, body) == (200, {}), body
        # Bob is not in the room: for him the event does not exist.
        status, body = await call(bob, "POST", f"{V3}/rooms/{q(room)}/report/{q(event)}", {"reason": "x"})
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), body
        status, body = await call(anna, "POST", f"{V3}/rooms/{q(room)}/report/{q('$nope')}", {"reason": "x"})
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), body
        # Whole rooms can be reported by anyone.
        status, body = await call(bob, "POST", f"{V3}/rooms/{q(room)}/report", {"reason": "Raum"})
        assert (status, body) == (200, {}), body
        if server.kind == "ward":
            status, body = await call(bob, "POST", f"{V3}/rooms/{q('!nope:localhost')}/report", {"reason": "x"})
            assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), body
            status, body = await call(anna, "POST", f"{V3}/rooms/{q(room)}/report/{q(event)}", {"reason": "x" * 5000})
            assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), body
            listed = server.admin("reports", "list").stdout
            lines = listed.strip().splitlines()
            assert len(lines) == 2, listed
            assert bob.user_id in lines[0] and "(room)" in lines[0] and "Raum" in lines[0]
            assert anna.user_id in lines[1] and event in lines[1] and "-100" in lines[1] and "Spam" in lines[1]
    finally:
        await close(anna, bob)


# ---- room upgrades -------------------------------------------------------------------------

@pytest.mark.portable
def test_room_upgrade(homeserver):
    asyncio.run(room_upgrade(homeserver))


async def room_upgrade(server):
    anna = await new_user(server, "anna")
    bob = await new_user(server, "bob")
    try:
        room = await create_room(anna, name="Alt", topic="Dienstplan", preset="public_chat", room_version="10")
        assert (await call(bob, "POST", f"{V3}/join/{q(room)}", {}))[0] == 200
        last = await send_text(anna, room, "vor dem Upgrade")

        status, body = await call(bob, "POST", f"{V3}/rooms/{q(room)}/upgrade", {"new_version": "11"})
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
        status, body = await call(anna, "POST", f"{V3}/rooms/{q(room)}/upgrade", {"new_version": "99"})
        assert (status, body["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION"), body

        status, body = await call(anna, "POST", f"{V3}/rooms/{q(room)}/upgrade", {"new_version": "11"})
        assert status == 200, body
        new = body["replacement_room"]
        assert new != room

        status, tomb = await call(anna, "GET", f"{V3}/rooms/{q(room)}/state/m.room.tombstone/")
        assert status == 200 and tomb["replacement_room"] == new, tomb
        status, create = await call(anna, "GET", f"{V3}/rooms/{q(new)}/state/m.room.create/")
        assert status == 200 and create["room_version"] == "11", create
        assert create["predecessor"]["room_id"] == room
        assert create["predecessor"].get("event_id") in (None, last) or create["predecessor"]["event_id"].startswith("$")
        for kind, key, want in [("m.room.name", "name", "Alt"), ("m.room.topic", "topic", "Dienstplan"),
                                ("m.room.join_rules", "join_rule", "public")]:
            status, c = await call(anna, "GET", f"{V3}/rooms/{q(new)}/state/{kind}/")
            assert status == 200 and c[key] == want, (kind, c)
        status, pl = await call(anna, "GET", f"{V3}/rooms/{q(new)}/state/m.room.power_levels/")
        assert status == 200 and pl["users"][anna.user_id] == 100, pl
        # The old room is quiet: ordinary members can no longer talk there.
        status, old_pl = await call(anna, "GET", f"{V3}/rooms/{q(room)}/state/m.room.power_levels/")
        assert old_pl["events_default"] >= 50 and old_pl["invite"] >= 50, old_pl
        status, body = await call(bob, "PUT", f"{V3}/rooms/{q(room)}/send/m.room.message/late",
                                  {"msgtype": "m.text", "body": "zu spät"})
        assert status == 403, body
        # Bob follows to the new room.
        assert (await call(bob, "POST", f"{V3}/join/{q(new)}", {}))[0] == 200
        await send_text(bob, new, "angekommen")
    finally:
        await close(anna, bob)


def test_room_upgrade_to_and_from_v12(homeserver):
    if homeserver.kind != "ward":
        pytest.skip("room version 12 creators; checked on Ward")
    asyncio.run(upgrade_v12(homeserver))


async def upgrade_v12(server):
    anna = await new_user(server, "anna")
    try:
        alias = f"upgrade{time.time_ns()}"
        room = await create_room(anna, name="Elf", room_version="11", room_alias_name=alias,
                                 initial_state=[{"type": "m.room.encryption", "state_key": "",
                                                 "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        status, body = await call(anna, "POST", f"{V3}/rooms/{q(room)}/upgrade", {"new_version": "12"})
        assert status == 200, body
        v12 = body["replacement_room"]
        status, pl = await call(anna, "GET", f"{V3}/rooms/{q(v12)}/state/m.room.power_levels/")
        assert anna.user_id not in pl.get("users", {}), pl
        status, enc = await call(anna, "GET", f"{V3}/rooms/{q(v12)}/state/m.room.encryption/")
        assert status == 200 and enc["algorithm"] == "m.megolm.v1.aes-sha2", enc
        status, body = await call(anna, "GET", f"{V3}/directory/room/{q('#' + alias + ':localhost')}")
        assert status == 200 and body["room_id"] == v12, body
        # And back to 11: the creator keeps full power.
        status, body = await call(anna, "POST", f"{V3}/rooms/{q(v12)}/upgrade", {"new_version": "11"})
        assert status == 200, body
        v11 = body["replacement_room"]
        status, pl = await call(anna, "GET", f"{V3}/rooms/{q(v11)}/state/m.room.power_levels/")
        assert pl["users"][anna.user_id] == 100, pl
        await send_text(anna, v11, "geht")
    finally:
        await close(anna)


def test_credentials_are_not_logged(homeserver):
    """Nothing of the above writes message text or reasons into the log."""
    if homeserver.kind != "ward":
        pytest.skip("Ward's log")
    asyncio.run(reports(homeserver))
    log = homeserver.log.read_text()
    assert "Unangemessen" not in log and "Spam" not in log
    assert not re.search(r"panicked", log)
