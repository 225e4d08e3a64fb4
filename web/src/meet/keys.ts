// The meeting secret and what is derived from it (see web/README.md, "Meetings").
//
// Every meeting link carries a random secret in its URL fragment (`#/meet/<id>/<secret>`,
// `#/patient/<link token>/<secret>`); browsers never send the fragment to the server, so Ward
// never sees it. From the secret:
// - the media key: livekit-client's ExternalE2EEKeyProvider gets the secret itself and derives
//   its frame key from it (PBKDF2 inside livekit-client);
// - the data key: HKDF-SHA-256 with its own `info` label → AES-GCM-256, for meeting chat,
//   whiteboard and hand raise, which travel as LiveKit data packets the SFU only forwards.
//
// A consultation room's secret never goes to a patient. Each patient link carries its
// appointment's secret instead: HKDF(room secret, salt = the meeting, info = the link's public
// reference `link_ref`), made by the practice's browser when it creates the link. The doctor's
// page (and a colleague's with the room's link) sees the reference with the admitted patient in
// the lobby, derives the same secret and switches to it for that session (session.ts
// `setSecret`), so a past patient's link opens no later session.

/** 18 random bytes: 144 bits, 24 base64url characters. */
const SECRET_BYTES = 18;
const DATA_KEY_INFO = "ward meet data v1";
const APPOINTMENT_INFO = "ward meet appointment v1";
const IV_BYTES = 12;
/** 2: the sender's identity is bound as associated data too (1 bound only the meeting ID). */
const FORMAT_VERSION = 2;
/** Length of a secret in a link: exactly what `newSecret` makes (a shorter one is a cut-off link). */
export const SECRET_CHARS = 24;

export function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function newSecret(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
}

/** A secret as links carry it: base64url, exactly as long as `newSecret` makes it. */
export function plausibleSecret(s: string | null | undefined): s is string {
  return !!s && s.length === SECRET_CHARS && /^[A-Za-z0-9_-]+$/.test(s);
}

export function meetingLink(meetingId: string, secret: string): string {
  return `${location.origin}/#/meet/${meetingId}/${secret}`;
}

export function patientLink(linkToken: string, secret: string): string {
  return `${location.origin}/#/patient/${encodeURIComponent(linkToken)}/${secret}`;
}

/** A link reference as the server makes it (`link_ref`: 32 lowercase hex digits). */
export function plausibleLinkRef(s: string | null | undefined): s is string {
  return !!s && /^[0-9a-f]{32}$/.test(s);
}

/** The secret of one appointment in a consultation room: what its patient link carries, and what
 * the doctor's page keys the session with while that patient is admitted. Deterministic (the
 * practice's page and the doctor's derive it apart), shaped like a link secret, and without the
 * room's secret nobody gets from one appointment's secret to another's. */
export async function appointmentSecret(roomSecret: string, meetingId: string, linkRef: string): Promise<string> {
  if (!plausibleSecret(roomSecret)) throw new Error("not a meeting secret");
  if (!plausibleLinkRef(linkRef)) throw new Error("not a patient link reference");
  const ikm = await crypto.subtle.importKey("raw", new TextEncoder().encode(roomSecret), "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: new TextEncoder().encode(`ward-meet:${meetingId}`),
      info: new TextEncoder().encode(`${APPOINTMENT_INFO}\u0000${linkRef}`),
    },
    ikm,
    SECRET_BYTES * 8,
  );
  return base64url(new Uint8Array(bits));
}

/** The link a colleague takes a running consultation over with: the meeting and the current
 * appointment's secret (not the room's), see MeetPage's `handover` route. */
export function handoverLink(meetingId: string, appointment: string): string {
  return `${location.origin}/#/handover/${meetingId}/${appointment}`;
}

/** The AES-GCM key for data packets of one meeting. */
export async function dataKey(secret: string, meetingId: string): Promise<CryptoKey> {
  const ikm = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: new TextEncoder().encode(`ward-meet:${meetingId}`),
      info: new TextEncoder().encode(DATA_KEY_INFO),
    },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/** Associated data: the meeting and the sender's identity, so that a packet opens only as sent by
 * the participant who sealed it (the SFU names the sender of a data packet; a server that
 * re-attributes a packet makes it fail to open). The message type is inside the sealed JSON. */
function associated(meetingId: string, sender: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`ward-meet\u0000${meetingId}\u0000${sender}`);
}

/** version (1 byte) ‖ IV (12) ‖ AES-GCM(JSON); meeting ID and sender bound as associated data. */
export async function seal(key: CryptoKey, meetingId: string, sender: string, message: unknown): Promise<Uint8Array<ArrayBuffer>> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const plain = new TextEncoder().encode(JSON.stringify(message));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: associated(meetingId, sender) }, key, plain),
  );
  const out = new Uint8Array(1 + IV_BYTES + sealed.length);
  out[0] = FORMAT_VERSION;
  out.set(iv, 1);
  out.set(sealed, 1 + IV_BYTES);
  return out;
}

/** The message, or null if it was not sealed with this key by `sender` (wrong secret, another
 * sender, tampered, garbage). */
export async function open(key: CryptoKey, meetingId: string, sender: string, data: Uint8Array): Promise<unknown> {
  if (data.length < 1 + IV_BYTES + 16 || data[0] !== FORMAT_VERSION) return null;
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: data.slice(1, 1 + IV_BYTES), additionalData: associated(meetingId, sender) },
      key,
      data.slice(1 + IV_BYTES),
    );
    return JSON.parse(new TextDecoder().decode(plain));
  } catch {
    return null;
  }
}

// The secrets of meetings and consultation rooms a user started in this browser, so that they can
// come back (a meeting or consultation room opened for a chat has its link in the chat too).
// Per user (`ward.meet.secrets.<user ID>`): another user of a shared computer does not get them;
// sign-out wipes them all (`wipeSecrets`). An entry lives at most 90 days since it was last
// used (opening refreshes it), and goes when its meeting is no longer among the user's meetings
// (`pruneSecrets`, from "Meetings"). Expired entries are dropped whenever the list is written.
const SECRETS_PREFIX = "ward.meet.secrets";
const SECRETS_MAX = 200;
/** Kept no longer than Ward keeps meetings (`meeting_retention_days`, at most 90). */
const SECRETS_MAX_AGE_MS = 90 * 86_400_000;

type Kept = Record<string, { secret: string; at: number }>;

const secretsKey = (userId: string) => `${SECRETS_PREFIX}.${userId}`;

function kept(userId: string): Kept {
  try {
    const v = JSON.parse(localStorage.getItem(secretsKey(userId)) ?? "{}");
    if (!v || typeof v !== "object") return {};
    const fresh: Kept = {};
    for (const [id, e] of Object.entries(v as Kept)) {
      if (e && typeof e.secret === "string" && typeof e.at === "number" && Date.now() - e.at < SECRETS_MAX_AGE_MS) fresh[id] = e;
    }
    return fresh;
  } catch {
    return {};
  }
}

function store(userId: string, all: Kept): void {
  const ids = Object.keys(all).sort((a, b) => all[b].at - all[a].at);
  for (const id of ids.slice(SECRETS_MAX)) delete all[id];
  if (Object.keys(all).length) localStorage.setItem(secretsKey(userId), JSON.stringify(all));
  else localStorage.removeItem(secretsKey(userId));
}

export function keepSecret(userId: string, meetingId: string, secret: string): void {
  const all = kept(userId);
  all[meetingId] = { secret, at: Date.now() };
  store(userId, all);
}

/** The secret, if this user started the meeting in this browser; using it refreshes its age. */
export function keptSecret(userId: string, meetingId: string, refresh = false): string | null {
  const all = kept(userId);
  const e = all[meetingId];
  if (!e) return null;
  if (refresh) {
    e.at = Date.now();
    store(userId, all);
  }
  return e.secret;
}

/** Keeps only the secrets of meetings that are still the user's (`live`: their meeting IDs).
 * Entries of the old, not per-user list (`ward.meet.secrets`) move to the user only for meetings
 * that are the user's. */
export function pruneSecrets(userId: string, live: string[]): void {
  const liveSet = new Set(live);
  const all = kept(userId);
  for (const id of Object.keys(all)) if (!liveSet.has(id)) delete all[id];
  try {
    const legacy = JSON.parse(localStorage.getItem(SECRETS_PREFIX) ?? "null") as Kept | null;
    if (legacy && typeof legacy === "object") {
      for (const [id, e] of Object.entries(legacy)) {
        if (liveSet.has(id) && e && typeof e.secret === "string" && !all[id]) {
          all[id] = { secret: e.secret, at: Date.now() };
          delete legacy[id];
        }
      }
      if (Object.keys(legacy).length) localStorage.setItem(SECRETS_PREFIX, JSON.stringify(legacy));
      else localStorage.removeItem(SECRETS_PREFIX);
    }
  } catch {
    localStorage.removeItem(SECRETS_PREFIX);
  }
  store(userId, all);
}

/** Forgets every kept meeting secret of every user (sign-out). */
export function wipeSecrets(): void {
  for (let i = localStorage.length - 1; i >= 0; i--) {
    const k = localStorage.key(i);
    if (k && (k === SECRETS_PREFIX || k.startsWith(`${SECRETS_PREFIX}.`))) localStorage.removeItem(k);
  }
}

// The secret of the meeting page open in this tab: read from the link once, then kept in the
// tab's sessionStorage and taken out of the address (browsers keep full addresses, fragments
// included, in their history and may sync it), so a reload of the tab still works.
const TAB_PREFIX = "ward.meet.tab";

export function keepTabSecret(kind: string, id: string, secret: string): void {
  try {
    sessionStorage.setItem(`${TAB_PREFIX}.${kind}.${id}`, secret);
  } catch {
    // No sessionStorage: the page works until it is reloaded.
  }
}

export function tabSecret(kind: string, id: string): string | null {
  try {
    return sessionStorage.getItem(`${TAB_PREFIX}.${kind}.${id}`);
  } catch {
    return null;
  }
}
