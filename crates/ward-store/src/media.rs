//! Media metadata: which media IDs exist, who made them, and which stored bytes they name.
//! The bytes themselves live in a blob store (`ward-media`), named by their SHA-256.

use async_trait::async_trait;

use crate::Result;

/// A media ID of this server: uploaded, or reserved by `/create` and waiting for its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub media_id: String,
    /// The user who uploaded or reserved it.
    pub uploader: String,
    pub created_ms: u64,
    /// `None` while a reserved ID waits for its upload.
    pub content: Option<MediaContent>,
    /// When a reservation without content lapses; `None` for direct uploads.
    pub unused_expires_ms: Option<u64>,
}

/// What was uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaContent {
    /// SHA-256 of the bytes, lower-case hex: the blob's name.
    pub sha256: String,
    pub size_bytes: u64,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    pub uploaded_ms: u64,
}

/// A stored thumbnail, keyed by its media and the request it answers (size and method).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaThumbnail {
    pub width: u32,
    pub height: u32,
    /// `"crop"` or `"scale"`.
    pub method: String,
    pub sha256: String,
    pub content_type: String,
    pub size_bytes: u64,
}

/// How a media write went, when it was not a storage failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaWrite {
    Done,
    /// The uploader's stored bytes would exceed the quota.
    QuotaExceeded,
    /// The user has as many unexpired reservations as allowed.
    TooManyPending,
    /// No such reservation, or it has lapsed.
    NotFound,
    /// The reservation belongs to someone else.
    NotYours,
    /// The media has its content already.
    AlreadyUploaded,
}

#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Records an upload. With a quota, fails with [`MediaWrite::QuotaExceeded`] if the bytes
    /// the uploader stores already plus these exceed it (checked in the same transaction).
    /// [`crate::StoreError::Conflict`] if the media ID exists.
    async fn create_media(
        &self,
        media_id: &str,
        uploader: &str,
        content: MediaContent,
        quota_bytes: Option<u64>,
    ) -> Result<MediaWrite>;

    /// Reserves a media ID (`/create`) until `expires_ms`, unless the user holds `pending_max`
    /// unexpired reservations already ([`MediaWrite::TooManyPending`]). Lapsed reservations of
    /// the user are forgotten on the way.
    async fn reserve_media(
        &self,
        media_id: &str,
        uploader: &str,
        now_ms: u64,
        expires_ms: u64,
        pending_max: u64,
    ) -> Result<MediaWrite>;

    /// Gives a reserved media ID its content, once, and only for the user who reserved it:
    /// [`MediaWrite::NotFound`] (unknown or lapsed), [`MediaWrite::NotYours`],
    /// [`MediaWrite::AlreadyUploaded`], [`MediaWrite::QuotaExceeded`] or [`MediaWrite::Done`].
    async fn fill_media(
        &self,
        media_id: &str,
        uploader: &str,
        content: MediaContent,
        now_ms: u64,
        quota_bytes: Option<u64>,
    ) -> Result<MediaWrite>;

    async fn media(&self, media_id: &str) -> Result<Option<Media>>;

    /// Bytes of content the user has uploaded (each upload counts, even of identical bytes).
    async fn media_usage_bytes(&self, user_id: &str) -> Result<u64>;

    async fn media_thumbnail(
        &self,
        media_id: &str,
        width: u32,
        height: u32,
        method: &str,
    ) -> Result<Option<MediaThumbnail>>;

    /// Remembers a thumbnail, unless the media has `max_per_media` thumbnails already or has
    /// this one (then nothing changes). Returns whether it was stored.
    async fn add_media_thumbnail(
        &self,
        media_id: &str,
        thumbnail: MediaThumbnail,
        max_per_media: u64,
    ) -> Result<bool>;
}
