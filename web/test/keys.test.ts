// keys.ts: secrets, the appointment derivation and sealed data packets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { hkdfSync } from "node:crypto";
import {
  appointmentSecret,
  base64url,
  dataKey,
  newSecret,
  open,
  plausibleLinkRef,
  plausibleSecret,
  seal,
  SECRET_CHARS,
} from "../src/meet/keys";

const ROOM = "AbCdEfGhIjKlMnOpQrStUv_-";
const MEETING = "m0eet1ng2id3of4twenty5";
const REF_1 = "0123456789abcdef0123456789abcdef";
const REF_2 = "fedcba9876543210fedcba9876543210";

test("secrets are 24 base64url characters of randomness; cut-off or odd ones are refused", () => {
  const a = newSecret();
  const b = newSecret();
  assert.equal(a.length, SECRET_CHARS);
  assert.ok(plausibleSecret(a) && plausibleSecret(b));
  assert.notEqual(a, b);
  assert.ok(!plausibleSecret(a.slice(0, 23)));
  assert.ok(!plausibleSecret(`${a.slice(0, 23)}+`));
  assert.ok(!plausibleSecret(""));
  assert.ok(!plausibleSecret(null));
  assert.equal(base64url(new Uint8Array([0xfb, 0xff, 0xfe])), "-__-");
});

test("an appointment's secret is HKDF-SHA-256 of the room's secret, bound to meeting and link", async () => {
  const s1 = await appointmentSecret(ROOM, MEETING, REF_1);
  assert.ok(plausibleSecret(s1), s1);
  assert.notEqual(s1, ROOM);
  // Deterministic: the practice's page and the doctor's derive the same secret apart.
  assert.equal(await appointmentSecret(ROOM, MEETING, REF_1), s1);
  // Exactly this construction (so other clients can implement it):
  const expected = hkdfSync(
    "sha256",
    new TextEncoder().encode(ROOM),
    new TextEncoder().encode(`ward-meet:${MEETING}`),
    new TextEncoder().encode(`ward meet appointment v1\u0000${REF_1}`),
    18,
  );
  assert.equal(s1, base64url(new Uint8Array(expected)));
  // Another appointment, another meeting, another room: another secret.
  const others = [
    await appointmentSecret(ROOM, MEETING, REF_2),
    await appointmentSecret(ROOM, "another0meeting0id0xyz", REF_1),
    await appointmentSecret(newSecret(), MEETING, REF_1),
  ];
  for (const o of others) assert.notEqual(o, s1);
});

test("only plausible room secrets and link references are derived from", async () => {
  assert.ok(plausibleLinkRef(REF_1));
  assert.ok(!plausibleLinkRef(REF_1.toUpperCase()));
  assert.ok(!plausibleLinkRef(REF_1.slice(1)));
  await assert.rejects(appointmentSecret(ROOM, MEETING, "ward_pl_the_token_itself"));
  await assert.rejects(appointmentSecret(ROOM.slice(1), MEETING, REF_1));
});

test("a data packet opens with the same secret, meeting and sender", async () => {
  const key = await dataKey(ROOM, MEETING);
  const msg = { t: "chat", msg: { id: "1", text: "Guten Tag ✓" } };
  const packet = await seal(key, MEETING, "guest-abc", msg);
  assert.equal(packet[0], 2, "format version");
  assert.deepEqual(await open(key, MEETING, "guest-abc", packet), msg);
  // The same key made again (another page) opens it too.
  assert.deepEqual(await open(await dataKey(ROOM, MEETING), MEETING, "guest-abc", packet), msg);
  // A fresh IV every time.
  const again = await seal(key, MEETING, "guest-abc", msg);
  assert.notDeepEqual(again.slice(1, 13), packet.slice(1, 13));
});

test("a data packet does not open with a wrong key, for another sender or another meeting", async () => {
  const key = await dataKey(ROOM, MEETING);
  const packet = await seal(key, MEETING, "guest-abc", { t: "hello" });
  // A past patient's (another appointment's) secret:
  const s1 = await appointmentSecret(ROOM, MEETING, REF_1);
  const s2 = await appointmentSecret(ROOM, MEETING, REF_2);
  const second = await seal(await dataKey(s2, MEETING), MEETING, "guest-abc", { t: "hello" });
  assert.equal(await open(await dataKey(s1, MEETING), MEETING, "guest-abc", second), null);
  assert.equal(await open(await dataKey(newSecret(), MEETING), MEETING, "guest-abc", packet), null);
  // The same secret but another meeting's key, or the meeting named wrongly:
  assert.equal(await open(await dataKey(ROOM, "another0meeting0id0xyz"), MEETING, "guest-abc", packet), null);
  assert.equal(await open(key, "another0meeting0id0xyz", "guest-abc", packet), null);
  // Attributed to another participant (a server that re-labels the sender):
  assert.equal(await open(key, MEETING, "guest-mallory", packet), null);
  // Tampered, truncated, another version, garbage:
  const flipped = packet.slice();
  flipped[flipped.length - 1] ^= 1;
  assert.equal(await open(key, MEETING, "guest-abc", flipped), null);
  assert.equal(await open(key, MEETING, "guest-abc", packet.slice(0, 20)), null);
  const v1 = packet.slice();
  v1[0] = 1;
  assert.equal(await open(key, MEETING, "guest-abc", v1), null);
  assert.equal(await open(key, MEETING, "guest-abc", new Uint8Array(0)), null);
});
