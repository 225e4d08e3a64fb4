// A conference in real browsers: playwright-core drives Debian's Chromium (fake camera,
// microphone and screen) against a running Ward whose SFU speaks LiveKit's client protocol
// (started by tests/acceptance/test_rtc_browser.py).
//
// Ward serves the test page (tests/browser/meeting/, with livekit-client's ESM build beside it)
// from WARD_WEB_DIR, so page, script and signalling WebSocket are all on Ward's origin under its
// strict Content-Security-Policy. Three pages, each in its own browser context, join one room
// with livekit-client and publish camera and microphone; the script waits until each page
// decodes both other cameras (and hears both microphones), and until dynacast has paused the
// camera layers nobody watches at that tile size; then the first page shares its screen
// and the script waits until the other two decode it; then the last page closes and the others
// must see that participant leave. Screenshots go to WARD_ARTIFACTS
// (meeting-1.png …).
//
// The script only waits and records; the test asserts. Its last line on stdout is
// `RESULT <json>`: each page's final snapshot (participants, remote tracks with decoder
// statistics, the ICE candidate pairs of every peer connection — see meeting/meeting.js), every
// request of the pages, CSP violations and page errors, what timed out, timings, and the
// snapshots at each milestone (when the cameras were first decoded, …). It exits
// non-zero only when it could not run at all.
//
// Env: WARD_URL, WARD_MEETING (JSON: [{"name", "token", "transport"?}, …], the first one shares
// its screen; `"transport": "tcp"` makes that page ignore the SFU's UDP candidates),
// WARD_ARTIFACTS, optional CHROMIUM (default /usr/bin/chromium), WARD_WAIT_MS (default 60000).

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { launchChromium } from "./browser.mjs";

const WARD = new URL(process.env.WARD_URL).origin;
const PEOPLE = JSON.parse(process.env.WARD_MEETING);
const ARTIFACTS = process.env.WARD_ARTIFACTS;
const WAIT_MS = Number(process.env.WARD_WAIT_MS || 60_000);

const requests = []; // { who, url }
const problems = []; // CSP violations, page errors
const consoleLog = []; // the pages' console, returned for diagnosis
const timedOut = []; // what did not happen within WAIT_MS
const timings = {}; // milliseconds since the start
const started = Date.now();

function step(msg) {
  console.log(`-- ${((Date.now() - started) / 1000).toFixed(1)}s ${msg}`);
}

function isWard(url) {
  if (url.startsWith("data:") || url.startsWith("blob:")) return true; // never leaves the page
  try {
    const u = new URL(url);
    // The signalling WebSocket is the same origin with ws: in place of http:.
    if (u.protocol === "ws:" || u.protocol === "wss:") u.protocol = u.protocol === "ws:" ? "http:" : "https:";
    return u.origin === WARD;
  } catch {
    return false;
  }
}

function watch(context, who) {
  context.on("request", (r) => requests.push({ who, url: r.url() }));
  context.on("page", (page) => {
    page.on("websocket", (ws) => requests.push({ who, url: ws.url() }));
    page.on("console", (m) => {
      consoleLog.push(`${who} ${m.type()}: ${m.text().slice(0, 300)}`);
      if (/Content.Security.Policy/i.test(m.text())) problems.push(`${who}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`${who}: page error: ${e.message}`));
  });
  // Belt and braces: nothing may leave for another origin even if the page tried.
  context.route(
    (url) => !isWard(url.href),
    (route) => route.abort("blockedbyclient"),
  );
}

const milestones = {}; // what → the snapshots when it first held

/** Polls every page's snapshot until `done(snapshot, index)` holds for all, or WAIT_MS passes. */
async function until(what, pages, done) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const snaps = await Promise.all(pages.map((p) => p.evaluate(() => meeting.snapshot())));
    if (snaps.every(done)) {
      timings[what] = Date.now() - started;
      milestones[what] = snaps;
      step(`${what}: yes`);
      return true;
    }
    if (Date.now() > deadline) {
      timedOut.push(what);
      step(`${what}: TIMED OUT`);
      return false;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

const decoding = (s, source) =>
  s.remotes.filter((t) => t.kind === "video" && t.source === source && t.framesDecoded > 0).length;
const hearing = (s) => s.remotes.filter((t) => t.kind === "audio" && t.packetsReceived > 0).length;

mkdirSync(ARTIFACTS, { recursive: true });
const browser = await launchChromium({ calls: true });
const pages = [];
let failure = null;
let snapshots = [];
try {
  step(`${PEOPLE.length} pages join`);
  for (const [i, person] of PEOPLE.entries()) {
    const context = await browser.newContext({ locale: "en-GB", viewport: { width: 1280, height: 800 } });
    watch(context, person.name);
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    pages.push(page);
    const fragment = new URLSearchParams({ token: person.token, name: person.name });
    if (person.transport) fragment.set("transport", person.transport);
    await page.goto(`${WARD}/#${fragment}`);
    // The first one is in the room before the others come, the others join together.
    if (i === 0) await page.evaluate(() => meeting.ready);
  }
  await Promise.all(pages.map((p) => p.evaluate(() => meeting.ready)));
  timings.joined = Date.now() - started;
  step("all joined and publishing");

  const others = PEOPLE.length - 1;
  await until("cameras decoded", pages, (s) => s.participants.length === others && decoding(s, "camera") === others);
  await until("microphones heard", pages, (s) => hearing(s) === others);
  // Everyone shows the others' cameras as 300-pixel tiles: dynacast switches off each camera's
  // top layer (after the SFU's few seconds of patience), the lowest stays on.
  await until("unwatched camera layers paused", pages, (s) => {
    const layer = (rid) => s.cameraEncodings.find((e) => e.rid === rid);
    return s.cameraEncodings.length === 3 && layer("q")?.active && layer("f")?.active === false;
  });

  step(`${PEOPLE[0].name} shares the screen`);
  await pages[0].click("#share");
  await until("screen share decoded", pages, (s, i) =>
    i === 0 ? s.published.includes("screen_share") : decoding(s, "screen_share") === 1,
  );

  for (const [i, page] of pages.entries()) await page.screenshot({ path: join(ARTIFACTS, `meeting-${i + 1}.png`) });
  step(`screenshots in ${ARTIFACTS}`);

  step(`${PEOPLE.at(-1).name} closes her browser`);
  snapshots = await Promise.all(pages.map((p) => p.evaluate(() => meeting.snapshot())));
  await pages.pop().context().close();
  await until("left", pages, (s) => !s.participants.includes(snapshots.at(-1).identity));
} catch (e) {
  failure = String(e?.stack || e);
  for (const [i, page] of pages.entries()) {
    await page.screenshot({ path: join(ARTIFACTS, `meeting-${i + 1}-failure.png`) }).catch(() => {});
  }
} finally {
  // Everyone's state just before the last one left, or when it went wrong before that.
  if (snapshots.length !== PEOPLE.length) {
    snapshots = await Promise.all(
      pages.map((p) => p.evaluate(() => meeting.snapshot()).catch((e) => ({ error: String(e) }))),
    );
  }
  await browser.close();
}
timings.total = Date.now() - started;
const result = { ward: WARD, failure, timedOut, timings, snapshots, milestones, requests, problems };
console.log(`RESULT ${JSON.stringify({ ...result, console: consoleLog.slice(-80) })}`);
