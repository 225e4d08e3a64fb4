// Starting meetings from the chat app: a new meeting ID from Ward, a new secret from this
// browser (kept here, see keys.ts), and the link that joins both.
import { meet, type Kind } from "./api";
import { keepSecret, meetingLink, newSecret } from "./keys";

export async function startMeeting(
  accessToken: string,
  userId: string,
  opts: { kind?: Kind; title?: string; originRoom?: string; membersEnter?: boolean },
): Promise<{ meetingId: string; link: string }> {
  const { meeting_id } = await meet.create(accessToken, {
    kind: opts.kind ?? "meeting",
    title: opts.title || undefined,
    // Members of the chat the meeting comes from enter directly, as moderators (unless asked
    // not to: then they knock like guests, and only the creator lets people in).
    ...(opts.originRoom ? { origin_room: opts.originRoom, members_enter: opts.membersEnter ?? true } : {}),
  });
  const secret = newSecret();
  keepSecret(userId, meeting_id, secret);
  return { meetingId: meeting_id, link: meetingLink(meeting_id, secret) };
}

/** A meeting link of this Ward in a text, e.g. a chat message. */
export function findMeetingLink(text: string): string | null {
  const origin = location.origin.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = text.match(new RegExp(`${origin}/#/meet/[A-Za-z0-9]+/[A-Za-z0-9_-]+`));
  return m ? m[0] : null;
}
