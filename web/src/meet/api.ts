// Ward's meetings API (`/_ward/meet/v1`, see docs/operating.md) for the meeting pages. Same
// origin only; users authenticate with their Matrix access token, guests with their knock secret.
// This file does not import matrix-js-sdk: guests' pages load without it.

const BASE = "/_ward/meet/v1";

export class MeetError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export type Role = "moderator" | "guest" | "patient";
export type Kind = "meeting" | "consultation";

export interface Admission {
  token: string;
  ws_url_path: string;
  identity: string;
  room: string;
  role: Role;
}
export interface PublicMeeting {
  kind: Kind;
  title: string | null;
  locked: boolean;
  pin_required: boolean;
}
export interface MeetingSummary extends PublicMeeting {
  meeting_id: string;
  origin_room: string | null;
  created_ms: number;
}
export interface Knock {
  meeting_id: string;
  knock_id: string;
  knock_secret: string;
}
/** `expired`: the page stopped polling for a while (closed, asleep); knocking again is fine. */
export type KnockStatus = "waiting" | "admitted" | "rejected" | "removed" | "left" | "ended" | "expired";
export interface KnockState extends Partial<Admission> {
  status: KnockStatus;
}
export interface LobbyEntry {
  knock_id: string;
  display_name: string;
  identity: string;
  patient: boolean;
  /** The patient link's reference (null for guests): the appointment's key derives from it. */
  link_ref: string | null;
  since_ms: number;
}
export interface Lobby {
  waiting: LobbyEntry[];
  admitted: LobbyEntry[];
  since: string;
}
export interface PatientLinkInfo {
  meeting_id: string;
  title: string | null;
  expires_ms: number;
  slot_start_ms: number | null;
  slot_end_ms: number | null;
}

/** The signed-in user's access token, if this browser has a Ward session (see matrix.ts). */
export function sessionToken(): { userId: string; accessToken: string } | null {
  try {
    const s = JSON.parse(localStorage.getItem("ward.session") ?? "null");
    if (s && typeof s.accessToken === "string" && typeof s.userId === "string") return s;
  } catch {
    // No usable session: the page works as for a guest.
  }
  return null;
}

async function call<T>(
  method: string,
  path: string,
  body?: unknown,
  bearer?: string,
  signal?: AbortSignal,
  keepalive = false,
): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let r: Response;
  try {
    r = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal,
      keepalive,
    });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new MeetError(0, "NETWORK", String(e));
  }
  const json = await r.json().catch(() => ({}));
  if (!r.ok) throw new MeetError(r.status, json.errcode ?? "UNKNOWN", json.error ?? r.statusText, json.retry_after_ms);
  return json as T;
}

const enc = encodeURIComponent;

export const meet = {
  create: (token: string, body: { kind?: Kind; title?: string; origin_room?: string; members_enter?: boolean }) =>
    call<{ meeting_id: string }>("POST", "/meetings", body, token),
  mine: (token: string) => call<{ meetings: MeetingSummary[] }>("GET", "/meetings", undefined, token),
  info: (id: string) => call<PublicMeeting>("GET", `/meetings/${enc(id)}`),
  join: (token: string, id: string) => call<Admission>("POST", `/meetings/${enc(id)}/join`, {}, token),
  knock: (id: string, display_name: string, pin?: string) =>
    call<Knock>("POST", `/meetings/${enc(id)}/knock`, pin ? { display_name, pin } : { display_name }),
  poll: (k: Knock, timeoutMs: number, signal?: AbortSignal) =>
    call<KnockState>(
      "GET",
      `/meetings/${enc(k.meeting_id)}/knock/${enc(k.knock_id)}?timeout_ms=${timeoutMs}`,
      undefined,
      k.knock_secret,
      signal,
    ),
  /** `keepalive`: for a page that is going away (the request outlives it). */
  leave: (k: Knock, keepalive = false) =>
    call<object>("DELETE", `/meetings/${enc(k.meeting_id)}/knock/${enc(k.knock_id)}`, undefined, k.knock_secret, undefined, keepalive),
  lobby: (token: string, id: string, since: string | null, timeoutMs: number, signal?: AbortSignal) =>
    call<Lobby>(
      "GET",
      `/meetings/${enc(id)}/lobby?timeout_ms=${timeoutMs}${since ? `&since=${enc(since)}` : ""}`,
      undefined,
      token,
      signal,
    ),
  admit: (token: string, id: string, knockId: string) =>
    call<object>("POST", `/meetings/${enc(id)}/lobby/${enc(knockId)}/admit`, {}, token),
  reject: (token: string, id: string, knockId: string) =>
    call<object>("POST", `/meetings/${enc(id)}/lobby/${enc(knockId)}/reject`, {}, token),
  lock: (token: string, id: string, locked: boolean) => call<object>("PUT", `/meetings/${enc(id)}/lock`, { locked }, token),
  pin: (token: string, id: string, pin: string | null) => call<object>("PUT", `/meetings/${enc(id)}/pin`, { pin }, token),
  remove: (token: string, id: string, identity: string) =>
    call<object>("POST", `/meetings/${enc(id)}/participants/${enc(identity)}/remove`, {}, token),
  mute: (token: string, id: string, identity: string, trackSid: string) =>
    call<object>("POST", `/meetings/${enc(id)}/participants/${enc(identity)}/mute`, { track_sid: trackSid }, token),
  end: (token: string, id: string) => call<object>("POST", `/meetings/${enc(id)}/end`, {}, token),
  patientLink: (token: string, id: string, body: { expires_in_ms: number; slot_start_ms?: number; slot_end_ms?: number }) =>
    call<{ link_token: string; link_ref: string; expires_ms: number }>("POST", `/meetings/${enc(id)}/patient-links`, body, token),
  /** Lets a colleague into the running consultation session (only its holders may). */
  handover: (token: string, id: string, userId: string) =>
    call<object>("POST", `/meetings/${enc(id)}/handover`, { user_id: userId }, token),
  patientLinkInfo: (linkToken: string) => call<PatientLinkInfo>("GET", `/patient-links/${enc(linkToken)}`),
  patientKnock: (linkToken: string, display_name: string) =>
    call<Knock>("POST", `/patient-links/${enc(linkToken)}/knock`, { display_name }),
};

/** Long-polls: after an error wait MIN, doubling up to MAX; a poll that returns at once is not
 * repeated before POLL_MIN_INTERVAL_MS (a server or proxy that does not hold the request). */
export const POLL_MIN_INTERVAL_MS = 1_000;
export const POLL_BACKOFF_MIN_MS = 1_000;
export const POLL_BACKOFF_MAX_MS = 30_000;

/** How long to wait after the `failures`-th failure in a row (1, 2, …), or after a 429 its Retry-After. */
export function pollBackoffMs(failures: number, e?: unknown): number {
  const exp = Math.min(POLL_BACKOFF_MAX_MS, POLL_BACKOFF_MIN_MS * 2 ** Math.max(0, failures - 1));
  const retryAfter = e instanceof MeetError && e.retryAfterMs ? e.retryAfterMs : 0;
  return Math.min(POLL_BACKOFF_MAX_MS, Math.max(exp, retryAfter));
}

/** Sleeps `ms`, or less if `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
