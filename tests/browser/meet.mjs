// Meetings and video consultations in Ward's web app, in Debian's Chromium (playwright-core, fake
// camera, microphone and screen), against a running Ward started by
// tests/acceptance/test_meet_browser.py. Every page is the real app (web/dist) on Ward's origin.
//
// 1. A member signs in, opens an encrypted chat and presses "Meeting": the app creates the
//    meeting, posts its link (secret in the fragment) into the chat and opens it. Two guests open
//    the link, give their names and wait in the lobby; the member lets them in; all three decode
//    each other's cameras; a guest shares her screen and the others decode it; the member writes
//    in the meeting chat, the guest draws on the whiteboard, and a late joiner gets both.
// 2. Someone with the right meeting ID but a wrong secret is let in: she receives video but
//    decodes no frame, and nobody decodes hers.
// 3. The member mutes a guest, locks the meeting and removes a guest, who is disconnected and
//    cannot knock again; then ends the meeting for all, and its link no longer works.
// 4. The member opens a consultation room for the chat (its link goes into the chat, for
//    colleagues who take over) and makes a patient link; the patient waits in the
//    waiting room, drops out of it while her phone sleeps and knocks again when it wakes; a
//    second person with the same link is refused; the doctor lets the patient in;
//    both decode each other; the doctor ends the consultation and the link no longer works.
//    Each patient link carries its own appointment's secret (not the room's): a page keyed with
//    the first patient's secret joins the second session and decodes none of it. With new
//    links, a second patient leaves and a third's browser goes away without leaving: neither
//    blocks the doctor from admitting the next patient.
//    While a session runs, a colleague (a moderator of the room) is refused until the doctor
//    hands the session to her; then, with the first appointment's secret, she decodes nothing.
// 5. The doctor hands the fourth patient's session over: naming a colleague who may not moderate
//    the room is refused; the doctor names the colleague (in the chat, so allowed to moderate),
//    the server lets her in, the link appears; she opens it, the doctor's page leaves once she
//    is in, and patient and colleague decode each other.
//
// The script records and waits; the test asserts. Its last line on stdout is `RESULT <json>`:
// `checks` (name → {ok, detail}), the meeting link, every request of the pages, CSP violations
// and page errors, timings. Screenshots go to WARD_ARTIFACTS (meet-*.png).
//
// Env: WARD_URL, WARD_USER, WARD_PASSWORD, WARD_ROOM (the chat's name), WARD_COLLEAGUE_USER and
// WARD_COLLEAGUE_TOKEN (a member of that chat, signed in), WARD_ARTIFACTS,
// optional CHROMIUM (default /usr/bin/chromium), WARD_WAIT_MS (default 45000), WARD_STOP_AFTER=cameras
// (stop after the first video check, for debugging).

import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { launchChromium } from "./browser.mjs";

const WARD = new URL(process.env.WARD_URL).origin;
const USER = process.env.WARD_USER;
const PASSWORD = process.env.WARD_PASSWORD;
const ROOM = process.env.WARD_ROOM;
const PLAIN_ROOM = process.env.WARD_PLAIN_ROOM;
/** A colleague of the member, in the chat the consultation room is opened for (so allowed to
 * moderate it), signed in by her access token (the meeting page reads only that). */
const COLLEAGUE_USER = process.env.WARD_COLLEAGUE_USER;
const COLLEAGUE_TOKEN = process.env.WARD_COLLEAGUE_TOKEN;
const ARTIFACTS = process.env.WARD_ARTIFACTS;
const WAIT_MS = Number(process.env.WARD_WAIT_MS || 45_000);

const requests = [];
const problems = [];
const consoleLog = [];
const checks = {};
const timings = {};
const started = Date.now();
let meetingLink = null;
let patientLink = null;

function step(msg) {
  console.log(`-- ${((Date.now() - started) / 1000).toFixed(1)}s ${msg}`);
}

function check(name, ok, detail = null) {
  checks[name] = { ok: !!ok, detail };
  step(`${ok ? "ok" : "FAILED"}: ${name}${ok ? "" : ` ${JSON.stringify(detail).slice(0, 600)}`}`);
}

function isWard(url) {
  if (url.startsWith("data:") || url.startsWith("blob:")) return true;
  try {
    const u = new URL(url);
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
  context.route(
    (url) => !isWard(url.href),
    (route) => route.abort("blockedbyclient"),
  );
}

const browser = await launchChromium({ calls: true });

/**
 * A tap on what the SFU forwards, installed in every page before the app runs: livekit-client
 * (in Chromium) takes each received track's encoded frames from `createEncodedStreams()` and
 * hands them to its decryption worker; the tap looks at every frame on the way — after SRTP, as
 * the SFU forwarded it, before any decryption — and counts those that end in livekit-client's
 * E2EE trailer (IV length 12, key index 0). A plaintext VP8 or Opus frame ends like that by
 * chance once in 65 536 frames.
 */
function installTap() {
  const tap = { video: 0, videoTrailer: 0, videoKey: 0, audio: 0, audioTrailer: 0, empty: 0 };
  window.__wardTap = tap;
  const original = RTCRtpReceiver.prototype.createEncodedStreams;
  if (!original) return;
  RTCRtpReceiver.prototype.createEncodedStreams = function () {
    const streams = original.call(this);
    const kind = this.track.kind;
    const inspect = new TransformStream({
      transform(frame, controller) {
        const d = new Uint8Array(frame.data);
        const trailer = d.length > 14 && d[d.length - 2] === 12 && d[d.length - 1] === 0;
        if (d.length === 0) {
          // An empty frame (the audio encoder has one now and then) carries nothing to
          // encrypt; livekit's encryptor passes it through as it is.
          tap.empty++;
          controller.enqueue(frame);
          return;
        }
        if (kind === "video") {
          tap.video++;
          if (trailer) tap.videoTrailer++;
          if (frame.type === "key") tap.videoKey++;
        } else {
          tap.audio++;
          if (trailer) tap.audioTrailer++;
        }
        controller.enqueue(frame);
      },
    });
    return { readable: streams.readable.pipeThrough(inspect), writable: streams.writable };
  };
}

async function newPage(who, { locale = "de-DE", phone = false } = {}) {
  const context = await browser.newContext(
    phone
      ? { locale, viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }
      : { locale, viewport: { width: 1280, height: 800 } },
  );
  await context.addInitScript(installTap);
  watch(context, who);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("dialog", (d) => d.accept());
  return page;
}

const snap = (page) => page.evaluate(() => window.wardMeet.snapshot()).catch((e) => ({ error: String(e) }));

/** Polls the pages' snapshots until `done(snapshot, i)` holds for all; false after WAIT_MS. */
async function until(what, pages, done, waitMs = WAIT_MS) {
  const deadline = Date.now() + waitMs;
  let snaps = [];
  for (;;) {
    snaps = await Promise.all(pages.map(snap));
    if (snaps.every(done)) {
      timings[what] = Date.now() - started;
      return { ok: true, snaps };
    }
    if (Date.now() > deadline) return { ok: false, snaps };
    await new Promise((r) => setTimeout(r, 500));
  }
}

const cameras = (s) => (s.remotes ?? []).filter((t) => t.kind === "video" && t.source === "camera");
const decodesAll = (n) => (s) =>
  s.phase === "call" && s.participants?.length === n && cameras(s).length === n && cameras(s).every((t) => t.framesDecoded > 0);

/** A guest opens a meeting link, gives her name and asks to join; returns the page (in the lobby).
 * `init`: a script for the page before the app runs. */
async function guestKnocks(who, link, name, options, init) {
  const page = await newPage(who, options);
  if (init) await page.addInitScript(init);
  await page.goto(link);
  await page.waitForSelector("[data-testid=prejoin]");
  await page.fill("input[name=name]", name);
  await page.click("[data-testid=join]");
  return page;
}

async function admitNext(moderator) {
  await moderator.locator("[data-testid=lobby-entry] [data-testid=admit]").first().click();
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, name) });

mkdirSync(ARTIFACTS, { recursive: true });
let failure = null;
try {
  // --- 1. A meeting from a chat ---
  step("the member signs in and starts a meeting from the chat");
  const member = await newPage("member");
  await member.goto(`${WARD}/#/login`);
  await member.fill("#login-user", USER);
  await member.fill("#login-password", PASSWORD);
  await member.press("#login-password", "Enter");
  // In a chat the server can read, there is no "Meeting" button: the link would carry the secret.
  await member.locator(".room-item", { hasText: PLAIN_ROOM }).click({ timeout: 90_000 });
  await member.waitForSelector(`#room-title:text-is("${PLAIN_ROOM}")`);
  await member.waitForSelector("[data-testid=room-leave]");
  check(
    "no meeting button in an unencrypted chat",
    (await member.locator("[data-testid=room-call]").count()) === 0,
    await member.locator(".room-header").textContent(),
  );
  await member.locator(".room-item", { hasText: ROOM }).click({ timeout: 90_000 });
  await member.waitForSelector(`#room-title:text-is("${ROOM}")`);
  await member.click("[data-testid=room-call]");
  await member.waitForURL(/#\/meet\//);
  await member.waitForSelector("[data-testid=prejoin]");
  // The page took the secret out of the address (into the tab's sessionStorage); the test
  // rebuilds the full link from there, as the chat message has it.
  const bare = member.url();
  const meetingId = bare.match(/#\/meet\/([A-Za-z0-9]+)$/)?.[1];
  const tabSecret = await member.evaluate((id) => sessionStorage.getItem(`ward.meet.tab.meet.${id}`), meetingId);
  meetingLink = `${WARD}/#/meet/${meetingId}/${tabSecret}`;
  await member.click("[data-testid=join]");
  await member.waitForSelector("[data-testid=call]");
  const m0 = await snap(member);
  check("member enters as moderator", m0.role === "moderator" && m0.e2ee === true, m0);

  step("a browser without end-to-end encryption for calls is refused, not joined unencrypted");
  const old = await newPage("old-browser");
  await old.addInitScript(() => {
    delete RTCRtpSender.prototype.createEncodedStreams;
    delete window.RTCRtpScriptTransform;
  });
  await old.goto(meetingLink);
  const oldText = await (await old.waitForSelector("[data-testid=meet-problem]")).textContent();
  check(
    "a browser without E2EE is told so and does not join",
    /nicht Ende-zu-Ende verschlüsseln/.test(oldText) &&
      !requests.some((q) => q.who === "old-browser" && /\/(rtc|_ward\/meet)/.test(q.url)),
    { oldText, requests: requests.filter((q) => q.who === "old-browser").map((q) => q.url) },
  );
  await old.context().close();

  step("a cut-off link is refused, not joined with the wrong key");
  const cut = await newPage("cut-off");
  await cut.goto(meetingLink.slice(0, -2));
  const cutText = await (await cut.waitForSelector("[data-testid=meet-problem]")).textContent();
  check("a cut-off link is refused", /unvollständig/.test(cutText), cutText);
  await cut.context().close();

  step("the secret leaves the address bar, and a reload of the tab still works");
  const annaPre = await newPage("anna");
  await annaPre.goto(meetingLink);
  await annaPre.waitForSelector("[data-testid=prejoin]");
  const annaUrl = annaPre.url();
  await annaPre.reload();
  await annaPre.waitForSelector("[data-testid=prejoin]");
  const afterReload = await annaPre.evaluate(() => [location.href, history.length]);
  check(
    "the secret leaves the address bar; a reload still works",
    !annaUrl.includes(tabSecret) && !afterReload[0].includes(tabSecret) && !bare.includes(tabSecret),
    { annaUrl, afterReload, bare },
  );
  await annaPre.context().close();

  step("two guests open the link and wait in the lobby");
  const anna = await guestKnocks("anna", meetingLink, "Anna Gast");
  const ben = await guestKnocks("ben", meetingLink, "Ben Gast");
  await anna.waitForSelector("[data-testid=lobby-waiting]");
  await ben.waitForSelector("[data-testid=lobby-waiting]");
  await member.waitForFunction(() => document.querySelectorAll("[data-testid=lobby-entry]").length === 2);
  check("guests wait in the lobby", true);
  await shot(anna, "meet-lobby-guest.png");
  await shot(member, "meet-lobby-moderator.png");
  await admitNext(member);
  await member.waitForFunction(() => document.querySelectorAll("[data-testid=lobby-entry]").length === 1);
  await admitNext(member);

  step("all three see each other");
  const three = [member, anna, ben];
  let r = await until("cameras decoded", three, decodesAll(2));
  check("three decode each other's cameras", r.ok, r.snaps);
  await member.waitForTimeout(1000);
  await shot(member, "meet-grid.png");
  if (process.env.WARD_STOP_AFTER === "cameras") throw new Error("stopped after the cameras (WARD_STOP_AFTER)");
  const annaId = r.snaps[1].identity;
  const benId = r.snaps[2].identity;

  step("anna shares her screen");
  await anna.click("[data-testid=toggle-screen]");
  const screenFrom = (s) =>
    (s.remotes ?? []).some((t) => t.source === "screen_share" && t.participant === annaId && t.framesDecoded > 0);
  r = await until("screen share decoded", [member, ben], screenFrom);
  check("screen share reaches the others", r.ok, r.snaps);
  await shot(member, "meet-screen-share.png");
  await member.selectOption("[data-testid=view]", "speaker");
  await member.waitForSelector("[data-testid=stage-speaker] .speaker-main .tile.screen video");
  await member.waitForTimeout(2000); // new video elements: adaptive stream resumes the layers
  await shot(member, "meet-speaker-view.png");
  await member.selectOption("[data-testid=view]", "grid");
  await anna.click("[data-testid=toggle-screen]");

  step("chat message and whiteboard stroke");
  await member.click("[data-testid=open-chat]");
  await member.fill("[data-testid=chat-input]", "Hallo zusammen, willkommen!");
  await member.press("[data-testid=chat-input]", "Enter");
  await anna.selectOption("[data-testid=view]", "board");
  const board = await anna.locator("[data-testid=board]").boundingBox();
  await anna.mouse.move(board.x + board.width * 0.2, board.y + board.height * 0.3);
  await anna.mouse.down();
  for (let i = 1; i <= 20; i++) {
    await anna.mouse.move(board.x + board.width * (0.2 + i * 0.02), board.y + board.height * (0.3 + Math.sin(i / 3) * 0.1));
  }
  await anna.mouse.up();
  await anna.click("[data-testid=tool-rect]");
  await anna.mouse.move(board.x + board.width * 0.6, board.y + board.height * 0.5);
  await anna.mouse.down();
  await anna.mouse.move(board.x + board.width * 0.85, board.y + board.height * 0.8, { steps: 5 });
  await anna.mouse.up();
  r = await until("chat and board everywhere", three, (s) =>
    s.chat?.some((c) => c.text === "Hallo zusammen, willkommen!") && s.boardOps === 2,
  );
  check("chat message and strokes reach everyone", r.ok, r.snaps.map((s) => [s.chat, s.boardOps]));
  await shot(anna, "meet-whiteboard.png");
  const download = anna.waitForEvent("download");
  await anna.click("[data-testid=export-png]");
  const png = await download;
  const pngPath = join(ARTIFACTS, "meet-whiteboard-export.png");
  await png.saveAs(pngPath);
  // Not just a file of that name: a picture with the strokes on it (not all white).
  const pngBytes = readFileSync(pngPath);
  const inked = await anna.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    const d = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
    let ink = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200) ink++;
    return { width: bitmap.width, height: bitmap.height, ink };
  }, pngBytes.toString("base64"));
  check(
    "whiteboard exports as PNG",
    png.suggestedFilename() === "whiteboard.png" && pngBytes.length > 1000 && inked.width > 100 && inked.ink > 200,
    { size: pngBytes.length, ...inked },
  );

  step("ben raises his hand");
  await ben.click("[data-testid=toggle-hand]");
  r = await until("hand seen", [member, anna], (s) => s.hands?.includes(benId));
  check("a raised hand is seen by the others", r.ok, r.snaps.map((s) => s.hands));

  step("the member mutes anna");
  await member.click("[data-testid=open-people]");
  await member.click(`[data-testid=people-panel] li[data-identity="${annaId}"] [data-testid=mute]`);
  const micOf = (s, who) => (s.remotes ?? []).find((t) => t.participant === who && t.source === "microphone");
  r = await until("anna muted", [member, ben], (s) => micOf(s, annaId)?.muted === true);
  check("a moderator mutes a participant", r.ok, r.snaps.map((s) => micOf(s, annaId)));

  step("a late joiner (whose camera is in use by another program) gets the chat and the board");
  const carl = await guestKnocks("carl", meetingLink, "Carl Spät", {}, () => {
    const md = navigator.mediaDevices;
    const original = md.getUserMedia.bind(md);
    md.getUserMedia = (c) =>
      c && c.video ? Promise.reject(new DOMException("Could not start video source", "NotReadableError")) : original(c);
  });
  await carl.waitForSelector("[data-testid=lobby-waiting]");
  await member.waitForSelector("[data-testid=lobby-entry]");
  await admitNext(member);
  r = await until("late joiner synced", [carl], (s) =>
    s.phase === "call" &&
    s.chat?.some((c) => c.text === "Hallo zusammen, willkommen!" && c.reportedBy) &&
    s.boardOps === 2 &&
    s.hands?.includes(benId),
  );
  check("late joiner gets chat, whiteboard and raised hands", r.ok, r.snaps);
  const c1 = r.snaps[0];
  check(
    "a camera that fails leaves one in the call without it, told so",
    c1.phase === "call" &&
      c1.deviceProblems?.includes("camera") &&
      c1.published?.includes("microphone") &&
      !c1.published?.includes("camera") &&
      (await carl.locator("[data-testid=device-problem]").count()) === 1,
    c1,
  );
  await carl.context().close();

  step("dora leaves the lobby while her DELETE is lost; the member then admits her anyway");
  const dora = await guestKnocks("dora", meetingLink, "Dora Geht");
  await dora.waitForSelector("[data-testid=lobby-waiting]");
  await dora.context().route(
    (url) => url.pathname.includes("/knock/"),
    (route) => (route.request().method() === "DELETE" ? route.abort("failed") : route.continue()),
  );
  await dora.click("[data-testid=leave-lobby]");
  await dora.waitForSelector("[data-testid=meet-after-left]");
  await member.waitForSelector("[data-testid=lobby-entry]");
  await admitNext(member);
  await dora.waitForTimeout(3000);
  const d1 = await snap(dora);
  check(
    "who left the lobby is not connected when admitted later",
    d1.phase === "after" && !requests.some((q) => q.who === "dora" && q.url.includes("/rtc")),
    { d1, requests: requests.filter((q) => q.who === "dora").map((q) => q.url) },
  );
  await dora.context().close();

  // --- 2. A wrong secret decodes nothing ---
  step("mallory comes with the right meeting but a wrong secret");
  const wrong = meetingLink.replace(/\/[^/]+$/, "/" + "A".repeat(24));
  const mallory = await guestKnocks("mallory", wrong, "Mallory");
  await mallory.waitForSelector("[data-testid=lobby-waiting]");
  await member.waitForSelector("[data-testid=lobby-entry]");
  await admitNext(member);
  r = await until("mallory receives video", [mallory], (s) =>
    s.phase === "call" && cameras(s).length === 3 && cameras(s).every((t) => t.bytesReceived > 100_000),
  );
  const mSnap = await snap(mallory);
  const malloryId = mSnap.identity;
  // The others receive plenty of mallory's video too (so "decodes none" below is not vacuous).
  const fromMallory = (s) => cameras(s).find((t) => t.participant === malloryId);
  await until("mallory's video reaches the others", three, (s) => fromMallory(s)?.bytesReceived > 100_000);
  check(
    "wrong secret: told the link is wrong",
    mSnap.wrongKey === true && (await mallory.locator("[data-testid=meet-wrong-key]").count()) === 1,
    { wrongKey: mSnap.wrongKey, opened: mSnap.opened, undecryptable: mSnap.undecryptable, errors: mSnap.encryptionErrors },
  );
  check("wrong secret: video arrives", r.ok, mSnap);
  check(
    "wrong secret: no frame decoded",
    cameras(mSnap).length === 3 && cameras(mSnap).every((t) => t.framesDecoded === 0),
    cameras(mSnap),
  );
  check("wrong secret: meeting data unreadable", !mSnap.chat?.length && mSnap.boardOps === 0, mSnap);
  const others = await Promise.all(three.map(snap));
  check(
    "right secret: nobody decodes mallory",
    others.every((s) => fromMallory(s)?.bytesReceived > 100_000 && fromMallory(s).framesDecoded === 0),
    others.map(cameras),
  );
  check(
    "right secret: the lock badge stays, no wrong-link warning",
    others.every((s) => s.fullyEncrypted === true && s.wrongKey === false && s.plaintextFrom?.length === 0),
    others.map((s) => [s.fullyEncrypted, s.wrongKey, s.plaintextFrom]),
  );
  check(
    "right secret: the others still decode each other",
    others.every((s) => cameras(s).filter((t) => t.participant !== malloryId && t.framesDecoded > 0).length === 2),
    others.map(cameras),
  );
  const taps = await Promise.all([...three, mallory].map((p) => p.evaluate(() => window.__wardTap)));
  check(
    "forwarded frames are all end-to-end encrypted",
    taps.every((t) => t.video > 100 && t.videoTrailer === t.video && t.videoKey > 0 && t.audio > 100 && t.audioTrailer === t.audio),
    taps,
  );
  await mallory.context().close();

  // --- 3. Lock and remove ---
  step("the member locks the meeting and removes ben");
  await member.check("[data-testid=lock]");
  await member.waitForSelector(".call .badge");
  await member.click(`[data-testid=people-panel] li[data-identity="${benId}"] [data-testid=remove]`);
  await ben.waitForSelector("[data-testid=meet-after-removed]");
  r = await until("ben gone", [member, anna], (s) => !s.participants.includes(benId));
  check("removed guest is disconnected", r.ok, r.snaps);
  await ben.click("[data-testid=meet-rejoin]");
  await ben.waitForSelector("[data-testid=prejoin]");
  await ben.fill("input[name=name]", "Ben Gast");
  await ben.click("[data-testid=join]");
  const refused = await ben.waitForSelector("[data-testid=meet-problem]");
  const refusedText = await refused.textContent();
  check("removed guest cannot knock again while locked", /geschlossen/.test(refusedText), refusedText);
  await ben.context().close();

  step("the member ends the meeting for all");
  await member.click("[data-testid=end-for-all]");
  await anna.waitForSelector("[data-testid=meet-after-ended]");
  await member.waitForSelector("[data-testid=meet-after-ended]");
  check("ending the meeting disconnects everyone", true);
  const gone = await newPage("anna-again");
  await gone.goto(meetingLink);
  const goneText = await (await gone.waitForSelector("[data-testid=meet-problem]")).textContent();
  check("an ended meeting's link no longer works", /beendet/.test(goneText), goneText);
  await gone.context().close();
  await anna.context().close();

  // --- 4. A consultation ---
  step("the member opens a consultation room for the chat and makes a patient link");
  await member.goto(`${WARD}/#/meetings`);
  await member.selectOption("[data-testid=meeting-chat]", { label: ROOM }, { timeout: 90_000 });
  await member.click("[data-testid=start-consultation]");
  await member.waitForURL(/#\/meet\//);
  await member.waitForSelector("[data-testid=prejoin]");
  await member.click("[data-testid=join]");
  await member.waitForSelector("[data-testid=call]");
  await member.click("[data-testid=open-links]");
  await member.click("[data-testid=create-patient-link]");
  patientLink = await member.locator("[data-testid=patient-link]").first().inputValue();
  check("patient link made", /#\/patient\/[^/]+\/[A-Za-z0-9_-]{22,}$/.test(patientLink), patientLink);
  const consultationId = new URL(member.url()).hash.split("/")[2];
  const roomSecret = await member.evaluate((id) => sessionStorage.getItem(`ward.meet.tab.meet.${id}`), consultationId);
  const patient1Secret = patientLink.split("/").pop();
  check(
    "a patient link carries its appointment's secret, not the room's",
    roomSecret?.length === 24 && patient1Secret.length === 24 && patient1Secret !== roomSecret,
    { consultationId, patientSecretLength: patient1Secret.length },
  );

  // The patient is on her phone.
  const patient = await guestKnocks("patient", patientLink, "Petra Patientin", { phone: true });
  await patient.waitForSelector("[data-testid=lobby-waiting]");
  await shot(patient, "meet-patient-waiting.png");
  // Her phone sleeps (no network) for longer than the server's knock expiry: the doctor's
  // lobby drops her; when the phone wakes, her page knocks again by itself with the same link.
  await member.waitForSelector("[data-testid=lobby-entry]");
  await patient.context().setOffline(true);
  await member.waitForSelector("[data-testid=lobby-entry]", { state: "detached" });
  check("a patient whose phone sleeps drops out of the lobby", true);
  await patient.context().setOffline(false);
  await member.waitForSelector("[data-testid=lobby-entry]");
  await patient.waitForSelector("[data-testid=lobby-waiting]");
  check("her page knocks again when the phone wakes", (await snap(patient)).phase === "waiting");
  const intruder = await guestKnocks("intruder", patientLink, "Irgendwer");
  const intruderText = await (await intruder.waitForSelector("[data-testid=meet-problem]")).textContent();
  check("second person with the same link refused", /schon benutzt/.test(intruderText), intruderText);
  await intruder.context().close();
  const notice = await (await member.waitForSelector("[data-testid=lobby-entry]")).textContent();
  check("doctor sees the patient waiting", notice.includes("Petra Patientin"), notice);
  await shot(member, "meet-doctor-patient-waiting.png");
  await admitNext(member);
  r = await until("doctor and patient see each other", [member, patient], decodesAll(1));
  check("doctor and patient decode each other", r.ok, r.snaps);
  await shot(patient, "meet-consultation.png");
  const patientId = r.snaps[1].identity;
  await member.click("[data-testid=open-people]");
  await member.click(`[data-testid=people-panel] li[data-identity="${patientId}"] [data-testid=remove]`);
  await patient.waitForSelector("[data-testid=meet-after-sessionOver]");
  check("patient sees the end of the consultation", true);
  const again = await newPage("patient-again");
  await again.goto(patientLink);
  const againText = await (await again.waitForSelector("[data-testid=meet-problem]")).textContent();
  check("link no longer works after the session", /gilt nicht mehr/.test(againText), againText);
  await again.context().close();

  // The next patients: one leaves with "Leave", one's browser goes away without a word (its
  // goodbye request lost, as in a crash); neither blocks the next one's admission.
  async function nextPatient(who, name) {
    await member.click("[data-testid=open-links]");
    await member.click("[data-testid=create-patient-link]");
    const link = await member.locator("[data-testid=patient-link]").first().inputValue();
    const page = await guestKnocks(who, link, name);
    await page.waitForSelector("[data-testid=lobby-waiting]");
    await member.waitForSelector("[data-testid=lobby-entry]");
    await admitNext(member);
    const seen = await until(`doctor and ${who} see each other`, [member, page], decodesAll(1));
    check(`doctor admits ${who}`, seen.ok, seen.snaps);
    await member.click("[data-testid=open-people]");
    return page;
  }
  /** The colleague's browser: signed in (the meeting page needs only the session). */
  async function colleaguePage(who) {
    const page = await newPage(who);
    await page.addInitScript(
      ([userId, accessToken]) => localStorage.setItem("ward.session", JSON.stringify({ userId, accessToken })),
      [COLLEAGUE_USER, COLLEAGUE_TOKEN],
    );
    return page;
  }
  step("a patient leaves; the doctor admits the next patient");
  const second = await nextPatient("patient-2", "Paul Zweiter");
  // Per-appointment keys: a page keyed with the first appointment's secret (what the first
  // patient's link carried) is in the second session and decodes none of it.
  step("a colleague without the doctor's hand-over is refused while the session runs");
  const outsider = await colleaguePage("outsider");
  await outsider.goto(`${WARD}/#/handover/${consultationId}/${patient1Secret}`);
  const refusal = await (await outsider.waitForSelector("[data-testid=meet-problem]")).textContent();
  check("a colleague without a hand-over is refused during a session", /läuft gerade eine Sprechstunde/.test(refusal), refusal);
  await outsider.context().close();
  // The doctor lets her into this session (through the API, so the doctor's page stays).
  const granted = await member.evaluate(
    async ([id, userId]) => {
      const { accessToken } = JSON.parse(localStorage.getItem("ward.session"));
      const r = await fetch(`/_ward/meet/v1/meetings/${id}/handover`, {
        method: "POST",
        headers: { Authorization: `Bearer ${accessToken}`, "Content-Type": "application/json" },
        body: JSON.stringify({ user_id: userId }),
      });
      return r.status;
    },
    [consultationId, COLLEAGUE_USER],
  );
  check("the doctor hands the session to the colleague", granted === 200, granted);
  step("a page with the first patient's secret joins the second session");
  const spy = await colleaguePage("spy");
  await spy.goto(`${WARD}/#/handover/${consultationId}/${patient1Secret}`);
  await spy.waitForSelector("[data-testid=prejoin]");
  await spy.click("[data-testid=join]");
  r = await until("the spy receives the second session's video", [spy], (s) =>
    s.phase === "call" && cameras(s).length === 2 && cameras(s).every((t) => t.bytesReceived > 100_000),
  );
  const spySnap = await snap(spy);
  check(
    "the first appointment's secret decodes nothing of the second session",
    r.ok && cameras(spySnap).every((t) => t.framesDecoded === 0) && !spySnap.chat?.length,
    cameras(spySnap),
  );
  r = await until("doctor and patient-2 still decode each other", [member, second], (s) =>
    cameras(s).some((t) => t.participant !== spySnap.identity && t.framesDecoded > 0),
  );
  check("doctor and patient-2 decode each other with the second appointment's key", r.ok, r.snaps);
  await spy.context().close();
  await until("the spy is gone", [member, second], (s) => !s.participants?.includes(spySnap.identity));
  await second.click("[data-testid=leave]");
  await second.waitForSelector("[data-testid=meet-after-left]");
  check("a patient who left gets no way back in", (await second.locator("[data-testid=meet-rejoin]").count()) === 0);
  await second.context().close();
  const third = await nextPatient("patient-3", "Pia Dritte");
  step("a patient's browser goes away without leaving; the doctor admits the next patient");
  await third.route("**/knock/**", (route) => route.abort());
  await third.context().close();
  const absent = await member.waitForSelector("[data-testid=people-panel] [data-testid=admitted-absent]");
  const absentText = await absent.textContent();
  check("the doctor sees the departed patient's open session", absentText.includes("Pia Dritte"), absentText);
  const fourth = await nextPatient("patient-4", "Peter Vierter");
  await member.waitForSelector("[data-testid=people-panel] [data-testid=admitted-absent]", { state: "detached" });
  check("admitting the next patient ended the departed one's session", true);

  // --- 5. Hand-over ---
  step("the doctor hands the consultation with patient-4 over to a colleague");
  await member.fill("[data-testid=hand-over-to]", "@nobody:localhost");
  await member.click("[data-testid=hand-over]");
  const handOverError = await (await member.waitForSelector("[data-testid=hand-over-error]")).textContent();
  check(
    "a hand-over to someone who may not moderate is refused",
    /nicht moderieren/.test(handOverError) && (await member.locator("[data-testid=handover-link]").count()) === 0,
    handOverError,
  );
  await member.fill("[data-testid=hand-over-to]", COLLEAGUE_USER);
  await member.click("[data-testid=hand-over]");
  const handover = await member.locator("[data-testid=handover-link]").inputValue();
  check(
    "the hand-over link carries the appointment's secret, not the room's",
    handover.startsWith(`${WARD}/#/handover/${consultationId}/`) && !handover.includes(roomSecret),
    handover.replace(/[^/]+$/, "…"),
  );
  const colleague = await colleaguePage("colleague");
  await colleague.goto(handover);
  await colleague.waitForSelector("[data-testid=prejoin]");
  await colleague.click("[data-testid=join]");
  await member.waitForSelector("[data-testid=meet-after-handedOver]");
  r = await until("colleague and patient-4 see each other", [colleague, fourth], decodesAll(1));
  check(
    "colleague takes over: the patient stays and decodes her, the doctor is gone",
    r.ok && r.snaps[1].participants[0] === r.snaps[0].identity && r.snaps[0].participants[0] === r.snaps[1].identity,
    r.snaps,
  );
  await colleague.context().close();
  await fourth.context().close();

  // Guests and patients get the small meeting page: matrix-js-sdk is never loaded for them.
  const sdk = requests.filter((q) => q.who !== "member" && /\/assets\/(matrix|rust-crypto|App)-/.test(q.url));
  check(
    "guests and patients do not load matrix-js-sdk",
    sdk.length === 0 && requests.some((q) => q.who === "patient" && /\/assets\/MeetPage-/.test(q.url)),
    sdk,
  );
} catch (e) {
  failure = String(e?.stack || e);
  step(`failure: ${failure}`);
  for (const [i, ctx] of browser.contexts().entries()) {
    for (const page of ctx.pages()) await page.screenshot({ path: join(ARTIFACTS, `meet-failure-${i}.png`) }).catch(() => {});
  }
} finally {
  await browser.close();
}
timings.total = Date.now() - started;
const result = { ward: WARD, failure, checks, meetingLink, patientLink, timings, requests, problems };
console.log(`RESULT ${JSON.stringify({ ...result, console: consoleLog.slice(-120) })}`);
