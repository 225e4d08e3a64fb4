//! Versioned schema migrations, applied in order at start inside one transaction each.
//! The version lives in SQLite's `user_version`. Never edit a released migration: add one.

use rusqlite::{Connection, TransactionBehavior};
use ward_store::{Result, StoreError};

use crate::backend;

/// Ordered by file number; the position in the list is the schema version.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_accounts.sql"),
    include_str!("migrations/0002_rooms.sql"),
    include_str!("migrations/0003_e2ee.sql"),
    include_str!("migrations/0004_search_reports.sql"),
    include_str!("migrations/0005_media.sql"),
    include_str!("migrations/0006_meetings.sql"),
    include_str!("migrations/0007_sliding_sync.sql"),
    include_str!("migrations/0008_consultation_holders.sql"),
    include_str!("migrations/0009_sliding_timeline_limit.sql"),
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub(crate) fn run(conn: &mut Connection) -> Result<()> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = i + 1;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive).map_err(backend)?;
        // Another process may have migrated while we waited for the lock.
        let now: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(backend)?;
        if now as usize >= version {
            continue;
        }
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", version).map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}
