// Attachments. In encrypted rooms a file is encrypted in the browser before upload
// (matrix-encrypt-attachment: AES-CTR with a fresh key, SHA-256 over the ciphertext, as the
// spec's "Sending encrypted attachments" describes), the key travels inside the encrypted event,
// and the server only ever holds ciphertext. Downloads use authenticated media
// (`/_matrix/client/v1/media/download`) and are decrypted in memory into a blob: URL. Uploads
// check the server's size limit first, report progress and can be cancelled. Large images get a
// thumbnail (sent as `info.thumbnail_file`, encrypted like the image); the timeline shows a
// message's thumbnail when it has one and loads the full image on request.
import { decryptAttachment, encryptAttachment, type IEncryptedFile } from "matrix-encrypt-attachment";
import { EventType, MatrixClient, MatrixEvent, Method, MsgType } from "matrix-js-sdk";

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

/** Images larger than this (either side) get a thumbnail of at most this size. */
const THUMBNAIL_MAX = { w: 800, h: 600 };

/** A scaled-down copy of a large image (PNG stays PNG for transparency, others become JPEG). */
async function makeThumbnail(file: File, size: { w: number; h: number }): Promise<{ blob: Blob; w: number; h: number } | null> {
  if (size.w <= THUMBNAIL_MAX.w && size.h <= THUMBNAIL_MAX.h) return null;
  const scale = Math.min(THUMBNAIL_MAX.w / size.w, THUMBNAIL_MAX.h / size.h);
  const w = Math.max(1, Math.round(size.w * scale));
  const h = Math.max(1, Math.round(size.h * scale));
  try {
    const bitmap = await createImageBitmap(file);
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    canvas.getContext("2d")?.drawImage(bitmap, 0, 0, w, h);
    bitmap.close();
    const type = file.type === "image/png" ? "image/png" : "image/jpeg";
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, type, 0.85));
    return blob ? { blob, w, h } : null;
  } catch {
    return null; // no thumbnail then; the image itself is sent as always
  }
}

/** The file is larger than the server's upload limit (`m.upload.size`, in bytes). */
export class FileTooLarge extends Error {
  constructor(readonly limit: number) {
    super("file too large");
  }
}

/** The upload was cancelled by the user. */
export class UploadCancelled extends Error {}

const limits = new WeakMap<MatrixClient, Promise<number | null>>();

/**
 * The server's upload limit in bytes (`GET /_matrix/client/v1/media/config`), asked once per
 * client; null if the server does not say (the upload itself then answers 413 M_TOO_LARGE).
 */
export function uploadLimit(client: MatrixClient): Promise<number | null> {
  let p = limits.get(client);
  if (!p) {
    p = client.http
      .authedRequest<{ "m.upload.size"?: number }>(Method.Get, "/config", undefined, undefined, {
        prefix: "/_matrix/client/v1/media",
      })
      .then((r) => (typeof r["m.upload.size"] === "number" ? r["m.upload.size"] : null));
    limits.set(client, p);
    p.catch(() => limits.delete(client));
  }
  return p.catch(() => null);
}

export interface UploadOptions {
  /** Bytes sent so far and in all (of the possibly encrypted file). */
  onProgress?: (loaded: number, total: number) => void;
  /** Aborting it cancels the upload (or stops before the upload starts or the message is sent). */
  signal?: AbortSignal;
}

/**
 * Uploads `file` (encrypted if the room is) and sends it as an image or file message. Checks
 * the server's size limit first (FileTooLarge); a cancel through `signal` ends in UploadCancelled.
 */
export async function sendFile(client: MatrixClient, roomId: string, file: File, opts: UploadOptions = {}): Promise<void> {
  const { signal } = opts;
  const limit = await uploadLimit(client);
  // Encryption (AES-CTR) keeps the size: the ciphertext is as large as the file.
  if (limit !== null && file.size > limit) throw new FileTooLarge(limit);
  const stopIfCancelled = () => {
    if (signal?.aborted) throw new UploadCancelled();
  };
  stopIfCancelled();
  const encrypted = client.getRoom(roomId)?.hasEncryptionStateEvent() ?? false;
  const size = await imageSize(file);
  const mimetype = file.type || "application/octet-stream";
  const info: Record<string, unknown> = { mimetype, size: file.size, ...(size ?? {}) };
  const content: Record<string, unknown> = {
    msgtype: size ? MsgType.Image : MsgType.File,
    body: file.name,
    info,
  };
  const abortController = new AbortController();
  const onAbort = () => abortController.abort();
  signal?.addEventListener("abort", onAbort);
  const progressHandler = ({ loaded, total }: { loaded: number; total: number }) => opts.onProgress?.(loaded, total);
  const thumbnail = size ? await makeThumbnail(file, size) : null;
  try {
    if (thumbnail) {
      // Small, so uploaded before the image without progress of its own.
      const thumbInfo = { w: thumbnail.w, h: thumbnail.h, mimetype: thumbnail.blob.type, size: thumbnail.blob.size };
      if (encrypted) {
        const { data, info: keyInfo } = await encryptAttachment(await thumbnail.blob.arrayBuffer());
        const up = await client.uploadContent(new Blob([data]), {
          type: "application/octet-stream",
          includeFilename: false,
          abortController,
        });
        info.thumbnail_file = { ...keyInfo, url: up.content_uri, mimetype: thumbnail.blob.type };
      } else {
        const up = await client.uploadContent(thumbnail.blob, { type: thumbnail.blob.type, abortController });
        info.thumbnail_url = up.content_uri;
      }
      info.thumbnail_info = thumbInfo;
      stopIfCancelled();
    }
    if (encrypted) {
      const { data, info: keyInfo } = await encryptAttachment(await file.arrayBuffer());
      stopIfCancelled();
      const up = await client.uploadContent(new Blob([data]), {
        type: "application/octet-stream",
        includeFilename: false,
        progressHandler,
        abortController,
      });
      content.file = { ...keyInfo, url: up.content_uri, mimetype };
    } else {
      stopIfCancelled();
      const up = await client.uploadContent(file, { type: mimetype, name: file.name, progressHandler, abortController });
      content.url = up.content_uri;
    }
  } catch (e) {
    if (signal?.aborted) throw new UploadCancelled();
    throw e;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  stopIfCancelled();
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

/** Whether the message carries a thumbnail of its image (`info.thumbnail_file` or `_url`). */
export function hasThumbnail(e: MatrixEvent): boolean {
  const info = e.getContent().info;
  return !!(info?.thumbnail_file?.url || info?.thumbnail_url);
}

/**
 * A blob: URL for the attachment of `e` (or its thumbnail), downloaded and (if encrypted)
 * decrypted once.
 */
export function attachmentUrl(client: MatrixClient, e: MatrixEvent, thumbnail = false): Promise<string> {
  const key = `${e.getId() ?? ""}${thumbnail ? "#thumbnail" : ""}`;
  let p = cache.get(key);
  if (!p) {
    p = load(client, e, thumbnail);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

async function load(client: MatrixClient, e: MatrixEvent, thumbnail: boolean): Promise<string> {
  const c = e.getContent();
  // The spec's EncryptedFile: the key material plus where the ciphertext is and what it holds.
  type File = IEncryptedFile & { url?: string; mimetype?: string };
  const file: File | undefined = thumbnail ? c.info?.thumbnail_file : c.file;
  const mxc: string | undefined = file?.url ?? (thumbnail ? c.info?.thumbnail_url : c.url);
  if (!mxc) throw new Error("no media URL");
  const url = client.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, true);
  if (!url) throw new Error("bad media URL");
  const r = await fetch(url, { headers: { Authorization: `Bearer ${client.getAccessToken()}` } });
  if (!r.ok) throw new Error(`download failed: ${r.status}`);
  const bytes = await r.arrayBuffer();
  const plain = file ? await decryptAttachment(bytes, file) : bytes;
  const mimetype = file?.mimetype ?? (thumbnail ? c.info?.thumbnail_info?.mimetype : c.info?.mimetype);
  const safeType = INLINE_IMAGE_TYPES.includes(mimetype) ? mimetype : "application/octet-stream";
  return URL.createObjectURL(new Blob([plain], { type: safeType }));
}
