"""Context, relations, timestamp lookup, forgetting, user directory, presence, push rules,
pushers and notifications, through matrix-nio's session.

Portable: runs against Synapse too (Ward-only choices are marked)."""

import asyncio
import time
from urllib.parse import quote

import pytest
from nio import RoomContextResponse

from test_rooms import new_user
from test_userdata import call

pytestmark = pytest.mark.portable
V3 = "/_matrix/client/v3"


def test_history_tools(homeserver):
    asyncio.run(history_tools(homeserver))


async def history_tools(server):
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    try:
        room = (await alice.room_create(invite=[bob.user_id])).room_id
        await bob.join(room)
        await alice.sync(timeout=0)
        ids = []
        for i in range(9):
            ids.append((await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": f"c{i}"})).event_id)
        ts_before = int(time.time() * 1000)
        await asyncio.sleep(0.05)
        late = (await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "late"})).event_id

        # /context around the fifth message.
        ctx = await bob.room_context(room, ids[4], limit=4)
        assert isinstance(ctx, RoomContextResponse), ctx
        assert ctx.event.body == "c4"
        assert [e.body for e in ctx.events_before] == ["c3", "c2"]
        assert [e.body for e in ctx.events_after] == ["c5", "c6"]
        assert any(e.source["type"] == "m.room.create" for e in ctx.state)

        # A reaction and a thread reply relate to the first message.
        react = {"m.relates_to": {"rel_type": "m.annotation", "event_id": ids[0], "key": "👍"}}
        await bob.room_send(room, "m.reaction", react)
        reply = {"msgtype": "m.text", "body": "im Thread",
                 "m.relates_to": {"rel_type": "m.thread", "event_id": ids[0]}}
        await bob.room_send(room, "m.room.message", reply)
        status, rel = await call(alice, "GET", f"/_matrix/client/v1/rooms/{room}/relations/{ids[0]}")
        assert status == 200 and len(rel["chunk"]) == 2, rel
        status, rel = await call(alice, "GET", f"/_matrix/client/v1/rooms/{room}/relations/{ids[0]}/m.annotation")
        assert status == 200 and [e["type"] for e in rel["chunk"]] == ["m.reaction"], rel
        status, rel = await call(alice, "GET",
                                 f"/_matrix/client/v1/rooms/{room}/relations/{ids[0]}/m.thread/m.room.message")
        assert [e["content"]["body"] for e in rel["chunk"]] == ["im Thread"], rel

        # The first event at or after a time.
        status, found = await call(alice, "GET",
                                   f"/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts={ts_before}&dir=f")
        assert status == 200 and found["event_id"] == late, found

        # Leave and forget: the room no longer comes back in sync, even when asking for left rooms.
        await bob.room_leave(room)
        status, body = await call(alice, "POST", f"{V3}/rooms/{room}/forget", {})
        assert status == 400, "a joined room cannot be forgotten"
        assert (await call(bob, "POST", f"{V3}/rooms/{room}/forget", {}))[0] == 200
        s = await bob.sync(timeout=0, full_state=True, sync_filter={"room": {"include_leave": True}})
        assert room not in s.rooms.leave and room not in s.rooms.join
    finally:
        await alice.close()
        await bob.close()


def test_people_and_notifications(homeserver):
    asyncio.run(people_and_notifications(homeserver))


async def people_and_notifications(server):
    alice = await new_user(server, "alice")
    bob = await new_user(server, "bob")
    stranger = await new_user(server, "stranger")
    try:
        room = (await alice.room_create(invite=[bob.user_id])).room_id
        await bob.join(room)
        await alice.set_displayname("Alice Arzthelferin")

        # The directory finds people who share a room, not strangers.
        found = None
        for _ in range(50):
            status, found = await call(bob, "POST", f"{V3}/user_directory/search",
                                       {"search_term": "arzthelferin", "limit": 10})
            assert status == 200, found
            if found["results"]:
                break
            await asyncio.sleep(0.1)
        assert [r["user_id"] for r in found["results"]] == [alice.user_id], found
        status, found = await call(stranger, "POST", f"{V3}/user_directory/search", {"search_term": "arzthelferin"})
        assert status == 200 and found["results"] == [], found

        # Presence (Ward keeps none: everyone is offline).
        status, p = await call(bob, "GET", f"{V3}/presence/{quote(alice.user_id)}/status")
        assert status == 200 and "presence" in p, p
        if server.kind == "ward":
            assert p["presence"] == "offline"
        assert (await call(bob, "PUT", f"{V3}/presence/{quote(bob.user_id)}/status", {"presence": "online"}))[0] == 200

        # Push rules: add a keyword rule, disable it, change its actions, remove it.
        rule = f"{V3}/pushrules/global/content/befund"
        assert (await call(bob, "PUT", rule, {"pattern": "befund", "actions": ["notify"]}))[0] == 200
        assert (await call(bob, "GET", rule))[1]["pattern"] == "befund"
        assert (await call(bob, "PUT", rule + "/enabled", {"enabled": False}))[0] == 200
        assert (await call(bob, "GET", rule + "/enabled"))[1] == {"enabled": False}
        assert (await call(bob, "PUT", rule + "/actions", {"actions": ["dont_notify"]}))[0] == 200
        assert (await call(bob, "GET", rule + "/actions"))[1] == {"actions": ["dont_notify"]}
        assert (await call(bob, "DELETE", rule))[0] == 200
        status, body = await call(bob, "GET", rule)
        assert status == 404 and body["errcode"] == "M_NOT_FOUND", body
        status, body = await call(bob, "DELETE", f"{V3}/pushrules/global/override/.m.rule.master")
        assert status >= 400, "server-default rules cannot be deleted"

        # Pushers are stored per user.
        pusher = {"kind": "http", "app_id": "de.praxis.app", "pushkey": "abc", "app_display_name": "Praxis",
                  "device_display_name": "Telefon", "lang": "de", "data": {"url": "https://push.example/_matrix/push/v1/notify"}}
        assert (await call(bob, "POST", f"{V3}/pushers/set", pusher))[0] == 200
        status, listed = await call(bob, "GET", f"{V3}/pushers")
        assert status == 200 and [p["pushkey"] for p in listed["pushers"]] == ["abc"], listed
        assert (await call(bob, "POST", f"{V3}/pushers/set", {**pusher, "kind": None}))[0] == 200
        assert (await call(bob, "GET", f"{V3}/pushers"))[1]["pushers"] == []

        # Notifications: a mention shows up, highlighted.
        await alice.sync(timeout=0)
        await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "hallo"})
        await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": f"{bob.user_id} bitte",
                                                       "m.mentions": {"user_ids": [bob.user_id]}})
        status, n = await call(bob, "GET", f"{V3}/notifications?limit=10")
        assert status == 200, n
        bodies = [x["event"]["content"].get("body") for x in n["notifications"]]
        assert bodies[:2] == [f"{bob.user_id} bitte", "hallo"], bodies
        status, n = await call(bob, "GET", f"{V3}/notifications?only=highlight")
        assert [x["event"]["content"].get("body") for x in n["notifications"]] == [f"{bob.user_id} bitte"], n
    finally:
        for c in (alice, bob, stranger):
            await c.close()
