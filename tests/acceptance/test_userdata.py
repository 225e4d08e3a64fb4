"""Account data, room tags, stored filters and push rules, through matrix-nio's session.

Portable: runs against Synapse too."""

import asyncio
import json

import pytest
from nio import SyncResponse, UploadFilterResponse

from test_rooms import bodies, new_user

pytestmark = pytest.mark.portable


async def call(c, method, path, body=None):
    headers = {"Authorization": f"Bearer {c.access_token}", "Content-Type": "application/json"}
    resp = await c.send(method, path, json.dumps(body) if body is not None else None, headers)
    return resp.status, await resp.json()


def test_account_data_tags_filters_push_rules(homeserver):
    asyncio.run(scenario(homeserver))


async def scenario(server):
    anna = await new_user(server, "anna")
    try:
        me = anna.user_id
        room = (await anna.room_create(name="Notizen")).room_id
        s0 = await anna.sync(timeout=0)
        assert isinstance(s0, SyncResponse)
        # Push rules exist from the start (the spec's defaults) and come with the first sync.
        status, rules = await call(anna, "GET", "/_matrix/client/v3/pushrules/")
        assert status == 200 and "global" in rules, rules
        override_ids = [r["rule_id"] for r in rules["global"]["override"]]
        assert ".m.rule.master" in override_ids and ".m.rule.suppress_notices" in override_ids
        assert any(type(e).__name__ == "PushRulesEvent" for e in s0.account_data_events), s0.account_data_events

        # Global account data round-trips and arrives in the next sync.
        path = f"/_matrix/client/v3/user/{me}/account_data/org.example.settings"
        assert (await call(anna, "GET", path))[0] == 404
        assert (await call(anna, "PUT", path, {"theme": "dark"}))[0] == 200
        assert await call(anna, "GET", path) == (200, {"theme": "dark"})
        # Room account data and tags.
        rpath = f"/_matrix/client/v3/user/{me}/rooms/{room}/account_data/org.example.draft"
        assert (await call(anna, "PUT", rpath, {"text": "Befund folgt"}))[0] == 200
        assert await call(anna, "GET", rpath) == (200, {"text": "Befund folgt"})
        tpath = f"/_matrix/client/v3/user/{me}/rooms/{room}/tags"
        assert (await call(anna, "PUT", tpath + "/m.favourite", {"order": 0.5}))[0] == 200
        assert (await call(anna, "PUT", tpath + "/u.praxis", {}))[0] == 200
        status, tags = await call(anna, "GET", tpath)
        assert status == 200 and set(tags["tags"]) == {"m.favourite", "u.praxis"}
        assert tags["tags"]["m.favourite"]["order"] == 0.5
        assert (await call(anna, "DELETE", tpath + "/u.praxis"))[0] == 200
        assert set((await call(anna, "GET", tpath))[1]["tags"]) == {"m.favourite"}
        # Other users' data is not mine to read.
        status, body = await call(anna, "GET", "/_matrix/client/v3/user/@someone:localhost/account_data/x")
        assert status == 403 and body["errcode"] == "M_FORBIDDEN", body

        s1 = await anna.sync(timeout=0, since=s0.next_batch)
        # nio keeps only known account data types; check the tag arrived in room account data.
        room_data = [e for e in s1.rooms.join[room].account_data] if room in s1.rooms.join else []
        assert any(getattr(e, "tags", None) is not None for e in room_data), room_data

        # A stored filter limits the timeline.
        f = await anna.upload_filter(room={"timeline": {"limit": 2}})
        assert isinstance(f, UploadFilterResponse), f
        status, stored = await call(anna, "GET", f"/_matrix/client/v3/user/{me}/filter/{f.filter_id}")
        assert status == 200 and stored["room"]["timeline"]["limit"] == 2, stored
        for i in range(5):
            await anna.room_send(room, "m.room.message", {"msgtype": "m.text", "body": f"n{i}"})
        s2 = await anna.sync(timeout=0, since=s1.next_batch, sync_filter=f.filter_id)
        tl = s2.rooms.join[room].timeline
        assert bodies(tl.events) == ["n3", "n4"] and tl.limited, (bodies(tl.events), tl.limited)
    finally:
        await anna.close()
