//! Full-text search (FTS5, indexed in the transaction that appends the event) and reports.

use async_trait::async_trait;
use rusqlite::{Transaction, params};
use ward_store::{
    NewEvent, NewReport, Report, ReportStore, Result, SearchHit, SearchOrder, SearchQuery, SearchStore,
};

use crate::rooms::event_from_row;
use crate::{SqliteStore, backend, from_sql, to_sql};

/// Indexes an appended event's search text unless its room is encrypted; switching encryption
/// on drops the room's indexed text. Runs inside the append's transaction.
pub(crate) fn index_event(tx: &Transaction<'_>, room_id: &str, ev: &NewEvent, pos: i64) -> Result<()> {
    if ev.kind == "m.room.encryption" && ev.state_key.as_deref() == Some("") {
        tx.execute(
            "DELETE FROM event_search WHERE rowid IN (SELECT stream_pos FROM events WHERE room_id = ?1)",
            [room_id],
        )
        .map_err(backend)?;
        return Ok(());
    }
    let Some(text) = &ev.search_text else { return Ok(()) };
    let encrypted: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM room_state
                 WHERE room_id = ?1 AND type = 'm.room.encryption' AND state_key = '')",
            [room_id],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if !encrypted {
        tx.execute("INSERT INTO event_search (rowid, text) VALUES (?1, ?2)", params![pos, text])
            .map_err(backend)?;
    }
    Ok(())
}

pub(crate) fn unindex_event(tx: &Transaction<'_>, event_id: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM event_search WHERE rowid = (SELECT stream_pos FROM events WHERE event_id = ?1)",
        [event_id],
    )
    .map_err(backend)?;
    Ok(())
}

/// An FTS5 query from plain words: each quoted (so nothing in them is FTS syntax) and matched
/// as a prefix; all must occur.
fn fts_query(terms: &[String]) -> String {
    terms.iter().map(|t| format!("\"{}\"*", t.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search_events(&self, query: SearchQuery) -> Result<(Vec<SearchHit>, u64)> {
        if query.terms.iter().all(|t| t.trim().is_empty()) || query.rooms.is_empty() || query.limit == 0 {
            return Ok((Vec::new(), 0));
        }
        let fts = fts_query(&query.terms);
        let rooms = serde_json::to_string(&query.rooms).map_err(backend)?;
        let kinds = serde_json::to_string(&query.kinds).map_err(backend)?;
        let senders = query.senders.as_ref().map(serde_json::to_string).transpose().map_err(backend)?;
        let not_senders = serde_json::to_string(&query.not_senders).map_err(backend)?;
        let (before, skip, order) = match query.order {
            SearchOrder::Rank { skip } => (i64::MAX, skip, "rank DESC, e.stream_pos DESC"),
            SearchOrder::Recent { before } => (before.map_or(i64::MAX, to_sql), 0, "e.stream_pos DESC"),
        };
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        // json_each has a `type` column too, so every events column is qualified.
        let from = "FROM event_search
             JOIN events e ON e.stream_pos = event_search.rowid
             JOIN json_each(?2) r ON e.room_id = r.value ->> 0 AND e.stream_pos <= r.value ->> 1
             WHERE event_search MATCH ?1
               AND e.type IN (SELECT value FROM json_each(?3))
               AND (?4 IS NULL OR e.sender IN (SELECT value FROM json_each(?4)))
               AND e.sender NOT IN (SELECT value FROM json_each(?5))
               AND e.redacted_by IS NULL";
        self.read(move |tx| {
            let count: i64 = tx
                .query_row(
                    &format!("SELECT count(*) {from}"),
                    params![fts, rooms, kinds, senders, not_senders],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let sql = format!(
                "SELECT e.stream_pos, e.event_id, e.room_id, e.type, e.state_key, e.sender, e.json,
                        e.redacted_by, -bm25(event_search) AS rank
                 {from} AND e.stream_pos < ?6
                 ORDER BY {order} LIMIT ?7 OFFSET ?8"
            );
            let hits = crate::all(
                tx,
                &sql,
                params![fts, rooms, kinds, senders, not_senders, before, limit, to_sql(skip)],
                |r| Ok(SearchHit { event: event_from_row(r)?, rank: r.get(8)? }),
            )?;
            Ok((hits, from_sql(count)))
        })
        .await
    }
}

#[async_trait]
impl ReportStore for SqliteStore {
    async fn add_report(&self, report: NewReport) -> Result<u64> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO reports (room_id, event_id, reporter, reason, score, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    report.room_id,
                    report.event_id,
                    report.reporter,
                    report.reason,
                    report.score,
                    to_sql(report.received_ms)
                ],
            )
            .map_err(backend)?;
            Ok(from_sql(tx.last_insert_rowid()))
        })
        .await
    }

    async fn reports(&self, before_id: Option<u64>, limit: usize) -> Result<Vec<Report>> {
        let before = before_id.map_or(i64::MAX, to_sql);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |tx| {
            crate::all(
                tx,
                "SELECT id, room_id, event_id, reporter, reason, score, received_ms FROM reports
                 WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
                params![before, limit],
                |r| {
                    Ok(Report {
                        id: from_sql(r.get(0)?),
                        report: NewReport {
                            room_id: r.get(1)?,
                            event_id: r.get(2)?,
                            reporter: r.get(3)?,
                            reason: r.get(4)?,
                            score: r.get(5)?,
                            received_ms: from_sql(r.get(6)?),
                        },
                    })
                },
            )
        })
        .await
    }
}
