// A real browser behind a congested downlink: Ward's bandwidth estimate, fed by Chromium's own
// TWCC feedback, must move the viewer to a smaller simulcast layer and back
// (tests/acceptance/test_rtc_congestion.py starts this inside a network namespace of its own,
// as root, so that shaping its loopback interface touches nothing else).
//
// The script starts Ward itself (in the namespace, on 127.0.0.1), then two Chromium pages of
// the meeting test page (tests/browser/meeting/): Anna publishes camera and microphone (720p
// simulcast: three layers), Ben only watches, in a 1280-pixel tile, so adaptive stream asks for
// Anna's top layer. Phases, each recorded with Ben's decoder statistics every 500 ms:
//   1. unshaped: Ben decodes the top layer; his receive rate over 4 s is measured;
//   2. shaped: what the SFU's media port sends to Ben's receiving connection goes through a
//      `tc` HTB class at 60 % of that rate with a short queue;
//   3. the class is opened up again.
// The script records; the test asserts. Last line on stdout: `RESULT <json>`.
//
// Env: WARD_BIN, WARD_WEB_DIR, WARD_DATA_DIR, WARD_LOG_FILE, WARD_RTC_API_KEY,
// WARD_RTC_API_SECRET, WARD_TOKENS (JSON {anna, ben}), WARD_ARTIFACTS, optional CHROMIUM,
// WARD_SHAPED_S (how long phase 2 lasts, default 20).

import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import { launchChromium } from "./browser.mjs";

const HTTP = "127.0.0.1:8008";
const WARD = `http://${HTTP}`;
const MEDIA_PORT = 7882;
const TOKENS = JSON.parse(process.env.WARD_TOKENS);
const ARTIFACTS = process.env.WARD_ARTIFACTS;
const SHAPED_S = Number(process.env.WARD_SHAPED_S || 20);
// How long to wait for each of: the top layer, the drop, the recovery.
const WAIT_MS = 60_000;
const started = Date.now();
const samples = []; // { t, phase, width, framesDecoded, bytesReceived }
const timings = {};
const consoleLog = [];
let failure = null;
let tcStats = "";

function step(msg) {
  console.log(`-- ${((Date.now() - started) / 1000).toFixed(1)}s ${msg}`);
}

function sh(cmd, ...args) {
  return execFileSync(cmd, args, { encoding: "utf8" });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

mkdirSync(ARTIFACTS, { recursive: true });
sh("ip", "link", "set", "lo", "up");
const log = openSync(process.env.WARD_LOG_FILE, "w");
const ward = spawn(process.env.WARD_BIN, ["serve"], {
  env: {
    ...process.env,
    WARD_LISTEN: HTTP,
    WARD_SERVER_NAME: "praxis.test",
    WARD_REGISTRATION: "closed",
    WARD_LOG_LEVEL: "debug",
    WARD_RTC_UDP_PORT: String(MEDIA_PORT),
    WARD_RTC_TCP_ENABLED: "false",
  },
  stdio: ["ignore", log, log],
});

const browser = await launchChromium({ calls: true });

async function open(name, fragment) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => consoleLog.push(`${name} ${m.type()}: ${m.text().slice(0, 300)}`));
  page.on("pageerror", (e) => consoleLog.push(`${name} page error: ${e.message}`));
  await page.goto(`${WARD}/#${new URLSearchParams({ name, ...fragment })}`);
  await page.evaluate(() => meeting.ready);
  return page;
}

/** Ben's view of Anna's camera, appended to `samples`. */
async function sample(ben, phase) {
  const snap = await ben.evaluate(() => meeting.snapshot());
  const camera = snap.remotes.find((t) => t.kind === "video" && t.source === "camera") ?? {};
  const s = {
    t: Date.now() - started,
    phase,
    width: camera.frameWidth ?? 0,
    framesDecoded: camera.framesDecoded ?? 0,
    bytesReceived: camera.bytesReceived ?? 0,
  };
  samples.push(s);
  return s;
}

/** Samples every 500 ms until `done(sample)` or `ms` pass; returns the sample that held. */
async function until(ben, phase, ms, done) {
  const deadline = Date.now() + ms;
  for (;;) {
    const s = await sample(ben, phase);
    if (done(s)) return s;
    if (Date.now() > deadline) return null;
    await sleep(500);
  }
}

/** The local UDP port of Ben's connection that receives the most (the subscriber's). */
async function receivingPort(ben) {
  const snap = await ben.evaluate(() => meeting.snapshot());
  const selected = snap.ice.map((i) => i.selected).filter((p) => p?.local?.endsWith("/udp"));
  selected.sort((a, b) => (b.bytesReceived ?? 0) - (a.bytesReceived ?? 0));
  const port = Number(selected[0]?.local?.split("/")[0].split(":").pop());
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no receiving UDP port in ${JSON.stringify(snap.ice)}`);
  return port;
}

let topWidth = 0;
let unshapedBps = 0;
let capBps = 0;
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${WARD}/_matrix/client/versions`)).ok) break;
    } catch {}
    if (i > 100) throw new Error("Ward did not start");
    await sleep(100);
  }
  step("Ward is up");
  await open("Anna", { token: TOKENS.anna });
  const ben = await open("Ben", { token: TOKENS.ben, publish: "none", layout: "large" });
  step("both joined");

  // 1. Unshaped: the top layer, steady (the same width four samples running).
  const steady = await until(ben, "unshaped", WAIT_MS, () => {
    const last = samples.slice(-4);
    return last.length === 4 && last.every((s) => s.width >= 1280 && s.width === last[0].width);
  });
  if (!steady) throw new Error("Ben never decoded Anna's top layer");
  topWidth = steady.width;
  timings.top = steady.t;
  const a = await sample(ben, "unshaped");
  await sleep(4000);
  const b = await sample(ben, "unshaped");
  unshapedBps = ((b.bytesReceived - a.bytesReceived) * 8 * 1000) / (b.t - a.t);
  capBps = Math.round(unshapedBps * 0.6);
  step(`top layer ${topWidth} px at ${Math.round(unshapedBps / 1000)} kbit/s; shaping to ${Math.round(capBps / 1000)} kbit/s`);

  // 2. Shaped: what the SFU's media port sends to Ben's receiving connection, through one HTB
  // class with a short queue. Only that: shaping the whole port also queued (and dropped) the
  // keyframe requests and feedback the SFU sends Anna, which a viewer's thin link would not.
  const benPort = await receivingPort(ben);
  step(`shaping what port ${MEDIA_PORT} sends to Ben's port ${benPort}`);
  sh("tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "1");
  sh("tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit");
  sh("tc", "class", "add", "dev", "lo", "parent", "1:", "classid", "1:2", "htb", "rate", `${capBps}bit`, "ceil", `${capBps}bit`);
  sh("tc", "qdisc", "add", "dev", "lo", "parent", "1:2", "handle", "20:", "pfifo", "limit", "30");
  sh("tc", "filter", "add", "dev", "lo", "protocol", "ip", "parent", "1:0", "prio", "1", "u32",
    "match", "ip", "protocol", "17", "0xff", "match", "ip", "sport", String(MEDIA_PORT), "0xffff", "match", "ip", "dport", String(benPort), "0xffff",
    "flowid", "1:2");
  const shapedAt = Date.now() - started;
  timings.shaped = shapedAt;
  const lowered = await until(ben, "shaped", WAIT_MS, (s) => s.width > 0 && s.width < topWidth);
  timings.lowered = lowered ? lowered.t - shapedAt : null;
  step(lowered ? `lowered to ${lowered.width} px after ${timings.lowered} ms` : "never lowered");
  const holdUntil = Date.now() + SHAPED_S * 1000;
  while (Date.now() < holdUntil) {
    await sample(ben, "shaped");
    await sleep(500);
  }
  tcStats = sh("tc", "-s", "class", "show", "dev", "lo");

  // 3. Opened up again.
  sh("tc", "class", "change", "dev", "lo", "parent", "1:", "classid", "1:2", "htb", "rate", "10gbit", "ceil", "10gbit");
  const openedAt = Date.now() - started;
  timings.opened = openedAt;
  const raised = await until(ben, "opened", WAIT_MS, (s) => s.width === topWidth);
  timings.raised = raised ? raised.t - openedAt : null;
  step(raised ? `back to ${topWidth} px after ${timings.raised} ms` : "never raised");
  await ben.screenshot({ path: join(ARTIFACTS, "congestion-ben.png") });
} catch (e) {
  failure = String(e?.stack || e);
} finally {
  await browser.close();
  ward.kill("SIGTERM");
}
timings.total = Date.now() - started;
console.log(`RESULT ${JSON.stringify({ failure, timings, topWidth, unshapedBps, capBps, samples, tcStats, console: consoleLog.slice(-60) })}`);
process.exit(0);
