import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import {
  Direction,
  EventStatus,
  EventType,
  KnownMembership,
  MatrixClient,
  MatrixEvent,
  MsgType,
  ReceiptType,
  RelationType,
  Room,
} from "matrix-js-sdk";
import { formatSize, lang, t } from "../i18n";
import { IconBack, IconClip, IconLock, IconSend, IconVideo, Spinner } from "../icons";
import { describeError } from "../matrix";
import {
  attachmentUrl,
  FileTooLarge,
  hasThumbnail,
  isAttachment,
  isInlineImage,
  sendFile,
  UploadCancelled,
} from "../media";
import { go } from "../route";
import { findMeetingLink, startMeeting } from "../meet/start";
import { explain } from "../meet/errors";
import { MeetError } from "../meet/api";
import { acceptInvite, displayName, inviterOf, isDirect, isVerificationRequest, leaveRoom } from "../rooms";
import { requestVerification } from "../verification";
import type { VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";
import { Dialog } from "./Dialog";
import { UserPicker, type Hit } from "./UserPicker";

/** Events fetched per back-pagination request. */
const PAGE_SIZE = 30;
/** How long a "typing" notice lasts on the server unless renewed. */
const TYPING_TIMEOUT_MS = 10_000;
/** Renew the typing notice at most this often while the user keeps typing. */
const TYPING_RENEW_MS = 4_000;
/** Within this many pixels of the bottom the timeline follows new messages. */
const STICK_TO_BOTTOM_PX = 48;

export function RoomView({
  client,
  room,
  tick,
  onVerify,
}: {
  client: MatrixClient;
  room: Room;
  tick: number;
  onVerify: (r: VerificationRequest) => void;
}) {
  const membership = room.getMyMembership();
  const me = client.getUserId();
  const others = room.getJoinedMembers().filter((m) => m.userId !== me);
  const dmPartner = isDirect(client, room) && others.length === 1 ? others[0].userId : null;

  async function verify() {
    if (!dmPartner) return;
    try {
      onVerify(await requestVerification(client, dmPartner, room.roomId));
    } catch (e) {
      setError(describeError(e));
    }
  }
  const [inviting, setInviting] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setInviting(false), [room.roomId]);

  // A meeting for this chat: its link (with the secret in the fragment) goes into the chat as
  // an encrypted message, so the chat's members can join; they enter directly as moderators.
  const [calling, setCalling] = useState(false);
  // Only in an encrypted chat: in any other the server would store the link, secret and all.
  const canCall = room.hasEncryptionStateEvent();
  async function call() {
    setError(null);
    if (!room.hasEncryptionStateEvent()) {
      setError(t("meetingNeedsEncryptedChat"));
      return;
    }
    setCalling(true);
    try {
      const { link } = await startMeeting(client.getAccessToken() ?? "", client.getUserId() ?? "", { originRoom: room.roomId });
      await client.sendTextMessage(room.roomId, t("meetingInvite", { link }));
      location.href = link;
    } catch (e) {
      setError(e instanceof MeetError ? explain(e) : describeError(e));
      setCalling(false);
    }
  }

  async function leave() {
    if (!window.confirm(t("confirmLeave"))) return;
    try {
      await leaveRoom(client, room.roomId);
      go({ name: "home" });
    } catch (e) {
      setError(describeError(e));
    }
  }
  return (
    <section class="room" aria-labelledby="room-title">
      <header class="room-header">
        <button type="button" class="plain back" onClick={() => go({ name: "home" })} aria-label={t("back")}>
          <IconBack />
        </button>
        <h2 id="room-title">{room.name}</h2>
        {room.hasEncryptionStateEvent() ? (
          <span class="e2ee" title={t("encrypted")}>
            <IconLock />
            <span class="visually-hidden">{t("encrypted")}</span>
          </span>
        ) : (
          <span class="e2ee off">{t("notEncrypted")}</span>
        )}
        {membership === KnownMembership.Join && (
          <>
            {dmPartner && room.hasEncryptionStateEvent() && (
              <button type="button" class="plain small" onClick={verify} data-testid="room-verify">
                {t("verify")}
              </button>
            )}
            {canCall && (
              <button type="button" class="plain small" onClick={call} disabled={calling} data-testid="room-call">
                <IconVideo /> {t("callRoom")}
              </button>
            )}
            <button type="button" class="plain small" onClick={() => setInviting(true)} data-testid="room-invite">
              {t("inviteToRoom")}
            </button>
            <button type="button" class="plain small" onClick={leave} data-testid="room-leave">
              {t("leave")}
            </button>
          </>
        )}
      </header>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {inviting && <InviteToRoom client={client} room={room} onClose={() => setInviting(false)} />}
      {membership === KnownMembership.Invite ? (
        <InvitePanel client={client} room={room} />
      ) : (
        <Chat client={client} room={room} tick={tick} />
      )}
    </section>
  );
}

function Chat({ client, room, tick }: { client: MatrixClient; room: Room; tick: number }) {
  const [editing, setEditing] = useState<MatrixEvent | null>(null);
  const [replying, setReplying] = useState<MatrixEvent | null>(null);
  useEffect(() => {
    setEditing(null);
    setReplying(null);
  }, [room.roomId]);
  return (
    <>
      <Timeline
        client={client}
        room={room}
        tick={tick}
        onEdit={(e) => {
          setReplying(null);
          setEditing(e);
        }}
        onReply={(e) => {
          setEditing(null);
          setReplying(e);
        }}
      />
      <Typing client={client} room={room} />
      <Composer
        client={client}
        room={room}
        editing={editing}
        replying={replying}
        onDone={() => {
          setEditing(null);
          setReplying(null);
        }}
      />
    </>
  );
}

function InviteToRoom({ client, room, onClose }: { client: MatrixClient; room: Room; onClose: () => void }) {
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const present = room
    .getMembers()
    .filter((m) => m.membership === KnownMembership.Join || m.membership === KnownMembership.Invite)
    .map((m) => m.userId);
  async function invite(hit: Hit) {
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await client.invite(room.roomId, hit.user_id);
      setDone(t("invitedDone", { user: hit.display_name || hit.user_id }));
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <Dialog title={t("inviteToRoomTitle")} onClose={onClose}>
      <UserPicker
        client={client}
        disabled={busy}
        exclude={present}
        onPick={invite}
        pickLabel={(user) => t("inviteUser", { user })}
      />
      {busy && <Spinner label={t("loading")} />}
      {done && (
        <p role="status" data-testid="invited">
          {done}
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </Dialog>
  );
}

function InvitePanel({ client, room }: { client: MatrixClient; room: Room }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const inviter = inviterOf(client, room);
  async function act(accept: boolean) {
    setBusy(true);
    setError(null);
    try {
      if (accept) await acceptInvite(client, room);
      else {
        await leaveRoom(client, room.roomId);
        go({ name: "home" });
      }
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="invite-panel">
      <p>{t("invitedBy", { user: inviter ? displayName(room, inviter) : "?" })}</p>
      <div class="row">
        <button type="button" class="primary" disabled={busy} onClick={() => act(true)}>
          {t("accept")}
        </button>
        <button type="button" disabled={busy} onClick={() => act(false)}>
          {t("decline")}
        </button>
      </div>
      {busy && <Spinner label={t("loading")} />}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

function formatTime(ts: number): string {
  return new Date(ts).toLocaleTimeString(lang() === "de" ? "de-DE" : "en-GB", { hour: "2-digit", minute: "2-digit" });
}

/**
 * A one-line description of a membership or creation event, or null if not shown. `earlier` is
 * the member's previous content as seen in the loaded timeline, used when the server sends no
 * `unsigned.prev_content` (Ward does not yet).
 */
function stateLine(room: Room, e: MatrixEvent, earlier: Record<string, unknown> | undefined): string | null {
  const sender = displayName(room, e.getSender() ?? "");
  if (e.getType() === EventType.RoomCreate) return t("createdRoom", { user: sender });
  if (e.getType() !== EventType.RoomMember) return null;
  const content = e.getContent();
  const m = content.membership;
  const prevContent = Object.keys(e.getPrevContent()).length > 0 ? e.getPrevContent() : (earlier ?? {});
  const prev = prevContent.membership;
  const target = displayName(room, e.getStateKey() ?? "");
  if (m === KnownMembership.Join && prev === KnownMembership.Join) {
    const before = prevContent.displayname;
    const after = content.displayname;
    return before && after && before !== after ? t("nameChanged", { old: String(before), new: String(after) }) : null;
  }
  if (m === KnownMembership.Join) return t("joined", { user: target });
  if (m === KnownMembership.Invite) return t("invited", { user: sender, target });
  if (m === KnownMembership.Leave) return t("left", { user: target });
  return null;
}

function Timeline({
  client,
  room,
  tick,
  onEdit,
  onReply,
}: {
  client: MatrixClient;
  room: Room;
  tick: number;
  onEdit: (e: MatrixEvent) => void;
  onReply: (e: MatrixEvent) => void;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const [paginating, setPaginating] = useState(false);
  // Cleared by a failed request, so that filling the page does not retry it in a loop.
  const autoPaginate = useRef(true);
  const [error, setError] = useState<string | null>(null);
  const me = client.getUserId();
  const timeline = room.getLiveTimeline();
  const events = timeline.getEvents();
  const canPaginate = timeline.getPaginationToken(Direction.Backward) !== null;

  async function loadOlder() {
    if (paginating || !canPaginate) return;
    const el = scroller.current;
    const fromBottom = el ? el.scrollHeight - el.scrollTop : 0;
    setPaginating(true);
    setError(null);
    try {
      await client.paginateEventTimeline(room.getLiveTimeline(), { backwards: true, limit: PAGE_SIZE });
      autoPaginate.current = true;
      // Keep the message the user was looking at in place.
      requestAnimationFrame(() => {
        if (el) el.scrollTop = el.scrollHeight - fromBottom;
      });
    } catch (e) {
      autoPaginate.current = false;
      setError(describeError(e));
    } finally {
      setPaginating(false);
    }
  }

  // Follow new messages while the user is at the bottom.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [tick, room.roomId]);

  useEffect(() => {
    atBottom.current = true;
  }, [room.roomId]);

  // Coming back to the tab shows what arrived meanwhile: render again, for the receipt below.
  const [, setShown] = useState(0);
  useEffect(() => {
    const onVisibility = () => setShown((n) => n + 1);
    document.addEventListener("visibilitychange", onVisibility);
    return () => document.removeEventListener("visibilitychange", onVisibility);
  }, []);

  // Read receipt for the newest event from someone else while the chat is open and visible.
  useEffect(() => {
    if (document.visibilityState !== "visible") return;
    const last = [...events].reverse().find((e) => e.getId() && !e.status && e.getSender() !== me);
    if (!last || room.hasUserReadEvent(me ?? "", last.getId()!)) return;
    client.sendReadReceipt(last, ReceiptType.Read).catch(() => undefined);
  });

  // If the room's start is not loaded yet and the page is not full, fetch more (after a failure,
  // only when asked: the button or scrolling up).
  useEffect(() => {
    const el = scroller.current;
    if (el && canPaginate && !paginating && autoPaginate.current && el.scrollHeight <= el.clientHeight) loadOlder();
  });

  const myLast = [...events]
    .reverse()
    .find(
      (e) =>
        e.getSender() === me &&
        !e.isRedacted() &&
        isShownMessage(e),
    );
  const readers =
    myLast && myLast.getId() && !myLast.status
      ? room
          .getJoinedMembers()
          .filter((m) => m.userId !== me && room.hasUserReadEvent(m.userId, myLast.getId()!))
          .map((m) => m.name)
      : [];

  // Each member's latest content so far while walking the timeline (see stateLine).
  const membersSeen = new Map<string, Record<string, unknown>>();
  return (
    <div
      class="timeline"
      ref={scroller}
      tabIndex={0}
      aria-label={room.name}
      onScroll={(e) => {
        const el = e.currentTarget as HTMLDivElement;
        atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < STICK_TO_BOTTOM_PX;
        if (el.scrollTop === 0) loadOlder();
      }}
    >
      <div class="timeline-top">
        {paginating ? (
          <Spinner label={t("loadingOlder")} />
        ) : canPaginate ? (
          <button type="button" class="plain" onClick={loadOlder}>
            {t("loadOlder")}
          </button>
        ) : (
          <p class="beginning">{t("beginning")}</p>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </div>
      <ol class="events" aria-live="polite">
        {events.map((e) => {
          const line = stateLine(room, e, membersSeen.get(e.getStateKey() ?? ""));
          if (e.getType() === EventType.RoomMember) membersSeen.set(e.getStateKey() ?? "", e.getContent());
          if (line) {
            return (
              <li key={e.getId() ?? e.getTxnId()} class="state-line">
                {line}
              </li>
            );
          }
          if (!isShownMessage(e)) return null;
          return (
            <Message
              key={e.getId() ?? e.getTxnId()}
              client={client}
              room={room}
              event={e}
              readers={e === myLast ? readers : []}
              onEdit={onEdit}
              onReply={onReply}
              onError={setError}
            />
          );
        })}
      </ol>
    </div>
  );
}

/** Messages, and events not decrypted (yet); edits and reactions show on their target. */
function isShownMessage(e: MatrixEvent): boolean {
  const type = e.getType();
  if (type !== EventType.RoomMessage && type !== EventType.RoomMessageEncrypted) return false;
  return !e.isRelation(RelationType.Replace) && !isVerificationRequest(e);
}

/** Quick reactions offered on every message (plain text: the system's emoji font draws them). */
const REACTIONS = ["👍", "❤️", "😊", "✅"];

/** The reply target of `e`, if it is a reply. */
function replyTarget(e: MatrixEvent): string | null {
  const id = e.getWireContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id ?? e.getContent()["m.relates_to"]?.["m.in_reply_to"]?.event_id;
  return typeof id === "string" ? id : null;
}

/** A body without the quoted reply fallback (`> <@user> …` lines) older clients put in front. */
function stripReplyFallback(body: string): string {
  const lines = body.split("\n");
  let i = 0;
  while (i < lines.length && lines[i].startsWith(">")) i++;
  if (i > 0 && i < lines.length && lines[i] === "") return lines.slice(i + 1).join("\n");
  return body;
}

function Message({
  client,
  room,
  event: e,
  readers,
  onEdit,
  onReply,
  onError,
}: {
  client: MatrixClient;
  room: Room;
  event: MatrixEvent;
  readers: string[];
  onEdit: (e: MatrixEvent) => void;
  onReply: (e: MatrixEvent) => void;
  onError: (message: string) => void;
}) {
  const [picking, setPicking] = useState(false);
  const me = client.getUserId();
  const mine = e.getSender() === me;
  const id = e.getId();
  if (e.isRedacted()) {
    return (
      <li class={`msg deleted${mine ? " mine" : ""}`} data-event-id={id}>
        <span class="body utd">{t("deleted")}</span>
      </li>
    );
  }
  const failed = e.status === EventStatus.NOT_SENT;
  const decrypted = !e.isDecryptionFailure() && e.getType() === EventType.RoomMessage;
  const body = decrypted ? String(e.getContent().body ?? "") : null;
  const sent = !!id && !e.status;
  const replyTo = decrypted ? replyTarget(e) : null;
  const quoted = replyTo ? room.findEventById(replyTo) : null;
  const reactions =
    (id && room.relations.getChildEventsForEvent(id, RelationType.Annotation, EventType.Reaction)?.getSortedAnnotationsByKey()) ||
    [];

  async function react(key: string) {
    setPicking(false);
    const own = reactions.find(([k]) => k === key)?.[1];
    const mineReaction = own && [...own].find((r) => r.getSender() === me && !r.isRedacted());
    try {
      if (mineReaction?.getId()) await client.redactEvent(room.roomId, mineReaction.getId()!);
      else {
        await client.sendEvent(room.roomId, EventType.Reaction, {
          "m.relates_to": { rel_type: RelationType.Annotation, event_id: id!, key },
        });
      }
    } catch (err) {
      onError(describeError(err));
    }
  }

  return (
    <li class={`msg${mine ? " mine" : ""}${e.status ? " pending" : ""}`} data-event-id={id}>
      {!mine && <span class="sender">{displayName(room, e.getSender() ?? "")}</span>}
      {replyTo && (
        <blockquote class="quote">
          {quoted ? (
            <>
              <span class="sender">{displayName(room, quoted.getSender() ?? "")}</span>
              <span>{quoted.isRedacted() ? t("deleted") : stripReplyFallback(String(quoted.getContent().body ?? "…"))}</span>
            </>
          ) : (
            "…"
          )}
        </blockquote>
      )}
      {body === null ? (
        <span class="body utd">{t("unableToDecrypt")}</span>
      ) : isAttachment(e) ? (
        <Attachment client={client} event={e} />
      ) : (
        <span class="body">
          {replyTo ? stripReplyFallback(body) : body}
          <MeetingJoin body={body} />
        </span>
      )}
      <span class="meta">
        <time dateTime={new Date(e.getTs()).toISOString()}>{formatTime(e.getTs())}</time>
        {e.isEncrypted() && (
          <span class="lock" title={t("encrypted")}>
            <IconLock />
          </span>
        )}
      </span>
      {e.replacingEventId() && <span class="edited">{t("edited")}</span>}
      {reactions.length > 0 && (
        <span class="reactions">
          {reactions.map(([key, events]) => {
            const live = [...events].filter((r) => !r.isRedacted());
            if (live.length === 0) return null;
            const byMe = live.some((r) => r.getSender() === me);
            return (
              <button
                type="button"
                key={key}
                class={`reaction${byMe ? " by-me" : ""}`}
                aria-pressed={byMe}
                aria-label={t("reactionCount", { key, count: live.length })}
                onClick={() => react(key)}
              >
                {key} {live.length}
              </button>
            );
          })}
        </span>
      )}
      {body !== null && sent && (
        <span class="msg-actions">
          <button type="button" class="plain small" aria-label={t("replyTo")} onClick={() => onReply(e)}>
            {t("reply")}
          </button>
          <button
            type="button"
            class="plain small"
            aria-label={t("reactTo")}
            aria-expanded={picking}
            onClick={() => setPicking(!picking)}
          >
            {t("react")}
          </button>
          {mine && !isAttachment(e) && (
            <button type="button" class="plain small" aria-label={t("editMessage")} onClick={() => onEdit(e)}>
              {t("edit")}
            </button>
          )}
          {mine && (
            <button
              type="button"
              class="plain small"
              aria-label={t("deleteMessage")}
              onClick={() => {
                if (window.confirm(t("confirmDelete"))) {
                  client.redactEvent(room.roomId, id!).catch((err) => onError(describeError(err)));
                }
              }}
            >
              {t("delete")}
            </button>
          )}
        </span>
      )}
      {picking && (
        <span class="picker" role="group" aria-label={t("reactTo")}>
          {REACTIONS.map((key) => (
            <button type="button" class="plain" key={key} onClick={() => react(key)} aria-label={t("reactWith", { key })}>
              {key}
            </button>
          ))}
        </span>
      )}
      {failed && <span class="error">{t("notSent")}</span>}
      {readers.length > 0 && <span class="read-by">{t("readBy", { users: readers.join(", ") })}</span>}
    </li>
  );
}

function Attachment({ client, event }: { client: MatrixClient; event: MatrixEvent }) {
  const name = String(event.getContent().body ?? "");
  const inline = isInlineImage(event);
  // With a thumbnail, that is shown first and the full image only on request.
  const [full, setFull] = useState(!hasThumbnail(event));
  const [url, setUrl] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    if (!inline || !event.getId() || event.status) return;
    let live = true;
    attachmentUrl(client, event, !full).then(
      (u) => live && setUrl(u),
      () => live && setFailed(true),
    );
    return () => {
      live = false;
    };
  }, [event.getId(), inline, full]);

  async function download() {
    try {
      const a = document.createElement("a");
      a.href = await attachmentUrl(client, event);
      a.download = name || "download";
      a.click();
    } catch {
      setFailed(true);
    }
  }

  if (failed) return <span class="body utd">{t("attachmentFailed")}</span>;
  if (!inline) {
    return (
      <button type="button" class="plain file" onClick={download}>
        {t("download", { name })}
      </button>
    );
  }
  if (!url) return <Spinner label={t("loading")} />;
  if (!full) {
    return (
      <button type="button" class="plain thumbnail" onClick={() => setFull(true)} aria-label={t("showFullImage", { name })}>
        <img class="image" src={url} alt={name} data-thumbnail="true" />
      </button>
    );
  }
  return <img class="image" src={url} alt={name} />;
}

function Typing({ client, room }: { client: MatrixClient; room: Room }) {
  const me = client.getUserId();
  const typing = room.getMembers().filter((m) => m.typing && m.userId !== me);
  return (
    <p class="typing" aria-live="polite">
      {typing.length === 1 ? t("typingOne", { user: typing[0].name }) : typing.length > 1 ? t("typingMany") : " "}
    </p>
  );
}

function Composer({
  client,
  room,
  editing,
  replying,
  onDone,
}: {
  client: MatrixClient;
  room: Room;
  editing: MatrixEvent | null;
  replying: MatrixEvent | null;
  onDone: () => void;
}) {
  const [text, setText] = useState("");
  const [error, setError] = useState<string | null>(null);
  const lastTyping = useRef(0);
  const typingQueue = useRef<Promise<unknown>>(Promise.resolve());
  const [upload, setUpload] = useState<{ name: string; loaded: number; total: number; cancel: AbortController } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function attach(input: HTMLInputElement) {
    const file = input.files?.[0];
    input.value = "";
    if (!file) return;
    const cancel = new AbortController();
    setUpload({ name: file.name, loaded: 0, total: file.size, cancel });
    setError(null);
    setNotice(null);
    try {
      await sendFile(client, room.roomId, file, {
        signal: cancel.signal,
        onProgress: (loaded, total) => setUpload((u) => u && u.cancel === cancel ? { ...u, loaded, total } : u),
      });
    } catch (err) {
      if (err instanceof UploadCancelled) setNotice(t("uploadCancelled", { name: file.name }));
      else if (err instanceof FileTooLarge) {
        setError(t("fileTooLargeLimit", { name: file.name, size: formatSize(file.size), limit: formatSize(err.limit) }));
      } else setError(t("sendFailed", { message: describeError(err) }));
    } finally {
      setUpload(null);
    }
  }
  const input = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    setText("");
    input.current?.focus();
  }, [room.roomId]);

  // Layout effect: the text must be in place before the user (or a test) types over it.
  useLayoutEffect(() => {
    if (!editing) return;
    setText(String(editing.getContent().body ?? ""));
    input.current?.focus();
  }, [editing]);

  useLayoutEffect(() => {
    if (replying) input.current?.focus();
  }, [replying]);

  function cancel() {
    if (editing) setText("");
    onDone();
  }

  function typing(active: boolean) {
    const now = Date.now();
    if (active && now - lastTyping.current < TYPING_RENEW_MS) return;
    lastTyping.current = active ? now : 0;
    // One request at a time, so that "stopped typing" cannot overtake "typing".
    typingQueue.current = typingQueue.current
      .then(() => client.sendTyping(room.roomId, active, TYPING_TIMEOUT_MS))
      .catch(() => undefined);
  }

  // Leaving the chat (or the app) while typing ends the notice now instead of at its timeout.
  useEffect(
    () => () => {
      if (lastTyping.current) typing(false);
    },
    [],
  );

  async function send(e?: Event) {
    e?.preventDefault();
    const body = text.trim();
    if (!body) return;
    setText("");
    setError(null);
    typing(false);
    try {
      const replyTo = replying?.getId();
      onDone();
      if (editing) {
        const target = editing.getId()!;
        await client.sendMessage(room.roomId, {
          msgtype: MsgType.Text,
          body: `* ${body}`,
          "m.new_content": { msgtype: MsgType.Text, body },
          "m.relates_to": { rel_type: RelationType.Replace, event_id: target },
        });
      } else if (replyTo) {
        await client.sendMessage(room.roomId, {
          msgtype: MsgType.Text,
          body,
          "m.relates_to": { "m.in_reply_to": { event_id: replyTo } },
        });
      } else {
        await client.sendTextMessage(room.roomId, body);
      }
    } catch (err) {
      setError(t("sendFailed", { message: describeError(err) }));
    }
  }

  return (
    <form class="composer" onSubmit={send}>
      {(editing || replying) && (
        <p class="editing">
          <span>
            {editing
              ? t("editing")
              : t("replyingTo", {
                  user: displayName(room, replying!.getSender() ?? ""),
                  text: String(replying!.getContent().body ?? "").slice(0, 80),
                })}
          </span>
          <button type="button" class="plain small" onClick={cancel}>
            {t("cancel")}
          </button>
        </p>
      )}
      <label class="button plain attach" title={t("attach")}>
        <IconClip />
        <span class="visually-hidden">{t("attach")}</span>
        <input
          type="file"
          class="visually-hidden"
          data-testid="attach"
          disabled={upload !== null}
          onChange={(e) => attach(e.currentTarget as HTMLInputElement)}
        />
      </label>
      <label for="composer-input" class="visually-hidden">
        {t("message")}
      </label>
      <textarea
        id="composer-input"
        ref={input}
        rows={1}
        placeholder={t("message")}
        value={text}
        onInput={(e) => {
          const v = (e.target as HTMLTextAreaElement).value;
          setText(v);
          typing(v.length > 0);
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey && !e.isComposing) send(e);
          if (e.key === "Escape" && (editing || replying)) cancel();
        }}
      />
      <button type="submit" class="primary send" aria-label={editing ? t("save") : t("send")} disabled={!text.trim()}>
        <IconSend />
      </button>
      {upload && (
        <p class="upload" data-testid="upload">
          <label for="upload-progress">{t("uploading", { name: upload.name })}</label>
          <progress id="upload-progress" max={Math.max(upload.total, 1)} value={upload.loaded} />
          <span class="upload-percent" aria-hidden="true">
            {Math.floor((100 * upload.loaded) / Math.max(upload.total, 1))} %
          </span>
          <button type="button" class="small" onClick={() => upload.cancel.abort()} data-testid="upload-cancel">
            {t("cancelUpload")}
          </button>
        </p>
      )}
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

/** A meeting link in a message gets a button to join. */
function MeetingJoin({ body }: { body: string }) {
  const link = findMeetingLink(body);
  if (!link) return null;
  return (
    <a class="button small join-meeting" href={link} data-testid="join-meeting-link">
      <IconVideo /> {t("joinMeeting")}
    </a>
  );
}
