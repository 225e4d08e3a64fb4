//! Account data and filters.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use ward_store::{AccountDataEntry, Result, UserDataStore};

use crate::rooms::next_stream_pos;
use crate::{SqliteStore, backend, from_sql, to_sql};

#[async_trait]
impl UserDataStore for SqliteStore {
    async fn set_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        kind: &str,
        content: &str,
    ) -> Result<u64> {
        let (user_id, room_id, kind, content) =
            (user_id.to_owned(), room_id.unwrap_or("").to_owned(), kind.to_owned(), content.to_owned());
        self.write(move |tx| {
            let pos = next_stream_pos(tx)?;
            tx.execute(
                "INSERT OR REPLACE INTO account_data (user_id, room_id, type, content, stream_pos)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![user_id, room_id, kind, content, pos],
            )
            .map_err(backend)?;
            Ok(from_sql(pos))
        })
        .await
    }

    async fn account_data(&self, user_id: &str, room_id: Option<&str>, kind: &str) -> Result<Option<String>> {
        let (user_id, room_id, kind) =
            (user_id.to_owned(), room_id.unwrap_or("").to_owned(), kind.to_owned());
        self.read(move |tx| {
            tx.query_row(
                "SELECT content FROM account_data WHERE user_id = ?1 AND room_id = ?2 AND type = ?3",
                [&user_id, &room_id, &kind],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn account_data_changes(
        &self,
        user_id: &str,
        since: u64,
        until: u64,
    ) -> Result<Vec<AccountDataEntry>> {
        let user_id = user_id.to_owned();
        self.read(move |tx| {
            crate::all(
                tx,
                "SELECT room_id, type, content, stream_pos FROM account_data
                     WHERE user_id = ?1 AND stream_pos > ?2 AND stream_pos <= ?3 ORDER BY stream_pos",
                params![user_id, to_sql(since), to_sql(until)],
                |r| {
                    let room: String = r.get(0)?;
                    Ok(AccountDataEntry {
                        room_id: (!room.is_empty()).then_some(room),
                        kind: r.get(1)?,
                        content: r.get(2)?,
                        stream_pos: from_sql(r.get(3)?),
                    })
                },
            )
        })
        .await
    }

    async fn create_filter(&self, user_id: &str, json: &str) -> Result<String> {
        let (user_id, json) = (user_id.to_owned(), json.to_owned());
        self.write(move |tx| {
            let next: i64 = tx
                .query_row(
                    "SELECT coalesce(max(filter_id), -1) + 1 FROM filters WHERE user_id = ?1",
                    [&user_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO filters (user_id, filter_id, json) VALUES (?1, ?2, ?3)",
                params![user_id, next, json],
            )
            .map_err(backend)?;
            Ok(next.to_string())
        })
        .await
    }

    async fn set_pusher(&self, user_id: &str, app_id: &str, pushkey: &str, json: &str) -> Result<()> {
        let (u, a, p, j) = (user_id.to_owned(), app_id.to_owned(), pushkey.to_owned(), json.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO pushers (user_id, app_id, pushkey, json) VALUES (?1, ?2, ?3, ?4)",
                params![u, a, p, j],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_pusher(&self, user_id: &str, app_id: &str, pushkey: &str) -> Result<bool> {
        let (u, a, p) = (user_id.to_owned(), app_id.to_owned(), pushkey.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM pushers WHERE user_id = ?1 AND app_id = ?2 AND pushkey = ?3",
                    params![u, a, p],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_pusher_elsewhere(&self, user_id: &str, app_id: &str, pushkey: &str) -> Result<()> {
        let (u, a, p) = (user_id.to_owned(), app_id.to_owned(), pushkey.to_owned());
        self.write(move |tx| {
            tx.execute(
                "DELETE FROM pushers WHERE user_id != ?1 AND app_id = ?2 AND pushkey = ?3",
                params![u, a, p],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn pushers(&self, user_id: &str) -> Result<Vec<String>> {
        let user_id = user_id.to_owned();
        self.read(move |tx| {
            crate::all(
                tx,
                "SELECT json FROM pushers WHERE user_id = ?1 ORDER BY app_id, pushkey",
                [&user_id],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn filter(&self, user_id: &str, filter_id: &str) -> Result<Option<String>> {
        let Ok(id) = filter_id.parse::<i64>() else { return Ok(None) };
        let user_id = user_id.to_owned();
        self.read(move |tx| {
            tx.query_row(
                "SELECT json FROM filters WHERE user_id = ?1 AND filter_id = ?2",
                params![user_id, id],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
}
