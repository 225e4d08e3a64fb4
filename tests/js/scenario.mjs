// The core chat scenario driven by matrix-js-sdk: log in, create a room, invite, join, send,
// receive through /sync, paginate history. Run by tests/acceptance/test_js_sdk.py against Ward
// (and Synapse) with WARD_JS_HOMESERVER and WARD_JS_USERS set; exits non-zero on failure.

import assert from "node:assert/strict";
import * as sdk from "matrix-js-sdk";

const baseUrl = process.env.WARD_JS_HOMESERVER;
const [alice, bob] = JSON.parse(process.env.WARD_JS_USERS);
const TIMEOUT_MS = 20_000;

// matrix-js-sdk logs a lot at info level; keep the test output readable.
sdk.logger?.setLevel?.("warn");

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function login({ user, password }) {
  const tmp = sdk.createClient({ baseUrl });
  const res = await tmp.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
    initial_device_display_name: "matrix-js-sdk acceptance",
  });
  const client = sdk.createClient({
    baseUrl,
    accessToken: res.access_token,
    userId: res.user_id,
    deviceId: res.device_id,
  });
  const ready = new Promise((resolve) => {
    client.on(sdk.ClientEvent.Sync, (state) => {
      if (state === "PREPARED" || state === "SYNCING") resolve();
    });
  });
  await client.startClient({ initialSyncLimit: 20 });
  await withTimeout(ready, `first sync of ${user}`);
  return client;
}

function waitForTimelineBody(client, roomId, body) {
  return withTimeout(
    new Promise((resolve) => {
      const onEvent = (event, room) => {
        if (room?.roomId === roomId && event.getContent()?.body === body) {
          client.off(sdk.RoomEvent.Timeline, onEvent);
          resolve(event);
        }
      };
      client.on(sdk.RoomEvent.Timeline, onEvent);
    }),
    `"${body}" in ${client.getUserId()}'s timeline`,
  );
}

const a = await login(alice);
const b = await login(bob);
try {
  // Bob accepts the invite as soon as his sync shows it.
  const invited = withTimeout(
    new Promise((resolve) => {
      b.on(sdk.RoomMemberEvent.Membership, (_event, member) => {
        if (member.userId === b.getUserId() && member.membership === "invite") resolve(member.roomId);
      });
    }),
    "bob's invite",
  );
  // This scenario runs without a crypto stack, so it needs a room that is not encrypted by
  // default (Ward encrypts private rooms); e2ee.mjs covers the encrypted case.
  const { room_id: roomId } = await a.createRoom({
    name: "js-sdk Raum", invite: [b.getUserId()], preset: "public_chat",
  });
  assert.equal(await invited, roomId);
  await b.joinRoom(roomId);

  // Messages both ways, each arriving through the other's sync.
  for (let i = 0; i < 5; i++) {
    const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
    const body = `js message ${i}`;
    const seen = waitForTimelineBody(to, roomId, body);
    await from.sendTextMessage(roomId, body);
    await seen;
  }

  // Paginate bob's view back to the creation event.
  const room = b.getRoom(roomId);
  assert.ok(room, "bob has the room");
  for (let i = 0; i < 10 && room.getLiveTimeline().getPaginationToken("b"); i++) {
    await b.scrollback(room, 20);
  }
  const events = room.getLiveTimeline().getEvents();
  assert.equal(events[0].getType(), "m.room.create", "history reaches the creation event");
  const bodies = events.map((e) => e.getContent()?.body).filter(Boolean);
  assert.deepEqual(bodies.slice(-5), [0, 1, 2, 3, 4].map((i) => `js message ${i}`));
  assert.equal(room.name, "js-sdk Raum");

  // Raw history through the API the SDK uses for it, too.
  const page = await a.createMessagesRequest(roomId, null, 50, "b");
  assert.ok(page.chunk.some((e) => e.content?.body === "js message 4"));
  console.log("js-sdk scenario: 1 passed, 0 failed");
} finally {
  a.stopClient();
  b.stopClient();
}
process.exit(0);
