"""Meetings with a lobby, moderator controls and video consultations (`/_ward/meet/v1`, issue 8),
driven over HTTP like the browser app will, with LiveKit's Python SDK connecting the tokens
Ward hands out to Ward's own SFU.

Ward-only (not `portable`): meetings are Ward's own API.
"""

import asyncio
import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from livekit import rtc

from harness import WardServer, free_port, http_json
from test_rtc_livekit import Watcher, publish_camera_and_microphone

PASSWORD = "a long enough password"
MEET = "/_ward/meet/v1"


@pytest.fixture(scope="module")
def server():
    # Guests come from different addresses (X-Forwarded-For), as they would through the proxy,
    # so the per-address knock throttle sees them apart.
    s = WardServer(env={"WARD_TRUST_X_FORWARDED_FOR": "true"})
    try:
        s.start()
        for name in ("anna", "bruno", "carla", "doktor"):
            s.create_user(name, PASSWORD)
        yield s
        log = s.log.read_text()
        assert "panicked" not in log, log
    finally:
        s.cleanup()


def login(server, user):
    status, j = http_json("POST", server.url + "/_matrix/client/v3/login",
                          {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                           "password": PASSWORD})
    assert status == 200, j
    return j["access_token"]


class Api:
    """The meetings API as one caller sees it: a Matrix user (access token), or a guest from one
    client address."""

    def __init__(self, server, token=None, addr="192.0.2.1"):
        self.server, self.token, self.addr = server, token, addr

    def call(self, method, path, body=None, auth=None, timeout=30, raw=None):
        headers = {"X-Forwarded-For": self.addr}
        auth = auth or self.token
        if auth:
            headers["Authorization"] = f"Bearer {auth}"
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        if data is not None:
            headers["Content-Type"] = "application/json"
        r = requests.request(method, self.server.url + MEET + path, data=data, headers=headers, timeout=timeout)
        return r.status_code, r.json()

    def ok(self, method, path, body=None, **kw):
        status, j = self.call(method, path, body, **kw)
        assert status == 200, (method, path, status, j)
        return j


def expect(result, status, errcode=None):
    got_status, body = result
    assert got_status == status, (got_status, body)
    if errcode:
        assert body.get("errcode") == errcode, body
    return body


def ws_url(server):
    return server.url.replace("http://", "ws://")


async def until(condition, timeout=30, what="condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def in_background(fn):
    """Runs a blocking call (a long-poll) in a thread; returns (thread, result holder)."""
    out = {}

    def run():
        started = time.monotonic()
        out["value"] = fn()
        out["seconds"] = time.monotonic() - started

    t = threading.Thread(target=run)
    t.start()
    return t, out


def make_room(api, invite=()):
    r = requests.post(api.server.url + "/_matrix/client/v3/createRoom", json={"name": "Team", "invite": list(invite)},
                      headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["room_id"]


def test_team_meeting_with_lobby_and_moderation(server):
    anna = Api(server, login(server, "anna"))
    bruno = Api(server, login(server, "bruno"))
    carla = Api(server, login(server, "carla"))
    room = make_room(anna, invite=["@bruno:localhost"])
    r = requests.post(f"{server.url}/_matrix/client/v3/join/{room}", json={},
                      headers={"Authorization": f"Bearer {bruno.token}"}, timeout=30)
    assert r.status_code == 200, r.text

    # Not joined to the room: no meeting from it.
    expect(carla.call("POST", "/meetings", {"origin_room": room}), 403, "M_FORBIDDEN")
    meeting = anna.ok("POST", "/meetings", {"title": "Teambesprechung", "origin_room": room})["meeting_id"]
    assert len(meeting) >= 22 and meeting.isalnum()
    assert anna.ok("GET", "/meetings")["meetings"][0]["meeting_id"] == meeting
    guest_a, guest_b, guest_c = (Api(server, addr=a) for a in ("198.51.100.1", "198.51.100.2", "198.51.100.3"))
    info = guest_a.ok("GET", f"/meetings/{meeting}")
    assert info == {"kind": "meeting", "title": "Teambesprechung", "locked": False, "pin_required": False,
                    "ended": False}

    # The creator enters directly as moderator; someone outside the room may not.
    joined = anna.ok("POST", f"/meetings/{meeting}/join")
    assert joined["identity"] == "@anna:localhost" and joined["ws_url_path"] == "/rtc"
    assert joined["role"] == "moderator"
    # Members of the origin room enter directly too, as moderators; others may not.
    assert bruno.ok("POST", f"/meetings/{meeting}/join")["role"] == "moderator"
    expect(carla.call("POST", f"/meetings/{meeting}/join"), 403, "M_FORBIDDEN")
    expect(carla.call("GET", f"/meetings/{meeting}/lobby"), 403, "M_FORBIDDEN")

    # The moderator waits for the lobby to change; a guest knocks and the wait ends at once.
    lobby = anna.ok("GET", f"/meetings/{meeting}/lobby")
    assert lobby["waiting"] == [] and lobby["admitted"] == []
    waiter, seen = in_background(lambda: anna.ok("GET", f"/meetings/{meeting}/lobby?since={lobby['since']}&timeout_ms=20000"))
    time.sleep(0.5)
    k1 = guest_a.ok("POST", f"/meetings/{meeting}/knock", {"display_name": "  Erika Mustermann  "})
    waiter.join(30)
    assert seen["seconds"] < 10, seen
    assert [(e["display_name"], e["patient"], e["link_ref"]) for e in seen["value"]["waiting"]] == [
        ("Erika Mustermann", False, None)]
    k2 = guest_b.ok("POST", f"/meetings/{meeting}/knock", {"display_name": "Max"})
    lobby = anna.ok("GET", f"/meetings/{meeting}/lobby")
    assert [e["knock_id"] for e in lobby["waiting"]] == [k1["knock_id"], k2["knock_id"]]

    def poll(api, knock, timeout_ms=0):
        return api.ok("GET", f"/meetings/{meeting}/knock/{knock['knock_id']}?timeout_ms={timeout_ms}",
                      auth=knock["knock_secret"])

    assert poll(guest_a, k1) == {"status": "waiting"}
    # A guest long-polls; admission answers it with a token.
    waiter, admitted = in_background(lambda: poll(guest_a, k1, 20000))
    time.sleep(0.5)
    anna.ok("POST", f"/meetings/{meeting}/lobby/{k1['knock_id']}/admit")
    waiter.join(30)
    assert admitted["seconds"] < 10 and admitted["value"]["status"] == "admitted", admitted
    anna.ok("POST", f"/meetings/{meeting}/lobby/{k2['knock_id']}/admit")
    expect(anna.call("POST", f"/meetings/{meeting}/lobby/{k2['knock_id']}/admit"), 409)
    t1, t2 = admitted["value"], poll(guest_b, k2)
    assert t1["identity"].startswith("guest-") and t1["role"] == "guest" and t2["status"] == "admitted"
    lobby = anna.ok("GET", f"/meetings/{meeting}/lobby")
    assert lobby["waiting"] == [] and {e["identity"] for e in lobby["admitted"]} == {t1["identity"], t2["identity"]}

    async def scenario():
        host, erika, max_ = rtc.Room(), rtc.Room(), rtc.Room()
        at_host = Watcher(host)
        max_gone = []
        max_.on("disconnected", lambda reason: max_gone.append(reason))
        await host.connect(ws_url(server), joined["token"])
        await erika.connect(ws_url(server), t1["token"])
        await max_.connect(ws_url(server), t2["token"])
        feeding = await publish_camera_and_microphone(erika)
        try:
            # Everyone sees everyone, with names and roles from the tokens.
            await until(lambda: {t1["identity"], t2["identity"]} <= set(host.remote_participants),
                        what="the host sees both guests")
            await until(lambda: "@anna:localhost" in erika.remote_participants, what="Erika sees the host")
            erika_at_host = host.remote_participants[t1["identity"]]
            assert erika_at_host.name == "Erika Mustermann"
            assert json.loads(erika_at_host.metadata) == {"role": "guest"}
            assert json.loads(erika.remote_participants["@anna:localhost"].metadata) == {"role": "moderator"}
            await until(lambda: at_host.video_frames > 10, what="the host decodes Erika's camera")

            # The moderator mutes Erika's microphone; only she could switch it back on.
            mic = next(p for p in erika_at_host.track_publications.values()
                       if p.source == rtc.TrackSource.SOURCE_MICROPHONE)
            anna.ok("POST", f"/meetings/{meeting}/participants/{t1['identity']}/mute", {"track_sid": mic.sid})
            await until(lambda: (t1["identity"], "microphone") in at_host.muted, what="the mute at the host")
            expect(anna.call("POST", f"/meetings/{meeting}/participants/{t1['identity']}/mute",
                             {"track_sid": "TR_nonexistent"}), 404, "M_NOT_FOUND")
            expect(bruno.call("POST", f"/meetings/{meeting}/participants/{t1['identity']}/mute",
                              {"track_sid": mic.sid}), 200)
            expect(carla.call("POST", f"/meetings/{meeting}/participants/{t1['identity']}/mute",
                              {"track_sid": mic.sid}), 403, "M_FORBIDDEN")

            # Locked: nobody new gets into the lobby.
            anna.ok("PUT", f"/meetings/{meeting}/lock", {"locked": True})
            assert guest_c.ok("GET", f"/meetings/{meeting}")["locked"] is True
            expect(guest_c.call("POST", f"/meetings/{meeting}/knock", {"display_name": "Spät"}), 403, "M_FORBIDDEN")

            # Removing Max disconnects him; his knock says so, and neither his old token nor
            # the same link gets him back in while the meeting is locked.
            anna.ok("POST", f"/meetings/{meeting}/participants/{t2['identity']}/remove")
            await until(lambda: max_gone, what="Max disconnected")
            await until(lambda: t2["identity"] not in host.remote_participants, what="the host sees Max leave")
            assert poll(guest_b, k2) == {"status": "removed"}
            with pytest.raises(rtc.ConnectError):
                await asyncio.wait_for(rtc.Room().connect(ws_url(server), t2["token"]), 30)
            # livekit-client asks /rtc/validate why; it shows this text.
            r = requests.get(f"{server.url}/rtc/validate", params={"access_token": t2["token"]}, timeout=10)
            assert r.status_code == 403 and "not been admitted" in r.text, (r.status_code, r.text)
            expect(guest_b.call("POST", f"/meetings/{meeting}/knock", {"display_name": "Max"}), 403, "M_FORBIDDEN")
            expect(anna.call("POST", f"/meetings/{meeting}/participants/guest-nobody/remove"), 404, "M_NOT_FOUND")

            # A PIN: unlocked, knocks need it; wrong PINs are throttled.
            anna.ok("PUT", f"/meetings/{meeting}/lock", {"locked": False})
            anna.ok("PUT", f"/meetings/{meeting}/pin", {"pin": "4711"})
            assert guest_c.ok("GET", f"/meetings/{meeting}")["pin_required"] is True
            expect(guest_c.call("POST", f"/meetings/{meeting}/knock", {"display_name": "Paula"}), 403, "M_FORBIDDEN")
            expect(guest_c.call("POST", f"/meetings/{meeting}/knock", {"display_name": "Paula", "pin": "0000"}),
                   403, "M_FORBIDDEN")
            k3 = guest_c.ok("POST", f"/meetings/{meeting}/knock", {"display_name": "Paula", "pin": "4711"})
            # The guest gives up waiting.
            guest_c.ok("DELETE", f"/meetings/{meeting}/knock/{k3['knock_id']}", auth=k3["knock_secret"])
            assert anna.ok("GET", f"/meetings/{meeting}/lobby")["waiting"] == []
            statuses = [guest_c.call("POST", f"/meetings/{meeting}/knock", {"display_name": "P", "pin": "9999"})[0]
                        for _ in range(5)]
            assert statuses[-1] == 429, statuses
            anna.ok("PUT", f"/meetings/{meeting}/pin", {"pin": None})

            # Ending the meeting disconnects everyone; the link stops working.
            anna.ok("POST", f"/meetings/{meeting}/end")
            await until(lambda: host.connection_state == rtc.ConnectionState.CONN_DISCONNECTED
                        and erika.connection_state == rtc.ConnectionState.CONN_DISCONNECTED,
                        what="everyone disconnected")
        finally:
            feeding.cancel()
            for t in at_host.tasks:
                t.cancel()
            for r in (host, erika, max_):
                await r.disconnect()

    asyncio.run(scenario())
    expect(guest_a.call("GET", f"/meetings/{meeting}"), 404, "M_NOT_FOUND")
    expect(guest_c.call("POST", f"/meetings/{meeting}/knock", {"display_name": "Zu spät"}), 404, "M_NOT_FOUND")
    assert poll(guest_a, k1) == {"status": "ended"}
    expect(anna.call("POST", f"/meetings/{meeting}/join"), 404)
    assert all(m["meeting_id"] != meeting for m in anna.ok("GET", "/meetings")["meetings"])


def test_origin_room_members_are_moderators_while_they_are_members(server):
    anna = Api(server, login(server, "anna"))
    carla = Api(server, login(server, "carla"))
    room = make_room(anna)
    meeting = anna.ok("POST", "/meetings", {"origin_room": room})["meeting_id"]
    kept_out = anna.ok("POST", "/meetings", {"origin_room": room, "members_enter": False})["meeting_id"]
    expect(carla.call("POST", f"/meetings/{meeting}/join"), 403, "M_FORBIDDEN")

    def matrix(api, path):
        r = requests.post(server.url + "/_matrix/client/v3" + path, json={"user_id": "@carla:localhost"},
                          headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
        assert r.status_code == 200, r.text

    # Added to the chat after the meeting began: a moderator now (documented behaviour) ...
    matrix(anna, f"/rooms/{room}/invite")
    matrix(carla, f"/join/{room}")
    assert carla.ok("POST", f"/meetings/{meeting}/join")["role"] == "moderator"
    carla.ok("GET", f"/meetings/{meeting}/lobby")
    # ... unless the meeting was started without members_enter ...
    expect(carla.call("POST", f"/meetings/{kept_out}/join"), 403, "M_FORBIDDEN")
    # ... and no longer after leaving the chat.
    matrix(carla, f"/rooms/{room}/leave")
    expect(carla.call("POST", f"/meetings/{meeting}/join"), 403, "M_FORBIDDEN")
    expect(carla.call("GET", f"/meetings/{meeting}/lobby"), 403, "M_FORBIDDEN")
    anna.ok("POST", f"/meetings/{meeting}/end")
    anna.ok("POST", f"/meetings/{kept_out}/end")


def test_video_consultation_with_single_use_patient_links(server):
    doktor = Api(server, login(server, "doktor"))
    patient, stranger, second = (Api(server, addr=a) for a in ("203.0.113.1", "203.0.113.2", "203.0.113.3"))
    consultation = doktor.ok("POST", "/meetings", {"kind": "consultation", "title": "Videosprechstunde"})["meeting_id"]
    # Consultations are entered with a patient link only.
    expect(stranger.call("POST", f"/meetings/{consultation}/knock", {"display_name": "Neugierig"}),
           403, "M_FORBIDDEN")
    made = doktor.ok("POST", f"/meetings/{consultation}/patient-links", {"expires_in_ms": 3_600_000})
    link = made["link_token"]
    # The link's public reference (the browsers derive the appointment's key from it): the first
    # half of the token's SHA-256, which names the link without being a way in.
    assert made["link_ref"] == hashlib.sha256(link.encode()).hexdigest()[:32]
    expect(stranger.call("GET", f"/patient-links/{made['link_ref']}"), 404)
    info = patient.ok("GET", f"/patient-links/{link}")
    assert info["meeting_id"] == consultation and info["title"] == "Videosprechstunde"

    knock = patient.ok("POST", f"/patient-links/{link}/knock", {"display_name": "Frau Schmidt"})
    assert knock["meeting_id"] == consultation
    # A second person with the same link is refused.
    expect(stranger.call("POST", f"/patient-links/{link}/knock", {"display_name": "Herr Fremd"}), 403, "M_FORBIDDEN")
    lobby = doktor.ok("GET", f"/meetings/{consultation}/lobby")
    assert [(e["display_name"], e["patient"], e["link_ref"]) for e in lobby["waiting"]] == [
        ("Frau Schmidt", True, made["link_ref"])]
    doktor.ok("POST", f"/meetings/{consultation}/lobby/{knock['knock_id']}/admit")
    granted = patient.ok("GET", f"/meetings/{consultation}/knock/{knock['knock_id']}", auth=knock["knock_secret"])
    assert granted["status"] == "admitted" and granted["role"] == "patient"
    # Once admitted, the link is used up.
    expect(stranger.call("POST", f"/patient-links/{link}/knock", {"display_name": "Herr Fremd"}), 403, "M_FORBIDDEN")

    link2 = doktor.ok("POST", f"/meetings/{consultation}/patient-links", {"expires_in_ms": 3_600_000})["link_token"]
    knock2 = second.ok("POST", f"/patient-links/{link2}/knock", {"display_name": "Herr Weber"})

    doc_token = doktor.ok("POST", f"/meetings/{consultation}/join")

    async def scenario():
        doc, pat = rtc.Room(), rtc.Room()
        await doc.connect(ws_url(server), doc_token["token"])
        await pat.connect(ws_url(server), granted["token"])
        try:
            await until(lambda: granted["identity"] in doc.remote_participants
                        and "@doktor:localhost" in pat.remote_participants, what="doctor and patient see each other")
            assert doc.remote_participants[granted["identity"]].name == "Frau Schmidt"
            # Only one patient at a time, while that patient is in the call.
            body = expect(doktor.call("POST", f"/meetings/{consultation}/lobby/{knock2['knock_id']}/admit"), 409)
            assert "another patient" in body["error"]
            doktor.ok("POST", f"/meetings/{consultation}/end")
            await until(lambda: pat.connection_state == rtc.ConnectionState.CONN_DISCONNECTED,
                        what="the patient disconnected at the end")
        finally:
            await doc.disconnect()
            await pat.disconnect()

    asyncio.run(scenario())
    # After the session the links no longer work.
    expect(patient.call("POST", f"/patient-links/{link}/knock", {"display_name": "Frau Schmidt"}), 403, "M_FORBIDDEN")
    expect(patient.call("GET", f"/patient-links/{link}"), 403, "M_FORBIDDEN")
    assert second.ok("GET", f"/meetings/{consultation}/knock/{knock2['knock_id']}",
                     auth=knock2["knock_secret"])["status"] == "ended"


def test_consultation_admits_the_next_patient_once_the_previous_is_gone(server):
    """A patient admitted but not connected to the call (the page closed without leaving, the
    connection lost, or it never got through) does not block the room: admitting the next
    patient ends that session. One who is connected still does (409)."""
    doktor = Api(server, login(server, "doktor"))
    consultation = doktor.ok("POST", "/meetings", {"kind": "consultation"})["meeting_id"]

    def patient_knock(name, addr):
        api = Api(server, addr=addr)
        link = doktor.ok("POST", f"/meetings/{consultation}/patient-links", {"expires_in_ms": 3_600_000})["link_token"]
        return api, link, api.ok("POST", f"/patient-links/{link}/knock", {"display_name": name})

    def admit(knock):
        return doktor.call("POST", f"/meetings/{consultation}/lobby/{knock['knock_id']}/admit")

    def status(api, knock):
        return api.ok("GET", f"/meetings/{consultation}/knock/{knock['knock_id']}", auth=knock["knock_secret"])

    # Admitted, never connected: gone as far as the doctor is concerned.
    first, first_link, k1 = patient_knock("Frau Schmidt", "203.0.113.21")
    doktor.ok("POST", f"/meetings/{consultation}/lobby/{k1['knock_id']}/admit")
    stale_token = status(first, k1)["token"]
    second, _, k2 = patient_knock("Herr Weber", "203.0.113.22")
    expect(admit(k2), 200)
    assert status(first, k1)["status"] == "left"
    lobby = doktor.ok("GET", f"/meetings/{consultation}/lobby")
    assert [e["display_name"] for e in lobby["admitted"]] == ["Herr Weber"] and lobby["waiting"] == []
    # The first patient's link is used up.
    expect(first.call("POST", f"/patient-links/{first_link}/knock", {"display_name": "Frau Schmidt"}),
           403, "M_FORBIDDEN")
    granted = status(second, k2)
    assert granted["status"] == "admitted"

    third, _, k3 = patient_knock("Frau Meier", "203.0.113.23")

    async def scenario():
        pat = rtc.Room()
        # The first patient's token no longer lets them in.
        with pytest.raises(rtc.ConnectError):
            await asyncio.wait_for(rtc.Room().connect(ws_url(server), stale_token), 30)
        await pat.connect(ws_url(server), granted["token"])
        try:
            # Connected: the next patient waits.
            body = expect(admit(k3), 409)
            assert "another patient" in body["error"]
            assert status(second, k2)["status"] == "admitted"
        finally:
            await pat.disconnect()
        # Gone from the call (without leaving the knock): the doctor can admit the next one.
        deadline = time.monotonic() + 30
        while (r := admit(k3))[0] == 409 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        expect(r, 200)

    asyncio.run(scenario())
    assert status(second, k2)["status"] == "left"
    assert status(third, k3)["status"] == "admitted"
    doktor.ok("POST", f"/meetings/{consultation}/end")


def test_patient_link_time_slots(server):
    doktor = Api(server, login(server, "doktor"))
    patient = Api(server, addr="203.0.113.9")
    consultation = doktor.ok("POST", "/meetings", {"kind": "consultation"})["meeting_id"]
    now = int(time.time() * 1000)
    hour = 3_600_000
    later = doktor.ok("POST", f"/meetings/{consultation}/patient-links",
                      {"expires_in_ms": 24 * hour, "slot_start_ms": now + 3 * hour, "slot_end_ms": now + 4 * hour})
    body = expect(patient.call("POST", f"/patient-links/{later['link_token']}/knock", {"display_name": "Früh"}),
                  403, "M_FORBIDDEN")
    assert "not started" in body["error"]
    over = doktor.ok("POST", f"/meetings/{consultation}/patient-links",
                     {"expires_in_ms": 24 * hour, "slot_start_ms": now - 2 * hour, "slot_end_ms": now - hour})
    body = expect(patient.call("POST", f"/patient-links/{over['link_token']}/knock", {"display_name": "Spät"}),
                  403, "M_FORBIDDEN")
    assert "over" in body["error"]
    expect(patient.call("GET", "/patient-links/ward_pl_unknown"), 404, "M_NOT_FOUND")
    # Patient links belong to consultations, and last at most 30 days.
    meeting = doktor.ok("POST", "/meetings", {})["meeting_id"]
    expect(doktor.call("POST", f"/meetings/{meeting}/patient-links", {"expires_in_ms": hour}), 400, "M_INVALID_PARAM")
    expect(doktor.call("POST", f"/meetings/{consultation}/patient-links", {"expires_in_ms": 400 * 24 * hour}),
           400, "M_INVALID_PARAM")
    expect(doktor.call("POST", f"/meetings/{consultation}/patient-links",
                       {"expires_in_ms": hour, "slot_start_ms": now + 2, "slot_end_ms": now + 1}), 400, "M_INVALID_PARAM")


def test_bad_input_gets_clear_errors(server):
    anna = Api(server, login(server, "anna"))
    guest = Api(server, addr="192.0.2.77")
    meeting = anna.ok("POST", "/meetings", {"title": "Eingaben"})["meeting_id"]
    knock = f"/meetings/{meeting}/knock"

    expect(guest.call("POST", knock, raw="{not json"), 400, "M_NOT_JSON")
    expect(guest.call("POST", knock, raw="[1, 2]"), 400, "M_NOT_JSON")
    expect(guest.call("POST", knock, {}), 400, "M_MISSING_PARAM")
    expect(guest.call("POST", knock, {"display_name": 5}), 400, "M_BAD_JSON")
    expect(guest.call("POST", knock, {"display_name": "x" * 65}), 400, "M_INVALID_PARAM")
    expect(guest.call("POST", knock, {"display_name": "   "}), 400, "M_INVALID_PARAM")
    expect(guest.call("POST", knock, {"display_name": "a\u0000b"}), 400, "M_INVALID_PARAM")
    expect(guest.call("POST", knock, raw=json.dumps({"display_name": "x" * 5000})), 413, "M_TOO_LARGE")
    expect(guest.call("POST", "/meetings/NoSuchMeetingAtAll0000/knock", {"display_name": "G"}), 404, "M_NOT_FOUND")
    expect(guest.call("GET", "/meetings/../../etc"), 404)

    k = guest.ok("POST", knock, {"display_name": "Gast"})
    poll = f"/meetings/{meeting}/knock/{k['knock_id']}"
    expect(guest.call("GET", poll), 401, "M_MISSING_TOKEN")
    expect(guest.call("GET", poll, auth="ward_knock_wrong"), 403, "M_FORBIDDEN")
    expect(guest.call("DELETE", poll, auth="ward_knock_wrong"), 403, "M_FORBIDDEN")
    expect(guest.call("GET", poll + "?timeout_ms=soon", auth=k["knock_secret"]), 400, "M_INVALID_PARAM")
    expect(guest.call("GET", f"/meetings/{meeting}/knock/AAAAAAAAAAAAAAAAAAAAAA", auth=k["knock_secret"]),
           404, "M_NOT_FOUND")

    # Moderator calls without a token, or with a guest's secret.
    for method, path, body in [("POST", "/meetings", {}), ("GET", f"/meetings/{meeting}/lobby", None),
                               ("PUT", f"/meetings/{meeting}/lock", {"locked": True}),
                               ("POST", f"/meetings/{meeting}/lobby/{k['knock_id']}/admit", None),
                               ("POST", f"/meetings/{meeting}/end", None)]:
        expect(guest.call(method, path, body), 401, "M_MISSING_TOKEN")
        expect(guest.call(method, path, body, auth=k["knock_secret"]), 401, "M_UNKNOWN_TOKEN")
    expect(anna.call("PUT", f"/meetings/{meeting}/lock", {}), 400, "M_MISSING_PARAM")
    expect(anna.call("PUT", f"/meetings/{meeting}/lock", {"locked": "yes"}), 400, "M_BAD_JSON")
    expect(anna.call("PUT", f"/meetings/{meeting}/pin", {}), 400, "M_MISSING_PARAM")
    expect(anna.call("PUT", f"/meetings/{meeting}/pin", {"pin": "1"}), 400, "M_INVALID_PARAM")
    expect(anna.call("POST", "/meetings", {"kind": "party"}), 400, "M_INVALID_PARAM")
    expect(anna.call("POST", "/meetings", {"title": "t" * 101}), 400, "M_INVALID_PARAM")
    expect(anna.call("POST", "/meetings", {"origin_room": "not-a-room"}), 400, "M_INVALID_PARAM")
    expect(anna.call("POST", f"/meetings/{meeting}/participants/x/mute", {}), 400, "M_MISSING_PARAM")
    expect(anna.call("POST", f"/meetings/{meeting}/lobby/AAAAAAAAAAAAAAAAAAAAAA/admit"), 404, "M_NOT_FOUND")
    # The knock throttle: one address cannot fill lobbies.
    flood = Api(server, addr="192.0.2.99")
    statuses = [flood.call("POST", knock, {"display_name": f"F{i}"})[0] for i in range(12)]
    assert statuses.count(200) == 10 and statuses[-1] == 429, statuses


def test_pin_throttle_holds_in_parallel_and_spares_a_right_pin(server):
    anna = Api(server, login(server, "anna"))
    meeting = anna.ok("POST", "/meetings", {"title": "Mit PIN"})["meeting_id"]
    anna.ok("PUT", f"/meetings/{meeting}/pin", {"pin": "271828"})
    knock = f"/meetings/{meeting}/knock"

    # Ten wrong PINs at once from one address: the argon2 checks overlap, yet only five are
    # checked at all; the others are refused before.
    guesser = Api(server, addr="198.18.0.1")
    with ThreadPoolExecutor(10) as pool:
        statuses = sorted(pool.map(lambda i: guesser.call("POST", knock, {"display_name": f"G{i}", "pin": f"{i:04}"})[0],
                                   range(10)))
    assert statuses == [403] * 5 + [429] * 5, statuses

    # The meeting's budget is spent now, but a guest from another address with the right PIN
    # still gets in; one with a wrong guess on record does not get another try.
    guest = Api(server, addr="198.18.0.2")
    guest.ok("POST", knock, {"display_name": "Gast", "pin": "271828"})
    other = Api(server, addr="198.18.0.3")
    expect(other.call("POST", knock, {"display_name": "Rate", "pin": "0000"}), 403, "M_FORBIDDEN")
    body = expect(other.call("POST", knock, {"display_name": "Rate", "pin": "271828"}), 429, "M_LIMIT_EXCEEDED")
    assert 0 < body["retry_after_ms"] <= 60_000, body
    anna.ok("POST", f"/meetings/{meeting}/end")


def test_waiting_knocks_that_stop_polling_expire(ward_factory):
    # Two seconds instead of two minutes, so the test need not wait long.
    server = ward_factory(env={"WARD_TRUST_X_FORWARDED_FOR": "true", "WARD_MEETING_KNOCK_EXPIRY_MS": "2000"})
    server.create_user("doktor", PASSWORD)
    doktor = Api(server, login(server, "doktor"))
    patient, guest = Api(server, addr="203.0.113.50"), Api(server, addr="203.0.113.51")
    consultation = doktor.ok("POST", "/meetings", {"kind": "consultation"})["meeting_id"]
    link = doktor.ok("POST", f"/meetings/{consultation}/patient-links", {"expires_in_ms": 3_600_000})["link_token"]
    meeting = doktor.ok("POST", "/meetings", {})["meeting_id"]

    def poll(knock, timeout_ms=0):
        return Api(server).ok("GET", f"/meetings/{knock['meeting_id']}/knock/{knock['knock_id']}?timeout_ms={timeout_ms}",
                              auth=knock["knock_secret"])

    # The patient's browser knocks, then crashes (no more polls, no goodbye); a guest in the
    # other meeting keeps long-polling.
    crashed = patient.ok("POST", f"/patient-links/{link}/knock", {"display_name": "Frau Schmidt"})
    expect(patient.call("POST", f"/patient-links/{link}/knock", {"display_name": "Frau Schmidt"}), 403, "M_FORBIDDEN")
    alive = guest.ok("POST", f"/meetings/{meeting}/knock", {"display_name": "Gast"})
    long_poll, polled = in_background(lambda: poll(alive, 5000))
    lobby = doktor.ok("GET", f"/meetings/{consultation}/lobby")
    assert [e["knock_id"] for e in lobby["waiting"]] == [crashed["knock_id"]]

    # The doctor's lobby long-poll ends when the knock expires: the patient is gone from it.
    started = time.monotonic()
    lobby = doktor.ok("GET", f"/meetings/{consultation}/lobby?since={lobby['since']}&timeout_ms=20000")
    assert lobby["waiting"] == [] and time.monotonic() - started < 10, lobby
    assert poll(crashed) == {"status": "expired"}
    # The same link works again, and the new knock waits like any other.
    again = patient.ok("POST", f"/patient-links/{link}/knock", {"display_name": "Frau Schmidt"})
    assert poll(again) == {"status": "waiting"}

    # The guest who kept polling is still waiting after more than the expiry time.
    long_poll.join(30)
    assert polled["value"] == {"status": "waiting"} and polled["seconds"] > 4, polled
    assert [e["knock_id"] for e in doktor.ok("GET", f"/meetings/{meeting}/lobby")["waiting"]] == [alive["knock_id"]]


def test_admin_meetings_command_and_metrics(ward_factory):
    metrics_addr = f"127.0.0.1:{free_port()}"
    server = ward_factory(env={"WARD_METRICS_LISTEN": metrics_addr})
    server.create_user("anna", PASSWORD)
    anna = Api(server, login(server, "anna"))
    meeting = anna.ok("POST", "/meetings", {"title": "Frau Patientin"})["meeting_id"]
    knock = Api(server).ok("POST", f"/meetings/{meeting}/knock", {"display_name": "Gast"})
    anna.ok("POST", f"/meetings/{meeting}/lobby/{knock['knock_id']}/admit")

    metrics = requests.get(f"http://{metrics_addr}/metrics", timeout=10).text
    values = {line.split()[0]: float(line.split()[1]) for line in metrics.splitlines()
              if line.startswith("ward_meet_")}
    assert values["ward_meet_knocks_total"] == 1 and values["ward_meet_admissions_total"] == 1, values
    assert {"ward_meet_open_meetings", "ward_meet_waiting_knocks", "ward_meet_admitted_guests"} <= set(values)

    listed = server.admin("meetings", "list")
    assert listed.returncode == 0, listed.stderr
    assert meeting in listed.stdout and "@anna:localhost" in listed.stdout, listed.stdout
    assert "Patientin" not in listed.stdout, "titles may name patients: not listed"
    ended = server.admin("meetings", "end", meeting)
    assert ended.returncode == 0 and f"ended {meeting}" in ended.stdout, (ended.stdout, ended.stderr)
    expect(Api(server).call("GET", f"/meetings/{meeting}"), 404, "M_NOT_FOUND")
    assert Api(server).ok("GET", f"/meetings/{meeting}/knock/{knock['knock_id']}",
                          auth=knock["knock_secret"])["status"] == "ended"
    assert server.admin("meetings", "list").stdout.strip() == "no open meetings"
    again = server.admin("meetings", "end", meeting)
    assert again.returncode != 0 and "no such meeting" in again.stderr, (again.stdout, again.stderr)


def test_meetings_survive_kill_9(ward_factory):
    server = ward_factory("token")
    server.create_user("anna", PASSWORD)
    anna = Api(server, login(server, "anna"))
    meeting = anna.ok("POST", "/meetings", {"title": "Dauerhaft"})["meeting_id"]
    k = Api(server).ok("POST", f"/meetings/{meeting}/knock", {"display_name": "Gast"})
    server.kill9()
    server.start()
    assert Api(server).ok("GET", f"/meetings/{meeting}")["title"] == "Dauerhaft"
    anna = Api(server, login(server, "anna"))
    assert [e["knock_id"] for e in anna.ok("GET", f"/meetings/{meeting}/lobby")["waiting"]] == [k["knock_id"]]


def test_a_running_consultation_admits_only_its_holders(ward_factory):
    """Issue 8: while a patient is in a consultation, nobody else can join or disturb the session.
    Other moderators (members of the room's chat) are refused by the join endpoint and by the
    SFU's join gate until the doctor in the session hands it over to them; the holders, and the
    hand-over, survive a restart; once the session is over the room is open to moderators again."""
    server = ward_factory()
    for name in ("anna", "bruno", "carla", "doktor"):
        server.create_user(name, PASSWORD)
    anna, bruno, carla, doktor = (Api(server, login(server, n)) for n in ("anna", "bruno", "carla", "doktor"))
    room = make_room(anna, invite=["@bruno:localhost", "@carla:localhost"])
    for api in (bruno, carla):
        r = requests.post(f"{server.url}/_matrix/client/v3/join/{room}", json={},
                          headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
        assert r.status_code == 200, r.text
    consultation = anna.ok("POST", "/meetings", {"kind": "consultation", "origin_room": room})["meeting_id"]
    join, handover = f"/meetings/{consultation}/join", f"/meetings/{consultation}/handover"

    # No session yet: the room's moderators enter (bruno keeps his token for the gate below).
    early = bruno.ok("POST", join)
    carla.ok("POST", join)
    expect(anna.call("POST", handover, {"user_id": "@bruno:localhost"}), 409)
    link = anna.ok("POST", f"/meetings/{consultation}/patient-links", {"expires_in_ms": 3_600_000})["link_token"]
    patient = Api(server, addr="203.0.113.41")
    knock = patient.ok("POST", f"/patient-links/{link}/knock", {"display_name": "Frau Schmidt"})
    anna.ok("POST", f"/meetings/{consultation}/lobby/{knock['knock_id']}/admit")

    # A session runs: only the doctor who admitted the patient enters (again, after a reload).
    for api in (bruno, carla):
        body = expect(api.call("POST", join), 403, "M_FORBIDDEN")
        assert "consultation is in progress" in body["error"] and "hand it over" in body["error"], body
    doc_token = anna.ok("POST", join)
    anna.ok("POST", join)
    # Nor can another moderator change the running call: end it, remove or mute the patient,
    # lock it or set a PIN, admit someone else. Seeing the lobby and making links stay open.
    patient_identity = patient.ok("GET", f"/meetings/{consultation}/knock/{knock['knock_id']}",
                                  auth=knock["knock_secret"])["identity"]
    for method, path, body in [
        ("POST", f"/meetings/{consultation}/end", None),
        ("POST", f"/meetings/{consultation}/participants/{patient_identity}/remove", None),
        ("POST", f"/meetings/{consultation}/participants/{patient_identity}/mute", {"track_sid": "TR_x"}),
        ("PUT", f"/meetings/{consultation}/lock", {"locked": True}),
        ("PUT", f"/meetings/{consultation}/pin", {"pin": "4711"}),
        ("POST", f"/meetings/{consultation}/lobby/{knock['knock_id']}/admit", None),
    ]:
        refused = expect(carla.call(method, path, body), 403, "M_FORBIDDEN")
        assert "only the doctor in it" in refused["error"], (path, refused)
    carla.ok("GET", f"/meetings/{consultation}/lobby")
    carla.ok("POST", f"/meetings/{consultation}/patient-links", {"expires_in_ms": 3_600_000})

    async def gate():
        # The SFU asks the same question: bruno's token from before the session no longer
        # gets him in; the doctor's does.
        with pytest.raises(rtc.ConnectError):
            await asyncio.wait_for(rtc.Room().connect(ws_url(server), early["token"]), 30)
        doc = rtc.Room()
        await doc.connect(ws_url(server), doc_token["token"])
        await doc.disconnect()

    asyncio.run(gate())

    # Handing over: only a holder, only to a colleague who may moderate the room.
    expect(bruno.call("POST", handover, {"user_id": "@carla:localhost"}), 403, "M_FORBIDDEN")
    expect(anna.call("POST", handover, {}), 400, "M_MISSING_PARAM")
    expect(anna.call("POST", handover, {"user_id": 5}), 400, "M_BAD_JSON")
    expect(anna.call("POST", handover, {"user_id": "bruno"}), 400, "M_INVALID_PARAM")
    expect(anna.call("POST", handover, {"user_id": "@anna:localhost"}), 400, "M_INVALID_PARAM")
    body = expect(anna.call("POST", handover, {"user_id": "@doktor:localhost"}), 403, "M_FORBIDDEN")
    assert "may not moderate" in body["error"], body
    expect(doktor.call("POST", handover, {"user_id": "@bruno:localhost"}), 403, "M_FORBIDDEN")
    expect(anna.call("POST", "/meetings/NoSuchMeetingAtAll0000/handover", {"user_id": "@bruno:localhost"}),
           404, "M_NOT_FOUND")
    expect(Api(server).call("POST", handover, {"user_id": "@bruno:localhost"}), 401, "M_MISSING_TOKEN")
    anna.ok("POST", handover, {"user_id": "@bruno:localhost"})

    # The colleague enters; a third one is still refused, and cannot hand it on.
    assert bruno.ok("POST", join)["role"] == "moderator"
    expect(carla.call("POST", join), 403, "M_FORBIDDEN")
    expect(carla.call("POST", handover, {"user_id": "@anna:localhost"}), 403, "M_FORBIDDEN")
    anna.ok("POST", join)

    # The holders are kept in the store: a restart changes nothing.
    server.restart()
    bruno.ok("POST", join)
    anna.ok("POST", join)
    expect(carla.call("POST", join), 403, "M_FORBIDDEN")
    # The colleague may hand it on; the latest colleague replaces the earlier one.
    bruno.ok("POST", handover, {"user_id": "@carla:localhost"})
    carla.ok("POST", join)
    expect(bruno.call("POST", join), 403, "M_FORBIDDEN")
    anna.ok("POST", join)

    # The session ends (the doctor ends it with the patient): moderators enter as before.
    admitted = patient.ok("GET", f"/meetings/{consultation}/knock/{knock['knock_id']}", auth=knock["knock_secret"])
    anna.ok("POST", f"/meetings/{consultation}/participants/{admitted['identity']}/remove")
    for api in (anna, bruno, carla):
        api.ok("POST", join)
    expect(doktor.call("POST", join), 403, "M_FORBIDDEN")
    expect(anna.call("POST", handover, {"user_id": "@bruno:localhost"}), 409)

    # Team meetings have no sessions to hand over.
    team = anna.ok("POST", "/meetings", {"origin_room": room})["meeting_id"]
    expect(anna.call("POST", f"/meetings/{team}/handover", {"user_id": "@bruno:localhost"}), 400, "M_INVALID_PARAM")
    anna.ok("POST", f"/meetings/{team}/end")
    anna.ok("POST", f"/meetings/{consultation}/end")
