//! Keys, to-device messages and key backups.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};
use ward_store::{
    BackupKey, BackupScope, BackupStore, BackupVersion, ClaimedKey, CrossSigningKind, DeviceKeys, KeyCounts,
    KeySignature, KeyStore, KeyUpload, MemberChange, Result, StoreError, ToDeviceMessage, ToDeviceOutcome,
    ToDeviceRecipient, ToDeviceStore,
};

use crate::rooms::next_stream_pos;
use crate::{SqliteStore, all, backend, from_sql, to_sql};

fn mark_changed(tx: &Transaction<'_>, user_id: &str, pos: i64) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO device_list_changes (user_id, stream_pos) VALUES (?1, ?2)",
        params![user_id, pos],
    )
    .map_err(backend)?;
    Ok(())
}

fn counts(tx: &Transaction<'_>, user_id: &str, device_id: &str) -> Result<KeyCounts> {
    let one_time_keys = all(
        tx,
        "SELECT algorithm, count(*) FROM one_time_keys WHERE user_id = ?1 AND device_id = ?2
             GROUP BY algorithm",
        [user_id, device_id],
        |r| Ok((r.get::<_, String>(0)?, from_sql(r.get(1)?))),
    )?
    .into_iter()
    .collect();
    let unused_fallback_algorithms = all(
        tx,
        "SELECT algorithm FROM fallback_keys WHERE user_id = ?1 AND device_id = ?2 AND used = 0
             ORDER BY algorithm",
        [user_id, device_id],
        |r| r.get(0),
    )?;
    Ok(KeyCounts { one_time_keys, unused_fallback_algorithms })
}

/// `algorithm:key_id` → (algorithm, key_id); the service has checked the shape.
fn split_key_id(id: &str) -> (&str, &str) {
    id.split_once(':').unwrap_or((id, ""))
}

/// Runs a query taking one user ID (`?1`) for each user and collects all rows.
fn for_users<T>(
    tx: &Transaction<'_>,
    user_ids: &[String],
    sql: &str,
    mut row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for user_id in user_ids {
        out.extend(all(tx, sql, [user_id], &mut row)?);
    }
    Ok(out)
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn upload_keys(
        &self,
        user_id: &str,
        device_id: &str,
        upload: KeyUpload,
    ) -> Result<(KeyCounts, Option<u64>)> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.write(move |tx| {
            let mut changed = None;
            if let Some(json) = &upload.device_keys {
                let n = tx
                    .execute(
                        "INSERT OR IGNORE INTO device_keys (user_id, device_id, json) VALUES (?1, ?2, ?3)",
                        params![user_id, device_id, json],
                    )
                    .map_err(backend)?;
                if n > 0 {
                    let pos = next_stream_pos(tx)?;
                    mark_changed(tx, &user_id, pos)?;
                    changed = Some(from_sql(pos));
                }
            }
            for (id, json) in &upload.one_time_keys {
                let (algorithm, key_id) = split_key_id(id);
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT json FROM one_time_keys
                             WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3 AND key_id = ?4",
                        params![user_id, device_id, algorithm, key_id],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(backend)?;
                match existing {
                    Some(old) if &old != json => {
                        return Err(StoreError::Conflict(format!(
                            "one-time key {id} exists with other content"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        tx.execute(
                            "INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, json)
                                 VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![user_id, device_id, algorithm, key_id, json],
                        )
                        .map_err(backend)?;
                    }
                }
            }
            for (id, json) in &upload.fallback_keys {
                let (algorithm, key_id) = split_key_id(id);
                // Re-uploading the same key keeps its "used" mark.
                tx.execute(
                    "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, json, used)
                         VALUES (?1, ?2, ?3, ?4, ?5, 0)
                     ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET
                         used = CASE WHEN key_id = excluded.key_id AND json = excluded.json
                                     THEN used ELSE 0 END,
                         key_id = excluded.key_id, json = excluded.json",
                    params![user_id, device_id, algorithm, key_id, json],
                )
                .map_err(backend)?;
            }
            Ok((counts(tx, &user_id, &device_id)?, changed))
        })
        .await
    }

    async fn key_counts(&self, user_id: &str, device_id: &str) -> Result<KeyCounts> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.read(move |tx| counts(tx, &user_id, &device_id)).await
    }

    async fn device_keys(&self, user_ids: &[String]) -> Result<Vec<DeviceKeys>> {
        let user_ids = user_ids.to_vec();
        self.read(move |tx| {
            for_users(
                tx,
                &user_ids,
                "SELECT k.user_id, k.device_id, k.json, d.display_name
                     FROM device_keys k JOIN devices d USING (user_id, device_id)
                     WHERE k.user_id = ?1 ORDER BY k.device_id",
                |r| {
                    Ok(DeviceKeys {
                        user_id: r.get(0)?,
                        device_id: r.get(1)?,
                        json: r.get(2)?,
                        display_name: r.get(3)?,
                    })
                },
            )
        })
        .await
    }

    async fn claim_keys(&self, requests: &[(String, String, String)]) -> Result<Vec<ClaimedKey>> {
        let requests = requests.to_vec();
        self.write(move |tx| {
            let mut out = Vec::new();
            for (user_id, device_id, algorithm) in &requests {
                let otk: Option<(String, String)> = tx
                    .query_row(
                        "DELETE FROM one_time_keys
                             WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3 AND key_id =
                                 (SELECT key_id FROM one_time_keys
                                      WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3
                                      ORDER BY key_id LIMIT 1)
                         RETURNING key_id, json",
                        params![user_id, device_id, algorithm],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(backend)?;
                let key = match otk {
                    Some(k) => Some(k),
                    None => tx
                        .query_row(
                            "UPDATE fallback_keys SET used = 1
                                 WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3
                                 RETURNING key_id, json",
                            params![user_id, device_id, algorithm],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .optional()
                        .map_err(backend)?,
                };
                if let Some((key_id, json)) = key {
                    out.push((user_id.clone(), device_id.clone(), format!("{algorithm}:{key_id}"), json));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn set_cross_signing_keys(
        &self,
        user_id: &str,
        keys: &[(CrossSigningKind, String)],
    ) -> Result<u64> {
        let (user_id, keys) = (user_id.to_owned(), keys.to_vec());
        self.write(move |tx| {
            for (kind, json) in &keys {
                tx.execute(
                    "INSERT OR REPLACE INTO cross_signing_keys (user_id, kind, json) VALUES (?1, ?2, ?3)",
                    params![user_id, kind.as_str(), json],
                )
                .map_err(backend)?;
            }
            let pos = next_stream_pos(tx)?;
            mark_changed(tx, &user_id, pos)?;
            Ok(from_sql(pos))
        })
        .await
    }

    async fn cross_signing_keys(
        &self,
        user_ids: &[String],
    ) -> Result<Vec<(String, CrossSigningKind, String)>> {
        let user_ids = user_ids.to_vec();
        self.read(move |tx| {
            let rows = for_users(
                tx,
                &user_ids,
                "SELECT user_id, kind, json FROM cross_signing_keys WHERE user_id = ?1 ORDER BY kind",
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
            )?;
            Ok(rows
                .into_iter()
                .filter_map(|(user, kind, json)| Some((user, CrossSigningKind::parse(&kind)?, json)))
                .collect())
        })
        .await
    }

    async fn add_key_signatures(&self, signatures: &[KeySignature]) -> Result<u64> {
        let signatures = signatures.to_vec();
        self.write(move |tx| {
            let pos = next_stream_pos(tx)?;
            for s in &signatures {
                tx.execute(
                    "INSERT OR REPLACE INTO key_signatures
                         (target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        s.target_user_id,
                        s.target_key_id,
                        s.signer_user_id,
                        s.signer_key_id,
                        s.signature
                    ],
                )
                .map_err(backend)?;
                mark_changed(tx, &s.target_user_id, pos)?;
            }
            Ok(from_sql(pos))
        })
        .await
    }

    async fn key_signatures(&self, target_user_ids: &[String]) -> Result<Vec<KeySignature>> {
        let user_ids = target_user_ids.to_vec();
        self.read(move |tx| {
            for_users(
                tx,
                &user_ids,
                "SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature
                     FROM key_signatures WHERE target_user_id = ?1
                     ORDER BY target_key_id, signer_user_id, signer_key_id",
                |r| {
                    Ok(KeySignature {
                        target_user_id: r.get(0)?,
                        target_key_id: r.get(1)?,
                        signer_user_id: r.get(2)?,
                        signer_key_id: r.get(3)?,
                        signature: r.get(4)?,
                    })
                },
            )
        })
        .await
    }

    async fn device_list_changes(&self, since: u64, until: u64) -> Result<Vec<String>> {
        self.read(move |tx| {
            all(
                tx,
                "SELECT user_id FROM device_list_changes WHERE stream_pos > ?1 AND stream_pos <= ?2
                     ORDER BY user_id",
                params![to_sql(since), to_sql(until)],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn mark_device_list_changed(&self, user_id: &str) -> Result<u64> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            let pos = next_stream_pos(tx)?;
            mark_changed(tx, &user_id, pos)?;
            Ok(from_sql(pos))
        })
        .await
    }

    async fn room_peers(&self, user_id: &str) -> Result<Vec<String>> {
        let user_id = user_id.to_owned();
        self.read(move |tx| {
            all(
                tx,
                "SELECT DISTINCT other.user_id FROM memberships mine
                     JOIN memberships other ON other.room_id = mine.room_id
                     WHERE mine.user_id = ?1 AND mine.membership IN ('join', 'invite')
                       AND other.membership IN ('join', 'invite')
                     ORDER BY other.user_id",
                [&user_id],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn member_changes(&self, room_id: &str, since: u64, until: u64) -> Result<Vec<MemberChange>> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            all(
                tx,
                "SELECT state_key, json_extract(json, '$.content.membership'), stream_pos FROM events
                     WHERE room_id = ?1 AND type = 'm.room.member' AND state_key IS NOT NULL
                       AND stream_pos > ?2 AND stream_pos <= ?3
                     ORDER BY stream_pos",
                params![room_id, to_sql(since), to_sql(until)],
                |r| {
                    Ok(MemberChange {
                        user_id: r.get(0)?,
                        membership: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        stream_pos: from_sql(r.get(2)?),
                    })
                },
            )
        })
        .await
    }
}

#[async_trait]
impl ToDeviceStore for SqliteStore {
    async fn send_to_device(
        &self,
        sender: (&str, &str),
        txn_id: &str,
        kind: &str,
        recipients: Vec<ToDeviceRecipient>,
        queue_max: u64,
    ) -> Result<ToDeviceOutcome> {
        let (sender_user, sender_device) = (sender.0.to_owned(), sender.1.to_owned());
        let (txn_id, kind) = (txn_id.to_owned(), kind.to_owned());
        self.write(move |tx| {
            let fresh = tx
                .execute(
                    "INSERT OR IGNORE INTO to_device_txns (user_id, device_id, txn_id) VALUES (?1, ?2, ?3)",
                    params![sender_user, sender_device, txn_id],
                )
                .map_err(backend)?;
            if fresh == 0 {
                return Ok(ToDeviceOutcome::Duplicate);
            }
            let pos = next_stream_pos(tx)?;
            let mut dropped = 0;
            for r in &recipients {
                let devices: Vec<String> = if r.device_id == "*" {
                    all(tx, "SELECT device_id FROM devices WHERE user_id = ?1", [&r.user_id], |row| row.get(0))?
                } else {
                    all(
                        tx,
                        "SELECT device_id FROM devices WHERE user_id = ?1 AND device_id = ?2",
                        [&r.user_id, &r.device_id],
                        |row| row.get(0),
                    )?
                };
                for device in devices {
                    let queued: i64 = tx
                        .query_row(
                            "SELECT count(*) FROM to_device WHERE user_id = ?1 AND device_id = ?2",
                            [&r.user_id, &device],
                            |row| row.get(0),
                        )
                        .map_err(backend)?;
                    if from_sql(queued) >= queue_max {
                        dropped += 1;
                        continue;
                    }
                    // A device named twice in one send gets the first message.
                    tx.execute(
                        "INSERT OR IGNORE INTO to_device (user_id, device_id, stream_pos, sender, type, content)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![r.user_id, device, pos, sender_user, kind, r.content],
                    )
                    .map_err(backend)?;
                }
            }
            Ok(ToDeviceOutcome::Queued { stream_pos: from_sql(pos), dropped })
        })
        .await
    }

    async fn to_device_messages(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<(Vec<ToDeviceMessage>, bool)> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.read(move |tx| {
            let messages = all(
                tx,
                "SELECT stream_pos, sender, type, content FROM to_device
                     WHERE user_id = ?1 AND device_id = ?2 AND stream_pos > ?3 AND stream_pos <= ?4
                     ORDER BY stream_pos LIMIT ?5",
                params![user_id, device_id, to_sql(after), to_sql(until), to_sql(limit as u64)],
                |r| {
                    Ok(ToDeviceMessage {
                        stream_pos: from_sql(r.get(0)?),
                        sender: r.get(1)?,
                        kind: r.get(2)?,
                        content: r.get(3)?,
                    })
                },
            )?;
            let acknowledged: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM to_device
                         WHERE user_id = ?1 AND device_id = ?2 AND stream_pos <= ?3)",
                    params![user_id, device_id, to_sql(after)],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            Ok((messages, acknowledged))
        })
        .await
    }

    async fn ack_to_device(&self, user_id: &str, device_id: &str, up_to: u64) -> Result<()> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM to_device WHERE user_id = ?1 AND device_id = ?2 AND stream_pos <= ?3",
                params![user_id, device_id, to_sql(up_to)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

fn version_row(tx: &Transaction<'_>, user_id: &str, version: Option<u64>) -> Result<Option<BackupVersion>> {
    let row: Option<(i64, String, String, i64)> = match version {
        Some(v) => tx.query_row(
            "SELECT version, algorithm, auth_data, etag FROM backup_versions
                 WHERE user_id = ?1 AND version = ?2 AND deleted = 0",
            params![user_id, to_sql(v)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        ),
        None => tx.query_row(
            "SELECT version, algorithm, auth_data, etag FROM backup_versions
                 WHERE user_id = ?1 AND deleted = 0 ORDER BY version DESC LIMIT 1",
            params![user_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        ),
    }
    .optional()
    .map_err(backend)?;
    let Some((version, algorithm, auth_data, etag)) = row else { return Ok(None) };
    let count: i64 = tx
        .query_row(
            "SELECT count(*) FROM backup_keys WHERE user_id = ?1 AND version = ?2",
            params![user_id, version],
            |r| r.get(0),
        )
        .map_err(backend)?;
    Ok(Some(BackupVersion {
        version: from_sql(version),
        algorithm,
        auth_data,
        etag: from_sql(etag),
        count: from_sql(count),
    }))
}

fn backup_key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BackupKey> {
    Ok(BackupKey {
        room_id: r.get(0)?,
        session_id: r.get(1)?,
        first_message_index: from_sql(r.get(2)?),
        forwarded_count: from_sql(r.get(3)?),
        is_verified: r.get(4)?,
        session_data: r.get(5)?,
    })
}

const BACKUP_KEY_COLUMNS: &str =
    "room_id, session_id, first_message_index, forwarded_count, is_verified, session_data";

fn scope_clause(scope: &BackupScope) -> (&'static str, Vec<String>) {
    match scope {
        BackupScope::All => ("", vec![]),
        BackupScope::Room(room) => (" AND room_id = ?3", vec![room.clone()]),
        BackupScope::Session(room, session) => {
            (" AND room_id = ?3 AND session_id = ?4", vec![room.clone(), session.clone()])
        }
    }
}

#[async_trait]
impl BackupStore for SqliteStore {
    async fn create_backup_version(&self, user_id: &str, algorithm: &str, auth_data: &str) -> Result<u64> {
        let (user_id, algorithm, auth_data) =
            (user_id.to_owned(), algorithm.to_owned(), auth_data.to_owned());
        self.write(move |tx| {
            let version: i64 = tx
                .query_row(
                    "SELECT coalesce(max(version), 0) + 1 FROM backup_versions WHERE user_id = ?1",
                    [&user_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO backup_versions (user_id, version, algorithm, auth_data) VALUES (?1, ?2, ?3, ?4)",
                params![user_id, version, algorithm, auth_data],
            )
            .map_err(backend)?;
            Ok(from_sql(version))
        })
        .await
    }

    async fn backup_version(&self, user_id: &str, version: Option<u64>) -> Result<Option<BackupVersion>> {
        let user_id = user_id.to_owned();
        self.read(move |tx| version_row(tx, &user_id, version)).await
    }

    async fn update_backup_version(&self, user_id: &str, version: u64, auth_data: &str) -> Result<bool> {
        let (user_id, auth_data) = (user_id.to_owned(), auth_data.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE backup_versions SET auth_data = ?3 WHERE user_id = ?1 AND version = ?2 AND deleted = 0",
                    params![user_id, to_sql(version), auth_data],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_backup_version(&self, user_id: &str, version: u64) -> Result<bool> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE backup_versions SET deleted = 1 WHERE user_id = ?1 AND version = ?2 AND deleted = 0",
                    params![user_id, to_sql(version)],
                )
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM backup_keys WHERE user_id = ?1 AND version = ?2",
                params![user_id, to_sql(version)],
            )
            .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_backup_keys(
        &self,
        user_id: &str,
        version: u64,
        keys: Vec<BackupKey>,
    ) -> Result<Option<BackupVersion>> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            match version_row(tx, &user_id, None)? {
                Some(current) if current.version == version => {}
                _ => return Ok(None),
            }
            let mut changed = false;
            for key in &keys {
                let old = tx
                    .query_row(
                        &format!(
                            "SELECT {BACKUP_KEY_COLUMNS} FROM backup_keys
                                 WHERE user_id = ?1 AND version = ?2 AND room_id = ?3 AND session_id = ?4"
                        ),
                        params![user_id, to_sql(version), key.room_id, key.session_id],
                        backup_key_from_row,
                    )
                    .optional()
                    .map_err(backend)?;
                if old.as_ref().is_some_and(|old| !key.is_better_than(old)) {
                    continue;
                }
                tx.execute(
                    "INSERT OR REPLACE INTO backup_keys (user_id, version, room_id, session_id,
                         first_message_index, forwarded_count, is_verified, session_data)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        user_id,
                        to_sql(version),
                        key.room_id,
                        key.session_id,
                        to_sql(key.first_message_index),
                        to_sql(key.forwarded_count),
                        key.is_verified,
                        key.session_data
                    ],
                )
                .map_err(backend)?;
                changed = true;
            }
            if changed {
                tx.execute(
                    "UPDATE backup_versions SET etag = etag + 1 WHERE user_id = ?1 AND version = ?2",
                    params![user_id, to_sql(version)],
                )
                .map_err(backend)?;
            }
            version_row(tx, &user_id, Some(version))
        })
        .await
    }

    async fn backup_keys(&self, user_id: &str, version: u64, scope: BackupScope) -> Result<Vec<BackupKey>> {
        let user_id = user_id.to_owned();
        self.read(move |tx| {
            let (clause, extra) = scope_clause(&scope);
            let sql = format!(
                "SELECT {BACKUP_KEY_COLUMNS} FROM backup_keys WHERE user_id = ?1 AND version = ?2{clause}
                     ORDER BY room_id, session_id"
            );
            let mut values: Vec<rusqlite::types::Value> = vec![user_id.into(), to_sql(version).into()];
            values.extend(extra.into_iter().map(Into::into));
            all(tx, &sql, rusqlite::params_from_iter(values), backup_key_from_row)
        })
        .await
    }

    async fn delete_backup_keys(
        &self,
        user_id: &str,
        version: u64,
        scope: BackupScope,
    ) -> Result<Option<BackupVersion>> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            if version_row(tx, &user_id, Some(version))?.is_none() {
                return Ok(None);
            }
            let (clause, extra) = scope_clause(&scope);
            let mut values: Vec<rusqlite::types::Value> =
                vec![user_id.clone().into(), to_sql(version).into()];
            values.extend(extra.into_iter().map(Into::into));
            let n = tx
                .execute(
                    &format!("DELETE FROM backup_keys WHERE user_id = ?1 AND version = ?2{clause}"),
                    rusqlite::params_from_iter(values),
                )
                .map_err(backend)?;
            if n > 0 {
                tx.execute(
                    "UPDATE backup_versions SET etag = etag + 1 WHERE user_id = ?1 AND version = ?2",
                    params![user_id, to_sql(version)],
                )
                .map_err(backend)?;
            }
            version_row(tx, &user_id, Some(version))
        })
        .await
    }
}
