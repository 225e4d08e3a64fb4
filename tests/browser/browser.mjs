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

/** Launches $CHROMIUM (default /usr/bin/chromium); `calls` adds the fake media devices. */
export function launchChromium({ calls = false } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: calls ? [...FLAGS, ...CALL_FLAGS] : FLAGS,
    headless: true,
  });
}
