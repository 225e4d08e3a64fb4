// Room helpers over matrix-js-sdk's models: what the list shows, DMs (`m.direct`), and a hook
// that re-renders when the client reports a change.
import { useEffect, useState } from "preact/hooks";
import {
  ClientEvent,
  EventType,
  KnownMembership,
  MatrixClient,
  MatrixEvent,
  MatrixEventEvent,
  NotificationCountType,
  Preset,
  RelationType,
  Room,
  RoomEvent,
  RoomMemberEvent,
} from "matrix-js-sdk";

/** Re-renders the caller whenever the client reports something the UI shows (at most once a frame). */
export function useClientTick(client: MatrixClient): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let frame = 0;
    const bump = () => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        setTick((n) => n + 1);
      });
    };
    const events = [
      ClientEvent.Room,
      ClientEvent.DeleteRoom,
      ClientEvent.AccountData,
      ClientEvent.Sync,
      RoomEvent.Timeline,
      RoomEvent.TimelineReset,
      RoomEvent.Name,
      RoomEvent.MyMembership,
      RoomEvent.Receipt,
      RoomEvent.LocalEchoUpdated,
      RoomEvent.UnreadNotifications,
      RoomEvent.Redaction,
      RoomMemberEvent.Typing,
      RoomMemberEvent.Name,
      RoomMemberEvent.Membership,
      MatrixEventEvent.Decrypted,
      MatrixEventEvent.Replaced,
    ] as const;
    // The client re-emits room, member and event events; their listener types differ.
    const emitter = client as unknown as { on(e: string, f: () => void): void; off(e: string, f: () => void): void };
    for (const e of events) emitter.on(e, bump);
    return () => {
      for (const e of events) emitter.off(e, bump);
      if (frame) cancelAnimationFrame(frame);
    };
  }, [client]);
  return tick;
}

/**
 * Rooms we left in this session. The SDK takes our membership from the room state it syncs; a
 * server whose sync reports a left room without our leave event (Ward does so today) leaves the
 * SDK believing we are still joined, so the list hides these until a new invite arrives.
 */
const leftHere = new Set<string>();

export async function leaveRoom(client: MatrixClient, roomId: string): Promise<void> {
  await client.leave(roomId);
  leftHere.add(roomId);
}

export function visibleRooms(client: MatrixClient): Room[] {
  return client
    .getRooms()
    .filter((r) => {
      const m = r.getMyMembership();
      if (leftHere.has(r.roomId)) {
        if (m !== KnownMembership.Invite) return false;
        leftHere.delete(r.roomId);
      }
      return m === KnownMembership.Join || m === KnownMembership.Invite;
    })
    .sort((a, b) => b.getLastActiveTimestamp() - a.getLastActiveTimestamp());
}

function directMap(client: MatrixClient): Record<string, string[]> {
  const content = client.getAccountData(EventType.Direct)?.getContent() ?? {};
  const out: Record<string, string[]> = {};
  for (const [user, rooms] of Object.entries(content)) {
    if (Array.isArray(rooms)) out[user] = rooms.filter((r): r is string => typeof r === "string");
  }
  return out;
}

export function isDirect(client: MatrixClient, room: Room): boolean {
  if (room.getDMInviter()) return true;
  return Object.values(directMap(client)).some((rooms) => rooms.includes(room.roomId));
}

/** Records `roomId` as a DM with `userId` in the `m.direct` account data. */
export async function markDirect(client: MatrixClient, userId: string, roomId: string): Promise<void> {
  const map = directMap(client);
  const rooms = map[userId] ?? [];
  if (rooms.includes(roomId)) return;
  map[userId] = [...rooms, roomId];
  await client.setAccountData(EventType.Direct, map as never);
}

/** An existing DM with `userId` that both sides are (or are invited to be) in. */
export function findDirect(client: MatrixClient, userId: string): Room | null {
  for (const roomId of directMap(client)[userId] ?? []) {
    const room = client.getRoom(roomId);
    if (!room || room.getMyMembership() !== KnownMembership.Join) continue;
    const them = room.getMember(userId)?.membership;
    if (them === KnownMembership.Join || them === KnownMembership.Invite) return room;
  }
  return null;
}

/** Creates an encrypted DM (trusted private chat) with `userId` and records it in `m.direct`. */
export async function createDirect(client: MatrixClient, userId: string): Promise<string> {
  const { room_id: roomId } = await client.createRoom({
    is_direct: true,
    preset: Preset.TrustedPrivateChat,
    invite: [userId],
    initial_state: [
      { type: EventType.RoomEncryption, state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
    ],
  });
  await markDirect(client, userId, roomId);
  return roomId;
}

/** Creates an encrypted group chat with a name and invites `userIds`. */
export async function createGroup(client: MatrixClient, name: string, userIds: string[]): Promise<string> {
  const { room_id: roomId } = await client.createRoom({
    name,
    preset: Preset.PrivateChat,
    invite: userIds,
    initial_state: [
      { type: EventType.RoomEncryption, state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
    ],
  });
  return roomId;
}

/** Accepts an invite; a DM invite is recorded in `m.direct`. */
export async function acceptInvite(client: MatrixClient, room: Room): Promise<void> {
  const inviter = room.getDMInviter();
  await client.joinRoom(room.roomId);
  if (inviter) await markDirect(client, inviter, room.roomId);
}

/** The sender of the invite to us, if this is an invite. */
export function inviterOf(client: MatrixClient, room: Room): string | null {
  const me = room.getMember(client.getSafeUserId());
  return me?.events.member?.getSender() ?? null;
}

export function unreadCount(room: Room): number {
  return room.getUnreadNotificationCount(NotificationCountType.Total);
}

/**
 * An in-room verification request (`m.key.verification.request`, a message type of its own):
 * the verification dialog shows it, so neither the timeline nor the room list does.
 */
export function isVerificationRequest(e: MatrixEvent): boolean {
  return e.getContent().msgtype === "m.key.verification.request";
}

/** The event shown as the room's last message in the list. */
export function lastMessage(room: Room): MatrixEvent | null {
  const events = room.getLiveTimeline().getEvents();
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    if (e.getType() === EventType.RoomMessage || e.getType() === EventType.RoomMessageEncrypted) {
      if (e.isRedacted() || e.isRelation(RelationType.Replace) || isVerificationRequest(e)) continue;
      return e;
    }
  }
  return null;
}

export function displayName(room: Room | null, userId: string): string {
  return room?.getMember(userId)?.name ?? userId;
}
