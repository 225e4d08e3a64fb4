//! Rooms: events in stream order, state groups, memberships, transaction IDs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, Transaction, params};
use ward_store::{
    Direction, Membership, NewEvent, NewRoom, Receipt, Result, Room, RoomStore, StateEntry, StoreError,
    StoredEvent, TxnKey,
};

use crate::{SqliteStore, backend, from_sql, to_sql};

/// A state group is a full snapshot after at most this many deltas, bounding the walk that
/// reads "state at event X".
const STATE_SNAPSHOT_EVERY: i64 = 50;

pub(crate) const EVENT_COLUMNS: &str =
    "stream_pos, event_id, room_id, type, state_key, sender, json, redacted_by";

pub(crate) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        stream_pos: from_sql(r.get(0)?),
        event_id: r.get(1)?,
        room_id: r.get(2)?,
        kind: r.get(3)?,
        state_key: r.get(4)?,
        sender: r.get(5)?,
        json: r.get(6)?,
        redacted_by: r.get(7)?,
    })
}

const MEMBERSHIP_COLUMNS: &str = "room_id, user_id, membership, event_id, stream_pos, forgotten";

fn membership_from_row(r: &Row<'_>) -> rusqlite::Result<Membership> {
    Ok(Membership {
        room_id: r.get(0)?,
        user_id: r.get(1)?,
        membership: r.get(2)?,
        event_id: r.get(3)?,
        stream_pos: from_sql(r.get(4)?),
        forgotten: r.get(5)?,
    })
}

/// The full state of a group: newest deltas win, the walk ends at a snapshot.
fn resolve_group(tx: &Transaction<'_>, mut group: Option<i64>) -> Result<Vec<StateEntry>> {
    let mut state: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut entries = tx
        .prepare_cached("SELECT type, state_key, event_id FROM state_group_entries WHERE group_id = ?1")
        .map_err(backend)?;
    let mut prev = tx.prepare_cached("SELECT prev_group FROM state_groups WHERE id = ?1").map_err(backend)?;
    while let Some(g) = group {
        let rows = entries
            .query_map([g], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(backend)?;
        for row in rows {
            let (kind, key, event_id) = row.map_err(backend)?;
            state.entry((kind, key)).or_insert(event_id);
        }
        group = prev.query_row([g], |r| r.get::<_, Option<i64>>(0)).optional().map_err(backend)?.flatten();
    }
    Ok(state
        .into_iter()
        .map(|((kind, state_key), event_id)| StateEntry { kind, state_key, event_id })
        .collect())
}

/// Takes the next position of the shared stream (inside the caller's write transaction, so
/// positions are unique and commit in order).
pub(crate) fn next_stream_pos(tx: &Transaction<'_>) -> Result<i64> {
    tx.query_row("UPDATE stream SET pos = pos + 1 WHERE id = 1 RETURNING pos", [], |r| r.get(0))
        .map_err(backend)
}

fn append_one(tx: &Transaction<'_>, room_id: &str, ev: &NewEvent) -> Result<u64> {
    let current: Option<i64> = tx
        .query_row("SELECT state_group FROM rooms WHERE room_id = ?1", [room_id], |r| r.get(0))
        .optional()
        .map_err(backend)?
        .ok_or_else(|| StoreError::Backend(format!("no room {room_id}")))?;
    let mut group = current;
    if let Some(state_key) = &ev.state_key {
        let chain_len: Option<i64> = match current {
            Some(g) => tx
                .query_row("SELECT chain_len FROM state_groups WHERE id = ?1", [g], |r| r.get(0))
                .optional()
                .map_err(backend)?,
            None => None,
        };
        let snapshot = chain_len.is_none_or(|l| l + 1 >= STATE_SNAPSHOT_EVERY);
        let (prev, len) = if snapshot { (None, 0) } else { (current, chain_len.unwrap_or(0) + 1) };
        tx.execute(
            "INSERT INTO state_groups (room_id, prev_group, chain_len) VALUES (?1, ?2, ?3)",
            params![room_id, prev, len],
        )
        .map_err(backend)?;
        let new_group = tx.last_insert_rowid();
        if snapshot {
            tx.execute(
                "INSERT INTO state_group_entries (group_id, type, state_key, event_id)
                 SELECT ?1, type, state_key, event_id FROM room_state WHERE room_id = ?2",
                params![new_group, room_id],
            )
            .map_err(backend)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO state_group_entries (group_id, type, state_key, event_id)
             VALUES (?1, ?2, ?3, ?4)",
            params![new_group, ev.kind, state_key, ev.event_id],
        )
        .map_err(backend)?;
        tx.execute(
            "INSERT OR REPLACE INTO room_state (room_id, type, state_key, event_id) VALUES (?1, ?2, ?3, ?4)",
            params![room_id, ev.kind, state_key, ev.event_id],
        )
        .map_err(backend)?;
        tx.execute("UPDATE rooms SET state_group = ?2 WHERE room_id = ?1", params![room_id, new_group])
            .map_err(backend)?;
        group = Some(new_group);
    }
    let Some(group) = group else {
        return Err(StoreError::Backend("a room's first event must be a state event".into()));
    };
    let pos = next_stream_pos(tx)?;
    tx.execute(
        "INSERT INTO events (stream_pos, event_id, room_id, type, state_key, sender, depth, origin_server_ts,
                             state_group, json, relates_to, rel_type)
         VALUES (?10, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?11, ?12)",
        params![
            ev.event_id,
            room_id,
            ev.kind,
            ev.state_key,
            ev.sender,
            to_sql(ev.depth),
            to_sql(ev.origin_server_ts),
            group,
            ev.json,
            pos,
            ev.relates_to.as_ref().map(|r| r.0.clone()),
            ev.relates_to.as_ref().map(|r| r.1.clone())
        ],
    )
    .map_err(|e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::Conflict(ev.event_id.clone())
        }
        _ => backend(e),
    })?;
    if let (Some(membership), Some(user_id)) = (&ev.membership, &ev.state_key) {
        tx.execute(
            "INSERT OR REPLACE INTO memberships (room_id, user_id, membership, event_id, stream_pos)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![room_id, user_id, membership, ev.event_id, pos],
        )
        .map_err(backend)?;
    }
    crate::search::index_event(tx, room_id, ev, pos)?;
    if let Some(t) = &ev.txn {
        tx.execute(
            "INSERT INTO event_txns (user_id, device_id, txn_id, event_id) VALUES (?1, ?2, ?3, ?4)",
            params![t.user_id, t.device_id, t.txn_id, ev.event_id],
        )
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::Conflict(format!("transaction {}", t.txn_id))
            }
            _ => backend(e),
        })?;
    }
    Ok(from_sql(pos))
}

#[async_trait]
impl RoomStore for SqliteStore {
    async fn create_room(&self, room: NewRoom, events: Vec<NewEvent>) -> Result<Vec<u64>> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO rooms (room_id, room_version, creator, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![room.room_id, room.room_version, room.creator, to_sql(room.created_ms)],
            )
            .map_err(|e| match &e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    StoreError::Conflict(room.room_id.clone())
                }
                _ => backend(e),
            })?;
            if let Some(alias) = &room.alias {
                tx.execute(
                    "INSERT INTO room_aliases (alias, room_id, creator, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![alias, room.room_id, room.creator, to_sql(room.created_ms)],
                )
                .map_err(|e| match &e {
                    rusqlite::Error::SqliteFailure(f, _)
                        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                    {
                        StoreError::Conflict(alias.clone())
                    }
                    _ => backend(e),
                })?;
            }
            if room.published {
                tx.execute(
                    "INSERT INTO room_directory (room_id, published_ms) VALUES (?1, ?2)",
                    params![room.room_id, to_sql(room.created_ms)],
                )
                .map_err(backend)?;
            }
            events.iter().map(|ev| append_one(tx, &room.room_id, ev)).collect()
        })
        .await
    }

    async fn room(&self, room_id: &str) -> Result<Option<Room>> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            tx.query_row(
                "SELECT room_id, room_version, creator, created_ms FROM rooms WHERE room_id = ?1",
                [&room_id],
                |r| {
                    Ok(Room {
                        room_id: r.get(0)?,
                        room_version: r.get(1)?,
                        creator: r.get(2)?,
                        created_ms: from_sql(r.get(3)?),
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn append_events(&self, room_id: &str, events: Vec<NewEvent>) -> Result<Vec<u64>> {
        let room_id = room_id.to_owned();
        self.write(move |tx| events.iter().map(|ev| append_one(tx, &room_id, ev)).collect()).await
    }

    async fn event(&self, event_id: &str) -> Result<Option<StoredEvent>> {
        let event_id = event_id.to_owned();
        self.read(move |tx| {
            tx.query_row(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?1"),
                [&event_id],
                event_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn events_by_id(&self, event_ids: &[String]) -> Result<Vec<StoredEvent>> {
        let event_ids = event_ids.to_vec();
        self.read(move |tx| {
            let mut stmt = tx
                .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?1"))
                .map_err(backend)?;
            let mut out = Vec::with_capacity(event_ids.len());
            for id in &event_ids {
                if let Some(ev) = stmt.query_row([id], event_from_row).optional().map_err(backend)? {
                    out.push(ev);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn room_tip(&self, room_id: &str) -> Result<Option<(String, u64)>> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            tx.query_row(
                "SELECT event_id, depth FROM events WHERE room_id = ?1 ORDER BY stream_pos DESC LIMIT 1",
                [&room_id],
                |r| Ok((r.get::<_, String>(0)?, from_sql(r.get(1)?))),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn current_state(&self, room_id: &str) -> Result<Vec<StateEntry>> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            crate::all(tx, "SELECT type, state_key, event_id FROM room_state WHERE room_id = ?1 ORDER BY type, state_key", [&room_id], |r| {
                    Ok(StateEntry { kind: r.get(0)?, state_key: r.get(1)?, event_id: r.get(2)? })
                })
        })
        .await
    }

    async fn current_state_event(
        &self,
        room_id: &str,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<StoredEvent>> {
        let (room_id, kind, state_key) = (room_id.to_owned(), kind.to_owned(), state_key.to_owned());
        self.read(move |tx| {
            tx.query_row(
                &format!(
                    "SELECT {} FROM room_state s JOIN events e ON e.event_id = s.event_id
                     WHERE s.room_id = ?1 AND s.type = ?2 AND s.state_key = ?3",
                    EVENT_COLUMNS.split(", ").map(|c| format!("e.{c}")).collect::<Vec<_>>().join(", ")
                ),
                [&room_id, &kind, &state_key],
                event_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn state_at(&self, room_id: &str, stream_pos: u64) -> Result<Vec<StateEntry>> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            let group: Option<i64> = tx
                .query_row(
                    "SELECT state_group FROM events WHERE room_id = ?1 AND stream_pos <= ?2
                     ORDER BY stream_pos DESC LIMIT 1",
                    params![room_id, to_sql(stream_pos)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            resolve_group(tx, group)
        })
        .await
    }

    async fn room_events(
        &self,
        room_id: &str,
        from: u64,
        to: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            let sql = match direction {
                Direction::Forward => format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ?1 AND stream_pos > ?2 AND stream_pos <= ?3
                     ORDER BY stream_pos ASC LIMIT ?4"
                ),
                Direction::Backward => format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE room_id = ?1 AND stream_pos < ?2 AND stream_pos > ?3
                     ORDER BY stream_pos DESC LIMIT ?4"
                ),
            };
            let bound = match (direction, to) {
                (_, Some(t)) => to_sql(t),
                (Direction::Forward, None) => i64::MAX,
                (Direction::Backward, None) => -1,
            };
            crate::all(tx, &sql, params![room_id, to_sql(from), bound, limit as i64], event_from_row)
        })
        .await
    }

    async fn membership(&self, room_id: &str, user_id: &str) -> Result<Option<Membership>> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.read(move |tx| {
            tx.query_row(
                &format!("SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE room_id = ?1 AND user_id = ?2"),
                [&room_id, &user_id],
                membership_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<Membership>> {
        let user_id = user_id.to_owned();
        self.read(move |tx| {
            crate::all(
                tx,
                &format!(
                    "SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE user_id = ?1 ORDER BY stream_pos"
                ),
                [&user_id],
                membership_from_row,
            )
        })
        .await
    }

    async fn room_members(&self, room_id: &str) -> Result<Vec<Membership>> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            crate::all(
                tx,
                &format!("SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE room_id = ?1 ORDER BY user_id"),
                [&room_id],
                membership_from_row,
            )
        })
        .await
    }

    async fn txn_event(&self, key: &TxnKey) -> Result<Option<String>> {
        let key = key.clone();
        self.read(move |tx| {
            tx.query_row(
                "SELECT event_id FROM event_txns WHERE user_id = ?1 AND device_id = ?2 AND txn_id = ?3",
                [&key.user_id, &key.device_id, &key.txn_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn max_stream_pos(&self) -> Result<u64> {
        self.read(|tx| {
            tx.query_row("SELECT pos FROM stream WHERE id = 1", [], |r| r.get::<_, i64>(0))
                .map(from_sql)
                .map_err(backend)
        })
        .await
    }

    async fn set_receipt(&self, r: Receipt) -> Result<Option<u64>> {
        self.write(move |tx| {
            let event_pos: Option<i64> = tx
                .query_row(
                    "SELECT stream_pos FROM events WHERE event_id = ?1 AND room_id = ?2",
                    [&r.event_id, &r.room_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            let Some(event_pos) = event_pos else { return Ok(None) };
            let current: Option<i64> = tx
                .query_row(
                    "SELECT event_pos FROM receipts
                     WHERE room_id = ?1 AND user_id = ?2 AND receipt_type = ?3 AND thread_id = ?4",
                    [&r.room_id, &r.user_id, &r.receipt_type, &r.thread_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            if current.is_some_and(|c| c >= event_pos) {
                return Ok(None);
            }
            let pos = next_stream_pos(tx)?;
            tx.execute(
                "INSERT OR REPLACE INTO receipts
                     (room_id, user_id, receipt_type, thread_id, event_id, event_pos, ts, stream_pos)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    r.room_id,
                    r.user_id,
                    r.receipt_type,
                    r.thread_id,
                    r.event_id,
                    event_pos,
                    to_sql(r.ts),
                    pos
                ],
            )
            .map_err(backend)?;
            Ok(Some(from_sql(pos)))
        })
        .await
    }

    async fn receipts_changed(&self, room_id: &str, since: u64, until: u64) -> Result<Vec<Receipt>> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            crate::all(
                tx,
                "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, stream_pos FROM receipts
                     WHERE room_id = ?1 AND stream_pos > ?2 AND stream_pos <= ?3 ORDER BY stream_pos",
                params![room_id, to_sql(since), to_sql(until)],
                |r| {
                    Ok(Receipt {
                        room_id: r.get(0)?,
                        user_id: r.get(1)?,
                        receipt_type: r.get(2)?,
                        thread_id: r.get(3)?,
                        event_id: r.get(4)?,
                        ts: from_sql(r.get(5)?),
                        stream_pos: from_sql(r.get(6)?),
                    })
                },
            )
        })
        .await
    }

    async fn read_up_to(&self, room_id: &str, user_id: &str, thread: &str) -> Result<Option<u64>> {
        let (room_id, user_id, thread) = (room_id.to_owned(), user_id.to_owned(), thread.to_owned());
        self.read(move |tx| {
            tx.query_row(
                "SELECT max(event_pos) FROM receipts
                 WHERE room_id = ?1 AND user_id = ?2 AND receipt_type IN ('m.read', 'm.read.private')
                   AND thread_id IN ('', ?3)",
                [&room_id, &user_id, &thread],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(from_sql))
            .map_err(backend)
        })
        .await
    }

    async fn state_history(
        &self,
        room_id: &str,
        kind: &str,
        state_key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let (room_id, kind, state_key) = (room_id.to_owned(), kind.to_owned(), state_key.map(str::to_owned));
        self.read(move |tx| {
            crate::all(tx, &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE room_id = ?1 AND type = ?2 AND state_key IS NOT NULL AND (?3 IS NULL OR state_key = ?3)
                     ORDER BY stream_pos ASC LIMIT ?4"
                ), params![room_id, kind, state_key, limit as i64], event_from_row)
        })
        .await
    }

    async fn forget_room(&self, room_id: &str, user_id: &str) -> Result<bool> {
        let (room_id, user_id) = (room_id.to_owned(), user_id.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE memberships SET forgotten = 1 WHERE room_id = ?1 AND user_id = ?2 AND membership != 'join'",
                    [&room_id, &user_id],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn relations(
        &self,
        event_id: &str,
        rel_type: Option<&str>,
        kind: Option<&str>,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let (event_id, rel_type, kind) =
            (event_id.to_owned(), rel_type.map(str::to_owned), kind.map(str::to_owned));
        self.read(move |tx| {
            crate::all(
                tx,
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events
                     WHERE relates_to = ?1 AND (?2 IS NULL OR rel_type = ?2) AND (?3 IS NULL OR type = ?3)
                       AND stream_pos < ?4
                     ORDER BY stream_pos DESC LIMIT ?5"
                ),
                params![event_id, rel_type, kind, to_sql(from), limit as i64],
                event_from_row,
            )
        })
        .await
    }

    async fn event_near_time(
        &self,
        room_id: &str,
        ts_ms: u64,
        direction: Direction,
    ) -> Result<Option<(String, u64)>> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            let sql = match direction {
                Direction::Forward => {
                    "SELECT event_id, origin_server_ts FROM events WHERE room_id = ?1 AND origin_server_ts >= ?2
                     ORDER BY origin_server_ts ASC, stream_pos ASC LIMIT 1"
                }
                Direction::Backward => {
                    "SELECT event_id, origin_server_ts FROM events WHERE room_id = ?1 AND origin_server_ts <= ?2
                     ORDER BY origin_server_ts DESC, stream_pos DESC LIMIT 1"
                }
            };
            tx.query_row(sql, params![room_id, to_sql(ts_ms)], |r| Ok((r.get::<_, String>(0)?, from_sql(r.get(1)?))))
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn create_alias(&self, alias: &str, room_id: &str, creator: &str, now_ms: u64) -> Result<()> {
        let (alias, room_id, creator) = (alias.to_owned(), room_id.to_owned(), creator.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO room_aliases (alias, room_id, creator, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![alias, room_id, creator, to_sql(now_ms)],
            )
            .map_err(|e| match &e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    StoreError::Conflict(alias.clone())
                }
                _ => backend(e),
            })?;
            Ok(())
        })
        .await
    }

    async fn alias(&self, alias: &str) -> Result<Option<(String, String)>> {
        let alias = alias.to_owned();
        self.read(move |tx| {
            tx.query_row("SELECT room_id, creator FROM room_aliases WHERE alias = ?1", [&alias], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn delete_alias(&self, alias: &str) -> Result<bool> {
        let alias = alias.to_owned();
        self.write(move |tx| {
            let n = tx.execute("DELETE FROM room_aliases WHERE alias = ?1", [&alias]).map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn room_aliases(&self, room_id: &str) -> Result<Vec<String>> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            crate::all(
                tx,
                "SELECT alias FROM room_aliases WHERE room_id = ?1 ORDER BY alias",
                [&room_id],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn set_published(&self, room_id: &str, published: bool, now_ms: u64) -> Result<()> {
        let room_id = room_id.to_owned();
        self.write(move |tx| {
            if published {
                tx.execute(
                    "INSERT OR IGNORE INTO room_directory (room_id, published_ms) VALUES (?1, ?2)",
                    params![room_id, to_sql(now_ms)],
                )
            } else {
                tx.execute("DELETE FROM room_directory WHERE room_id = ?1", [&room_id])
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn is_published(&self, room_id: &str) -> Result<bool> {
        let room_id = room_id.to_owned();
        self.read(move |tx| {
            tx.query_row("SELECT 1 FROM room_directory WHERE room_id = ?1", [&room_id], |_| Ok(()))
                .optional()
                .map(|o| o.is_some())
                .map_err(backend)
        })
        .await
    }

    async fn published_rooms(&self, offset: u64, limit: usize) -> Result<Vec<String>> {
        self.read(move |tx| {
            crate::all(
                tx,
                "SELECT room_id FROM room_directory ORDER BY published_ms, room_id LIMIT ?1 OFFSET ?2",
                params![limit as i64, to_sql(offset)],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn count_published_rooms(&self) -> Result<u64> {
        self.read(|tx| {
            tx.query_row("SELECT count(*) FROM room_directory", [], |r| r.get::<_, i64>(0))
                .map(from_sql)
                .map_err(backend)
        })
        .await
    }

    async fn redact_event(&self, event_id: &str, redacted_json: &str, redacted_by: &str) -> Result<bool> {
        let (event_id, json, by) = (event_id.to_owned(), redacted_json.to_owned(), redacted_by.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE events SET json = ?2, redacted_by = ?3 WHERE event_id = ?1",
                    params![event_id, json, by],
                )
                .map_err(backend)?;
            crate::search::unindex_event(tx, &event_id)?;
            Ok(n > 0)
        })
        .await
    }
}
