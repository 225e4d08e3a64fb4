// Debian's Chromium as every browser test launches it (playwright-core): headless and with
// nothing phoning home, as the design brief says. Playwright passes a fresh temporary
// --user-data-dir of its own (launch() refuses one in args).

import { chromium } from "playwright-core";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// For calls: fake camera, microphone and screen whose permission prompts are accepted, host
// candidates on the loopback interface (the tests' SFU announces 127.0.0.1), and media that
// plays without a click. getDisplayMedia works headless with the two fake flags: Chromium hands
// out a synthetic 1280x720 "screen".
const CALL_FLAGS = [
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--autoplay-policy=no-user-gesture-required",
];

// Chromium now and then dies while starting on these VMs (SIGSEGV before its first page, in a
// CI run on 2026-12-07), before any test step ran. A launch is tried this many times; a
// browser that cannot start at all still fails the test, after the last attempt.
const LAUNCH_ATTEMPTS = 3;

/** Launches $CHROMIUM (default /usr/bin/chromium); `calls` adds the fake media devices. */
export async function launchChromium({ calls = false } = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await chromium.launch({
        executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
        args: calls ? [...FLAGS, ...CALL_FLAGS] : FLAGS,
        headless: true,
      });
    } catch (e) {
      if (attempt >= LAUNCH_ATTEMPTS) throw e;
      const first = String(e?.message ?? e).split("\n")[0];
      console.error(`chromium did not start (attempt ${attempt} of ${LAUNCH_ATTEMPTS}): ${first}; trying again`);
    }
  }
}
