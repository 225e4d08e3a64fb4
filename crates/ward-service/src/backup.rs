//! Server-side key backup (`/room_keys/...`): clients store their Megolm session keys,
//! encrypted to a backup key the server never sees, so a new device can read old history.

use std::collections::BTreeMap;

use serde_json::Value;
use ward_store::{BackupKey, BackupScope, BackupVersion};

use crate::{Authed, Error, Result, Services};

/// Limits on key backups.
pub mod backup_limits {
    /// `auth_data` and each session's `session_data`.
    pub const BACKUP_JSON_MAX_BYTES: usize = 64 * 1024;
    /// Sessions in one upload.
    pub const BACKUP_KEYS_PER_UPLOAD_MAX: usize = 10_000;
    pub const ALGORITHM_MAX_BYTES: usize = 255;
    /// Sessions one backup version may hold (years of history of a busy user are ~10^5).
    pub const BACKUP_KEYS_PER_VERSION_MAX: u64 = 1_000_000;
    pub const SESSION_ID_MAX_BYTES: usize = 255;
}
use backup_limits::*;

/// One session key as uploaded.
#[derive(Debug, Clone)]
pub struct BackupKeyInput {
    pub room_id: String,
    pub session_id: String,
    pub first_message_index: u64,
    pub forwarded_count: u64,
    pub is_verified: bool,
    pub session_data: Value,
}

fn parse_version(v: &str) -> Result<u64> {
    v.parse().map_err(|_| Error::NotFound(format!("no backup version `{v}`")))
}

fn json_text(v: &Value, what: &str) -> Result<String> {
    if !v.is_object() {
        return Err(Error::BadJson(format!("{what} must be a JSON object")));
    }
    let s = serde_json::to_string(v).map_err(|e| Error::Internal(e.to_string()))?;
    if s.len() > BACKUP_JSON_MAX_BYTES {
        return Err(Error::TooLarge(format!("{what} is larger than {BACKUP_JSON_MAX_BYTES} bytes")));
    }
    Ok(s)
}

impl Services {
    async fn current_backup(&self, authed: &Authed) -> Result<Option<BackupVersion>> {
        Ok(self.store.backup_version(&authed.user_id, None).await?)
    }

    /// The version a key upload names must be the current one; returns it.
    async fn require_current(&self, authed: &Authed, version: &str) -> Result<BackupVersion> {
        let current = self.current_backup(authed).await?;
        match (current, version.parse::<u64>()) {
            (Some(c), Ok(v)) if c.version == v => Ok(c),
            (Some(c), _) => Err(Error::WrongRoomKeysVersion { current: c.version.to_string() }),
            (None, _) => Err(Error::NotFound("there is no key backup".into())),
        }
    }

    pub async fn create_backup_version(
        &self,
        authed: &Authed,
        algorithm: &str,
        auth_data: &Value,
    ) -> Result<String> {
        if algorithm.is_empty() || algorithm.len() > ALGORITHM_MAX_BYTES {
            return Err(Error::InvalidParam("the algorithm must be 1 to 255 bytes".into()));
        }
        let auth_data = json_text(auth_data, "auth_data")?;
        let v = self.store.create_backup_version(&authed.user_id, algorithm, &auth_data).await?;
        Ok(v.to_string())
    }

    /// `None` version: the current one.
    pub async fn backup_version(&self, authed: &Authed, version: Option<&str>) -> Result<BackupVersion> {
        let version = version.map(parse_version).transpose()?;
        self.store
            .backup_version(&authed.user_id, version)
            .await?
            .ok_or_else(|| Error::NotFound("no such key backup version".into()))
    }

    pub async fn update_backup_version(
        &self,
        authed: &Authed,
        version: &str,
        body_version: Option<&str>,
        algorithm: &str,
        auth_data: &Value,
    ) -> Result<()> {
        let existing = self.backup_version(authed, Some(version)).await?;
        if body_version.is_some_and(|b| b != version) {
            return Err(Error::InvalidParam("the version in the body does not match the path".into()));
        }
        if existing.algorithm != algorithm {
            return Err(Error::InvalidParam("a backup version's algorithm cannot change".into()));
        }
        let auth_data = json_text(auth_data, "auth_data")?;
        if !self.store.update_backup_version(&authed.user_id, existing.version, &auth_data).await? {
            return Err(Error::NotFound("no such key backup version".into()));
        }
        Ok(())
    }

    pub async fn delete_backup_version(&self, authed: &Authed, version: &str) -> Result<()> {
        if !self.store.delete_backup_version(&authed.user_id, parse_version(version)?).await? {
            return Err(Error::NotFound("no such key backup version".into()));
        }
        Ok(())
    }

    /// Stores keys, keeping the better copy of each session. Returns `(count, etag)`.
    pub async fn put_backup_keys(
        &self,
        authed: &Authed,
        version: &str,
        keys: Vec<BackupKeyInput>,
    ) -> Result<(u64, String)> {
        if keys.len() > BACKUP_KEYS_PER_UPLOAD_MAX {
            return Err(Error::TooLarge(format!("at most {BACKUP_KEYS_PER_UPLOAD_MAX} sessions per upload")));
        }
        let current = self.require_current(authed, version).await?;
        if current.count + keys.len() as u64 > BACKUP_KEYS_PER_VERSION_MAX {
            return Err(Error::TooLarge(format!(
                "a key backup version holds at most {BACKUP_KEYS_PER_VERSION_MAX} sessions"
            )));
        }
        if keys.iter().any(|k| k.session_id.is_empty() || k.session_id.len() > SESSION_ID_MAX_BYTES) {
            return Err(Error::InvalidParam(format!("session IDs have 1 to {SESSION_ID_MAX_BYTES} bytes")));
        }
        let version = current.version;
        let keys = keys
            .into_iter()
            .map(|k| {
                Ok(BackupKey {
                    session_data: json_text(&k.session_data, "session_data")?,
                    room_id: k.room_id,
                    session_id: k.session_id,
                    first_message_index: k.first_message_index,
                    forwarded_count: k.forwarded_count,
                    is_verified: k.is_verified,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        match self.store.put_backup_keys(&authed.user_id, version, keys).await? {
            Some(v) => Ok((v.count, v.etag.to_string())),
            // Replaced by a newer version between the check and the write.
            None => Err(Error::WrongRoomKeysVersion {
                current: self.backup_version(authed, None).await.map(|v| v.version.to_string())?,
            }),
        }
    }

    /// Keys grouped as `room → session → key`.
    pub async fn backup_keys(
        &self,
        authed: &Authed,
        version: &str,
        scope: BackupScope,
    ) -> Result<BTreeMap<String, BTreeMap<String, BackupKey>>> {
        let v = self.backup_version(authed, Some(version)).await?;
        let mut out: BTreeMap<String, BTreeMap<String, BackupKey>> = BTreeMap::new();
        for k in self.store.backup_keys(&authed.user_id, v.version, scope).await? {
            out.entry(k.room_id.clone()).or_default().insert(k.session_id.clone(), k);
        }
        Ok(out)
    }

    pub async fn delete_backup_keys(
        &self,
        authed: &Authed,
        version: &str,
        scope: BackupScope,
    ) -> Result<(u64, String)> {
        let version = parse_version(version)?;
        match self.store.delete_backup_keys(&authed.user_id, version, scope).await? {
            Some(v) => Ok((v.count, v.etag.to_string())),
            None => Err(Error::NotFound("no such key backup version".into())),
        }
    }
}
