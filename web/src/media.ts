// Attachments. In encrypted rooms a file is encrypted in the browser before upload
// (matrix-encrypt-attachment: AES-CTR with a fresh key, SHA-256 over the ciphertext, as the
// spec's "Sending encrypted attachments" describes), the key travels inside the encrypted event,
// and the server only ever holds ciphertext. Downloads use authenticated media
// (`/_matrix/client/v1/media/download`) and are decrypted in memory into a blob: URL.
import { decryptAttachment, encryptAttachment, type IEncryptedFile } from "matrix-encrypt-attachment";
import { EventType, MatrixClient, MatrixEvent, MsgType } from "matrix-js-sdk";

/** Image types shown inline; anything else is offered as a download, never rendered. */
const INLINE_IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];

function imageSize(file: File): Promise<{ w: number; h: number } | null> {
  if (!INLINE_IMAGE_TYPES.includes(file.type)) return Promise.resolve(null);
  return createImageBitmap(file).then(
    (b) => {
      const size = { w: b.width, h: b.height };
      b.close();
      return size;
    },
    () => null,
  );
}

/** Uploads `file` (encrypted if the room is) and sends it as an image or file message. */
export async function sendFile(client: MatrixClient, roomId: string, file: File): Promise<void> {
  const encrypted = client.getRoom(roomId)?.hasEncryptionStateEvent() ?? false;
  const size = await imageSize(file);
  const mimetype = file.type || "application/octet-stream";
  const info: Record<string, unknown> = { mimetype, size: file.size, ...(size ?? {}) };
  const content: Record<string, unknown> = {
    msgtype: size ? MsgType.Image : MsgType.File,
    body: file.name,
    info,
  };
  if (encrypted) {
    const { data, info: keyInfo } = await encryptAttachment(await file.arrayBuffer());
    const up = await client.uploadContent(new Blob([data]), {
      type: "application/octet-stream",
      includeFilename: false,
    });
    content.file = { ...keyInfo, url: up.content_uri, mimetype };
  } else {
    const up = await client.uploadContent(file, { type: mimetype, name: file.name });
    content.url = up.content_uri;
  }
  await client.sendEvent(roomId, EventType.RoomMessage, content as never);
}

export function isAttachment(e: MatrixEvent): boolean {
  const t = e.getContent().msgtype;
  return t === MsgType.Image || t === MsgType.File;
}

export function isInlineImage(e: MatrixEvent): boolean {
  const c = e.getContent();
  const mimetype = c.file?.mimetype ?? c.info?.mimetype;
  return c.msgtype === MsgType.Image && INLINE_IMAGE_TYPES.includes(mimetype);
}

const cache = new Map<string, Promise<string>>();

/** A blob: URL for the attachment of `e`, downloaded and (if encrypted) decrypted once. */
export function attachmentUrl(client: MatrixClient, e: MatrixEvent): Promise<string> {
  const key = e.getId() ?? "";
  let p = cache.get(key);
  if (!p) {
    p = load(client, e);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

async function load(client: MatrixClient, e: MatrixEvent): Promise<string> {
  const c = e.getContent();
  // The spec's EncryptedFile: the key material plus where the ciphertext is and what it holds.
  const file: (IEncryptedFile & { url?: string; mimetype?: string }) | undefined = c.file;
  const mxc: string | undefined = file?.url ?? c.url;
  if (!mxc) throw new Error("no media URL");
  const url = client.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, true);
  if (!url) throw new Error("bad media URL");
  const r = await fetch(url, { headers: { Authorization: `Bearer ${client.getAccessToken()}` } });
  if (!r.ok) throw new Error(`download failed: ${r.status}`);
  const bytes = await r.arrayBuffer();
  const plain = file ? await decryptAttachment(bytes, file) : bytes;
  const mimetype = file?.mimetype ?? c.info?.mimetype;
  const safeType = INLINE_IMAGE_TYPES.includes(mimetype) ? mimetype : "application/octet-stream";
  return URL.createObjectURL(new Blob([plain], { type: safeType }));
}
