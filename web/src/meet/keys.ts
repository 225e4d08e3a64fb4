// The meeting secret and what is derived from it (see web/README.md, "Meetings").
//
// Every meeting link carries a random secret in its URL fragment (`#/meet/<id>/<secret>`,
// `#/patient/<link token>/<secret>`); browsers never send the fragment to the server, so Ward
// never sees it. From the secret:
// - the media key: livekit-client's ExternalE2EEKeyProvider gets the secret itself and derives
//   its frame key from it (PBKDF2 inside livekit-client);
// - the data key: HKDF-SHA-256 with its own `info` label → AES-GCM-256, for meeting chat,
//   whiteboard and hand raise, which travel as LiveKit data packets the SFU only forwards.

/** 18 random bytes: 144 bits, 24 base64url characters. */
const SECRET_BYTES = 18;
const DATA_KEY_INFO = "ward meet data v1";
const IV_BYTES = 12;
const FORMAT_VERSION = 1;

export function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function newSecret(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
}

/** A secret as links carry it: base64url, at least 128 bits. */
export function plausibleSecret(s: string | null | undefined): s is string {
  return !!s && /^[A-Za-z0-9_-]{22,}$/.test(s);
}

export function meetingLink(meetingId: string, secret: string): string {
  return `${location.origin}/#/meet/${meetingId}/${secret}`;
}

export function patientLink(linkToken: string, secret: string): string {
  return `${location.origin}/#/patient/${encodeURIComponent(linkToken)}/${secret}`;
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

/** version (1 byte) ‖ IV (12) ‖ AES-GCM(JSON); the meeting ID is bound as associated data. */
export async function seal(key: CryptoKey, meetingId: string, message: unknown): Promise<Uint8Array<ArrayBuffer>> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const plain = new TextEncoder().encode(JSON.stringify(message));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: new TextEncoder().encode(meetingId) }, key, plain),
  );
  const out = new Uint8Array(1 + IV_BYTES + sealed.length);
  out[0] = FORMAT_VERSION;
  out.set(iv, 1);
  out.set(sealed, 1 + IV_BYTES);
  return out;
}

/** The message, or null if it was not sealed with this key (wrong secret, tampered, garbage). */
export async function open(key: CryptoKey, meetingId: string, data: Uint8Array): Promise<unknown> {
  if (data.length < 1 + IV_BYTES + 16 || data[0] !== FORMAT_VERSION) return null;
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: data.slice(1, 1 + IV_BYTES), additionalData: new TextEncoder().encode(meetingId) },
      key,
      data.slice(1 + IV_BYTES),
    );
    return JSON.parse(new TextDecoder().decode(plain));
  } catch {
    return null;
  }
}

// The secrets of meetings and consultation rooms this browser created, so that their creator can
// come back (a meeting or consultation room opened for a chat has its link in the chat too).
// Only in this browser, for at most 90 days: a doctor who opened a consultation room without a
// chat admits patients from this browser.
const SECRETS_KEY = "ward.meet.secrets";
const SECRETS_MAX = 200;
/** Kept no longer than Ward keeps meetings (`meeting_retention_days`, at most 90). */
const SECRETS_MAX_AGE_MS = 90 * 86_400_000;

type Kept = Record<string, { secret: string; at: number }>;

function kept(): Kept {
  try {
    const v = JSON.parse(localStorage.getItem(SECRETS_KEY) ?? "{}");
    if (!v || typeof v !== "object") return {};
    const fresh: Kept = {};
    for (const [id, e] of Object.entries(v as Kept)) {
      if (e && typeof e.secret === "string" && Date.now() - e.at < SECRETS_MAX_AGE_MS) fresh[id] = e;
    }
    return fresh;
  } catch {
    return {};
  }
}

export function keepSecret(meetingId: string, secret: string): void {
  const all = kept();
  all[meetingId] = { secret, at: Date.now() };
  const ids = Object.keys(all).sort((a, b) => all[b].at - all[a].at);
  for (const id of ids.slice(SECRETS_MAX)) delete all[id];
  localStorage.setItem(SECRETS_KEY, JSON.stringify(all));
}

export function keptSecret(meetingId: string): string | null {
  return kept()[meetingId]?.secret ?? null;
}
