// Encrypted chat between matrix-js-sdk (Rust crypto, the stack Element Web uses) and a
// matrix-nio client driven by tests/acceptance/test_js_sdk.py: two independent Olm/Megolm
// implementations must understand each other through the server's key distribution.
//
// Protocol with the Python side, one line each on stdout/stdin:
//   js → "ROOM <room id>"           (an encrypted room exists; the nio user is invited)
//   js waits for the nio user to join, sends "hallo von js" encrypted
//   js waits for "hallo von nio" to decrypt, then prints "OK" and exits 0.

import assert from "node:assert/strict";
import * as sdk from "matrix-js-sdk";

const baseUrl = process.env.WARD_JS_HOMESERVER;
const me = JSON.parse(process.env.WARD_JS_USER);
const peer = process.env.WARD_JS_PEER;
const TIMEOUT_MS = 60_000;

sdk.logger?.setLevel?.("warn");

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const tmp = sdk.createClient({ baseUrl });
const res = await tmp.loginRequest({
  type: "m.login.password",
  identifier: { type: "m.id.user", user: me.user },
  password: me.password,
  initial_device_display_name: "matrix-js-sdk e2ee",
});
const client = sdk.createClient({ baseUrl, accessToken: res.access_token, userId: res.user_id, deviceId: res.device_id });
await client.initRustCrypto({ useIndexedDB: false });
const ready = new Promise((resolve) => {
  client.on(sdk.ClientEvent.Sync, (state) => {
    if (state === "PREPARED" || state === "SYNCING") resolve();
  });
});
await client.startClient({ initialSyncLimit: 20 });
await withTimeout(ready, "first sync");

try {
  const { room_id: roomId } = await client.createRoom({
    name: "Interop",
    invite: [peer],
    initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  const joined = withTimeout(
    new Promise((resolve) => {
      const check = (_event, member) => {
        if (member.roomId === roomId && member.userId === peer && member.membership === "join") resolve();
      };
      client.on(sdk.RoomMemberEvent.Membership, check);
    }),
    "the nio user to join",
  );
  const reply = withTimeout(
    new Promise((resolve) => {
      const onEvent = async (event, room) => {
        if (room?.roomId !== roomId || event.getSender() !== peer) return;
        await client.decryptEventIfNeeded(event);
        if (event.getContent()?.body === "hallo von nio") {
          assert.equal(event.isEncrypted(), true, "the reply must have been encrypted");
          resolve();
        }
      };
      client.on(sdk.RoomEvent.Timeline, onEvent);
    }),
    "the nio user's encrypted reply",
  );
  console.log(`ROOM ${roomId}`);
  await joined;
  await client.sendTextMessage(roomId, "hallo von js");
  await reply;
  console.log("OK");
} finally {
  client.stopClient();
}
process.exit(0);
