// The meeting pages: `#/meet/<meeting id>/<secret>` (meetings and a doctor's consultation room),
// `#/patient/<link token>/<secret>` (a patient's appointment) and `#/handover/<meeting id>/<secret>`
// (a colleague taking over a running consultation: the secret is that appointment's, not the
// room's; see keys.ts). They work without signing in
// and load neither matrix-js-sdk nor anything else of the chat app (main.tsx picks them by the
// address). Steps: check the link → camera/microphone check with name (and PIN) → either enter
// directly (moderators: signed in and allowed) or knock and wait in the lobby → the call.

import { useEffect, useRef, useState } from "preact/hooks";
import { isE2EESupported } from "livekit-client";
import { t } from "../i18n";
import { LangSelect } from "../views/LangSelect";
import { Spinner } from "../icons";
import {
  meet,
  MeetError,
  pollBackoffMs,
  POLL_MIN_INTERVAL_MS,
  sessionToken,
  sleep,
  type Admission,
  type Knock,
  type PublicMeeting,
} from "./api";
import { explain } from "./errors";
import { keepTabSecret, keptSecret, plausibleSecret, tabSecret } from "./keys";
import { MeetSession } from "./session";
import { Call } from "./Call";

export type MeetRoute =
  | { kind: "meet" | "handover"; meetingId: string; secret: string }
  | { kind: "patient"; linkToken: string; secret: string };
type ParsedRoute =
  | { kind: "meet" | "handover"; meetingId: string; secret: string | null }
  | { kind: "patient"; linkToken: string; secret: string | null };

/** `#/meet/<id>/<secret>`, `#/handover/<id>/<secret>` or `#/patient/<token>/<secret>`, or any
 * without the secret (then `secret` is null); null for anything else. */
export function parseMeetRoute(hash: string): ParsedRoute | null {
  const m = hash.match(/^#\/(meet|handover)\/([A-Za-z0-9]{1,64})(?:\/([^/?#]*))?$/);
  if (m) return { kind: m[1] as "meet" | "handover", meetingId: m[2], secret: m[3] ?? null };
  const p = hash.match(/^#\/patient\/([^/?#]{1,200})(?:\/([^/?#]*))?$/);
  if (p) {
    try {
      return { kind: "patient", linkToken: decodeURIComponent(p[1]), secret: p[2] ?? null };
    } catch {
      return null;
    }
  }
  return null;
}

/**
 * The meeting page's route from the address. A secret in the address is moved into this tab's
 * sessionStorage and the address replaced by one without it (`#/meet/<id>`), so that it stays
 * out of the browser's history (and history sync); a reload of the tab finds it there. Without
 * a secret in the address: the tab's, else (for the user who started the meeting here) the kept
 * one. An empty secret means the link is incomplete.
 */
export function meetRouteFromAddress(): MeetRoute | null {
  const r = parseMeetRoute(location.hash);
  if (!r) return null;
  const id = r.kind === "patient" ? r.linkToken : r.meetingId;
  const user = sessionToken()?.userId;
  let secret = r.secret;
  if (secret !== null) {
    if (plausibleSecret(secret)) {
      keepTabSecret(r.kind, id, secret);
      if (user && r.kind === "meet") keptSecret(user, id, true); // in use: refresh its age
      const bare = r.kind === "patient" ? `#/patient/${encodeURIComponent(id)}` : `#/${r.kind}/${id}`;
      history.replaceState(history.state, "", bare);
    }
  } else {
    secret = tabSecret(r.kind, id) ?? (user && r.kind === "meet" ? keptSecret(user, id, true) : null) ?? "";
  }
  return { ...r, secret } as MeetRoute;
}

export function isMeetHash(hash: string): boolean {
  return /^#\/(meet|patient|handover)\//.test(hash);
}

type Phase =
  | { name: "checking" }
  | { name: "problem"; message: string; retry?: boolean }
  | { name: "prejoin" }
  | { name: "waiting"; knock: Knock }
  | { name: "call"; session: MeetSession }
  | { name: "after"; reason: "left" | "removed" | "ended" | "rejected" | "failed" | "sessionOver" | "handedOver" };

export function MeetPage({ route }: { route: MeetRoute }) {
  const [, relabel] = useState(0);
  const [phase, setPhase] = useState<Phase>({ name: "checking" });
  const [info, setInfo] = useState<PublicMeeting | null>(null);
  const [meetingId, setMeetingId] = useState<string | null>(route.kind === "patient" ? null : route.meetingId);
  /** A signed-in moderator's admission, got before the check (so the page knows the role). */
  const [direct, setDirect] = useState<Admission | null>(null);
  const session = sessionToken();
  const phaseRef = useRef(phase);
  phaseRef.current = phase;
  /** Aborted when the user leaves the lobby (or the page): no call may start after that. */
  const lobbyAbort = useRef<AbortController | null>(null);
  /** A guest's or patient's knock from the lobby until they leave or the session is over: kept
   * through the call, so that leaving (also closing the page) ends the session on the server,
   * and so that a failed or lost connection reconnects with a fresh token from the admitted
   * knock (a patient's link is spent once admitted: knocking again would not work). */
  const knockRef = useRef<Knock | null>(null);
  /** The last camera/microphone choice, for reconnecting without the check again. */
  const choiceRef = useRef<Choice | null>(null);

  // The test driver and troubleshooting read the state through this (no secrets in it).
  useEffect(() => {
    (window as unknown as { wardMeet: unknown }).wardMeet = {
      phase: () => phaseRef.current.name,
      snapshot: async () => {
        const p = phaseRef.current;
        const base = { phase: p.name, reason: p.name === "after" ? p.reason : null };
        return p.name === "call" ? { ...base, ...(await p.session.snapshot()) } : base;
      },
    };
  }, []);

  async function check() {
    setPhase({ name: "checking" });
    if (!plausibleSecret(route.secret)) return setPhase({ name: "problem", message: t("meetLinkIncomplete") });
    if (!isE2EESupported()) return setPhase({ name: "problem", message: t("meetNoE2ee") });
    try {
      if (route.kind === "patient") {
        const link = await meet.patientLinkInfo(route.linkToken);
        setMeetingId(link.meeting_id);
        setInfo({ kind: "consultation", title: link.title, locked: false, pin_required: false });
      } else {
        setInfo(await meet.info(route.meetingId));
        if (session) {
          try {
            setDirect(await meet.join(session.accessToken, route.meetingId));
          } catch (e) {
            if (!(e instanceof MeetError && e.status === 403)) throw e;
            // A moderator, but a consultation session is running that was not handed to them.
            if (e.message.includes("consultation is in progress")) return setPhase({ name: "problem", message: explain(e) });
            // Signed in but not a moderator here: knock like a guest.
            if (route.kind === "handover") return setPhase({ name: "problem", message: t("handoverNotModerator") });
          }
        } else if (route.kind === "handover") {
          // Taking a consultation over is for colleagues: signed in, allowed to moderate it.
          return setPhase({ name: "problem", message: t("handoverNotModerator") });
        }
      }
      setPhase({ name: "prejoin" });
    } catch (e) {
      setPhase({ name: "problem", message: explain(e), retry: !(e instanceof MeetError && e.status >= 400) });
    }
  }
  useEffect(() => {
    void check();
  }, []);

  // Leaving the page leaves the lobby too (best effort; the knock also ends by itself).
  useEffect(() => {
    const bye = () => {
      const p = phaseRef.current;
      lobbyAbort.current?.abort();
      // Waiting, in the call, or after a failed connection: the guest is gone, and the session
      // with them (a patient's link is used up once admitted).
      const knock = knockRef.current;
      knockRef.current = null;
      if (knock) void meet.leave(knock, true).catch(() => undefined);
      if (p.name === "call") void p.session.leave();
    };
    window.addEventListener("pagehide", bye);
    return () => window.removeEventListener("pagehide", bye);
  }, []);

  const title = info?.title || (info?.kind === "consultation" ? t("consultation") : t("meeting"));
  const patient = route.kind === "patient";

  /** The knock is over (left, removed, rejected, ended): the page shows why. */
  function knockOver(reason: "rejected" | "removed" | "ended" | "left") {
    knockRef.current = null;
    // A patient whose admitted session was ended by the doctor (the next patient admitted).
    setPhase({ name: "after", reason: patient && reason !== "rejected" ? "sessionOver" : reason });
  }

  async function enter(choice: Choice) {
    const id = meetingId!;
    choiceRef.current = choice;
    const abort = new AbortController();
    lobbyAbort.current = abort;
    let s: MeetSession | null = null;
    try {
      let admission: Admission | null = direct;
      if (direct) {
        // The token from the check may be old by now; ask again.
        // Refused now (a consultation session began meanwhile, or the chat was left): say so;
        // any other failure tries the token from the check.
        admission = await meet.join(session!.accessToken, id).catch((e) => {
          if (e instanceof MeetError && e.status === 403) throw e;
          return direct;
        });
      } else {
        for (;;) {
          // A knock kept from before (a connection that failed or was lost) is asked for a
          // fresh token; otherwise knock.
          let knock = knockRef.current;
          if (!knock) {
            knock =
              route.kind === "patient"
                ? await meet.patientKnock(route.linkToken, choice.name)
                : await meet.knock(id, choice.name, choice.pin || undefined);
            if (abort.signal.aborted) return void meet.leave(knock).catch(() => undefined);
            knockRef.current = knock;
          }
          setPhase({ name: "waiting", knock });
          const outcome = await waitInLobby(knock, abort.signal, knockOver);
          if (outcome === null) return;
          if (outcome === "expired") {
            knockRef.current = null;
            // The page stopped asking for a while (the device slept, the network was away), so
            // the server dropped the knock: knock again, with the same link and name.
            if (abort.signal.aborted || phaseRef.current.name !== "waiting") return; // The guest left meanwhile.
            continue;
          }
          admission = outcome;
          break;
        }
      }
      // Whoever left the lobby in the meantime is not connected (nor their camera turned on),
      // even if a moderator let them in before the server heard of it.
      if (abort.signal.aborted) return;
      const ms = new MeetSession(id, route.secret, admission);
      s = ms;
      let asked = false;
      ms.subscribe(() => {
        if (ms.ended && ms.ended !== "left") {
          // Removed or ended: the knock is over; a lost connection keeps it for "join again".
          if (ms.ended !== "failed") knockRef.current = null;
          setPhase({ name: "after", reason: ms.ended === "removed" && patient ? "sessionOver" : ms.ended });
          // A connection that broke as the meeting ended or one was removed (the SFU closed it
          // before its word arrived) is not "lost": the server knows what happened.
          if (ms.ended === "failed" && !asked) {
            asked = true;
            void lostWhy(id, knockRef.current).then((why) => {
              if (!why || phaseRef.current.name !== "after" || phaseRef.current.reason !== "failed") return;
              knockRef.current = null;
              setPhase({ name: "after", reason: why === "removed" && patient ? "sessionOver" : why });
            });
          }
        }
      });
      await ms.connect({ on: choice.camera, deviceId: choice.cameraId }, { on: choice.mic, deviceId: choice.micId });
      if (abort.signal.aborted) return void (await ms.leave());
      setPhase({ name: "call", session: ms });
    } catch (e) {
      // Nothing half-joined stays behind the error: no room connection, no camera, no microphone.
      await s?.leave().catch(() => undefined);
      if (abort.signal.aborted) return;
      setPhase({ name: "problem", message: explain(e), retry: true });
    }
  }

  async function leaveCall(s: MeetSession) {
    // The knock first (keepalive, like closing the page): the session is over on the server
    // (a patient's link used up, the room free for the next patient) even if the page goes.
    const knock = knockRef.current;
    knockRef.current = null;
    if (knock) void meet.leave(knock, true).catch(() => undefined);
    await s.leave();
    setPhase({ name: "after", reason: "left" });
  }

  /** "Try again" and "join again": with a kept knock (still admitted, or still waiting), the
   * same knock reconnects with the same devices; otherwise the link is checked afresh. */
  function again() {
    const choice = choiceRef.current;
    if (knockRef.current && choice) void enter(choice);
    else void check();
  }

  if (phase.name === "call") {
    return (
      <Call
        session={phase.session}
        meetingId={meetingId!}
        title={title}
        info={info!}
        roomSecret={route.kind === "meet" ? route.secret : null}
        onHandedOver={async () => {
          await phase.session.leave();
          setPhase({ name: "after", reason: "handedOver" });
        }}
        moderatorToken={phase.session.admission.role === "moderator" ? session?.accessToken ?? null : null}
        onLeave={() => leaveCall(phase.session)}
        relabel={() => relabel((n) => n + 1)}
      />
    );
  }

  return (
    <div class="meet-outside">
      <header class="top">
        <span class="brand">{t("appName")}</span>
        <span class="meet-title">{title}</span>
        <LangSelect onChange={() => relabel((n) => n + 1)} />
      </header>
      <main class="card meet-card">
        {phase.name === "checking" && <Spinner label={t("loading")} />}
        {phase.name === "problem" && (
          <>
            <p class="error" role="alert" data-testid="meet-problem">
              {phase.message}
            </p>
            {phase.retry && (
              <button type="button" onClick={again} data-testid="meet-retry">
                {t("tryAgain")}
              </button>
            )}
          </>
        )}
        {phase.name === "prejoin" && (
          <PreJoin
            title={title}
            patient={patient}
            moderator={!!direct}
            defaultName={session ? session.userId.replace(/^@/, "").replace(/:.*$/, "") : ""}
            pinRequired={!direct && !!info?.pin_required}
            onJoin={enter}
          />
        )}
        {phase.name === "waiting" && (
          <section class="lobby-wait" data-testid="lobby-waiting" aria-live="polite">
            <Spinner label={patient ? t("patientWaiting") : t("lobbyWaiting")} />
            <p>{patient ? t("patientWaitingHint") : t("lobbyWaitingHint")}</p>
            <button
              type="button"
              class="plain"
              onClick={() => {
                lobbyAbort.current?.abort();
                knockRef.current = null;
                void meet.leave(phase.knock).catch(() => undefined);
                setPhase({ name: "after", reason: "left" });
              }}
              data-testid="leave-lobby"
            >
              {t("leaveLobby")}
            </button>
          </section>
        )}
        {phase.name === "after" && (
          <section data-testid={`meet-after-${phase.reason}`}>
            <p role="status">{afterText(phase.reason, patient)}</p>
            {phase.reason !== "ended" &&
              phase.reason !== "sessionOver" &&
              phase.reason !== "handedOver" &&
              (!patient || phase.reason === "failed") && (
              <button type="button" onClick={again} data-testid="meet-rejoin">
                {t("joinAgain")}
              </button>
            )}
            {session && (
              <p>
                <a href="#/">{t("backToChats")}</a>
              </p>
            )}
          </section>
        )}
      </main>
      <p class="meet-privacy">{t("meetPrivacy")}</p>
    </div>
  );
}

function afterText(reason: string, patient: boolean): string {
  switch (reason) {
    case "removed":
      return t("meetRemoved");
    case "ended":
      return patient ? t("consultationOver") : t("meetEnded");
    case "sessionOver":
      return t("consultationOver");
    case "rejected":
      return patient ? t("patientRejected") : t("meetRejected");
    case "failed":
      return t("meetConnectionLost");
    case "handedOver":
      return t("handedOver");
    default:
      return t("meetLeft");
  }
}

/** Why a connection broke, if the server knows: the meeting ended, or one was removed. */
async function lostWhy(meetingId: string, knock: Knock | null): Promise<"ended" | "removed" | null> {
  try {
    if (knock) {
      const state = await meet.poll(knock, 0);
      return state.status === "ended" ? "ended" : state.status === "removed" ? "removed" : null;
    }
    await meet.info(meetingId);
    return null;
  } catch (e) {
    // An ended meeting is "not found", like its knocks.
    return e instanceof MeetError && e.status === 404 ? "ended" : null;
  }
}

/**
 * Long-polls the knock until a moderator decides: the admission, null (the reason reported, or
 * `signal` aborted: the user left the lobby), or "expired" if the server dropped the knock
 * because this page stopped polling for a while.
 */
async function waitInLobby(
  knock: Knock,
  signal: AbortSignal,
  done: (reason: "rejected" | "removed" | "ended" | "left") => void,
): Promise<Admission | "expired" | null> {
  let failures = 0;
  while (!signal.aborted) {
    const polled = Date.now();
    let state;
    try {
      state = await meet.poll(knock, 30_000, signal);
      failures = 0;
    } catch (e) {
      if (signal.aborted) return null;
      // An unknown knock (purged) is as good as an expired one: knocking again tells.
      if (e instanceof MeetError && e.status === 404) return "expired";
      if (e instanceof MeetError && e.status >= 400 && e.status < 500 && e.status !== 429) {
        done("ended");
        return null;
      }
      failures++;
      await sleep(pollBackoffMs(failures, e), signal);
      continue;
    }
    if (signal.aborted) return null;
    switch (state.status) {
      case "waiting":
        await sleep(POLL_MIN_INTERVAL_MS - (Date.now() - polled), signal);
        continue;
      case "admitted":
        return state as Admission;
      case "expired":
        return "expired";
      case "rejected":
      case "removed":
      case "left":
      case "ended":
        done(state.status);
        return null;
    }
  }
  return null;
}

export interface Choice {
  name: string;
  pin: string;
  camera: boolean;
  mic: boolean;
  cameraId?: string;
  micId?: string;
}

/** Name (and PIN), camera and microphone check with device choice. */
function PreJoin({
  title,
  patient,
  moderator,
  defaultName,
  pinRequired,
  onJoin,
}: {
  title: string;
  patient: boolean;
  moderator: boolean;
  defaultName: string;
  pinRequired: boolean;
  onJoin: (c: Choice) => Promise<void>;
}) {
  const [name, setName] = useState(defaultName);
  const [pin, setPin] = useState("");
  const [camera, setCamera] = useState(true);
  const [mic, setMic] = useState(true);
  const [devices, setDevices] = useState<MediaDeviceInfo[]>([]);
  const [cameraId, setCameraId] = useState<string>("");
  const [micId, setMicId] = useState<string>("");
  const [mediaError, setMediaError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [level, setLevel] = useState(0);
  const video = useRef<HTMLVideoElement>(null);
  const stream = useRef<MediaStream | null>(null);

  useEffect(() => {
    let stopped = false;
    let ctx: AudioContext | null = null;
    let raf = 0;
    (async () => {
      stream.current?.getTracks().forEach((tr) => tr.stop());
      stream.current = null;
      if (!camera && !mic) return;
      try {
        const s = await navigator.mediaDevices.getUserMedia({
          video: camera ? (cameraId ? { deviceId: { exact: cameraId } } : true) : false,
          audio: mic ? (micId ? { deviceId: { exact: micId } } : true) : false,
        });
        if (stopped) return s.getTracks().forEach((tr) => tr.stop());
        stream.current = s;
        setMediaError(null);
        if (video.current) video.current.srcObject = s;
        setDevices(await navigator.mediaDevices.enumerateDevices());
        if (mic && s.getAudioTracks().length) {
          // A level meter, so the patient sees the microphone works.
          ctx = new AudioContext();
          const analyser = ctx.createAnalyser();
          ctx.createMediaStreamSource(s).connect(analyser);
          const data = new Uint8Array(analyser.fftSize);
          const tick = () => {
            analyser.getByteTimeDomainData(data);
            let peak = 0;
            for (const v of data) peak = Math.max(peak, Math.abs(v - 128));
            setLevel(Math.min(100, Math.round((peak / 128) * 300)));
            raf = requestAnimationFrame(tick);
          };
          tick();
        }
      } catch (e) {
        if (!stopped) setMediaError(t("mediaDenied"));
      }
    })();
    return () => {
      stopped = true;
      cancelAnimationFrame(raf);
      void ctx?.close();
    };
  }, [camera, mic, cameraId, micId]);
  useEffect(() => () => stream.current?.getTracks().forEach((tr) => tr.stop()), []);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    stream.current?.getTracks().forEach((tr) => tr.stop());
    stream.current = null;
    await onJoin({ name: name.trim(), pin, camera, mic, cameraId: cameraId || undefined, micId: micId || undefined });
    setBusy(false);
  }

  const cams = devices.filter((d) => d.kind === "videoinput" && d.deviceId);
  const mics = devices.filter((d) => d.kind === "audioinput" && d.deviceId);
  return (
    <form class="prejoin" onSubmit={submit} data-testid="prejoin">
      <h1>{patient ? t("patientWelcome") : t("joinTitle", { title })}</h1>
      <p>{patient ? t("patientIntro") : moderator ? t("joinAsModerator") : t("guestIntro")}</p>
      <div class="preview">
        <video ref={video} autoplay muted playsInline class={camera ? "" : "off"} />
        {!camera && <span class="preview-off">{t("cameraOff")}</span>}
        <meter class="mic-level" min={0} max={100} value={mic ? level : 0} aria-label={t("micLevel")} />
      </div>
      {mediaError && (
        <p class="error" role="alert">
          {mediaError}
        </p>
      )}
      <div class="toggles">
        <label>
          <input type="checkbox" checked={camera} onChange={(e) => setCamera((e.target as HTMLInputElement).checked)} />{" "}
          {t("camera")}
        </label>
        <label>
          <input type="checkbox" checked={mic} onChange={(e) => setMic((e.target as HTMLInputElement).checked)} />{" "}
          {t("microphone")}
        </label>
      </div>
      {cams.length > 1 && (
        <label>
          {t("camera")}
          <select value={cameraId} onChange={(e) => setCameraId((e.target as HTMLSelectElement).value)}>
            <option value="">{t("defaultDevice")}</option>
            {cams.map((d, i) => (
              <option key={d.deviceId} value={d.deviceId}>
                {d.label || `${t("camera")} ${i + 1}`}
              </option>
            ))}
          </select>
        </label>
      )}
      {mics.length > 1 && (
        <label>
          {t("microphone")}
          <select value={micId} onChange={(e) => setMicId((e.target as HTMLSelectElement).value)}>
            <option value="">{t("defaultDevice")}</option>
            {mics.map((d, i) => (
              <option key={d.deviceId} value={d.deviceId}>
                {d.label || `${t("microphone")} ${i + 1}`}
              </option>
            ))}
          </select>
        </label>
      )}
      {!moderator && (
        <label>
          {t("yourName")}
          <input
            name="name"
            required
            maxLength={64}
            autocomplete="name"
            value={name}
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
        </label>
      )}
      {pinRequired && (
        <label>
          {t("meetingPin")}
          <input
            name="pin"
            required
            minLength={4}
            maxLength={32}
            autocomplete="off"
            value={pin}
            onInput={(e) => setPin((e.target as HTMLInputElement).value)}
          />
        </label>
      )}
      <button type="submit" disabled={busy || (!moderator && !name.trim())} data-testid="join">
        {busy ? t("joining") : moderator ? t("enterMeeting") : patient ? t("patientEnter") : t("askToJoin")}
      </button>
    </form>
  );
}
