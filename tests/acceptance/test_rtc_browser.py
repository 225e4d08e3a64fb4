"""A conference with livekit-client in Debian's Chromium against Ward's built-in SFU
(tests/browser/meeting.mjs, playwright-core; fake camera, microphone and screen).

Ward serves a small test page (tests/browser/meeting/) with livekit-client's ESM build from
WARD_WEB_DIR, so the page, its scripts and the signalling WebSocket share Ward's origin and its
strict Content-Security-Policy. Three pages join one room and publish camera and microphone;
each decodes the other two cameras and receives both microphones, and dynacast pauses the camera
layers nobody watches at the pages' tile size; the first shares its screen and the other two
decode it (the cameras keep playing); the last closes her browser and the
others see her leave. Every request of the pages goes to Ward's origin, there is no CSP
violation, and media goes to the SFU's candidates on 127.0.0.1: over UDP, and for the third page,
which ignores the UDP candidate as if a firewall blocked UDP, over ICE-TCP. Screenshots land in
tests/browser/artifacts/ (meeting-1.png …, and meeting-result.json with everything the script
recorded).

Ward-only (not `portable`): conferencing is not part of the Matrix spec, Synapse has no SFU.
"""

import datetime
import json
import os
import re

import pytest
from livekit import api

from harness import BROWSER_ARTIFACTS as ARTIFACTS
from harness import BROWSER_DIR, CHROMIUM, meeting_page, run_browser_script

KEY = "praxis"
SECRET = "a-conferencing-secret-of-at-least-32-characters"
ROOM = "fallbesprechung"
PEOPLE = ["anna", "ben", "clara"]  # the first shares her screen
TCP_ONLY = "clara"  # her page acts as if UDP were blocked: media over ICE-TCP
SCRIPT = BROWSER_DIR / "meeting.mjs"
# The script waits up to this long for each of: cameras, microphones, screen share, leave.
WAIT_MS = 60_000
SCRIPT_TIMEOUT_S = 240


@pytest.fixture
def meeting_ward(ward_factory, tmp_path):
    if os.environ.get("WARD_TEST_TARGET") == "synapse":
        pytest.skip("conferencing is Ward's own")
    web = meeting_page(tmp_path / "web")
    return ward_factory(registration="closed", env={"WARD_WEB_DIR": str(web)},
                        rtc_api_key=KEY, rtc_api_secret=SECRET)


def token(identity: str) -> str:
    grants = api.VideoGrants(room_join=True, room=ROOM)
    return (api.AccessToken(KEY, SECRET).with_identity(identity).with_name(identity.title())
            .with_grants(grants).with_ttl(datetime.timedelta(minutes=10)).to_jwt())


def media_port(server, pattern: str) -> int:
    """The SFU's UDP or ICE-TCP port, from Ward's log (the tests let it pick free ones)."""
    for line in server.log.read_text().splitlines():
        m = re.search(pattern, line)
        if m:
            return int(m.group(1))
    raise AssertionError(f"no {pattern!r} in {server.log}")


def udp_port(server) -> int:
    return media_port(server, r"media server \(SFU\) listening.*udp=127\.0\.0\.1:(\d+)")


def tcp_port(server) -> int:
    return media_port(server, r"ICE-TCP listening.*tcp=127\.0\.0\.1:(\d+)")


def test_three_browsers_see_each_other_and_a_screen_share(meeting_ward):
    server = meeting_ward
    for old in ARTIFACTS.glob("meeting-*"):
        old.unlink()
    env = {**os.environ, "WARD_URL": server.url, "CHROMIUM": CHROMIUM, "WARD_ARTIFACTS": str(ARTIFACTS),
           "WARD_WAIT_MS": str(WAIT_MS),
           "WARD_MEETING": json.dumps([{"name": p.title(), "token": token(p),
                                        **({"transport": "tcp"} if p == TCP_ONLY else {})} for p in PEOPLE])}
    result = run_browser_script(["node", str(SCRIPT)], env, BROWSER_DIR, SCRIPT_TIMEOUT_S,
                                ARTIFACTS / "meeting-result.json")
    print("timings (ms):", result["timings"])
    log = "\n".join(result["console"][-40:])
    assert not result["failure"], f"{result['failure']}\nconsole:\n{log}\nsee {server.log}"
    assert not result["timedOut"], f"timed out: {result['timedOut']}\nconsole:\n{log}\nsee {server.log}"

    udp = f"127.0.0.1:{udp_port(server)}/udp"
    tcp = f"127.0.0.1:{tcp_port(server)}/tcp"
    names = [p.title() for p in PEOPLE]
    for i, snap in enumerate(result["snapshots"]):
        who = names[i]
        assert not snap["errors"], f"{who}: {snap['errors']}"
        assert snap["state"] == "connected", f"{who}: {snap['state']}"
        assert snap["participants"] == sorted(p for j, p in enumerate(PEOPLE) if j != i), who
        expected_published = ["camera", "microphone"] + (["screen_share"] if i == 0 else [])
        assert snap["published"] == expected_published, f"{who}: {snap['published']}"
        videos = [t for t in snap["remotes"] if t["kind"] == "video"]
        cameras = [t for t in videos if t["source"] == "camera"]
        assert sorted(t["participant"] for t in cameras) == snap["participants"], f"{who}: {videos}"
        assert all(t["framesDecoded"] > 0 for t in cameras), f"{who}: {cameras}"
        # … and kept decoding them while the screen share was added.
        before = {t["trackSid"]: t["framesDecoded"] for t in result["milestones"]["cameras decoded"][i]["remotes"]
                  if t["source"] == "camera"}
        assert all(t["framesDecoded"] > before[t["trackSid"]] for t in cameras), f"{who}: {before} → {cameras}"
        # Dynacast: the others show this camera small, so its top simulcast layer was paused.
        paused = result["milestones"]["unwatched camera layers paused"][i]["cameraEncodings"]
        assert {e["rid"]: e["active"] for e in paused}.items() >= {"q": True, "f": False}.items(), f"{who}: {paused}"
        microphones = [t for t in snap["remotes"] if t["source"] == "microphone"]
        assert len(microphones) == 2 and all(t["packetsReceived"] > 0 for t in microphones), f"{who}: {microphones}"
        screens = [t for t in videos if t["source"] == "screen_share"]
        if i == 0:
            assert not screens, f"{who} sees a screen share: {screens}"
        else:
            assert [t["participant"] for t in screens] == [PEOPLE[0]], f"{who}: {videos}"
            assert screens[0]["framesDecoded"] > 0, f"{who}: {screens}"

        # Media only to the SFU's candidates on 127.0.0.1: its UDP port (ICE prefers it), or its
        # ICE-TCP port for the page that cannot use UDP. Chromium also pairs its other host
        # candidates with them (and may nominate e.g. eth0's address → 127.0.0.1, which the
        # kernel still delivers over loopback), but every remote address is the SFU's.
        expected = tcp if PEOPLE[i] == TCP_ONLY else udp
        assert len(snap["ice"]) == 2, f"{who}: publisher and subscriber connection expected: {snap['ice']}"
        for pc in snap["ice"]:
            assert pc["connectionState"] == "connected", f"{who}: {pc}"
            assert pc["selected"] and pc["selected"]["remote"] == expected, f"{who}: {pc}"
            assert set(pc["remoteCandidates"]) <= {udp, tcp}, f"{who}: {pc}"
            for pair in pc["pairs"]:
                if pair["bytesSent"] or pair["requestsSent"]:
                    assert pair["remote"] in (udp, tcp), f"{who}: {pair}"
                    assert PEOPLE[i] != TCP_ONLY or pair["remote"] == tcp, f"{who}: {pair}"

    # The last one closed her browser; the others saw her go.
    for snap in result["milestones"]["left"]:
        assert snap["participants"] == [PEOPLE[j] for j in range(len(PEOPLE) - 1) if snap["identity"] != PEOPLE[j]]
        assert all(t["participant"] != PEOPLE[-1] for t in snap["remotes"]), snap["remotes"]

    foreign = [r for r in result["requests"] if not same_origin(r["url"], server.url)]
    assert not foreign, f"requests to other origins: {foreign}"
    assert any(r["url"].startswith(server.url.replace("http", "ws") + "/rtc?") for r in result["requests"])
    assert not result["problems"], "\n".join(result["problems"])
    for i in range(len(PEOPLE)):
        assert (ARTIFACTS / f"meeting-{i + 1}.png").stat().st_size > 0
    print(f"browser screenshots: {ARTIFACTS}")


def same_origin(url: str, origin: str) -> bool:
    if url.startswith(("data:", "blob:")):
        return True
    for scheme in ("ws", "http"):
        if url.startswith(origin.replace("http", scheme, 1) + "/"):
            return True
    return False
