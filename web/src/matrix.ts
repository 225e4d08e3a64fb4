// Everything the app does with the homeserver goes through matrix-js-sdk: login, sign-up,
// the sync loop, end-to-end encryption (its Rust crypto, `initRustCrypto`, with its IndexedDB
// store encrypted by a per-session key, see storekey.ts). This module keeps the session (access
// token, user and device ID) in localStorage and turns SDK errors into the app's messages. The
// homeserver is always the page's own origin: Ward serves the app.

import {
  ConnectionError,
  createClient,
  MatrixClient,
  MatrixError,
  Method,
  RoomNameType,
  type LoginResponse,
  type RoomNameState,
} from "matrix-js-sdk";
import { cryptoCallbacks, flushBackup, trackBackup } from "./backup";
import { t } from "./i18n";
import { createStoreKey, deleteStoreKeys, loadStoreKey } from "./storekey";
import { wipeSecrets } from "./meet/keys";

const SESSION_KEY = "ward.session";
/** How many events the first sync returns per room (the timeline back-paginates for more). */
const INITIAL_SYNC_LIMIT = 20;
const DEVICE_NAME = "Ward Web";

export interface Session {
  userId: string;
  deviceId: string;
  accessToken: string;
  /**
   * The crypto store is encrypted with a key kept in storekey.ts. Missing in sessions from
   * before that existed: their store stays unencrypted until they sign in again.
   */
  encryptedStore?: boolean;
}

export function baseUrl(): string {
  return window.location.origin;
}

export function loadSession(): Session | null {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) ?? "null");
    if (s && typeof s.userId === "string" && typeof s.deviceId === "string" && typeof s.accessToken === "string") {
      return { ...s, encryptedStore: s.encryptedStore === true };
    }
  } catch {
    // A damaged entry is treated as no session.
  }
  return null;
}

/** Keeps a new session, with a new key for its crypto store (created before the store is). */
async function saveSession(r: LoginResponse): Promise<Session> {
  await createStoreKey(r.user_id, r.device_id);
  const s: Session = { userId: r.user_id, deviceId: r.device_id, accessToken: r.access_token, encryptedStore: true };
  localStorage.setItem(SESSION_KEY, JSON.stringify(s));
  return s;
}

/** The crypto store's key of an encrypted-store session is gone or does not open the store. */
export class StoreKeyLost extends Error {}

/**
 * A user-facing message for an error from the SDK. `withPassword`: the request carried the user's
 * password (sign-in, or a step confirmed with it), so M_FORBIDDEN means the password was wrong;
 * elsewhere it means the server refused the action.
 */
export function describeError(e: unknown, withPassword = false): string {
  if (e instanceof StoreKeyLost) return t("storeKeyLost");
  if (e instanceof ConnectionError) return t("serverUnreachable");
  if (e instanceof MatrixError) {
    switch (e.errcode) {
      case "M_FORBIDDEN":
        return withPassword ? t("wrongPassword") : t("forbidden");
      case "M_LIMIT_EXCEEDED":
        return t("tooManyAttempts");
      case "M_USER_DEACTIVATED":
        return t("deactivated");
      case "M_USER_IN_USE":
        return t("usernameTaken");
      case "M_INVALID_USERNAME":
        return t("usernameInvalid");
      case "M_WEAK_PASSWORD":
        return t("passwordWeak");
      case "M_TOO_LARGE":
        return t("fileTooLarge");
    }
    return t("unexpectedError", { message: e.data?.error ?? e.message });
  }
  if (e instanceof TypeError) return t("serverUnreachable"); // fetch() itself failed
  return t("unexpectedError", { message: e instanceof Error ? e.message : String(e) });
}

/**
 * The password of a sign-in or sign-up that just happened, kept in memory only until the new
 * session has set up cross-signing (which the server confirms with the password).
 */
let freshPassword: string | null = null;

export function takeFreshPassword(): string | null {
  const p = freshPassword;
  freshPassword = null;
  return p;
}

export async function login(username: string, password: string): Promise<Session> {
  const tmp = createClient({ baseUrl: baseUrl() });
  const r = await tmp.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: username.trim() },
    password,
    initial_device_display_name: DEVICE_NAME,
  });
  freshPassword = password;
  return saveSession(r);
}

export type RegisterError = "inviteInvalid" | "registrationClosed";

/** Checks an invite link's token before the form is filled in. */
export async function tokenValid(token: string): Promise<boolean> {
  const tmp = createClient({ baseUrl: baseUrl() });
  const r = await tmp.http.request<{ valid: boolean }>(
    Method.Get,
    "/register/m.login.registration_token/validity",
    { token },
    undefined,
    { prefix: "/_matrix/client/v1" },
  );
  return r.valid === true;
}

/**
 * Registers with the standard user-interactive flow: the first request opens a UIA session,
 * then the `m.login.registration_token` stage, then `m.login.dummy`.
 */
export async function register(username: string, password: string, token: string): Promise<Session> {
  const tmp = createClient({ baseUrl: baseUrl() });
  const base = { username: username.trim(), password, initial_device_display_name: DEVICE_NAME };
  let session: string | undefined;
  let completed: string[] = [];
  const stages: { type: string; token?: string }[] = [{ type: "m.login.registration_token", token }, { type: "m.login.dummy" }];
  // Up to one request per stage plus the opening one.
  for (let attempt = 0; attempt <= stages.length; attempt++) {
    const next = session === undefined ? undefined : stages.find((s) => !completed.includes(s.type));
    try {
      const r = await tmp.registerRequest({ ...base, auth: next && session ? { ...next, session } : undefined });
      freshPassword = password;
      return saveSession(r as LoginResponse);
    } catch (e) {
      if (!(e instanceof MatrixError) || e.httpStatus !== 401 || !e.data?.session) throw e;
      const flows: { stages: string[] }[] = e.data.flows ?? [];
      if (!flows.some((f) => f.stages.includes("m.login.registration_token"))) {
        throw new RegisterFailure("registrationClosed");
      }
      // A failed stage answers 401 with an errcode and without it in `completed`.
      if (next?.type === "m.login.registration_token" && e.errcode) throw new RegisterFailure("inviteInvalid");
      session = e.data.session;
      completed = e.data.completed ?? [];
    }
  }
  throw new RegisterFailure("inviteInvalid");
}

export class RegisterFailure extends Error {
  constructor(readonly kind: RegisterError) {
    super(kind);
  }
}

/** Room names made from members ("A and B") in the app's language instead of the SDK's English. */
export function roomName(_roomId: string, state: RoomNameState): string | null {
  switch (state.type) {
    case RoomNameType.Actual:
      return state.name;
    case RoomNameType.EmptyRoom:
      return state.oldName ? t("wasNamed", { name: state.oldName }) : t("emptyRoom");
    case RoomNameType.Generated: {
      // As the SDK's own English generator: `count` includes us.
      const [a = "", b = ""] = state.names;
      const others = state.count - 1;
      let names: string;
      if (state.names.length === 0) names = t("emptyRoom");
      else if (state.names.length === 1 && others <= 1) names = a;
      else if (state.names.length === 2 && others <= 2) names = t("nameTwo", { a, b });
      else
        names = others > 1
          ? t("nameMany", { a, count: others })
          : t("nameOneOther", { a });
      return state.subtype === "Inviting" ? t("inviting", { names }) : names;
    }
  }
  return null;
}

/**
 * Creates the client for a session, with Rust crypto (IndexedDB store, encrypted with the
 * session's store key), and starts syncing. Throws StoreKeyLost when that key is gone.
 */
export async function startClient(s: Session): Promise<MatrixClient> {
  const client = createClient({
    baseUrl: baseUrl(),
    userId: s.userId,
    deviceId: s.deviceId,
    accessToken: s.accessToken,
    roomNameGenerator: roomName,
    cryptoCallbacks,
  });
  if (s.encryptedStore) {
    const storageKey = await loadStoreKey(s.userId, s.deviceId).catch(() => null);
    if (!storageKey) throw new StoreKeyLost();
    try {
      await client.initRustCrypto({ storageKey });
    } catch (e) {
      console.warn("the crypto store did not open with its key", e);
      throw new StoreKeyLost();
    }
  } else {
    // A session from before the store was encrypted: its store opens only without a key.
    await client.initRustCrypto();
  }
  trackBackup(client);
  await client.startClient({ initialSyncLimit: INITIAL_SYNC_LIMIT, lazyLoadMembers: true });
  return client;
}

/** The crypto databases of matrix-js-sdk's Rust crypto (its fixed store prefix). */
const CRYPTO_DATABASES = ["matrix-js-sdk::matrix-sdk-crypto", "matrix-js-sdk::matrix-sdk-crypto-meta"];
const WIPE_KEY = "ward.wipeCrypto";
/** How long sign-out waits for the crypto store to be deleted before reloading instead. */
const CLEAR_STORES_WAIT_MS = 2_000;

/**
 * Logs the device out (best effort), forgets the session and reloads the page, so that nothing
 * decrypted stays in memory. The crypto store is deleted now if the SDK lets go of it in time,
 * otherwise at the next start (`wipeLeftovers`), before any client opens it.
 */
export async function logout(client: MatrixClient | null): Promise<void> {
  localStorage.setItem(WIPE_KEY, "1");
  if (client) {
    await flushBackup(client).catch(() => undefined);
    try {
      await client.logout(true);
    } catch {
      client.stopClient();
    }
    const cleared = await Promise.race([
      client.clearStores().then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), CLEAR_STORES_WAIT_MS)),
    ]);
    if (cleared) localStorage.removeItem(WIPE_KEY);
  } else {
    // The client never started (its store did not open): still end the session on the server.
    const s = loadSession();
    if (s) await createClient({ baseUrl: baseUrl(), accessToken: s.accessToken }).logout(true).catch(() => undefined);
  }
  // Without its key, whatever is left of the crypto store cannot be read.
  await deleteStoreKeys();
  // Meeting secrets kept for this browser's users go too (a shared practice computer).
  wipeSecrets();
  localStorage.removeItem(SESSION_KEY);
  window.location.hash = "#/login";
  window.location.reload();
}

/** Deletes a signed-out session's crypto store (and keys) that could not be deleted at sign-out. */
export async function wipeLeftovers(): Promise<void> {
  if (!localStorage.getItem(WIPE_KEY) || loadSession()) return;
  wipeSecrets();
  await deleteStoreKeys();
  await Promise.all(
    CRYPTO_DATABASES.map(
      (name) =>
        new Promise<void>((resolve) => {
          const req = indexedDB.deleteDatabase(name);
          req.onsuccess = req.onerror = req.onblocked = () => resolve();
        }),
    ),
  );
  localStorage.removeItem(WIPE_KEY);
}

/** Forgets a session whose token the server no longer accepts. */
export function forgetSession(): void {
  localStorage.removeItem(SESSION_KEY);
}

/** Ward's admin API (`/_ward/admin/v1`): 403 for non-admins. */
export interface RegistrationToken {
  token: string;
  uses_allowed: number | null;
  pending: number;
  completed: number;
  expiry_time: number | null;
}

export async function isAdmin(client: MatrixClient): Promise<boolean> {
  try {
    await client.http.authedRequest(Method.Get, "/registration_tokens", undefined, undefined, {
      prefix: "/_ward/admin/v1",
    });
    return true;
  } catch {
    return false;
  }
}

export async function createInviteToken(client: MatrixClient): Promise<string> {
  const r = await client.http.authedRequest<RegistrationToken>(
    Method.Post,
    "/registration_tokens",
    undefined,
    { uses_allowed: 1 },
    { prefix: "/_ward/admin/v1" },
  );
  return r.token;
}

export function inviteLink(token: string): string {
  return `${baseUrl()}/#/register?token=${encodeURIComponent(token)}`;
}
