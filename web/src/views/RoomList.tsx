import { KnownMembership, MatrixClient, MsgType } from "matrix-js-sdk";
import { t } from "../i18n";
import { IconGroup, IconPerson } from "../icons";
import { href } from "../route";
import { isDirect, lastMessage, unreadCount, visibleRooms } from "../rooms";

export function RoomList({ client, selected }: { client: MatrixClient; selected: string | null }) {
  const rooms = visibleRooms(client);
  if (rooms.length === 0) return <p class="empty">{t("noRooms")}</p>;
  return (
    <ul class="room-list" aria-label={t("chats")}>
      {rooms.map((room) => {
        const invite = room.getMyMembership() === KnownMembership.Invite;
        const last = lastMessage(room);
        const unread = unreadCount(room);
        let preview = "";
        if (invite) preview = t("invitation");
        else if (last) {
          const body = last.isDecryptionFailure()
            ? t("unableToDecrypt")
            : last.getContent().msgtype === MsgType.Text || last.getContent().body
              ? String(last.getContent().body ?? "")
              : "…";
          const sender = last.sender?.name ?? last.getSender() ?? "";
          preview = `${sender}: ${body}`;
        }
        const current = room.roomId === selected;
        return (
          <li key={room.roomId}>
            <a
              class={`room-item${current ? " current" : ""}${unread > 0 ? " has-unread" : ""}`}
              href={href({ name: "room", roomId: room.roomId })}
              aria-current={current ? "page" : undefined}
              data-room-id={room.roomId}
            >
              <span class="room-icon">{isDirect(client, room) ? <IconPerson /> : <IconGroup />}</span>
              <span class="room-text">
                <span class="room-name">{room.name}</span>
                <span class="room-preview">{preview}</span>
              </span>
              {unread > 0 && (
                <span class="badge">
                  <span aria-hidden="true">{unread}</span>
                  {/* A name on a plain span is not announced: the count is said as text. */}
                  <span class="visually-hidden">{t("unread", { count: unread })}</span>
                </span>
              )}
            </a>
          </li>
        );
      })}
    </ul>
  );
}
