// Ward's web app in a real browser: playwright-core driving Debian's Chromium against a running
// Ward that serves the app itself (started by tests/acceptance/test_browser.py).
//
// A browser that cannot reach the API gets a clear error. An admin (German browser) sees the
// wrong-password error, signs in and creates an invite link; a colleague (English browser,
// phone-sized screen) opens the link in a second browser context and signs up, starts an
// encrypted DM with the admin; the admin accepts; messages go both ways, with typing notice and
// read receipt; unread counts; they verify each other by emoji; an image (encrypted attachment) is
// shown decrypted on the other side, a large one as a thumbnail first; a file over the server's limit is refused with the limit
// named, a slow upload shows its progress and is cancelled; one edits a
// message, the other deletes one, reactions and replies, each seen on the other side; a group is
// created, joined and left; a display name set in the settings shows on the other side; the
// admin signs in on a second browser and verifies it from the first by emoji (Settings → devices),
// after which each shows the other as verified and the new one cross-signed; the room's events on
// the server are `m.room.encrypted`; dialogs keep keyboard focus inside and return it to their
// opener; the admin signs out at
// the end, and restores the key backup with the recovery key in a third browser context to read
// the earlier messages. Every request the pages make is recorded and must go to Ward's origin, and no
// Content-Security-Policy violation may be reported. The crypto store in IndexedDB must hold no
// readable user ID and its key only wrapped; sign-out deletes both; a session from before the
// store was encrypted keeps working (with a hint), one whose key is gone says to sign in again. Screenshots of both sides go to
// WARD_ARTIFACTS.
//
// Env: WARD_URL, WARD_ADMIN_USER, WARD_ADMIN_PASSWORD, WARD_ARTIFACTS, WARD_MAX_UPLOAD_BYTES (the
// server's upload limit, 1 MiB), optional CHROMIUM (default /usr/bin/chromium). Prints "PASS" at the end; exits non-zero on failure.
// With WARD_PEER set (a Matrix user ID), the admin also invites that user into the DM and the
// script prints "ROOM <room id>", waits for a line on stdin (the peer joined), sends "Hallo an
// alle drei" and waits until both pages show the peer's encrypted "Hallo von nio".

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { launchChromium } from "./browser.mjs";

const WARD = new URL(process.env.WARD_URL).origin;
const ADMIN = process.env.WARD_ADMIN_USER;
const ADMIN_PW = process.env.WARD_ADMIN_PASSWORD;
const ARTIFACTS = process.env.WARD_ARTIFACTS;
const PEER = process.env.WARD_PEER || null;
/** The server's upload limit (test_browser.py sets it small). */
const UPLOAD_LIMIT = Number(process.env.WARD_MAX_UPLOAD_BYTES || 1024 * 1024);
const COLLEAGUE = `kollegin${Date.now().toString(36)}`;
const COLLEAGUE_PW = "sicheres Passwort 123";
/** Long enough for the first sync, key upload and the wasm crypto start on a busy machine. */
const STEP_MS = 60_000;

const requests = []; // { who, url }
const problems = []; // CSP violations, page errors
const consoleLog = []; // the pages' console, shown on failure

function step(msg) {
  console.log(`-- ${msg}`);
}

function watch(context, who) {
  context.on("request", (r) => requests.push({ who, url: r.url() }));
  context.on("page", (page) => {
    page.on("websocket", (ws) => requests.push({ who, url: ws.url() }));
    page.on("console", (m) => {
      consoleLog.push(`${who} ${m.type()}: ${m.text().slice(0, 300)}`);
      if (m.type() === "error" && /Content.Security.Policy/i.test(m.text())) problems.push(`${who}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`${who}: page error: ${e.message}`));
  });
  // Belt and braces: nothing may leave for another origin even if the app tried.
  context.route(
    (url) => !isWard(url.href),
    (route) => route.abort("blockedbyclient"),
  );
}

function isWard(url) {
  if (url.startsWith("data:") || url.startsWith("blob:")) return true; // never leaves the page
  try {
    return new URL(url).origin === WARD;
  } catch {
    return false;
  }
}

/**
 * In the page: the IndexedDB databases, whether the crypto store shows `needle` (a user ID part)
 * anywhere in its keys or values, and the store-key records (is the wrapping key extractable; a
 * raw 32-byte key would show as rawLength).
 */
async function inspectStores(needle) {
  const open = (name) =>
    new Promise((resolve, reject) => {
      const r = indexedDB.open(name);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
  const all = (db, store) =>
    new Promise((resolve, reject) => {
      const tx = db.transaction(store, "readonly");
      const values = tx.objectStore(store).getAll();
      const keys = tx.objectStore(store).getAllKeys();
      tx.oncomplete = () => resolve({ values: values.result, keys: keys.result });
      tx.onerror = () => reject(tx.error);
    });
  const text = (v) => {
    if (v instanceof ArrayBuffer) v = new Uint8Array(v);
    if (ArrayBuffer.isView(v)) return new TextDecoder("latin1").decode(v);
    if (Array.isArray(v)) return v.map(text).join(" ");
    if (v && typeof v === "object") return Object.entries(v).map(([k, x]) => `${k} ${text(x)}`).join(" ");
    return String(v);
  };
  const names = (await indexedDB.databases()).map((d) => d.name);
  const crypto = names.filter((n) => n.startsWith("matrix-js-sdk::"));
  const plaintextHits = [];
  let entries = 0;
  for (const name of crypto) {
    const db = await open(name);
    for (const store of db.objectStoreNames) {
      // The SDK's store keeps the IDs of users whose devices it tracks as plain keys, by design
      // (matrix-sdk-indexeddb's tracked_users: metadata the server has anyway). Everything else
      // is encrypted when the store has a key.
      if (store === "tracked_users") continue;
      const { values, keys } = await all(db, store);
      entries += values.length;
      const seen = `${text(keys)} | ${text(values)}`;
      const at = seen.indexOf(needle);
      if (at >= 0) plaintextHits.push(`${name}/${store}: …${seen.slice(Math.max(0, at - 60), at + 60)}…`);
    }
    db.close();
  }
  const keys = [];
  if (names.includes("ward-store-keys")) {
    const db = await open("ward-store-keys");
    for (const r of (await all(db, "keys")).values) {
      keys.push({
        extractable: r.wrappingKey?.extractable,
        rawLength: r.key ? r.key.byteLength : null,
        ciphertextLength: r.ciphertext?.byteLength,
      });
    }
    db.close();
  }
  return { crypto, entries, plaintextHits, keys };
}

async function signIn(page, user, password) {
  await page.fill("#login-user", user);
  await page.fill("#login-password", password);
  await page.click("form button[type=submit]");
}

const browser = await launchChromium();
let failed = false;
let restore = null; // the third context's page, once it exists
let admin2 = null; // the admin's second browser, once it exists
const adminCtx = await browser.newContext({ locale: "de-DE", viewport: { width: 1200, height: 800 } });
const colleagueCtx = await browser.newContext({
  locale: "en-GB",
  viewport: { width: 390, height: 844 },
  isMobile: true,
  hasTouch: true,
});
watch(adminCtx, "admin");
watch(colleagueCtx, "colleague");
const admin = await adminCtx.newPage();
const colleague = await colleagueCtx.newPage();
for (const p of [admin, colleague]) p.setDefaultTimeout(STEP_MS);
mkdirSync(ARTIFACTS, { recursive: true });

try {
  step("admin: wrong password gives a clear (German) error");
  await admin.goto(`${WARD}/`);
  await admin.waitForSelector("#login-user");
  if ((await admin.getAttribute("html", "lang")) !== "de") throw new Error("the German browser did not get German");
  await signIn(admin, ADMIN, "falsches Passwort");
  const err = await admin.waitForSelector("[data-testid=login-error]");
  const errText = await err.textContent();
  if (!errText.includes("Passwort ist falsch")) throw new Error(`unexpected login error: ${errText}`);

  step("a browser that cannot reach the API says so");
  const offlineCtx = await browser.newContext({ locale: "en-GB" });
  watch(offlineCtx, "offline");
  await offlineCtx.route(`${WARD}/_matrix/**`, (route) => route.abort("connectionrefused"));
  const offline = await offlineCtx.newPage();
  await offline.goto(`${WARD}/#/login`);
  await signIn(offline, ADMIN, ADMIN_PW);
  const offlineErr = await (await offline.waitForSelector("[data-testid=login-error]")).textContent();
  if (!offlineErr.includes("cannot be reached")) throw new Error(`unexpected offline error: ${offlineErr}`);
  await offlineCtx.close();

  step("admin: signs in");
  await signIn(admin, ADMIN, ADMIN_PW);
  await admin.waitForSelector("[data-testid=me]");

  step("admin: the crypto store in IndexedDB is encrypted; its key is stored only wrapped");
  const store = await admin.evaluate(inspectStores, ADMIN);
  console.log(`   ${JSON.stringify(store)}`);
  if (!store.crypto.includes("matrix-js-sdk::matrix-sdk-crypto")) throw new Error("no crypto store found");
  if (store.plaintextHits.length) throw new Error(`the crypto store holds readable data: ${store.plaintextHits.join(", ")}`);
  if (store.keys.length !== 1 || store.keys[0].extractable !== false || store.keys[0].rawLength !== null) {
    throw new Error(`unexpected store key records: ${JSON.stringify(store.keys)}`);
  }

  step("admin: sets up key backup and gets a recovery key");
  await admin.click("[data-testid=security]");
  await admin.fill("#backup-password", ADMIN_PW);
  await admin.click("[data-testid=backup-setup]");
  const recoveryKey = await (await admin.waitForSelector("#recovery-key")).inputValue();
  if (recoveryKey.replace(/\s/g, "").length < 40) throw new Error(`odd recovery key ${recoveryKey}`);
  await admin.click(".dialog button.primary");

  step("admin: creates an invite link");
  await admin.click("[data-testid=invite-colleague]");
  await admin.click("[data-testid=create-invite]");
  const link = await (await admin.waitForSelector("#invite-link")).inputValue();
  if (!link.startsWith(`${WARD}/#/register?token=`)) throw new Error(`unexpected invite link ${link}`);
  await admin.keyboard.press("Escape");

  step("colleague: opens the link in a second browser context and signs up");
  await colleague.goto(link);
  await colleague.waitForSelector("#reg-user");
  await colleague.fill("#reg-user", COLLEAGUE);
  await colleague.fill("#reg-password", COLLEAGUE_PW);
  await colleague.fill("#reg-confirm", COLLEAGUE_PW);
  await colleague.click("form button[type=submit]");
  await colleague.waitForSelector("[data-testid=me]");
  const adminId = `@${ADMIN}:`;

  step("colleague: finds the admin in the user directory and starts an encrypted DM");
  await colleague.click('a[href="#/new"]');
  await colleague.fill("#user-search", ADMIN);
  await colleague.click(`[data-user-id^="${adminId}"]`);
  await colleague.waitForSelector(".room-header .e2ee:not(.off)");
  const roomId = decodeURIComponent(new URL(colleague.url()).hash.replace("#/room/", ""));
  await colleague.fill("#composer-input", "Hallo, hier ist die neue Kollegin!");
  await colleague.press("#composer-input", "Enter");
  await colleague.waitForSelector(".msg.mine:not(.pending) >> text=Hallo, hier ist die neue Kollegin!");

  step("admin: sees the invite in the room list, accepts, reads the decrypted message");
  await admin.click(`[data-room-id="${roomId}"]`);
  await admin.click(".invite-panel button.primary");
  await admin.waitForSelector(".msg:not(.mine) >> text=Hallo, hier ist die neue Kollegin!");

  step("colleague: sees the read receipt; admin: sees the typing notice");
  await colleague.waitForSelector(".read-by");
  await colleague.fill("#composer-input", "Moment");
  await admin.waitForSelector(".typing >> text=schreibt");
  await colleague.fill("#composer-input", "");

  step("admin: replies; colleague receives it");
  await admin.fill("#composer-input", "Willkommen im Team!");
  await admin.press("#composer-input", "Enter");
  await colleague.waitForSelector(".msg:not(.mine) >> text=Willkommen im Team!");

  step("admin and colleague verify each other by comparing emoji (SAS)");
  await admin.click("[data-testid=room-verify]");
  await colleague.click("[data-testid=verify-accept]");
  const sasEmoji = async (page) => {
    await page.waitForSelector("[data-testid=sas-emoji]");
    return page.$$eval("[data-testid=sas-emoji] li", (items) =>
      items.map((li) => [li.querySelector(".emoji-char").textContent, li.querySelector(".emoji-name").textContent]),
    );
  };
  const adminEmoji = await sasEmoji(admin);
  const colleagueEmoji = await sasEmoji(colleague);
  const chars = (list) => list.map(([c]) => c).join("");
  if (adminEmoji.length !== 7 || chars(adminEmoji) !== chars(colleagueEmoji)) {
    throw new Error(`emoji differ: ${JSON.stringify(adminEmoji)} / ${JSON.stringify(colleagueEmoji)}`);
  }
  // Each side names them in its own language (the spec's translations); these four are the same in both.
  const sameInBoth = ["Panda", "Pizza", "Hammer", "Ball"];
  adminEmoji.forEach(([c, de], i) => {
    const en = colleagueEmoji[i][1];
    if (!sameInBoth.includes(en) && de === en) throw new Error(`emoji ${c} not named in German: ${de}`);
  });
  console.log(`   ${adminEmoji.map(([c, n]) => `${c} ${n}`).join(", ")}`);
  await admin.click("[data-testid=sas-match]");
  await colleague.click("[data-testid=sas-match]");
  await admin.waitForSelector("[data-testid=verified]");
  await colleague.waitForSelector("[data-testid=verified]");
  await admin.keyboard.press("Escape");
  await colleague.keyboard.press("Escape");
  // The request itself is not shown as a message (its fallback text tells other clients to upgrade).
  for (const page of [admin, colleague]) {
    if (await page.$('.msg:has-text("in-chat key verification")')) throw new Error("verification request shown as a message");
  }

  step("admin: sends an image; the colleague sees it decrypted");
  const png = await admin.evaluate(async () => {
    const canvas = document.createElement("canvas");
    canvas.width = 64;
    canvas.height = 48;
    const g = canvas.getContext("2d");
    g.fillStyle = "#1f6f5c";
    g.fillRect(0, 0, 64, 48);
    g.fillStyle = "#f5c400";
    g.fillRect(16, 12, 32, 24);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    return Array.from(new Uint8Array(await blob.arrayBuffer()));
  });
  await admin.setInputFiles("[data-testid=attach]", {
    name: "roentgen.png",
    mimeType: "image/png",
    buffer: Buffer.from(png),
  });
  const img = await colleague.waitForSelector('.msg:not(.mine) img.image[alt="roentgen.png"]');
  await colleague.waitForFunction((el) => el.complete && el.naturalWidth === 64 && el.naturalHeight === 48, img);
  if (!(await img.getAttribute("src")).startsWith("blob:")) throw new Error("the image was not decrypted locally");

  step("admin: sends a large image; the colleague sees its thumbnail, then the full image on request");
  const bigPng = await admin.evaluate(async () => {
    const canvas = document.createElement("canvas");
    canvas.width = 1600;
    canvas.height = 1200;
    const g = canvas.getContext("2d");
    g.fillStyle = "#1a5fb4";
    g.fillRect(0, 0, 1600, 1200);
    g.fillStyle = "#ffffff";
    g.fillRect(400, 300, 800, 600);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    return Array.from(new Uint8Array(await blob.arrayBuffer()));
  });
  await admin.setInputFiles("[data-testid=attach]", {
    name: "ultraschall.png",
    mimeType: "image/png",
    buffer: Buffer.from(bigPng),
  });
  const thumb = await colleague.waitForSelector('.msg:not(.mine) img.image[alt="ultraschall.png"][data-thumbnail=true]');
  await colleague.waitForFunction((el) => el.complete && el.naturalWidth === 800 && el.naturalHeight === 600, thumb);
  await colleague.click('button.thumbnail:has(img[alt="ultraschall.png"])');
  const fullImg = await colleague.waitForSelector('.msg:not(.mine) img.image[alt="ultraschall.png"]:not([data-thumbnail])');
  await colleague.waitForFunction((el) => el.complete && el.naturalWidth === 1600 && el.naturalHeight === 1200, fullImg);

  step("admin: a file over the server's limit is refused before uploading, naming the limit");
  await admin.setInputFiles("[data-testid=attach]", {
    name: "befund.pdf",
    mimeType: "application/pdf",
    buffer: Buffer.alloc(UPLOAD_LIMIT + 1, 7),
  });
  const tooLarge = await (await admin.waitForSelector(".composer .error")).textContent();
  if (!tooLarge.includes("befund.pdf ist zu groß") || !tooLarge.includes("bis 1 MB")) {
    throw new Error(`unexpected too-large message: ${tooLarge}`);
  }

  step("admin: a slow upload shows its progress and can be cancelled; nothing is sent");
  const cdp = await adminCtx.newCDPSession(admin);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: 100 * 1024,
  });
  await admin.setInputFiles("[data-testid=attach]", {
    name: "scan.pdf",
    mimeType: "application/pdf",
    buffer: Buffer.alloc(UPLOAD_LIMIT - 1024, 3),
  });
  await admin.waitForSelector(".composer .error", { state: "detached" });
  const bar = await admin.waitForSelector("[data-testid=upload] progress");
  await admin.waitForFunction((el) => el.value > 0 && el.value < el.max, bar);
  await admin.screenshot({ path: join(ARTIFACTS, "upload.png") });
  await admin.click("[data-testid=upload-cancel]");
  await admin.waitForSelector(".composer .notice >> text=abgebrochen");
  await admin.waitForSelector("[data-testid=upload]", { state: "detached" });
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: -1,
  });
  await cdp.detach();

  step("colleague: sees an unread count in the list, which clears on reading");
  await colleague.click("header .back");
  await admin.fill("#composer-input", "Kurze Frage");
  await admin.press("#composer-input", "Enter");
  await colleague.waitForSelector(`[data-room-id="${roomId}"] .badge:has-text("1")`);
  await colleague.waitForSelector(`[data-room-id="${roomId}"] .room-preview:has-text("Kurze Frage")`);
  await colleague.click(`[data-room-id="${roomId}"]`);
  await colleague.waitForSelector(".msg:not(.mine) >> text=Kurze Frage");
  await colleague.click("header .back");
  await colleague.waitForSelector(`[data-room-id="${roomId}"] .badge`, { state: "detached" });
  await colleague.click(`[data-room-id="${roomId}"]`);

  step("colleague: edits a message; admin sees the new text");
  await colleague.click('.msg.mine:has-text("neue Kollegin!") button[aria-label="Edit message"]');
  await colleague.fill("#composer-input", "Hallo, hier ist Anna, die neue Kollegin!");
  await colleague.press("#composer-input", "Enter");
  await admin.waitForSelector('.msg:not(.mine):has-text("Hallo, hier ist Anna, die neue Kollegin!") .edited');
  if (await admin.$('.msg:has-text("* Hallo")')) throw new Error("the edit showed as a message of its own");

  step("admin: deletes a message; colleague sees it gone");
  admin.once("dialog", (d) => d.accept());
  await admin.click('.msg.mine:has-text("Willkommen im Team!") button[aria-label="Nachricht löschen"]');
  await colleague.waitForSelector('.msg.deleted:has-text("Message deleted")');
  if (await colleague.$('.msg:has-text("Willkommen im Team!")')) throw new Error("the deleted message is still shown");

  step("admin: reacts to a message; colleague: replies to the image; each sees the other's");
  await admin.click('.msg:has-text("Anna, die neue Kollegin!") button[aria-label="Auf diese Nachricht reagieren"]');
  await admin.click('.picker button[aria-label="Mit 👍 reagieren"]');
  await colleague.waitForSelector('.msg.mine:has-text("Anna, die neue Kollegin!") .reaction:has-text("👍 1")');
  await colleague.click('.msg:has(img.image) button[aria-label="Reply to this message"]');
  await colleague.fill("#composer-input", "Sieht gut aus");
  await colleague.press("#composer-input", "Enter");
  await admin.waitForSelector('.msg:not(.mine):has(.quote:has-text("roentgen.png")):has-text("Sieht gut aus")');

  step("the server holds only ciphertext for this room");
  const types = await colleague.evaluate(async (roomId) => {
    const { accessToken } = JSON.parse(localStorage.getItem("ward.session"));
    const r = await fetch(
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`,
      { headers: { Authorization: `Bearer ${accessToken}` } },
    );
    const body = await r.json();
    // The verification request of the emoji step goes out unencrypted (it carries no secret).
    return body.chunk
      .filter((e) => e.type === "m.room.message" || e.type === "m.room.encrypted")
      .filter((e) => e.content.msgtype !== "m.key.verification.request")
      .map((e) => [e.type, JSON.stringify(e.content)]);
  }, roomId);
  if (types.length < 5 || types.some(([type]) => type !== "m.room.encrypted")) {
    throw new Error(`expected only m.room.encrypted messages, got ${JSON.stringify(types)}`);
  }
  if (types.some(([, content]) => content.includes("Willkommen") || content.includes("Kollegin!"))) {
    throw new Error("plaintext found in the server's copy of the room");
  }

  if (PEER) {
    step(`admin: invites ${PEER} into the DM (room header, user search) for the matrix-nio check`);
    await admin.click("[data-testid=room-invite]");
    await admin.fill("#user-search", PEER);
    await admin.click(`.dialog [data-user-id="${PEER}"]`);
    await admin.waitForSelector("[data-testid=invited]");
    await admin.keyboard.press("Escape");
    console.log(`ROOM ${roomId}`);
    const rl = createInterface({ input: process.stdin });
    await new Promise((resolve) => rl.once("line", resolve)); // the peer has joined
    rl.close();
    const localpart = PEER.slice(1).split(":")[0];
    await admin.waitForSelector(`.state-line:has-text("${localpart} ist beigetreten")`);
    await admin.fill("#composer-input", "Hallo an alle drei");
    await admin.press("#composer-input", "Enter");
    await admin.waitForSelector(".msg.mine:not(.pending) >> text=Hallo an alle drei");
    // A room name made from members, in German.
    await admin.waitForSelector(`#room-title:has-text(" und ")`);
    step("admin: decrypts the matrix-nio user's reply");
    await admin.waitForSelector(".msg:not(.mine) >> text=Hallo von nio");
    await colleague.waitForSelector(".msg:not(.mine) >> text=Hallo von nio");
  }

  step("colleague: creates an encrypted group with the admin; admin accepts; colleague leaves");
  await colleague.click("header .back");
  await colleague.click('a[href="#/new"]');
  await colleague.click("[data-testid=group-mode]");
  await colleague.fill("#group-name", "Praxisteam");
  await colleague.fill("#user-search", ADMIN);
  await colleague.click(`[data-user-id^="${adminId}"]`);
  await colleague.click("[data-testid=create-group]");
  await colleague.waitForSelector('#room-title:has-text("Praxisteam")');
  await colleague.waitForSelector(".room-header .e2ee:not(.off)");
  await admin.click('.room-item:has-text("Praxisteam")');
  await admin.click(".invite-panel button.primary");
  await admin.fill("#composer-input", "Teamtreffen um acht");
  await admin.press("#composer-input", "Enter");
  await colleague.waitForSelector(".msg:not(.mine) >> text=Teamtreffen um acht");
  colleague.once("dialog", (d) => d.accept());
  await colleague.click("[data-testid=room-leave]");
  await colleague.waitForSelector(`[data-room-id="${roomId}"]`);
  await colleague.waitForSelector('.room-item:has-text("Praxisteam")', { state: "detached" });
  await admin.waitForSelector(".state-line >> text=hat den Chat verlassen");
  await colleague.click(`[data-room-id="${roomId}"]`);
  await admin.click(`[data-room-id="${roomId}"]`);

  step("colleague: sets a display name in the settings; the admin sees it");
  await colleague.click("header .back");
  await colleague.click("[data-testid=settings]");
  await colleague.waitForSelector(`.devices [data-device-id]`);
  await colleague.fill("#display-name", "Anna Schmidt");
  await colleague.click('.dialog form button[type=submit]:has-text("Save")');
  await colleague.waitForSelector('.dialog [role=status]:has-text("Saved")');
  await colleague.keyboard.press("Escape");
  await colleague.click(`[data-room-id="${roomId}"]`);
  await admin.waitForSelector('#room-title:has-text("Anna Schmidt")');
  await admin.waitForSelector('.state-line:has-text("heißt jetzt Anna Schmidt")');

  step("admin signs in on a second browser and verifies it from the first by emoji (to-device SAS)");
  const admin2Ctx = await browser.newContext({ locale: "de-DE", viewport: { width: 1200, height: 800 } });
  watch(admin2Ctx, "admin2");
  admin2 = await admin2Ctx.newPage();
  admin2.setDefaultTimeout(STEP_MS);
  await admin2.goto(`${WARD}/`);
  await signIn(admin2, ADMIN, ADMIN_PW);
  await admin2.waitForSelector("[data-testid=me]");
  const deviceOf = (page) => page.evaluate(() => JSON.parse(localStorage.getItem("ward.session")).deviceId);
  const adminDevice = await deviceOf(admin);
  const admin2Device = await deviceOf(admin2);
  await admin.click("[data-testid=settings]");
  const admin2Row = `.devices [data-device-id="${admin2Device}"]`;
  await admin.click(`${admin2Row}[data-trust=unverified] [data-testid=device-verify]`);
  await admin2.click("[data-testid=verify-accept]");
  const ownEmoji = await (await admin.waitForSelector("[data-testid=sas-emoji]")).textContent();
  const ownEmoji2 = await (await admin2.waitForSelector("[data-testid=sas-emoji]")).textContent();
  if (ownEmoji !== ownEmoji2) throw new Error(`emoji differ: ${ownEmoji} / ${ownEmoji2}`);
  await admin.click("[data-testid=sas-match]");
  await admin2.click("[data-testid=sas-match]");
  await admin.waitForSelector("[data-testid=verified]");
  await admin2.waitForSelector("[data-testid=verified]");
  step("both browsers show the other device as verified, the new one cross-signed");
  await admin.waitForSelector(`${admin2Row}[data-trust=verified][data-cross-signed=true]`);
  await admin2.keyboard.press("Escape");
  await admin2.click("[data-testid=settings]");
  await admin2.waitForSelector(`.devices [data-device-id="${adminDevice}"][data-trust=verified]`);
  // The new browser trusts itself only through the signature the first one uploaded.
  await admin2.waitForSelector(`.devices [data-device-id="${admin2Device}"][data-trust=verified][data-cross-signed=true]`);
  await admin2.screenshot({ path: join(ARTIFACTS, "devices.png") });
  // Escape closes only the topmost dialog: the emoji one, then the settings under it.
  await admin.keyboard.press("Escape");
  await admin.waitForSelector("dialog.dialog[open] >> text=Geräte");
  await admin.keyboard.press("Escape");
  await admin.waitForSelector("dialog.dialog", { state: "detached" });
  await admin2.keyboard.press("Escape");
  await admin2.waitForSelector("dialog.dialog", { state: "detached" });

  step("a dialog opened by keyboard keeps Tab and Shift-Tab inside; Escape returns focus to its opener");
  await admin.focus("[data-testid=settings]");
  await admin.keyboard.press("Enter");
  await admin.waitForSelector("dialog.dialog[open]");
  for (const key of [...Array(25).fill("Tab"), ...Array(25).fill("Shift+Tab")]) {
    await admin.keyboard.press(key);
    const inside = await admin.evaluate(() => !!document.activeElement?.closest("dialog[open]"));
    if (!inside) throw new Error(`focus left the dialog after ${key}`);
  }
  await admin.keyboard.press("Escape");
  await admin.waitForSelector("dialog.dialog", { state: "detached" });
  await admin.waitForFunction(() => document.activeElement?.getAttribute("data-testid") === "settings");

  step("screenshots");
  await admin.screenshot({ path: join(ARTIFACTS, "admin.png") });
  await colleague.screenshot({ path: join(ARTIFACTS, "colleague.png") });
  console.log(`SCREENSHOTS ${ARTIFACTS}`);

  step("admin: signs out and is back at the sign-in form; the store key and crypto store are gone");
  await admin.click(".sidebar .bottom button");
  await admin.waitForSelector("#login-user");
  if (await admin.evaluate(() => localStorage.getItem("ward.session"))) throw new Error("session kept after sign-out");
  const left = await admin.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  if (left.some((name) => name === "ward-store-keys" || name.startsWith("matrix-js-sdk::"))) {
    throw new Error(`databases left after sign-out: ${left.join(", ")}`);
  }

  step("admin in a third browser context: restores the key backup and reads the earlier messages");
  const restoreCtx = await browser.newContext({ locale: "de-DE", viewport: { width: 1200, height: 800 } });
  watch(restoreCtx, "restore");
  restore = await restoreCtx.newPage();
  restore.setDefaultTimeout(STEP_MS);
  await restore.goto(`${WARD}/`);
  await signIn(restore, ADMIN, ADMIN_PW);
  await restore.click(`[data-room-id="${roomId}"]`);
  await restore.waitForSelector(".msg .utd");
  await restore.click("[data-testid=security]");
  await restore.fill("#recovery-key-input", "EsTc aaaa bbbb cccc");
  await restore.click("[data-testid=backup-restore]");
  await restore.waitForSelector(".dialog .error >> text=nicht richtig");
  await restore.fill("#recovery-key-input", recoveryKey);
  await restore.click("[data-testid=backup-restore]");
  console.log(`   ${await (await restore.waitForSelector("[data-testid=backup-on]")).textContent()}`);
  await restore.keyboard.press("Escape");
  await restore.waitForSelector('.msg:not(.mine) >> text=Hallo, hier ist Anna, die neue Kollegin!');
  await restore.waitForSelector(".msg.mine >> text=Hallo an alle drei");
  await restore.screenshot({ path: join(ARTIFACTS, "restored.png") });

  step("a session from before the store was encrypted keeps working, with a hint to sign in again");
  const legacyCtx = await browser.newContext({ locale: "en-GB" });
  watch(legacyCtx, "legacy");
  const legacy = await legacyCtx.newPage();
  legacy.setDefaultTimeout(STEP_MS);
  await legacy.goto(`${WARD}/#/login`);
  await legacy.evaluate(
    async ([user, password]) => {
      const r = await fetch("/_matrix/client/v3/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user }, password }),
      });
      const b = await r.json();
      // What the app stored before: no encryptedStore flag, no store key.
      localStorage.setItem("ward.session", JSON.stringify({ userId: b.user_id, deviceId: b.device_id, accessToken: b.access_token }));
    },
    [COLLEAGUE, COLLEAGUE_PW],
  );
  await legacy.reload();
  await legacy.waitForSelector(`[data-room-id="${roomId}"]`);
  await legacy.click("[data-testid=settings]");
  await legacy.waitForSelector(".dialog .hint >> text=earlier version of Ward");
  // The control for the store check above: an unencrypted store does show the user ID.
  const legacyStore = await legacy.evaluate(inspectStores, COLLEAGUE);
  if (!legacyStore.plaintextHits.length) throw new Error(`the store check sees nothing in a plain store: ${JSON.stringify(legacyStore)}`);
  await legacyCtx.close();

  step("a session whose store key is gone says so and offers to sign out");
  const lostCtx = await browser.newContext({ locale: "en-GB" });
  watch(lostCtx, "lost");
  const lost = await lostCtx.newPage();
  lost.setDefaultTimeout(STEP_MS);
  await lost.goto(`${WARD}/`);
  await signIn(lost, COLLEAGUE, COLLEAGUE_PW);
  await lost.waitForSelector("[data-testid=me]");
  const lostDevice = await deviceOf(lost);
  await lost.evaluate(
    () =>
      new Promise((resolve) => {
        const r = indexedDB.deleteDatabase("ward-store-keys");
        r.onsuccess = r.onerror = r.onblocked = resolve;
      }),
  );
  await lost.reload();
  await lost.waitForSelector('[role=alert] >> text=sign out and sign in again');
  await lost.click('main.card button:has-text("Sign out")');
  await lost.waitForSelector("#login-user");
  await signIn(lost, COLLEAGUE, COLLEAGUE_PW);
  await lost.waitForSelector(`[data-room-id="${roomId}"]`);
  const devicesNow = await lost.evaluate(async () => {
    const { accessToken } = JSON.parse(localStorage.getItem("ward.session"));
    const r = await fetch("/_matrix/client/v3/devices", { headers: { Authorization: `Bearer ${accessToken}` } });
    return (await r.json()).devices.map((d) => d.device_id);
  });
  if (devicesNow.includes(lostDevice)) throw new Error("the session whose key was lost is still signed in on the server");
  await lostCtx.close();

  step("every request went to Ward's origin");
  const foreign = requests.filter((r) => !isWard(r.url));
  console.log(`REQUESTS ${requests.length} (foreign: ${foreign.length})`);
  if (foreign.length) throw new Error(`requests to other origins:\n${foreign.map((r) => `${r.who} ${r.url}`).join("\n")}`);
  if (problems.length) throw new Error(`problems reported by the pages:\n${problems.join("\n")}`);
  console.log("PASS");
} catch (e) {
  failed = true;
  await admin.screenshot({ path: join(ARTIFACTS, "admin-failure.png") }).catch(() => {});
  await colleague.screenshot({ path: join(ARTIFACTS, "colleague-failure.png") }).catch(() => {});
  await restore?.screenshot({ path: join(ARTIFACTS, "restored-failure.png") }).catch(() => {});
  await admin2?.screenshot({ path: join(ARTIFACTS, "admin2-failure.png") }).catch(() => {});
  console.error(`failure screenshots in ${ARTIFACTS}`);
  console.error(`last console messages:\n${consoleLog.slice(-40).join("\n")}`);
  console.error(e); // last, so that the caller's tail of stderr shows it
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
