"""Ward's bandwidth estimate with a real browser behind a congested downlink
(tests/browser/congestion.mjs, playwright-core and Debian's Chromium with livekit-client).

Chromium's own TWCC feedback drives Ward's estimator. The viewer's downlink is a real
bottleneck: `tc` shapes, in a network namespace of the test's own (`unshare -n`, so root), what
Ward's media port sends to the viewer's receiving connection down to 60 % of what the viewer's
top simulcast layer needed (the publisher's connection is not shaped). The viewer must
drop to a smaller layer within seconds, keep decoding while shaped (at least half its frame
rate from before; a failed trial of a larger layer may freeze the picture for a few seconds),
spend most of that time below the top layer, and get the top layer back once the link is open
again.

Ward-only (not `portable`): conferencing is not part of the Matrix spec.
"""

import datetime
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from livekit import api

from harness import BROWSER_ARTIFACTS as ARTIFACTS
from harness import BROWSER_DIR, CHROMIUM, meeting_page, run_browser_script, ward_binary

KEY = "praxis"
SECRET = "a-conferencing-secret-of-at-least-32-characters"
ROOM = "sprechstunde"
SCRIPT = BROWSER_DIR / "congestion.mjs"
SHAPED_S = 20
SCRIPT_TIMEOUT_S = 300


def token(identity: str) -> str:
    grants = api.VideoGrants(room_join=True, room=ROOM)
    return (api.AccessToken(KEY, SECRET).with_identity(identity).with_name(identity.title())
            .with_grants(grants).with_ttl(datetime.timedelta(minutes=10)).to_jwt())


def network_namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "-n", "--", "tc", "qdisc", "show", "dev", "lo"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_a_congested_viewer_drops_a_layer_and_gets_it_back():
    if os.environ.get("WARD_TEST_TARGET") == "synapse":
        pytest.skip("conferencing is Ward's own")
    if not network_namespaces_work():
        pytest.skip("needs root for a network namespace of its own (unshare -n) and tc (iproute2)")
    with tempfile.TemporaryDirectory(prefix="ward-congestion-") as tmp:
        web = meeting_page(Path(tmp) / "web")
        log = Path(tmp) / "ward.log"
        env = {**os.environ, "WARD_BIN": str(ward_binary()), "WARD_WEB_DIR": str(web),
               "WARD_DATA_DIR": str(Path(tmp) / "data"), "WARD_LOG_FILE": str(log),
               "WARD_RTC_API_KEY": KEY, "WARD_RTC_API_SECRET": SECRET, "CHROMIUM": CHROMIUM,
               "WARD_TOKENS": json.dumps({"anna": token("anna"), "ben": token("ben")}),
               "WARD_ARTIFACTS": str(ARTIFACTS), "WARD_SHAPED_S": str(SHAPED_S)}
        result = run_browser_script(["unshare", "-n", "--", "node", str(SCRIPT)], env, BROWSER_DIR,
                                    SCRIPT_TIMEOUT_S, ARTIFACTS / "congestion-result.json")
        shutil.copy(log, ARTIFACTS / "congestion-ward.log")
    console = "\n".join(result["console"])
    assert not result["failure"], f"{result['failure']}\nconsole:\n{console}"
    timings, top = result["timings"], result["topWidth"]
    samples = result["samples"]
    print("timings (ms):", timings, "top layer:", top, "px at", round(result["unshapedBps"] / 1000), "kbit/s,",
          "cap", round(result["capBps"] / 1000), "kbit/s")
    print("widths while shaped:", [s["width"] for s in samples if s["phase"] == "shaped"])
    print(result["tcStats"])

    # Down within a few seconds of the cap (the estimator reports every 500 ms; the switch
    # waits for a keyframe of the lower layer). Measured 1.5–7.1 s over eight runs (an earlier
    # build took 8.1 and 9.1 s once each); 1.5–3.0 s in three runs on 2026-12-07, but 10.2 s
    # in a CI run that evening, on a slow VM: the SFU switched 2.6 s after the cap, and the
    # lower layer's keyframe then took seconds to get through the congested link (its loss
    # was 47 %). The bound is for "it adapts", not for how fast a loaded machine does.
    assert timings["lowered"] is not None and timings["lowered"] <= 15_000, timings
    shaped = [s for s in samples if s["phase"] == "shaped"]
    settled = [s for s in shaped if s["t"] >= timings["shaped"] + timings["lowered"]]
    # Mostly below the top layer while shaped (trials of the top layer come back briefly). A
    # sample counts as on the top layer when top-sized frames were decoded since the one before:
    # after a failed trial the last top-sized frame stays on screen until a keyframe of a lower
    # layer gets through the full queue, and that is a freeze, which the checks below bound.
    # (Counting the frozen samples as the top layer too failed a CI run: 15 of 41 samples at
    # the top width.) …
    on_top = [later for earlier, later in zip(settled, settled[1:])
              if later["width"] >= top and later["framesDecoded"] > earlier["framesDecoded"]]
    assert len(on_top) <= 0.3 * len(settled), [(s["width"], s["framesDecoded"]) for s in settled]
    # … the picture moved at least half as fast as over the 4 s before the cap (a viewer kept
    # on a layer the link cannot carry decodes a frame now and then; measured 13–17 fps while
    # shaped, 20 before) …
    def fps(run):
        return (run[-1]["framesDecoded"] - run[0]["framesDecoded"]) * 1000 / (run[-1]["t"] - run[0]["t"])
    before = [s for s in samples if s["phase"] == "unshaped"][-2:]
    assert fps(settled) >= 0.5 * fps(before), (fps(settled), fps(before))
    # … and it kept moving: no four seconds without a decoded frame. (A trial of the
    # top layer that the link cannot carry freezes the picture until the estimate has dropped
    # and a keyframe of the lower layer has come through: at most 1.5 s in twelve runs since
    # the top layer stops at once when the estimate falls, up to 4.1 s before.)
    for earlier, later in zip(settled, settled[8:]):
        assert later["framesDecoded"] > earlier["framesDecoded"], (earlier, later)
    # The top layer again once the link is open (a trial, after at most the back-off so far).
    assert timings["raised"] is not None and timings["raised"] <= 45_000, timings
