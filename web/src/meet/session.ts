// One meeting connection: livekit-client's Room with end-to-end encrypted media (the key is the
// link's secret), plus meeting chat, whiteboard and hand raise as data packets sealed with a key
// derived from the same secret (keys.ts). The SFU forwards both without being able to read them.
//
// Late joiners: whoever joins sends "hello" (a few times, until answered); of those already in
// the meeting the one with the smallest identity answers with the chat so far and the board
// (in chunks below the SFU's data packet limit), and everyone with a raised hand says so.
//
// What the SFU (or anyone but the participants) cannot do here: read or forge a data packet,
// attribute one to another participant (the sender's identity is sealed in as associated data),
// replay an old "hand" (each carries a counter), rewrite history after one has caught up (a
// catch-up "snap" is taken only before, and never in one's own name), or get plaintext media
// shown (only encrypted publications are rendered; see `plaintextFrom`).

import {
  ConnectionQuality,
  DisconnectReason,
  ExternalE2EEKeyProvider,
  type Participant,
  type RemoteParticipant,
  type RemoteTrackPublication,
  Room,
  RoomEvent,
  Track,
  type TrackPublication,
  VideoPresets,
} from "livekit-client";
import E2EEWorker from "livekit-client/e2ee-worker?worker";
import { dataKey, open, seal } from "./keys";
import { Board, checkOp, type Op } from "./whiteboard";
import type { Admission } from "./api";

/** Chat messages kept (and handed to late joiners). */
const CHAT_MAX = 200;
/** Characters of one chat message. */
export const CHAT_TEXT_MAX = 2000;
/** UTF-8 bytes of plain JSON per catch-up packet (the SFU drops data packets over 64 KiB; a single
 * stroke of `MAX_POINTS` can be larger and then goes alone, still well below that). */
const CHUNK_BYTES = 15_000;
const TOPIC = "ward.meet";
/** When a joiner repeats its hello while nobody has answered (ms after connecting). */
const HELLO_RETRIES_MS = [1500, 4000, 8000];
/** Hellos from the same participant answered at most this often… */
const HELLO_ANSWER_MIN_INTERVAL_MS = 1000;
/** …and at most this many times (a joiner says hello at most 1 + HELLO_RETRIES_MS.length times). */
const HELLO_ANSWERS_MAX = 3;

export interface ChatMessage {
  id: string;
  from: string; // identity
  name: string;
  text: string;
  at: number;
  /** For history from a catch-up: the name of who reported it (it cannot be checked). */
  reportedBy?: string;
}

type Wire =
  | { t: "chat"; msg: ChatMessage }
  | { t: "wb"; op: Op }
  | { t: "hand"; up: boolean; n: number }
  | { t: "hello" }
  | { t: "snap"; chat?: ChatMessage[]; ops?: Op[]; last?: boolean };

function randomId(): string {
  return crypto.randomUUID();
}

export type EndReason = "left" | "removed" | "ended" | "failed";

export class MeetSession {
  readonly room: Room;
  readonly board = new Board();
  chat: ChatMessage[] = [];
  hands = new Set<string>();
  synced = false;
  ended: EndReason | null = null;
  /** Data packets that did not open with our key (a wrong or different secret). */
  undecryptable = 0;
  /** Data packets that did open (so the secret is right). */
  opened = 0;
  /** Participants whose media frames did not decrypt with our key. */
  undecryptableFrom = new Set<string>();
  /** Devices that could not be started when joining ("camera", "microphone"): in without them. */
  deviceProblems: string[] = [];
  /** Media frames livekit-client could not decrypt (the last error, for troubleshooting). */
  encryptionErrors = 0;
  lastEncryptionError: string | null = null;
  private key: Promise<CryptoKey>;
  private keyProvider: ExternalE2EEKeyProvider;
  /** The secret media and data are keyed with now (see `setSecret`). */
  private secret: string;
  /** Participants a data packet of whom opened with the current key (so they hold it). */
  openedFrom = new Set<string>();
  private listeners = new Set<() => void>();
  private chatIds = new Set<string>();
  private timers: number[] = [];
  /** When a joiner's hello was last answered, and how often (by identity). */
  private answered = new Map<string, { at: number; count: number }>();
  private keyReady: Promise<void>;
  private worker: Worker;
  /** Received data packets are handled one after the other, in order of arrival. */
  private inbox: Promise<void> = Promise.resolve();
  /** Our own hello went out (a snap before that is not an answer to it). */
  private helloSent = false;
  /** The last hand counter seen per participant (a replayed hand packet is ignored). */
  private handCounters = new Map<string, number>();
  private handCounter = 0;

  constructor(
    readonly meetingId: string,
    secret: string,
    readonly admission: Admission,
  ) {
    const keyProvider = new ExternalE2EEKeyProvider();
    this.keyProvider = keyProvider;
    this.secret = secret;
    this.keyReady = keyProvider.setKey(secret);
    this.key = dataKey(secret, meetingId);
    this.worker = new E2EEWorker();
    this.room = new Room({
      adaptiveStream: true,
      dynacast: true,
      publishDefaults: { simulcast: true, videoSimulcastLayers: [VideoPresets.h180, VideoPresets.h360] },
      videoCaptureDefaults: { resolution: VideoPresets.h720.resolution },
      e2ee: { keyProvider, worker: this.worker },
    });
    const changed = () => this.emit();
    for (const ev of [
      RoomEvent.ParticipantConnected,
      RoomEvent.ParticipantDisconnected,
      RoomEvent.TrackSubscribed,
      RoomEvent.TrackUnsubscribed,
      RoomEvent.TrackMuted,
      RoomEvent.TrackUnmuted,
      RoomEvent.LocalTrackPublished,
      RoomEvent.LocalTrackUnpublished,
      RoomEvent.ActiveSpeakersChanged,
      RoomEvent.ConnectionQualityChanged,
      RoomEvent.ConnectionStateChanged,
      RoomEvent.ParticipantEncryptionStatusChanged,
    ]) {
      this.room.on(ev, changed);
    }
    this.room.on(RoomEvent.DataReceived, (payload, participant, _kind, topic) => {
      if (topic !== TOPIC || !participant) return;
      // One after the other: decryption finishes in any order, and a "clear" must not overtake
      // the stroke drawn before it.
      const data = new Uint8Array(payload);
      this.inbox = this.inbox.then(() => this.receive(data, participant)).catch(() => undefined);
    });
    // Media a participant publishes without end-to-end encryption (a client without E2EE, or a
    // server that claims so) is not taken: livekit-client would show such frames as they come.
    const refusePlaintext = (pub: RemoteTrackPublication) => {
      if (!pub.isEncrypted) pub.setSubscribed(false);
    };
    this.room.on(RoomEvent.TrackPublished, (pub) => {
      refusePlaintext(pub);
      this.emit();
    });
    this.room.on(RoomEvent.TrackSubscribed, (_track, pub) => refusePlaintext(pub));
    this.room.on(RoomEvent.Disconnected, (reason?: DisconnectReason) => {
      if (!this.ended) {
        this.ended =
          reason === DisconnectReason.PARTICIPANT_REMOVED
            ? "removed"
            : reason === DisconnectReason.ROOM_DELETED
              ? "ended"
              : reason === DisconnectReason.CLIENT_INITIATED
                ? "left"
                : "failed";
      }
      this.stopTimers();
      this.worker.terminate();
      this.emit();
    });
    this.room.on(RoomEvent.EncryptionError, (e: Error, p?: Participant) => {
      this.encryptionErrors++;
      this.lastEncryptionError = String(e?.message ?? e);
      if (p && p !== this.room.localParticipant && !this.undecryptableFrom.has(p.identity)) {
        this.undecryptableFrom.add(p.identity);
        this.emit();
      }
    });
    this.room.on(RoomEvent.ParticipantDisconnected, (p) => {
      this.hands.delete(p.identity);
      this.undecryptableFrom.delete(p.identity);
      this.openedFrom.delete(p.identity);
    });
  }

  /**
   * Keys media and data packets with another secret from now on: in a consultation room the
   * appointment's secret while its patient is admitted, the room's again after (keys.ts). A new
   * key is a new session: chat, whiteboard and raised hands of the one before are dropped, so
   * nothing of one patient's session reaches the next (a late joiner's catch-up hands over what
   * this page holds).
   */
  async setSecret(secret: string): Promise<void> {
    if (secret === this.secret) return;
    this.secret = secret;
    this.key = dataKey(secret, this.meetingId);
    this.chat = [];
    this.chatIds.clear();
    this.board.clear();
    this.hands.clear();
    this.handCounters.clear();
    this.answered.clear();
    this.undecryptable = 0;
    this.opened = 0;
    this.undecryptableFrom.clear();
    this.openedFrom.clear();
    this.emit();
    await this.keyProvider.setKey(secret);
    // Whoever is here already holds the new key (the patient just admitted) or not; either way
    // nobody has anything to catch up on from before the switch.
    this.synced = true;
    this.emit();
  }

  /** The secret this session is keyed with now (for a hand-over link). */
  get currentSecret(): string {
    return this.secret;
  }

  /** A remote publication that is not end-to-end encrypted: never rendered. */
  static plaintext(pub: TrackPublication | undefined): boolean {
    return !!pub && !pub.isEncrypted;
  }

  /** Participants who publish something without end-to-end encryption. */
  plaintextFrom(): string[] {
    return [...this.room.remoteParticipants.values()]
      .filter((p) => [...p.trackPublications.values()].some((pub) => !pub.isEncrypted))
      .map((p) => p.identity);
  }

  /** Media is end-to-end encrypted in this room and nobody sends anything in the clear. */
  get fullyEncrypted(): boolean {
    return this.room.isE2EEEnabled && this.plaintextFrom().length === 0;
  }

  /** Others are here but nothing of theirs opens with our key: the link is probably wrong. */
  get wrongKey(): boolean {
    const n = this.room.remoteParticipants.size;
    return (
      this.opened === 0 &&
      n > 0 &&
      (this.undecryptable > 0 || [...this.room.remoteParticipants.keys()].every((id) => this.undecryptableFrom.has(id)))
    );
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(): void {
    for (const fn of this.listeners) fn();
  }

  async connect(camera: { on: boolean; deviceId?: string }, mic: { on: boolean; deviceId?: string }): Promise<void> {
    await this.keyReady;
    await this.room.setE2EEEnabled(true);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    await this.room.connect(`${scheme}://${location.host}`, this.admission.token);
    // A device that fails (in use by another program, unplugged, denied) leaves one in the meeting
    // without it, told so, rather than half-joined behind an error.
    const lp = this.room.localParticipant;
    try {
      if (camera.on) await lp.setCameraEnabled(true, camera.deviceId ? { deviceId: camera.deviceId } : undefined);
    } catch {
      this.deviceProblems.push("camera");
      await lp.setCameraEnabled(false).catch(() => undefined);
    }
    try {
      if (mic.on) await lp.setMicrophoneEnabled(true, mic.deviceId ? { deviceId: mic.deviceId } : undefined);
    } catch {
      this.deviceProblems.push("microphone");
      await lp.setMicrophoneEnabled(false).catch(() => undefined);
    }
    this.sayHello();
    for (const ms of HELLO_RETRIES_MS) {
      this.timers.push(window.setTimeout(() => this.synced || this.sayHello(), ms));
    }
    this.emit();
  }

  private sayHello(): void {
    if (this.room.remoteParticipants.size === 0) {
      // Alone in the meeting: nothing to catch up on.
      this.synced = true;
      return;
    }
    this.helloSent = true;
    void this.send({ t: "hello" }).catch(() => undefined);
  }

  private stopTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }

  async leave(): Promise<void> {
    this.ended = this.ended ?? "left";
    this.stopTimers();
    try {
      await this.room.disconnect();
    } finally {
      // One E2EE worker per session: it goes with the session.
      this.worker.terminate();
    }
  }

  get identity(): string {
    return this.room.localParticipant.identity;
  }

  nameOf(p: Participant): string {
    return p.name || p.identity;
  }

  private async send(msg: Wire, to?: string[]): Promise<void> {
    const data = await seal(await this.key, this.meetingId, this.identity, msg);
    await this.room.localParticipant.publishData(data, { reliable: true, topic: TOPIC, destinationIdentities: to });
  }

  async sendChat(text: string): Promise<void> {
    const trimmed = text.trim().slice(0, CHAT_TEXT_MAX);
    if (!trimmed) return;
    const msg: ChatMessage = {
      id: randomId(),
      from: this.identity,
      name: this.nameOf(this.room.localParticipant),
      text: trimmed,
      at: Date.now(),
    };
    this.addChat(msg);
    await this.send({ t: "chat", msg });
  }

  async draw(op: Op): Promise<void> {
    if (this.board.add(op)) this.emit();
    await this.send({ t: "wb", op });
  }

  async setHand(up: boolean): Promise<void> {
    if (up) this.hands.add(this.identity);
    else this.hands.delete(this.identity);
    this.emit();
    await this.send({ t: "hand", up, n: this.nextHand() });
  }

  /** Increasing per session, and above anything an earlier session of ours sent (time-based). */
  private nextHand(): number {
    this.handCounter = Math.max(this.handCounter + 1, Date.now());
    return this.handCounter;
  }

  private addChat(msg: ChatMessage): boolean {
    if (this.chatIds.has(msg.id)) return false;
    this.chatIds.add(msg.id);
    this.chat.push(msg);
    this.chat.sort((a, b) => a.at - b.at);
    if (this.chat.length > CHAT_MAX) this.chat.splice(0, this.chat.length - CHAT_MAX);
    return true;
  }

  private async receive(payload: Uint8Array, from: RemoteParticipant): Promise<void> {
    const msg = (await open(await this.key, this.meetingId, from.identity, payload)) as Wire | null;
    if (!msg || typeof msg !== "object") {
      this.undecryptable++;
      this.emit();
      return;
    }
    this.opened++;
    if (!this.openedFrom.has(from.identity)) {
      this.openedFrom.add(from.identity);
      if (this.openedFrom.size > 1000) this.openedFrom.clear();
    }
    switch (msg.t) {
      case "chat": {
        const m = checkChat(msg.msg, from);
        if (m) this.addChat(m);
        break;
      }
      case "wb": {
        const op = checkOp(msg.op);
        if (op) this.board.add(op);
        break;
      }
      case "hand": {
        // A counter above the last one seen: a replayed old packet cannot raise or lower a hand.
        if (typeof msg.n !== "number" || !Number.isFinite(msg.n)) break;
        if (msg.n <= (this.handCounters.get(from.identity) ?? 0)) break;
        this.handCounters.set(from.identity, msg.n);
        if (this.handCounters.size > 1000) this.handCounters.clear();
        if (msg.up === true) this.hands.add(from.identity);
        else this.hands.delete(from.identity);
        break;
      }
      case "hello":
        try {
          await this.answerHello(from.identity);
        } catch {
          // The joiner says hello again, or someone else answers; this page carries on.
        }
        break;
      case "snap": {
        // Only while catching up, as the answer to our own hello, and only from the one who
        // answers hellos (the smallest identity besides oneself): nobody can slip in invented
        // history later. Its entries are what that participant reports, and never in our name.
        if (this.synced || !this.helloSent) break;
        if (from.identity !== [...this.room.remoteParticipants.keys()].sort()[0]) break;
        const reporter = this.nameOf(from);
        for (const c of Array.isArray(msg.chat) ? msg.chat : []) {
          const m = checkChat(c, null);
          if (m && m.from !== this.identity) this.addChat({ ...m, reportedBy: reporter });
        }
        for (const o of Array.isArray(msg.ops) ? msg.ops : []) {
          const op = checkOp(o);
          if (op) this.board.add(op);
        }
        if (msg.last) this.synced = true;
        break;
      }
    }
    this.emit();
  }

  private async answerHello(joiner: string): Promise<void> {
    // A joiner repeats its hello until answered; more often than that is not needed.
    const last = this.answered.get(joiner) ?? { at: 0, count: 0 };
    if (Date.now() - last.at < HELLO_ANSWER_MIN_INTERVAL_MS || last.count >= HELLO_ANSWERS_MAX) return;
    this.answered.set(joiner, { at: Date.now(), count: last.count + 1 });
    if (this.answered.size > 1000) this.answered.clear();
    if (this.hands.has(this.identity)) await this.send({ t: "hand", up: true, n: this.nextHand() }, [joiner]);
    const present = [this.identity, ...this.room.remoteParticipants.keys()].filter((id) => id !== joiner).sort();
    if (present[0] !== this.identity) return;
    // Chunks of chat and board, each well below the data packet limit.
    const items: Wire[] = [];
    let chat: ChatMessage[] = [];
    let ops: Op[] = [];
    let size = 0;
    const flush = () => {
      if (chat.length || ops.length) items.push({ t: "snap", chat, ops });
      chat = [];
      ops = [];
      size = 0;
    };
    const bytes = (v: unknown) => utf8.encode(JSON.stringify(v)).length;
    for (const m of this.chat) {
      const n = bytes(m);
      if (size + n > CHUNK_BYTES) flush();
      chat.push(m);
      size += n;
    }
    for (const o of this.board.ops) {
      const n = bytes(o);
      if (size + n > CHUNK_BYTES) flush();
      ops.push(o);
      size += n;
    }
    flush();
    items.push({ t: "snap", last: true });
    for (const item of items) await this.send(item, [joiner]);
  }

  /** The state for the acceptance test and for troubleshooting (no secrets in it). */
  async snapshot(): Promise<object> {
    const remotes = [];
    for (const p of this.room.remoteParticipants.values()) {
      for (const pub of p.trackPublications.values()) {
        const track = pub.track;
        let stats: Record<string, unknown> = {};
        if (track && track.kind === Track.Kind.Video && "getReceiverStats" in track) {
          const s = await (track as { getReceiverStats(): Promise<Record<string, unknown> | undefined> })
            .getReceiverStats()
            .catch(() => undefined);
          stats = { framesDecoded: s?.framesDecoded ?? 0, packetsReceived: s?.packetsReceived ?? 0, bytesReceived: s?.bytesReceived ?? 0 };
        } else if (track && track.kind === Track.Kind.Audio) {
          const report = await track.receiver?.getStats().catch(() => undefined);
          let packets = 0;
          report?.forEach((r: { type: string; kind?: string; packetsReceived?: number }) => {
            if (r.type === "inbound-rtp") packets += r.packetsReceived ?? 0;
          });
          stats = { packetsReceived: packets };
        }
        remotes.push({
          participant: p.identity,
          source: pub.source,
          kind: pub.kind,
          trackSid: pub.trackSid,
          subscribed: pub.isSubscribed,
          encrypted: pub.isEncrypted,
          muted: pub.isMuted,
          ...stats,
        });
      }
    }
    const lp = this.room.localParticipant;
    return {
      state: this.room.state,
      ended: this.ended,
      identity: lp.identity,
      role: this.admission.role,
      e2ee: this.room.isE2EEEnabled,
      participants: [...this.room.remoteParticipants.keys()].sort(),
      published: [...lp.trackPublications.values()].map((p) => p.source).sort(),
      remotes,
      chat: this.chat.map((m) => ({ from: m.from, text: m.text, reportedBy: m.reportedBy ?? null })),
      boardOps: this.board.ops.length,
      hands: [...this.hands].sort(),
      synced: this.synced,
      undecryptable: this.undecryptable,
      opened: this.opened,
      wrongKey: this.wrongKey,
      fullyEncrypted: this.fullyEncrypted,
      plaintextFrom: this.plaintextFrom(),
      deviceProblems: this.deviceProblems,
      encryptionErrors: this.encryptionErrors,
      lastEncryptionError: this.lastEncryptionError,
      quality: lp.connectionQuality,
    };
  }
}

const utf8 = new TextEncoder();

function checkChat(v: unknown, from: RemoteParticipant | null): ChatMessage | null {
  if (!v || typeof v !== "object") return null;
  const m = v as Record<string, unknown>;
  if (typeof m.id !== "string" || m.id.length > 64) return null;
  if (typeof m.text !== "string" || !m.text || m.text.length > CHAT_TEXT_MAX) return null;
  if (typeof m.from !== "string" || typeof m.name !== "string" || typeof m.at !== "number") return null;
  // A live message is from whoever sent the packet (names come from the SFU, not the sender).
  if (from) return { id: m.id, from: from.identity, name: from.name || from.identity, text: m.text, at: Date.now() };
  // From a catch-up: a time from the future would sort it below everything said later.
  return { id: m.id, from: m.from.slice(0, 255), name: m.name.slice(0, 64), text: m.text, at: Math.min(m.at, Date.now()) };
}

export { ConnectionQuality, Track };
