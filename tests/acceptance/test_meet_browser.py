"""Meetings and video consultations in Ward's web app, in Debian's Chromium with fake camera,
microphone and screen (tests/browser/meet.mjs, playwright-core; see its header for the story).

Ward serves the built app (web/dist, via WARD_WEB_DIR). A member with an encrypted chat starts a
meeting from it; guests wait in the lobby and are let in; everyone decodes everyone's camera and
a screen share; meeting chat and whiteboard reach a late joiner; a page with a wrong secret in the
link receives video but decodes none; a removed guest cannot come back into the locked meeting;
a consultation with a patient link: waiting room, a second person refused, admitted, decoded,
ended, link used up; the next patients after one who left and one whose browser went away
without leaving; each appointment with its own key (the first patient's secret decodes nothing
of the second session); a colleague is refused while a session runs until the doctor hands it to
her; a colleague takes a session over by the doctor's hand-over (named colleague, then the link).
Here the test also checks what the server saw: the chat message with the
meeting link is end-to-end encrypted and the link's secret appears nowhere on the server (its
database, its log), and every request of the pages went to Ward's origin.

Screenshots land in tests/browser/artifacts/ (meet-*.png, and meet-result.json with everything
the script recorded).

Ward-only: meetings and the web app are Ward's own.
"""

import json
import os
import urllib.parse
from pathlib import Path

import pytest

from harness import BROWSER_ARTIFACTS as ARTIFACTS
from harness import BROWSER_DIR, CHROMIUM, REPO, http_json, run_browser_script

USER = "doktor"
PASSWORD = "praxis passwort 1"
COLLEAGUE = "kollegin"
COLLEAGUE_PASSWORD = "praxis passwort 2"
ROOM = "Teambesprechung"
PLAIN_ROOM = "Offener Raum"
WEB_DIST = REPO / "web" / "dist"
SCRIPT = BROWSER_DIR / "meet.mjs"
WAIT_MS = 45_000
SCRIPT_TIMEOUT_S = 420

CHECKS = [
    "no meeting button in an unencrypted chat",
    "member enters as moderator",
    "a browser without E2EE is told so and does not join",
    "a cut-off link is refused",
    "the secret leaves the address bar; a reload still works",
    "guests wait in the lobby",
    "three decode each other's cameras",
    "screen share reaches the others",
    "chat message and strokes reach everyone",
    "whiteboard exports as PNG",
    "a raised hand is seen by the others",
    "a moderator mutes a participant",
    "late joiner gets chat, whiteboard and raised hands",
    "a camera that fails leaves one in the call without it, told so",
    "who left the lobby is not connected when admitted later",
    "wrong secret: told the link is wrong",
    "wrong secret: video arrives",
    "wrong secret: no frame decoded",
    "wrong secret: meeting data unreadable",
    "right secret: nobody decodes mallory",
    "right secret: the lock badge stays, no wrong-link warning",
    "right secret: the others still decode each other",
    "forwarded frames are all end-to-end encrypted",
    "removed guest is disconnected",
    "removed guest cannot knock again while locked",
    "ending the meeting disconnects everyone",
    "an ended meeting's link no longer works",
    "patient link made",
    "a patient link carries its appointment's secret, not the room's",
    "second person with the same link refused",
    "doctor sees the patient waiting",
    "doctor and patient decode each other",
    "patient sees the end of the consultation",
    "link no longer works after the session",
    "doctor admits patient-2",
    "a patient who left gets no way back in",
    "doctor admits patient-3",
    "the doctor sees the departed patient's open session",
    "doctor admits patient-4",
    "admitting the next patient ended the departed one's session",
    "a colleague without a hand-over is refused during a session",
    "the doctor hands the session to the colleague",
    "the first appointment's secret decodes nothing of the second session",
    "doctor and patient-2 decode each other with the second appointment's key",
    "a hand-over to someone who may not moderate is refused",
    "the hand-over link carries the appointment's secret, not the room's",
    "colleague takes over: the patient stays and decodes her, the doctor is gone",
    "guests and patients do not load matrix-js-sdk",
]


@pytest.fixture
def meet_ward(ward_factory):
    if os.environ.get("WARD_TEST_TARGET") == "synapse":
        pytest.skip("meetings and the web app are Ward's own")
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: run scripts/setup-test-env"
    assert (WEB_DIST / "index.html").exists(), "web/dist missing: run scripts/setup-test-env"
    assert (BROWSER_DIR / "node_modules" / "playwright-core").exists(), "run scripts/setup-test-env"
    # Knocks expire after 5 s without a poll (not 2 min), so the sleeping phone's turn is short.
    server = ward_factory(registration="closed",
                          env={"WARD_WEB_DIR": str(WEB_DIST), "WARD_MEETING_KNOCK_EXPIRY_MS": "5000"})
    server.create_user(USER, PASSWORD)
    server.create_user(COLLEAGUE, COLLEAGUE_PASSWORD)
    return server


def login(server, user=USER, password=PASSWORD) -> tuple[str, str]:
    status, body = http_json("POST", server.url + "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password})
    assert status == 200, body
    return body["access_token"], body["user_id"]


def test_meetings_and_consultation_in_the_browser(meet_ward):
    server = meet_ward
    token, _ = login(server)
    colleague_token, colleague_id = login(server, COLLEAGUE, COLLEAGUE_PASSWORD)
    status, body = http_json("POST", server.url + "/_matrix/client/v3/createRoom", {
        "name": ROOM, "preset": "private_chat",
        "initial_state": [{"type": "m.room.encryption", "state_key": "",
                           "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]}, token)
    assert status == 200, body
    room_id = body["room_id"]
    # The colleague is in the chat, so she may moderate the consultation room opened for it (and
    # take a session over).
    quoted = urllib.parse.quote(room_id)
    status, body = http_json("POST", server.url + f"/_matrix/client/v3/rooms/{quoted}/invite",
                             {"user_id": colleague_id}, token)
    assert status == 200, body
    status, body = http_json("POST", server.url + f"/_matrix/client/v3/rooms/{quoted}/join", {}, colleague_token)
    assert status == 200, body
    # A chat without encryption (a public one: Ward encrypts private chats by default): it must not
    # offer a meeting (the link would be stored readable).
    status, body = http_json("POST", server.url + "/_matrix/client/v3/createRoom", {
        "name": PLAIN_ROOM, "preset": "public_chat"}, token)
    assert status == 200, body

    for old in ARTIFACTS.glob("meet-*"):
        old.unlink()
    env = {**os.environ, "WARD_URL": server.url, "WARD_USER": USER, "WARD_PASSWORD": PASSWORD, "WARD_ROOM": ROOM, "WARD_PLAIN_ROOM": PLAIN_ROOM,
           "WARD_COLLEAGUE_USER": colleague_id, "WARD_COLLEAGUE_TOKEN": colleague_token,
           "CHROMIUM": CHROMIUM, "WARD_ARTIFACTS": str(ARTIFACTS), "WARD_WAIT_MS": str(WAIT_MS)}
    result = run_browser_script(["node", str(SCRIPT)], env, BROWSER_DIR, SCRIPT_TIMEOUT_S,
                                ARTIFACTS / "meet-result.json")
    print("timings (ms):", result["timings"])
    log = "\n".join(result["console"][-60:])
    failed = {name: c["detail"] for name, c in result["checks"].items() if not c["ok"]}
    assert not result["failure"] and not failed, (
        f"{result['failure']}\nfailed checks: {json.dumps(failed)[:6000]}\nconsole:\n{log}\nsee {server.log}")
    missing = [name for name in CHECKS if name not in result["checks"]]
    assert not missing, f"checks that did not run: {missing}"

    # The meeting link went into the chat end-to-end encrypted: the server holds only ciphertext,
    # and the secret from the link's fragment is nowhere on the server.
    link = result["meetingLink"]
    fragment = urllib.parse.urlsplit(link).fragment
    secret = fragment.split("/")[3]
    assert len(secret) == 24, link
    status, msgs = http_json("GET", server.url + f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/messages"
                             "?dir=b&limit=50", token=token)
    assert status == 200, msgs
    types = [e["type"] for e in msgs["chunk"]]
    assert "m.room.encrypted" in types and "m.room.message" not in types, types
    patient_secret = result["patientLink"].rsplit("/", 1)[1]
    assert patient_secret != secret
    for path in [p for p in (server.dir / "data").rglob("*") if p.is_file()] + [server.log]:
        data = path.read_bytes()
        for s in (secret, patient_secret):
            assert s.encode() not in data, f"a meeting secret is in {path}"

    foreign = [r for r in result["requests"] if not same_origin(r["url"], server.url)]
    assert not foreign, f"requests to other origins: {foreign}"
    assert any(r["url"].startswith(server.url.replace("http", "ws") + "/rtc?") for r in result["requests"])
    assert not result["problems"], "\n".join(result["problems"])
    for name in ("meet-grid.png", "meet-lobby-guest.png", "meet-lobby-moderator.png", "meet-whiteboard.png",
                 "meet-patient-waiting.png"):
        assert (ARTIFACTS / name).stat().st_size > 0, name
    print(f"browser screenshots: {ARTIFACTS}")


def same_origin(url: str, origin: str) -> bool:
    if url.startswith(("data:", "blob:")):
        return True
    for scheme in ("ws", "http"):
        if url.startswith(origin.replace("http", scheme, 1) + "/"):
            return True
    return False
