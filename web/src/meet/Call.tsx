// The call itself: video grid or speaker view, controls, meeting chat, whiteboard, and for
// moderators the lobby, the participants' controls and (in a consultation room) patient links,
// the appointment's key for the admitted patient's session, and the hand-over to a colleague.

import { useEffect, useRef, useState } from "preact/hooks";
import {
  ConnectionQuality,
  type Participant,
  type RemoteParticipant,
  Track,
  type TrackPublication,
} from "livekit-client";
import { t } from "../i18n";
import { LangSelect } from "../views/LangSelect";
import { IconLock } from "../icons";
import { meet, MeetError, pollBackoffMs, POLL_MIN_INTERVAL_MS, sleep, type LobbyEntry, type PublicMeeting } from "./api";
import { appointmentSecret, handoverLink, patientLink } from "./keys";
import { explain } from "./errors";
import { CHAT_TEXT_MAX, MeetSession } from "./session";
import { Whiteboard } from "./WhiteboardView";

type Panel = "chat" | "people" | "links" | null;
type View = "grid" | "speaker" | "board";

function useSessionTick(session: MeetSession): number {
  const [tick, setTick] = useState(0);
  useEffect(() => session.subscribe(() => setTick((n) => n + 1)), [session]);
  return tick;
}

export function Call({
  session,
  meetingId,
  title,
  info,
  roomSecret,
  moderatorToken,
  onLeave,
  onHandedOver,
  relabel,
}: {
  session: MeetSession;
  meetingId: string;
  title: string;
  info: PublicMeeting;
  /** The meeting's (consultation room's) own secret; null on a hand-over page, which has only
   * the secret of the appointment it took over. */
  roomSecret: string | null;
  moderatorToken: string | null;
  onLeave: () => void;
  onHandedOver: () => void;
  relabel: () => void;
}) {
  useSessionTick(session);
  const room = session.room;
  const [view, setView] = useState<View>("grid");
  const [panel, setPanel] = useState<Panel>(null);
  const [error, setError] = useState<string | null>(null);
  const [locked, setLocked] = useState(info.locked);
  const [lobby, setLobby] = useState<{ waiting: LobbyEntry[]; admitted: LobbyEntry[] }>({ waiting: [], admitted: [] });
  const [seenChat, setSeenChat] = useState(0);
  const consultation = info.kind === "consultation";
  const moderator = moderatorToken !== null;
  /** Handing over to this colleague (Matrix user ID): the server let them into the session,
   * the hand-over link is shown, and the page leaves once they are in. */
  const [handingOverTo, setHandingOverTo] = useState<string | null>(null);
  const [keyError, setKeyError] = useState<string | null>(null);

  // In a consultation room the session is keyed with the admitted patient's appointment secret
  // (derived from the room's secret and the patient link's reference), and with the room's own
  // secret while nobody is admitted. Every moderator page with the room's secret follows the
  // lobby alike; a hand-over page keeps the appointment secret it came with.
  const appointmentRef = consultation
    ? (lobby.admitted.filter((a) => a.patient && a.link_ref).sort((a, b) => b.since_ms - a.since_ms)[0]?.link_ref ?? null)
    : null;
  useEffect(() => {
    if (!consultation || !moderator || roomSecret === null) return;
    // A derivation that finishes after the lobby changed again is not applied.
    let current = true;
    void keyFor(appointmentRef).then(
      (s) => (current ? session.setSecret(s) : undefined),
      (e) => setKeyError(String(e)),
    );
    return () => {
      current = false;
    };
  }, [appointmentRef, roomSecret]);
  function keyFor(ref: string | null): Promise<string> {
    return ref ? appointmentSecret(roomSecret!, meetingId, ref) : Promise.resolve(roomSecret!);
  }

  // After "Hand over": as soon as the colleague it was handed to is in and holds the key (a
  // packet of theirs opened), this page leaves; the patient stays with the colleague.
  const colleagueIn =
    handingOverTo !== null &&
    [...room.remoteParticipants.values()].some(
      (p) => p.identity === handingOverTo && roleOf(p) === "moderator" && session.openedFrom.has(p.identity),
    );
  useEffect(() => {
    if (colleagueIn) onHandedOver();
  }, [colleagueIn]);

  // Moderators follow the lobby by long-polling it.
  useEffect(() => {
    if (!moderatorToken) return;
    const abort = new AbortController();
    (async () => {
      let since: string | null = null;
      let failures = 0;
      while (!abort.signal.aborted) {
        const polled = Date.now();
        try {
          const l = await meet.lobby(moderatorToken, meetingId, since, 30_000, abort.signal);
          since = l.since;
          failures = 0;
          setLobby({ waiting: l.waiting, admitted: l.admitted });
          await sleep(POLL_MIN_INTERVAL_MS - (Date.now() - polled), abort.signal);
        } catch (e) {
          if (abort.signal.aborted) return;
          // Signed out or no longer a moderator here: asking again will not change that.
          if (e instanceof MeetError && (e.status === 401 || e.status === 403)) {
            setError(explain(e));
            return;
          }
          failures++;
          await sleep(pollBackoffMs(failures, e), abort.signal);
        }
      }
    })();
    return () => abort.abort();
  }, [moderatorToken, meetingId]);

  // Someone waiting shows in the tab's title too, for a doctor working in another tab.
  useEffect(() => {
    const n = lobby.waiting.length;
    document.title = n ? `(${n}) ${consultation ? t("patientIsWaiting") : t("someoneWaiting")} – Ward` : `${title} – Ward`;
  }, [lobby.waiting.length, title]);

  async function act(f: () => Promise<unknown>) {
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(explain(e));
    }
  }

  const lp = room.localParticipant;
  const participants: Participant[] = [lp, ...room.remoteParticipants.values()];
  const screens = participants.filter((p) => p.getTrackPublication(Track.Source.ScreenShare)?.track);
  const speaker =
    room.activeSpeakers.find((p) => p !== lp) ??
    (room.remoteParticipants.size ? [...room.remoteParticipants.values()][0] : lp);
  const unread = session.chat.length - seenChat;
  useEffect(() => {
    if (panel === "chat") setSeenChat(session.chat.length);
  }, [panel, session.chat.length]);
  const handUp = session.hands.has(lp.identity);

  const tiles = (ps: Participant[], source: Track.Source) =>
    ps.map((p) => (
      <Tile
        key={`${p.identity}-${source}`}
        session={session}
        participant={p}
        source={source}
        speaking={p.isSpeaking}
        hand={session.hands.has(p.identity)}
      />
    ));

  return (
    <div class={`call${panel ? " with-panel" : ""}`} data-testid="call">
      <header class="call-top">
        <span class="brand">{t("appName")}</span>
        <h1 class="meet-title">{title}</h1>
        {session.fullyEncrypted ? (
          <span class="e2ee" title={t("meetE2ee")} data-testid="e2ee-badge">
            <IconLock /> <span class="e2ee-label">{t("meetE2eeShort")}</span>
          </span>
        ) : (
          <span class="e2ee off" title={t("meetNotAllEncrypted")} data-testid="e2ee-badge-off">
            {t("meetNotAllEncryptedShort")}
          </span>
        )}
        {locked && <span class="badge">{t("meetingLocked")}</span>}
        <Quality quality={lp.connectionQuality} />
        <span class="count">{t("participantCount", { count: participants.length })}</span>
        <LangSelect onChange={relabel} />
      </header>
      {moderator && lobby.waiting.length > 0 && (
        <section class="lobby-bar" aria-live="polite" data-testid="lobby">
          {lobby.waiting.map((w) => (
            <div class="waiting" key={w.knock_id} data-testid="lobby-entry">
              <span>
                {w.patient ? t("patientWaitingNamed", { name: w.display_name }) : t("waitingNamed", { name: w.display_name })}
              </span>
              <button
                type="button"
                onClick={() =>
                  act(async () => {
                    await meet.admit(moderatorToken!, meetingId, w.knock_id);
                    // Keyed for the patient at once, not only when the lobby's answer comes.
                    if (consultation && roomSecret !== null && w.patient && w.link_ref) {
                      await session.setSecret(await keyFor(w.link_ref));
                    }
                  })
                }
                data-testid="admit"
              >
                {t("admit")}
              </button>
              <button type="button" class="plain" onClick={() => act(() => meet.reject(moderatorToken!, meetingId, w.knock_id))}>
                {t("reject")}
              </button>
            </div>
          ))}
        </section>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {keyError && (
        <p class="error" role="alert">
          {keyError}
        </p>
      )}
      {session.wrongKey && (
        <p class="error" role="alert" data-testid="meet-wrong-key">
          {t("meetWrongKey")}
        </p>
      )}
      {session.deviceProblems.map((d) => (
        <p class="error" role="status" key={d} data-testid="device-problem">
          {d === "camera" ? t("cameraFailed") : t("micFailed")}
        </p>
      ))}
      <main class={`stage ${view}`} data-testid={`stage-${view}`}>
        {view === "board" ? (
          <Whiteboard session={session} />
        ) : view === "speaker" ? (
          <>
            <div class="speaker-main">
              {screens.length
                ? tiles(screens.slice(0, 1), Track.Source.ScreenShare)
                : tiles([speaker], Track.Source.Camera)}
            </div>
            <div class="speaker-strip">{tiles(participants, Track.Source.Camera)}</div>
          </>
        ) : (
          <div class="grid">
            {tiles(screens, Track.Source.ScreenShare)}
            {tiles(participants, Track.Source.Camera)}
          </div>
        )}
        <RemoteAudio session={session} />
      </main>
      {panel === "chat" && <ChatPanel session={session} />}
      {panel === "people" && (
        <PeoplePanel
          session={session}
          moderatorToken={moderatorToken}
          meetingId={meetingId}
          act={act}
          locked={locked}
          setLocked={setLocked}
          consultation={consultation}
          admitted={lobby.admitted}
          canHandOver={consultation && appointmentRef !== null}
          handingOverTo={handingOverTo}
          startHandOver={setHandingOverTo}
        />
      )}
      {panel === "links" && moderator && consultation && roomSecret !== null && (
        <PatientLinks moderatorToken={moderatorToken!} meetingId={meetingId} secret={roomSecret} act={act} />
      )}
      <nav class="controls" aria-label={t("meetControls")}>
        <button
          type="button"
          aria-pressed={!lp.isMicrophoneEnabled}
          onClick={() => act(() => lp.setMicrophoneEnabled(!lp.isMicrophoneEnabled))}
          data-testid="toggle-mic"
        >
          {lp.isMicrophoneEnabled ? t("mute") : t("unmute")}
        </button>
        <button
          type="button"
          aria-pressed={!lp.isCameraEnabled}
          onClick={() => act(() => lp.setCameraEnabled(!lp.isCameraEnabled))}
          data-testid="toggle-camera"
        >
          {lp.isCameraEnabled ? t("cameraOffAction") : t("cameraOnAction")}
        </button>
        {"getDisplayMedia" in (navigator.mediaDevices ?? {}) && (
          <button
            type="button"
            aria-pressed={lp.isScreenShareEnabled}
            onClick={() => act(() => lp.setScreenShareEnabled(!lp.isScreenShareEnabled, { audio: false }))}
            data-testid="toggle-screen"
          >
            {lp.isScreenShareEnabled ? t("stopSharing") : t("shareScreen")}
          </button>
        )}
        <button type="button" aria-pressed={handUp} onClick={() => act(() => session.setHand(!handUp))} data-testid="toggle-hand">
          {handUp ? t("lowerHand") : t("raiseHand")}
        </button>
        <select
          aria-label={t("layout")}
          value={view}
          onChange={(e) => setView((e.target as HTMLSelectElement).value as View)}
          data-testid="view"
        >
          <option value="grid">{t("gridView")}</option>
          <option value="speaker">{t("speakerView")}</option>
          <option value="board">{t("whiteboard")}</option>
        </select>
        <button type="button" aria-pressed={panel === "chat"} onClick={() => setPanel(panel === "chat" ? null : "chat")} data-testid="open-chat">
          {t("meetChat")}
          {panel !== "chat" && unread > 0 ? ` (${unread})` : ""}
        </button>
        <button
          type="button"
          aria-pressed={panel === "people"}
          onClick={() => setPanel(panel === "people" ? null : "people")}
          data-testid="open-people"
        >
          {t("people")}
        </button>
        {moderator && consultation && roomSecret !== null && (
          <button
            type="button"
            aria-pressed={panel === "links"}
            onClick={() => setPanel(panel === "links" ? null : "links")}
            data-testid="open-links"
          >
            {t("patientLinks")}
          </button>
        )}
        <button type="button" class="danger" onClick={onLeave} data-testid="leave">
          {t("leaveMeeting")}
        </button>
      </nav>
    </div>
  );
}

/** The role in a participant's token metadata (`{"role": …}`, set by Ward). */
function roleOf(p: Participant): string | null {
  try {
    const role = (JSON.parse(p.metadata || "{}") as { role?: unknown }).role;
    return typeof role === "string" ? role : null;
  } catch {
    return null;
  }
}

function Quality({ quality }: { quality: ConnectionQuality }) {
  const label =
    quality === ConnectionQuality.Excellent
      ? t("qualityExcellent")
      : quality === ConnectionQuality.Good
        ? t("qualityGood")
        : quality === ConnectionQuality.Poor
          ? t("qualityPoor")
          : quality === ConnectionQuality.Lost
            ? t("qualityLost")
            : t("qualityUnknown");
  return (
    <span class={`quality q-${quality}`} title={t("connection", { quality: label })}>
      <span class="bars" aria-hidden="true">
        <i />
        <i />
        <i />
      </span>
      <span class="visually-hidden">{t("connection", { quality: label })}</span>
    </span>
  );
}

/** One participant's camera or screen share, with name, microphone state, hand and quality. */
function Tile({
  session,
  participant,
  source,
  speaking,
  hand,
}: {
  session: MeetSession;
  participant: Participant;
  source: Track.Source;
  speaking: boolean;
  hand: boolean;
}) {
  const video = useRef<HTMLVideoElement>(null);
  const pub: TrackPublication | undefined = participant.getTrackPublication(source);
  const local = participant === session.room.localParticipant;
  // Another participant's media only if it is end-to-end encrypted (see session.ts).
  const plaintext = !local && MeetSession.plaintext(pub);
  const undecryptable = !local && session.undecryptableFrom.has(participant.identity);
  const track = plaintext ? undefined : pub?.track;
  const showing = !!track && !pub?.isMuted;
  useEffect(() => {
    const el = video.current;
    if (!track || !el) return;
    track.attach(el);
    return () => {
      track.detach(el);
    };
  }, [track]);
  const name = session.nameOf(participant) + (local ? ` (${t("you")})` : "");
  return (
    <figure
      class={`tile${speaking ? " speaking" : ""}${source === Track.Source.ScreenShare ? " screen" : ""}${local ? " local" : ""}`}
      data-identity={participant.identity}
      data-source={source}
    >
      <video ref={video} autoplay playsInline muted class={showing ? "" : "hidden"} />
      {!showing && <span class="avatar">{name.slice(0, 1).toUpperCase()}</span>}
      <figcaption>
        {hand && (
          <span class="hand" title={t("handRaised")} role="img" aria-label={t("handRaised")}>
            ✋
          </span>
        )}
        <span class="name">{source === Track.Source.ScreenShare ? t("screenOf", { name }) : name}</span>
        {plaintext && (
          <span class="muted-mic" data-testid="not-encrypted">
            {t("participantNotEncrypted")}
          </span>
        )}
        {!plaintext && undecryptable && <span class="muted-mic">{t("participantUndecryptable")}</span>}
        {source === Track.Source.Camera && !participant.isMicrophoneEnabled && <span class="muted-mic">{t("micOff")}</span>}
        {source === Track.Source.Camera && <Quality quality={participant.connectionQuality} />}
      </figcaption>
    </figure>
  );
}

function RemoteAudio({ session }: { session: MeetSession }) {
  const tracks = [...session.room.remoteParticipants.values()].flatMap((p) =>
    [...p.audioTrackPublications.values()]
      .filter((pub) => !MeetSession.plaintext(pub))
      .map((pub) => pub.track)
      .filter((tr) => !!tr),
  );
  return (
    <div class="audio-sinks" aria-hidden="true">
      {tracks.map((tr) => (
        <AudioSink key={tr!.sid} track={tr!} />
      ))}
    </div>
  );
}

function AudioSink({ track }: { track: Track }) {
  const el = useRef<HTMLAudioElement>(null);
  useEffect(() => {
    if (!el.current) return;
    track.attach(el.current);
    return () => {
      track.detach(el.current!);
    };
  }, [track]);
  return <audio ref={el} autoplay />;
}

function ChatPanel({ session }: { session: MeetSession }) {
  const [text, setText] = useState("");
  const list = useRef<HTMLOListElement>(null);
  useEffect(() => {
    list.current?.lastElementChild?.scrollIntoView({ block: "end" });
  }, [session.chat.length]);
  return (
    <aside class="panel chat-panel" aria-label={t("meetChat")} data-testid="chat-panel">
      <h2>{t("meetChat")}</h2>
      <p class="hint">{t("meetChatHint")}</p>
      <ol ref={list} class="meet-messages">
        {session.chat.map((m) => (
          <li key={m.id} class={m.from === session.identity ? "mine" : ""}>
            <strong>{m.name}</strong>
            {m.reportedBy && <span class="hint"> ({t("reportedBy", { name: m.reportedBy })})</span>}{" "}
            <span class="body">{m.text}</span>
          </li>
        ))}
      </ol>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void session.sendChat(text);
          setText("");
        }}
      >
        <input
          aria-label={t("message")}
          placeholder={t("message")}
          maxLength={CHAT_TEXT_MAX}
          value={text}
          onInput={(e) => setText((e.target as HTMLInputElement).value)}
          data-testid="chat-input"
        />
        <button type="submit">{t("send")}</button>
      </form>
    </aside>
  );
}

function PeoplePanel({
  session,
  moderatorToken,
  meetingId,
  act,
  locked,
  setLocked,
  consultation,
  admitted,
  canHandOver,
  handingOverTo,
  startHandOver,
}: {
  session: MeetSession;
  moderatorToken: string | null;
  meetingId: string;
  act: (f: () => Promise<unknown>) => Promise<void>;
  locked: boolean;
  setLocked: (l: boolean) => void;
  consultation: boolean;
  admitted: LobbyEntry[];
  canHandOver: boolean;
  handingOverTo: string | null;
  startHandOver: (userId: string) => void;
}) {
  const [pin, setPin] = useState("");
  const [colleague, setColleague] = useState("");
  const [handOverError, setHandOverError] = useState<string | null>(null);
  const [granting, setGranting] = useState(false);
  /** The server lets the colleague into this session first; only then is the link shown. */
  async function handOver(e: Event) {
    e.preventDefault();
    const userId = colleague.trim();
    if (!moderatorToken || !userId) return;
    setHandOverError(null);
    setGranting(true);
    try {
      await meet.handover(moderatorToken, meetingId, userId);
      startHandOver(userId);
    } catch (err) {
      setHandOverError(explain(err));
    } finally {
      setGranting(false);
    }
  }
  const room = session.room;
  const remotes: RemoteParticipant[] = [...room.remoteParticipants.values()];
  const patients = new Set(admitted.filter((a) => a.patient).map((a) => a.identity));
  // Admitted but not in the call: on the way in, or gone without leaving (the page closed, the
  // connection lost). Their session holds a patient's place until it is ended here (or the
  // next patient is admitted).
  const absent = admitted.filter((a) => !room.remoteParticipants.has(a.identity));
  return (
    <aside class="panel people-panel" aria-label={t("people")} data-testid="people-panel">
      <h2>{t("people")}</h2>
      <ul class="people">
        <li>
          {session.nameOf(room.localParticipant)} ({t("you")})
        </li>
        {remotes.map((p) => {
          const micPub = p.getTrackPublication(Track.Source.Microphone);
          return (
            <li key={p.identity} data-identity={p.identity}>
              <span>
                {session.nameOf(p)}
                {session.hands.has(p.identity) && " ✋"}
              </span>
              {moderatorToken && (
                <span class="actions">
                  {micPub && !micPub.isMuted && (
                    <button
                      type="button"
                      class="plain small"
                      onClick={() => act(() => meet.mute(moderatorToken, meetingId, p.identity, micPub.trackSid))}
                      data-testid="mute"
                    >
                      {t("muteSomeone")}
                    </button>
                  )}
                  <button
                    type="button"
                    class="plain small"
                    onClick={() => act(() => meet.remove(moderatorToken, meetingId, p.identity))}
                    data-testid="remove"
                  >
                    {consultation && patients.has(p.identity) ? t("endConsultationWith") : t("removeSomeone")}
                  </button>
                </span>
              )}
            </li>
          );
        })}
        {moderatorToken &&
          absent.map((a) => (
            <li key={a.knock_id} data-identity={a.identity} class="absent" data-testid="admitted-absent">
              <span>
                {a.display_name} ({t("notInCall")})
              </span>
              <span class="actions">
                <button
                  type="button"
                  class="plain small"
                  onClick={() => act(() => meet.remove(moderatorToken, meetingId, a.identity))}
                  data-testid="end-session"
                >
                  {t("endSession")}
                </button>
              </span>
            </li>
          ))}
      </ul>
      {moderatorToken && canHandOver && (
        <section class="handover" data-testid="handover">
          <h3>{t("handOverTitle")}</h3>
          {handingOverTo !== null ? (
            <>
              <p class="hint">{t("handOverGranted", { user: handingOverTo })}</p>
              <p class="hint">{t("handOverHint")}</p>
              <input
                readOnly
                value={handoverLink(meetingId, session.currentSecret)}
                aria-label={t("handOverLink")}
                data-testid="handover-link"
              />
              <button
                type="button"
                class="small"
                onClick={() => navigator.clipboard?.writeText(handoverLink(meetingId, session.currentSecret))}
              >
                {t("copy")}
              </button>
              <p role="status">{t("handOverWaiting")}</p>
            </>
          ) : (
            <form onSubmit={(e) => void handOver(e)} data-testid="hand-over-form">
              <label>
                {t("handOverTo")}
                <input
                  value={colleague}
                  onInput={(e) => setColleague((e.target as HTMLInputElement).value)}
                  placeholder="@name:server"
                  autocomplete="off"
                  spellcheck={false}
                  required
                  data-testid="hand-over-to"
                />
              </label>
              {handOverError && (
                <p class="error" role="alert" data-testid="hand-over-error">
                  {handOverError}
                </p>
              )}
              <button type="submit" disabled={granting} data-testid="hand-over">
                {t("handOverGrant")}
              </button>
            </form>
          )}
        </section>
      )}
      {moderatorToken && (
        <section class="moderation">
          <h3>{t("moderation")}</h3>
          {!consultation && (
            <>
              <label class="check">
                <input
                  type="checkbox"
                  checked={locked}
                  onChange={(e) => {
                    const want = (e.target as HTMLInputElement).checked;
                    setLocked(want);
                    void act(async () => {
                      try {
                        await meet.lock(moderatorToken, meetingId, want);
                      } catch (err) {
                        setLocked(!want);
                        throw err;
                      }
                    });
                  }}
                  data-testid="lock"
                />{" "}
                {t("lockMeeting")}
              </label>
              <form
                class="pin"
                onSubmit={(e) => {
                  e.preventDefault();
                  void act(() => meet.pin(moderatorToken, meetingId, pin.trim() || null));
                }}
              >
                <label>
                  {t("meetingPin")}
                  <input value={pin} minLength={4} maxLength={32} onInput={(e) => setPin((e.target as HTMLInputElement).value)} />
                </label>
                <button type="submit" class="small">
                  {pin.trim() ? t("setPin") : t("removePin")}
                </button>
              </form>
            </>
          )}
          <button
            type="button"
            class="danger"
            onClick={() => {
              if (window.confirm(consultation ? t("confirmCloseConsultation") : t("confirmEndForAll")))
                void act(() => meet.end(moderatorToken, meetingId));
            }}
            data-testid="end-for-all"
          >
            {consultation ? t("closeConsultationRoom") : t("endForAll")}
          </button>
        </section>
      )}
    </aside>
  );
}

const EXPIRIES: { ms: number; key: "expires1h" | "expires1d" | "expires7d" | "expires30d" }[] = [
  { ms: 3_600_000, key: "expires1h" },
  { ms: 86_400_000, key: "expires1d" },
  { ms: 7 * 86_400_000, key: "expires7d" },
  { ms: 30 * 86_400_000, key: "expires30d" },
];

/** A consultation room's patient links: one per appointment, single use, expiring. */
function PatientLinks({
  moderatorToken,
  meetingId,
  secret,
  act,
}: {
  moderatorToken: string;
  meetingId: string;
  secret: string;
  act: (f: () => Promise<unknown>) => Promise<void>;
}) {
  const [expiry, setExpiry] = useState(EXPIRIES[1].ms);
  const [slot, setSlot] = useState("");
  const [minutes, setMinutes] = useState(15);
  const [links, setLinks] = useState<{ link: string; expires: number; slot: number | null }[]>([]);
  const [copied, setCopied] = useState<string | null>(null);
  function create(e: Event) {
    e.preventDefault();
    void act(async () => {
      const start = slot ? new Date(slot).getTime() : undefined;
      const body = start
        ? { expires_in_ms: Math.max(expiry, start + minutes * 60_000 - Date.now()), slot_start_ms: start, slot_end_ms: start + minutes * 60_000 }
        : { expires_in_ms: expiry };
      const r = await meet.patientLink(moderatorToken, meetingId, body);
      // The link carries this appointment's own secret, never the room's (keys.ts).
      const appointment = await appointmentSecret(secret, meetingId, r.link_ref);
      setLinks([{ link: patientLink(r.link_token, appointment), expires: r.expires_ms, slot: start ?? null }, ...links]);
    });
  }
  return (
    <aside class="panel links-panel" aria-label={t("patientLinks")} data-testid="links-panel">
      <h2>{t("patientLinks")}</h2>
      <p class="hint">{t("patientLinksHint")}</p>
      <form onSubmit={create}>
        <label>
          {t("linkValidFor")}
          <select value={expiry} onChange={(e) => setExpiry(Number((e.target as HTMLSelectElement).value))}>
            {EXPIRIES.map((x) => (
              <option key={x.ms} value={x.ms}>
                {t(x.key)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("appointmentSlot")}
          <input type="datetime-local" value={slot} onInput={(e) => setSlot((e.target as HTMLInputElement).value)} />
        </label>
        {slot && (
          <label>
            {t("slotMinutes")}
            <input
              type="number"
              min={5}
              max={240}
              value={minutes}
              onInput={(e) => setMinutes(Number((e.target as HTMLInputElement).value) || 15)}
            />
          </label>
        )}
        <button type="submit" data-testid="create-patient-link">
          {t("createPatientLink")}
        </button>
      </form>
      <ul class="patient-links">
        {links.map((l) => (
          <li key={l.link}>
            <input readOnly value={l.link} aria-label={t("patientLink")} data-testid="patient-link" />
            <button
              type="button"
              class="small"
              onClick={() => navigator.clipboard?.writeText(l.link).then(() => setCopied(l.link))}
            >
              {copied === l.link ? t("copied") : t("copy")}
            </button>
            <span class="hint">
              {l.slot
                ? t("linkSlot", { when: new Date(l.slot).toLocaleString() })
                : t("linkExpires", { when: new Date(l.expires).toLocaleString() })}
            </span>
          </li>
        ))}
      </ul>
    </aside>
  );
}
