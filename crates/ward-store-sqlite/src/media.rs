//! Media metadata and thumbnails.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};
use ward_store::{Media, MediaContent, MediaStore, MediaThumbnail, MediaWrite, Result, StoreError};

use crate::{SqliteStore, backend, from_sql, to_sql};

const MEDIA_COLUMNS: &str = "media_id, uploader, created_ms, unused_expires_ms, sha256, size_bytes, \
     content_type, file_name, uploaded_ms";

fn media_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Media> {
    let sha256: Option<String> = r.get(4)?;
    let content = match sha256 {
        Some(sha256) => Some(MediaContent {
            sha256,
            size_bytes: from_sql(r.get::<_, Option<i64>>(5)?.unwrap_or(0)),
            content_type: r.get(6)?,
            file_name: r.get(7)?,
            uploaded_ms: from_sql(r.get::<_, Option<i64>>(8)?.unwrap_or(0)),
        }),
        None => None,
    };
    Ok(Media {
        media_id: r.get(0)?,
        uploader: r.get(1)?,
        created_ms: from_sql(r.get(2)?),
        content,
        unused_expires_ms: r.get::<_, Option<i64>>(3)?.map(from_sql),
    })
}

fn usage_bytes(tx: &Transaction<'_>, user_id: &str) -> Result<u64> {
    let used: i64 = tx
        .query_row(
            "SELECT coalesce(sum(size_bytes), 0) FROM media WHERE uploader = ?1 AND sha256 IS NOT NULL",
            [user_id],
            |r| r.get(0),
        )
        .map_err(backend)?;
    Ok(from_sql(used))
}

fn within_quota(
    tx: &Transaction<'_>,
    user_id: &str,
    size_bytes: u64,
    quota_bytes: Option<u64>,
) -> Result<bool> {
    match quota_bytes {
        None => Ok(true),
        Some(quota) => Ok(usage_bytes(tx, user_id)?.saturating_add(size_bytes) <= quota),
    }
}

#[async_trait]
impl MediaStore for SqliteStore {
    async fn create_media(
        &self,
        media_id: &str,
        uploader: &str,
        content: MediaContent,
        quota_bytes: Option<u64>,
    ) -> Result<MediaWrite> {
        let (media_id, uploader) = (media_id.to_owned(), uploader.to_owned());
        self.write(move |tx| {
            if !within_quota(tx, &uploader, content.size_bytes, quota_bytes)? {
                return Ok(MediaWrite::QuotaExceeded);
            }
            let inserted = tx
                .execute(
                    "INSERT INTO media (media_id, uploader, created_ms, sha256, size_bytes, content_type,
                         file_name, uploaded_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?3)
                     ON CONFLICT (media_id) DO NOTHING",
                    params![
                        media_id,
                        uploader,
                        to_sql(content.uploaded_ms),
                        content.sha256,
                        to_sql(content.size_bytes),
                        content.content_type,
                        content.file_name
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("media {media_id}")));
            }
            Ok(MediaWrite::Done)
        })
        .await
    }

    async fn reserve_media(
        &self,
        media_id: &str,
        uploader: &str,
        now_ms: u64,
        expires_ms: u64,
        pending_max: u64,
    ) -> Result<MediaWrite> {
        let (media_id, uploader) = (media_id.to_owned(), uploader.to_owned());
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM media WHERE uploader = ?1 AND sha256 IS NULL AND unused_expires_ms <= ?2",
                params![uploader, to_sql(now_ms)],
            )
            .map_err(backend)?;
            let pending: i64 = tx
                .query_row(
                    "SELECT count(*) FROM media WHERE uploader = ?1 AND sha256 IS NULL",
                    [&uploader],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if from_sql(pending) >= pending_max {
                return Ok(MediaWrite::TooManyPending);
            }
            let inserted = tx
                .execute(
                    "INSERT INTO media (media_id, uploader, created_ms, unused_expires_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (media_id) DO NOTHING",
                    params![media_id, uploader, to_sql(now_ms), to_sql(expires_ms)],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("media {media_id}")));
            }
            Ok(MediaWrite::Done)
        })
        .await
    }

    async fn fill_media(
        &self,
        media_id: &str,
        uploader: &str,
        content: MediaContent,
        now_ms: u64,
        quota_bytes: Option<u64>,
    ) -> Result<MediaWrite> {
        let (media_id, uploader) = (media_id.to_owned(), uploader.to_owned());
        self.write(move |tx| {
            let found: Option<(String, bool, Option<i64>)> = tx
                .query_row(
                    "SELECT uploader, sha256 IS NOT NULL, unused_expires_ms FROM media WHERE media_id = ?1",
                    [&media_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((owner, uploaded, expires)) = found else { return Ok(MediaWrite::NotFound) };
            if uploaded {
                return Ok(if owner == uploader {
                    MediaWrite::AlreadyUploaded
                } else {
                    MediaWrite::NotYours
                });
            }
            if expires.is_some_and(|e| from_sql(e) <= now_ms) {
                return Ok(MediaWrite::NotFound);
            }
            if owner != uploader {
                return Ok(MediaWrite::NotYours);
            }
            if !within_quota(tx, &uploader, content.size_bytes, quota_bytes)? {
                return Ok(MediaWrite::QuotaExceeded);
            }
            tx.execute(
                "UPDATE media SET sha256 = ?2, size_bytes = ?3, content_type = ?4, file_name = ?5,
                     uploaded_ms = ?6
                 WHERE media_id = ?1",
                params![
                    media_id,
                    content.sha256,
                    to_sql(content.size_bytes),
                    content.content_type,
                    content.file_name,
                    to_sql(content.uploaded_ms)
                ],
            )
            .map_err(backend)?;
            Ok(MediaWrite::Done)
        })
        .await
    }

    async fn media(&self, media_id: &str) -> Result<Option<Media>> {
        let media_id = media_id.to_owned();
        self.read(move |tx| {
            tx.query_row(
                &format!("SELECT {MEDIA_COLUMNS} FROM media WHERE media_id = ?1"),
                [&media_id],
                media_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn media_usage_bytes(&self, user_id: &str) -> Result<u64> {
        let user_id = user_id.to_owned();
        self.read(move |tx| usage_bytes(tx, &user_id)).await
    }

    async fn media_thumbnail(
        &self,
        media_id: &str,
        width: u32,
        height: u32,
        method: &str,
    ) -> Result<Option<MediaThumbnail>> {
        let (media_id, method) = (media_id.to_owned(), method.to_owned());
        self.read(move |tx| {
            tx.query_row(
                "SELECT sha256, content_type, size_bytes FROM media_thumbnails
                 WHERE media_id = ?1 AND width = ?2 AND height = ?3 AND method = ?4",
                params![media_id, width, height, method],
                |r| {
                    Ok(MediaThumbnail {
                        width,
                        height,
                        method: method.clone(),
                        sha256: r.get(0)?,
                        content_type: r.get(1)?,
                        size_bytes: from_sql(r.get(2)?),
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn add_media_thumbnail(
        &self,
        media_id: &str,
        thumbnail: MediaThumbnail,
        max_per_media: u64,
    ) -> Result<bool> {
        let media_id = media_id.to_owned();
        self.write(move |tx| {
            let count: i64 = tx
                .query_row("SELECT count(*) FROM media_thumbnails WHERE media_id = ?1", [&media_id], |r| {
                    r.get(0)
                })
                .map_err(backend)?;
            if from_sql(count) >= max_per_media {
                return Ok(false);
            }
            let n = tx
                .execute(
                    "INSERT INTO media_thumbnails (media_id, width, height, method, sha256, content_type,
                         size_bytes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT DO NOTHING",
                    params![
                        media_id,
                        thumbnail.width,
                        thumbnail.height,
                        thumbnail.method,
                        thumbnail.sha256,
                        thumbnail.content_type,
                        to_sql(thumbnail.size_bytes)
                    ],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }
}
