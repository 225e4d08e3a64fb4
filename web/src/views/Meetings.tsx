import { useEffect, useState } from "preact/hooks";
import { KnownMembership, MatrixClient } from "matrix-js-sdk";
import { t } from "../i18n";
import { Spinner } from "../icons";
import { closeDialog } from "../route";
import { meet, MeetError, type MeetingSummary } from "../meet/api";
import { keptSecret, meetingLink, pruneSecrets } from "../meet/keys";
import { startMeeting } from "../meet/start";
import { explain } from "../meet/errors";
import { Dialog } from "./Dialog";

/** Start a meeting or a consultation room; the user's open meetings with their links (when this
 * browser has their secret). */
export function Meetings({ client }: { client: MatrixClient }) {
  const token = client.getAccessToken() ?? "";
  const userId = client.getUserId() ?? "";
  const [title, setTitle] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [mine, setMine] = useState<MeetingSummary[] | null>(null);
  // Optionally for an encrypted chat: its link goes into the chat, and the chat's members enter
  // directly as moderators (colleagues can take over a consultation room, from any device).
  const chats = client
    .getRooms()
    .filter((r) => r.getMyMembership() === KnownMembership.Join && r.hasEncryptionStateEvent())
    .sort((a, b) => a.name.localeCompare(b.name));
  const [chat, setChat] = useState("");
  const [membersEnter, setMembersEnter] = useState(true);

  useEffect(() => {
    meet.mine(token).then(
      (r) => {
        // Secrets of meetings that ended or were purged are of no use any more.
        pruneSecrets(userId, r.meetings.map((m) => m.meeting_id));
        setMine(r.meetings);
      },
      (e) => setError(explain(e)),
    );
  }, [token]);

  async function start(kind: "meeting" | "consultation") {
    setBusy(true);
    setError(null);
    try {
      // The link carries the secret: it may only go into a chat the server cannot read.
      const room = chat ? client.getRoom(chat) : null;
      if (chat && !room?.hasEncryptionStateEvent()) throw new Error(t("meetingNeedsEncryptedChat"));
      const { link } = await startMeeting(token, userId, { kind, title: title.trim(), originRoom: chat || undefined, membersEnter });
      if (chat) {
        await client.sendTextMessage(chat, t(kind === "consultation" ? "consultationRoomInvite" : "meetingInvite", { link }));
      }
      location.href = link;
    } catch (e) {
      setError(e instanceof MeetError ? explain(e) : e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  }

  return (
    <Dialog title={t("meetings")} onClose={closeDialog}>
      <p>{t("meetingsIntro")}</p>
      <label>
        {t("meetingTitle")}
        <input value={title} maxLength={100} onInput={(e) => setTitle((e.target as HTMLInputElement).value)} />
      </label>
      <p class="hint">{t("meetingTitleHint")}</p>
      <label>
        {t("meetingForChat")}
        <select value={chat} onChange={(e) => setChat((e.target as HTMLSelectElement).value)} data-testid="meeting-chat">
          <option value="">{t("meetingNoChat")}</option>
          {chats.map((r) => (
            <option key={r.roomId} value={r.roomId}>
              {r.name}
            </option>
          ))}
        </select>
      </label>
      {chat && (
        <label class="check">
          <input
            type="checkbox"
            checked={membersEnter}
            onChange={(e) => setMembersEnter((e.target as HTMLInputElement).checked)}
          />{" "}
          {t("membersEnter")}
        </label>
      )}
      <p class="hint">{t("meetingForChatHint")}</p>
      <div class="row">
        <button type="button" class="primary" disabled={busy} onClick={() => start("meeting")} data-testid="start-meeting">
          {t("startMeeting")}
        </button>
        <button type="button" disabled={busy} onClick={() => start("consultation")} data-testid="start-consultation">
          {t("newConsultationRoom")}
        </button>
      </div>
      {busy && <Spinner label={t("loading")} />}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <h3>{t("openMeetings")}</h3>
      {mine === null ? (
        <Spinner label={t("loading")} />
      ) : mine.length === 0 ? (
        <p class="hint">{t("noMeetings")}</p>
      ) : (
        <ul class="meeting-list">
          {mine.map((m) => {
            const secret = keptSecret(userId, m.meeting_id);
            const name = m.title || (m.kind === "consultation" ? t("consultation") : t("meeting"));
            return (
              <li key={m.meeting_id}>
                <span>
                  {name} · {new Date(m.created_ms).toLocaleString()}
                </span>
                {secret ? (
                  <a class="button small" href={meetingLink(m.meeting_id, secret)}>
                    {t("open")}
                  </a>
                ) : (
                  <span class="hint">{m.origin_room ? t("linkInChat") : t("linkNotHere")}</span>
                )}
              </li>
            );
          })}
        </ul>
      )}
    </Dialog>
  );
}
