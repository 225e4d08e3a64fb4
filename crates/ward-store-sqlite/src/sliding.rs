//! Sliding sync connections and the room facts sliding sync sorts and filters by.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params, params_from_iter};
use ward_store::{Result, SentRoom, SlidingSyncStore};

use crate::{SqliteStore, all, backend, from_sql, to_sql};

#[async_trait]
impl SlidingSyncStore for SqliteStore {
    async fn sliding_connection(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        version: u64,
    ) -> Result<Option<Vec<SentRoom>>> {
        let key = (user_id.to_owned(), device_id.to_owned(), conn_id.to_owned());
        self.read(move |tx| {
            let (user_id, device_id, conn_id) = &key;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM sliding_connections
                         WHERE user_id = ?1 AND device_id = ?2 AND conn_id = ?3 AND version = ?4",
                    params![user_id, device_id, conn_id, to_sql(version)],
                    |_| Ok(()),
                )
                .optional()
                .map_err(backend)?;
            if exists.is_none() {
                return Ok(None);
            }
            let rooms = all(
                tx,
                "SELECT room_id, membership, config, timeline_limit FROM sliding_connection_rooms
                     WHERE user_id = ?1 AND device_id = ?2 AND conn_id = ?3 AND version = ?4",
                params![user_id, device_id, conn_id, to_sql(version)],
                |r| {
                    Ok(SentRoom {
                        room_id: r.get(0)?,
                        membership: r.get(1)?,
                        config: r.get(2)?,
                        timeline_limit: r.get::<_, Option<i64>>(3)?.map(from_sql),
                    })
                },
            )?;
            Ok(Some(rooms))
        })
        .await
    }

    async fn put_sliding_connection(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        keep: Option<u64>,
        rooms: Vec<SentRoom>,
        first_version: u64,
        now_ms: u64,
        connections_per_device_max: usize,
    ) -> Result<u64> {
        let key = (user_id.to_owned(), device_id.to_owned(), conn_id.to_owned());
        self.write(move |tx| {
            let (user_id, device_id, conn_id) = &key;
            let newest: Option<i64> = tx
                .query_row(
                    "SELECT max(version) FROM sliding_connections
                         WHERE user_id = ?1 AND device_id = ?2 AND conn_id = ?3",
                    params![user_id, device_id, conn_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let version = match newest {
                Some(v) => from_sql(v).saturating_add(1),
                None => first_version,
            };
            tx.execute(
                "DELETE FROM sliding_connections
                     WHERE user_id = ?1 AND device_id = ?2 AND conn_id = ?3 AND version IS NOT ?4",
                params![user_id, device_id, conn_id, keep.map(to_sql)],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO sliding_connections (user_id, device_id, conn_id, version, written_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                params![user_id, device_id, conn_id, to_sql(version), to_sql(now_ms)],
            )
            .map_err(backend)?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO sliding_connection_rooms
                             (user_id, device_id, conn_id, version, room_id, membership, config,
                              timeline_limit)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .map_err(backend)?;
                for r in &rooms {
                    insert
                        .execute(params![
                            user_id,
                            device_id,
                            conn_id,
                            to_sql(version),
                            r.room_id,
                            r.membership,
                            r.config,
                            r.timeline_limit.map(to_sql)
                        ])
                        .map_err(backend)?;
                }
            }
            // The device's oldest connections beyond the limit go (by their newest write).
            let max = i64::try_from(connections_per_device_max).unwrap_or(i64::MAX);
            tx.execute(
                "DELETE FROM sliding_connections WHERE user_id = ?1 AND device_id = ?2 AND conn_id IN (
                     SELECT conn_id FROM sliding_connections WHERE user_id = ?1 AND device_id = ?2
                         GROUP BY conn_id ORDER BY max(written_ms) DESC, max(version) DESC
                         LIMIT -1 OFFSET ?3)",
                params![user_id, device_id, max],
            )
            .map_err(backend)?;
            Ok(version)
        })
        .await
    }

    async fn purge_sliding_connections(&self, written_before_ms: u64) -> Result<u64> {
        self.write(move |tx| {
            let stale = "SELECT user_id, device_id, conn_id FROM sliding_connections
                             GROUP BY user_id, device_id, conn_id HAVING max(written_ms) < ?1";
            let gone: i64 = tx
                .query_row(
                    &format!("SELECT count(*) FROM ({stale})"),
                    params![to_sql(written_before_ms)],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            tx.execute(
                &format!("DELETE FROM sliding_connections WHERE (user_id, device_id, conn_id) IN ({stale})"),
                params![to_sql(written_before_ms)],
            )
            .map_err(backend)?;
            Ok(from_sql(gone))
        })
        .await
    }

    async fn delete_sliding_connection(&self, user_id: &str, device_id: &str, conn_id: &str) -> Result<()> {
        let key = (user_id.to_owned(), device_id.to_owned(), conn_id.to_owned());
        self.write(move |tx| {
            let (user_id, device_id, conn_id) = &key;
            tx.execute(
                "DELETE FROM sliding_connections WHERE user_id = ?1 AND device_id = ?2 AND conn_id = ?3",
                params![user_id, device_id, conn_id],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn newest_event_positions(
        &self,
        room_ids: &[String],
        kinds: &[&str],
    ) -> Result<Vec<(String, u64)>> {
        let room_ids = room_ids.to_vec();
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        self.read(move |tx| {
            let mut out = Vec::with_capacity(room_ids.len());
            if kinds.is_empty() {
                return Ok(out);
            }
            let marks: Vec<String> = (0..kinds.len()).map(|i| format!("?{}", i + 2)).collect();
            // Walks the room's events newest first until one of the kinds turns up.
            let sql = format!(
                "SELECT stream_pos FROM events WHERE room_id = ?1 AND type IN ({})
                     ORDER BY stream_pos DESC LIMIT 1",
                marks.join(", ")
            );
            let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
            for room_id in room_ids {
                let args = std::iter::once(room_id.as_str()).chain(kinds.iter().map(String::as_str));
                let pos: Option<i64> =
                    stmt.query_row(params_from_iter(args), |r| r.get(0)).optional().map_err(backend)?;
                if let Some(pos) = pos {
                    out.push((room_id, from_sql(pos)));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn rooms_with_state(&self, room_ids: &[String], kind: &str) -> Result<Vec<String>> {
        let room_ids = room_ids.to_vec();
        let kind = kind.to_owned();
        self.read(move |tx| {
            let mut stmt = tx
                .prepare_cached("SELECT 1 FROM room_state WHERE room_id = ?1 AND type = ?2 LIMIT 1")
                .map_err(backend)?;
            let mut out = Vec::new();
            for room_id in room_ids {
                let found = stmt.query_row(params![room_id, kind], |_| Ok(())).optional().map_err(backend)?;
                if found.is_some() {
                    out.push(room_id);
                }
            }
            Ok(out)
        })
        .await
    }
}
