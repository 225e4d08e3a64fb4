//! The media repository: uploads (direct, and to media IDs reserved by `/create`), downloads
//! and thumbnails.
//!
//! Bytes go to the blob store (`ward-media`, files under `<data_dir>/media` named by their
//! SHA-256) as they arrive, bounded by the upload limit and the uploader's remaining quota;
//! only a complete, fsynced blob gets a media record, so an acknowledged upload survives a
//! crash and a failed one leaves nothing behind. Metadata lives in the store.
//!
//! Downloads need an access token; the deprecated unauthenticated endpoints answer
//! "not found" unless the operator enables them. Any user of this server may download any
//! media of this server (the spec has no per-room media access). Media of other servers is
//! "not found": without federation there is nothing to fetch, and this server never fetches
//! URLs (no URL previews).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use ward_media::Method;
use ward_media::{BlobId, BlobReader, BlobStore, BlobWriter, FsBlobStore};
use ward_store::{MediaContent, MediaThumbnail, MediaWrite};

use crate::{Authed, Error, Result, Services, now_ms};

/// Limits of the media repository (the configurable ones are in [`MediaSettings`]).
pub mod media_limits {
    /// Media IDs this server makes: 24 letters and digits (about 143 bits).
    pub const MEDIA_ID_CHARS: usize = 24;
    /// Longest media ID accepted in a request (ours are shorter; the spec sets no bound).
    pub const MEDIA_ID_MAX_BYTES: usize = 255;
    /// Longest file name stored with an upload.
    pub const FILE_NAME_MAX_BYTES: usize = 255;
    /// Longest content type stored with an upload.
    pub const CONTENT_TYPE_MAX_BYTES: usize = 255;
    /// Upload bytes gathered in memory before they are written to the temporary file.
    pub const UPLOAD_WRITE_BUFFER_BYTES: usize = 256 * 1024;
    /// Bytes read from a file per step of a download.
    pub const DOWNLOAD_CHUNK_BYTES: usize = 128 * 1024;
    /// How long a reserved media ID (`/create`) waits for its upload: the spec's suggestion.
    pub const UNUSED_EXPIRES_MS: u64 = 24 * 60 * 60 * 1000;
    /// Reserved media IDs one user may have waiting at once.
    pub const PENDING_UPLOADS_PER_USER_MAX: u64 = 10;
    /// How soon a user over [`PENDING_UPLOADS_PER_USER_MAX`] is told to try again.
    pub const PENDING_UPLOADS_RETRY_AFTER_MS: u64 = 60_000;
    /// Longest a download of not-yet-uploaded media waits (`timeout_ms` is capped to it);
    /// the spec's default wait.
    pub const DOWNLOAD_WAIT_MAX_MS: u64 = 20_000;
    /// Largest requested thumbnail width or height; larger requests are treated as this.
    pub const THUMBNAIL_DIMENSION_MAX_PX: u32 = 2048;
    /// Largest file that is thumbnailed (its bytes are read into memory to decode them).
    pub const THUMBNAIL_SOURCE_MAX_BYTES: u64 = 64 * 1024 * 1024;
    /// Thumbnails kept per media; further sizes are made on request and not kept, so one file
    /// cannot be made to fill the disk with thumbnails.
    pub const THUMBNAILS_PER_MEDIA_MAX: u64 = 16;
    /// Thumbnails made at once: decoding a large image takes up to a few hundred MiB.
    pub const THUMBNAILS_IN_PARALLEL_MAX: usize = 2;
}
use media_limits::*;

/// The media settings from the configuration.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// The blob store's directory (`<data_dir>/media`).
    pub dir: PathBuf,
    pub max_upload_bytes: u64,
    /// `None`: no quota.
    pub quota_bytes_per_user: Option<u64>,
    pub legacy_unauthenticated: bool,
}

/// The media repository's state inside [`Services`].
pub(crate) struct MediaState {
    blobs: Arc<dyn BlobStore>,
    /// Counts finished uploads; downloads waiting for a reserved media ID watch it.
    uploads: tokio::sync::watch::Sender<u64>,
    thumbnail_permits: tokio::sync::Semaphore,
}

impl MediaState {
    pub(crate) async fn open(settings: &MediaSettings) -> Result<Self> {
        let dir = settings.dir.clone();
        let blobs = tokio::task::spawn_blocking(move || FsBlobStore::open(&dir))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(format!("cannot open the media directory: {e}")))?;
        Ok(Self {
            blobs: Arc::new(blobs),
            uploads: tokio::sync::watch::Sender::new(0),
            thumbnail_permits: tokio::sync::Semaphore::new(THUMBNAILS_IN_PARALLEL_MAX),
        })
    }
}

/// What a client asks to upload, known before the bytes arrive.
#[derive(Debug, Clone, Default)]
pub struct UploadRequest {
    /// A media ID reserved by `/create`; `None` for a direct upload.
    pub media_id: Option<String>,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    /// The `Content-Length`, if the client sent one: refused at once if too large.
    pub declared_bytes: Option<u64>,
}

/// An upload in progress: feed it the body with [`Upload::write`], then hand it to
/// [`Services::finish_upload`]. Dropped unfinished, it leaves nothing behind.
pub struct Upload {
    user_id: String,
    request: UploadRequest,
    /// `None` only while a write runs on the blocking pool.
    writer: Option<Box<dyn BlobWriter>>,
    buffer: Vec<u8>,
    received_bytes: u64,
    max_upload_bytes: u64,
    /// What the uploader's quota still allows; `None` without a quota.
    quota_left_bytes: Option<u64>,
}

impl Upload {
    /// Takes the next piece of the body; fails as soon as the body is over a limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.received_bytes += chunk.len() as u64;
        self.check_limits(self.received_bytes)?;
        self.buffer.extend_from_slice(chunk);
        if self.buffer.len() >= UPLOAD_WRITE_BUFFER_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    fn check_limits(&self, bytes: u64) -> Result<()> {
        check_upload_size(bytes, self.max_upload_bytes, self.quota_left_bytes)
    }

    async fn flush(&mut self) -> Result<()> {
        let mut writer = self.writer.take().ok_or_else(|| Error::Internal("upload writer missing".into()))?;
        let bytes = std::mem::take(&mut self.buffer);
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let result = writer.write(&bytes);
            (writer, result)
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        self.writer = Some(writer);
        result.map_err(|e| Error::Internal(format!("cannot write an upload: {e}")))
    }
}

/// A file (or thumbnail) to send.
pub struct MediaFile {
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    pub size_bytes: u64,
    pub body: MediaBody,
}

/// The bytes of a [`MediaFile`], read a chunk at a time so large files are never held in
/// memory whole.
pub struct MediaBody(BodySource);

enum BodySource {
    Blob(Option<Box<dyn BlobReader>>),
    Bytes(Option<Vec<u8>>),
}

impl MediaBody {
    /// The next chunk, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<u8>>> {
        match &mut self.0 {
            BodySource::Bytes(bytes) => bytes.take().map(Ok),
            BodySource::Blob(slot) => {
                let mut reader = slot.take()?;
                let read = tokio::task::spawn_blocking(move || {
                    let mut chunk = vec![0u8; DOWNLOAD_CHUNK_BYTES];
                    let n = reader.read(&mut chunk)?;
                    chunk.truncate(n);
                    Ok::<_, std::io::Error>((reader, chunk))
                })
                .await;
                match read {
                    Ok(Ok((_, chunk))) if chunk.is_empty() => None,
                    Ok(Ok((reader, chunk))) => {
                        *slot = Some(reader);
                        Some(Ok(chunk))
                    }
                    Ok(Err(e)) => Some(Err(Error::Internal(format!("cannot read a media file: {e}")))),
                    Err(e) => Some(Err(Error::Internal(e.to_string()))),
                }
            }
        }
    }
}

/// `A-Z a-z 0-9 _ -` only, as the spec requires of media IDs (no path tricks).
fn valid_media_id(media_id: &str) -> bool {
    !media_id.is_empty()
        && media_id.len() <= MEDIA_ID_MAX_BYTES
        && media_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_upload_request(request: &UploadRequest) -> Result<()> {
    if let Some(t) = &request.content_type
        && (t.len() > CONTENT_TYPE_MAX_BYTES || !t.bytes().all(|b| (0x20..0x7f).contains(&b)))
    {
        return Err(Error::InvalidParam(format!(
            "the content type must be printable ASCII of at most {CONTENT_TYPE_MAX_BYTES} bytes"
        )));
    }
    if let Some(name) = &request.file_name
        && (name.len() > FILE_NAME_MAX_BYTES || name.chars().any(char::is_control))
    {
        return Err(Error::InvalidParam(format!(
            "the file name must have at most {FILE_NAME_MAX_BYTES} bytes and no control characters"
        )));
    }
    Ok(())
}

fn check_upload_size(bytes: u64, max_upload_bytes: u64, quota_left_bytes: Option<u64>) -> Result<()> {
    if bytes > max_upload_bytes {
        return Err(Error::PayloadTooLarge(format!(
            "the file is larger than this server accepts ({max_upload_bytes} bytes)"
        )));
    }
    if quota_left_bytes.is_some_and(|left| bytes > left) {
        return Err(Error::Forbidden("this upload would exceed your media quota".into()));
    }
    Ok(())
}

fn not_found() -> Error {
    Error::NotFound("no such media".into())
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

impl Services {
    fn media_settings(&self) -> &MediaSettings {
        &self.settings.media
    }

    fn mxc(&self, media_id: &str) -> String {
        format!("mxc://{}/{media_id}", self.settings.server_name)
    }

    /// The largest upload, for `/media/config`.
    pub fn max_upload_bytes(&self) -> u64 {
        self.media_settings().max_upload_bytes
    }

    /// Reserves a media ID for a later upload (`/create`): its `mxc://` URI and when the
    /// reservation lapses.
    pub async fn create_media_id(&self, authed: &Authed) -> Result<(String, u64)> {
        let now = now_ms();
        let expires_ms = now + UNUSED_EXPIRES_MS;
        let media_id = ward_core::secret::random_string(MEDIA_ID_CHARS, ALPHANUMERIC);
        match self
            .store
            .reserve_media(&media_id, &authed.user_id, now, expires_ms, PENDING_UPLOADS_PER_USER_MAX)
            .await?
        {
            MediaWrite::Done => Ok((self.mxc(&media_id), expires_ms)),
            MediaWrite::TooManyPending => {
                Err(Error::LimitExceeded { retry_after_ms: PENDING_UPLOADS_RETRY_AFTER_MS })
            }
            other => Err(Error::Internal(format!("unexpected outcome of a reservation: {other:?}"))),
        }
    }

    /// Starts an upload after checking what can be checked before the bytes arrive: the
    /// request's fields, the declared length, the quota, and for a reserved media ID that it
    /// is the caller's, still open and still empty.
    pub async fn begin_upload(&self, authed: &Authed, request: UploadRequest) -> Result<Upload> {
        check_upload_request(&request)?;
        if let Some(media_id) = &request.media_id {
            let media = self.store.media(media_id).await?.ok_or_else(not_found)?;
            if media.content.is_some() {
                return Err(if media.uploader == authed.user_id {
                    Error::CannotOverwriteMedia("this media has been uploaded already".into())
                } else {
                    Error::Forbidden("this media ID was created by someone else".into())
                });
            }
            if media.unused_expires_ms.is_some_and(|e| e <= now_ms()) {
                return Err(not_found());
            }
            if media.uploader != authed.user_id {
                return Err(Error::Forbidden("this media ID was created by someone else".into()));
            }
        }
        let settings = self.media_settings();
        let quota_left_bytes = match settings.quota_bytes_per_user {
            Some(quota) => Some(quota.saturating_sub(self.store.media_usage_bytes(&authed.user_id).await?)),
            None => None,
        };
        if let Some(declared) = request.declared_bytes {
            check_upload_size(declared, settings.max_upload_bytes, quota_left_bytes)?;
        }
        let blobs = self.media.blobs.clone();
        let writer =
            tokio::task::spawn_blocking(move || blobs.begin()).await.map_err(internal)?.map_err(internal)?;
        Ok(Upload {
            user_id: authed.user_id.clone(),
            writer: Some(writer),
            buffer: Vec::new(),
            received_bytes: 0,
            max_upload_bytes: settings.max_upload_bytes,
            quota_left_bytes,
            request,
        })
    }

    /// Stores a complete upload durably and records it; returns its `mxc://` URI.
    pub async fn finish_upload(&self, mut upload: Upload) -> Result<String> {
        upload.flush().await?;
        let writer = upload.writer.take().ok_or_else(|| Error::Internal("upload writer missing".into()))?;
        let blob = tokio::task::spawn_blocking(move || writer.commit())
            .await
            .map_err(internal)?
            .map_err(|e| Error::Internal(format!("cannot store an upload: {e}")))?;
        let request = upload.request;
        let content = MediaContent {
            sha256: blob.id.to_hex(),
            size_bytes: blob.size_bytes,
            content_type: request.content_type.filter(|t| !t.is_empty()),
            file_name: request.file_name.filter(|n| !n.is_empty()),
            uploaded_ms: now_ms(),
        };
        let quota = self.media_settings().quota_bytes_per_user;
        let (media_id, outcome) = match request.media_id {
            Some(media_id) => {
                let outcome =
                    self.store.fill_media(&media_id, &upload.user_id, content, now_ms(), quota).await?;
                (media_id, outcome)
            }
            None => {
                let media_id = ward_core::secret::random_string(MEDIA_ID_CHARS, ALPHANUMERIC);
                let outcome = self.store.create_media(&media_id, &upload.user_id, content, quota).await?;
                (media_id, outcome)
            }
        };
        // A refused upload leaves its blob behind (it may be shared with other media); see
        // ARCHITECTURE.md on unreferenced blobs.
        match outcome {
            MediaWrite::Done => {}
            MediaWrite::QuotaExceeded => {
                return Err(Error::Forbidden("this upload would exceed your media quota".into()));
            }
            MediaWrite::NotFound => return Err(not_found()),
            MediaWrite::NotYours => {
                return Err(Error::Forbidden("this media ID was created by someone else".into()));
            }
            MediaWrite::AlreadyUploaded => {
                return Err(Error::CannotOverwriteMedia("this media has been uploaded already".into()));
            }
            MediaWrite::TooManyPending => {
                return Err(Error::Internal("unexpected outcome of an upload".into()));
            }
        }
        self.media.uploads.send_modify(|n| *n += 1);
        Ok(self.mxc(&media_id))
    }

    /// The uploaded content of a media ID of this server, waiting up to `wait_ms` (capped at
    /// [`DOWNLOAD_WAIT_MAX_MS`]) for a reserved one to be uploaded.
    async fn uploaded_content(
        &self,
        authed: Option<&Authed>,
        server_name: &str,
        media_id: &str,
        wait_ms: u64,
    ) -> Result<MediaContent> {
        if authed.is_none() && !self.media_settings().legacy_unauthenticated {
            return Err(Error::NotFound(
                "unauthenticated media access is disabled on this server; use /_matrix/client/v1/media"
                    .into(),
            ));
        }
        if server_name != self.settings.server_name || !valid_media_id(media_id) {
            return Err(not_found());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms.min(DOWNLOAD_WAIT_MAX_MS));
        let mut uploads = self.media.uploads.subscribe();
        loop {
            let media = self.store.media(media_id).await?.ok_or_else(not_found)?;
            if let Some(content) = media.content {
                return Ok(content);
            }
            if media.unused_expires_ms.is_some_and(|e| e <= now_ms()) {
                return Err(not_found());
            }
            match tokio::time::timeout_at(deadline, uploads.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => {
                    return Err(Error::NotYetUploaded("the media has not been uploaded yet".into()));
                }
            }
        }
    }

    async fn open_blob(&self, sha256: &str) -> Result<Option<Box<dyn BlobReader>>> {
        let id = BlobId::from_hex(sha256).ok_or_else(|| internal(format!("bad stored hash {sha256}")))?;
        let blobs = self.media.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.open(&id)).await.map_err(internal)?.map_err(internal)
    }

    /// A file for download. `authed` is `None` on the deprecated unauthenticated endpoints.
    pub async fn download_media(
        &self,
        authed: Option<&Authed>,
        server_name: &str,
        media_id: &str,
        wait_ms: u64,
    ) -> Result<MediaFile> {
        let content = self.uploaded_content(authed, server_name, media_id, wait_ms).await?;
        let reader = self.open_blob(&content.sha256).await?.ok_or_else(|| {
            tracing::error!(media_id, sha256 = %content.sha256, "a media file is missing from the media directory");
            Error::Internal("a media file is missing".into())
        })?;
        Ok(MediaFile {
            content_type: content.content_type,
            file_name: content.file_name,
            size_bytes: reader.size_bytes(),
            body: MediaBody(BodySource::Blob(Some(reader))),
        })
    }

    /// A thumbnail of an image, made on first request and kept (up to
    /// [`THUMBNAILS_PER_MEDIA_MAX`] per media). `method` defaults to `scale`.
    #[allow(clippy::too_many_arguments)]
    pub async fn media_thumbnail(
        &self,
        authed: Option<&Authed>,
        server_name: &str,
        media_id: &str,
        width: u64,
        height: u64,
        method: Option<Method>,
        wait_ms: u64,
    ) -> Result<MediaFile> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidParam("width and height must be at least 1".into()));
        }
        let content = self.uploaded_content(authed, server_name, media_id, wait_ms).await?;
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX).min(THUMBNAIL_DIMENSION_MAX_PX);
        let (width, height) = (clamp(width), clamp(height));
        let method = method.unwrap_or(Method::Scale);

        if let Some(kept) = self.store.media_thumbnail(media_id, width, height, method.as_str()).await?
            && let Some(reader) = self.open_blob(&kept.sha256).await?
        {
            return Ok(thumbnail_file(
                kept.content_type,
                reader.size_bytes(),
                BodySource::Blob(Some(reader)),
            ));
        }
        if content.size_bytes > THUMBNAIL_SOURCE_MAX_BYTES {
            return Err(Error::PayloadTooLarge("the file is too large to thumbnail".into()));
        }
        let _permit = self.media.thumbnail_permits.acquire().await.map_err(internal)?;
        let mut reader = self.open_blob(&content.sha256).await?.ok_or_else(|| {
            tracing::error!(media_id, sha256 = %content.sha256, "a media file is missing from the media directory");
            Error::Internal("a media file is missing".into())
        })?;
        let blobs = self.media.blobs.clone();
        let made = tokio::task::spawn_blocking(move || {
            let mut source = Vec::new();
            reader.read_to_end(&mut source).map_err(internal)?;
            let thumb = ward_media::thumbnail(&source, width, height, method).map_err(|e| match e {
                ward_media::ThumbnailError::TooLarge => Error::PayloadTooLarge(e.to_string()),
                other => Error::Unknown(format!("cannot make a thumbnail of this file: {other}")),
            })?;
            let blob =
                blobs.put(&thumb.bytes).map_err(|e| internal(format!("cannot store a thumbnail: {e}")))?;
            Ok::<_, Error>((thumb, blob))
        })
        .await
        .map_err(internal)??;
        let (thumb, blob) = made;
        let record = MediaThumbnail {
            width,
            height,
            method: method.as_str().to_owned(),
            sha256: blob.id.to_hex(),
            content_type: thumb.content_type.to_owned(),
            size_bytes: blob.size_bytes,
        };
        self.store.add_media_thumbnail(media_id, record, THUMBNAILS_PER_MEDIA_MAX).await?;
        Ok(thumbnail_file(
            thumb.content_type.to_owned(),
            blob.size_bytes,
            BodySource::Bytes(Some(thumb.bytes)),
        ))
    }
}

fn thumbnail_file(content_type: String, size_bytes: u64, body: BodySource) -> MediaFile {
    let extension = if content_type == "image/jpeg" { "jpg" } else { "png" };
    MediaFile {
        content_type: Some(content_type),
        file_name: Some(format!("thumbnail.{extension}")),
        size_bytes,
        body: MediaBody(body),
    }
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids() {
        assert!(valid_media_id("AbC_09-x"));
        for bad in ["", "../etc/passwd", "a/b", "a.b", "ä", "a%2Fb", &"x".repeat(256)] {
            assert!(!valid_media_id(bad), "{bad}");
        }
    }

    #[test]
    fn upload_fields() {
        let ok = UploadRequest {
            content_type: Some("text/plain; charset=utf-8".into()),
            file_name: Some("Überweisung Dr. Müller.pdf".into()),
            ..Default::default()
        };
        assert!(check_upload_request(&ok).is_ok());
        for bad in [
            UploadRequest { content_type: Some("text/plain\r\nX-Evil: 1".into()), ..Default::default() },
            UploadRequest { file_name: Some("a\nb".into()), ..Default::default() },
            UploadRequest { file_name: Some("x".repeat(256)), ..Default::default() },
        ] {
            assert!(matches!(check_upload_request(&bad), Err(Error::InvalidParam(_))), "{bad:?}");
        }
    }
}
