//! The embedded storage backend: one SQLite file in WAL mode.
//!
//! One writer connection (behind a mutex: SQLite has one writer at a time anyway, and holding
//! our own lock avoids busy-retry storms) and a few reader connections, which WAL lets run
//! beside the writer. All SQLite calls run on tokio's blocking pool, never on the async
//! workers. `synchronous = FULL`: a transaction that has returned is on disk, so a write that
//! Ward acknowledged survives `kill -9` and power loss alike.
//!
//! Other processes (`ward admin …`) may open the same file while the server runs; SQLite's
//! file locks and `busy_timeout` serialise them with the server's writer.

mod accounts;
mod migrations;
mod rooms;
mod userdata;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use ward_store::{Result, StoreError};

pub use migrations::SCHEMA_VERSION;

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Reader connections, each usable by one request at a time.
    pub read_connections: usize,
    /// How long a statement waits for another process's lock before failing.
    pub busy_timeout_ms: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { read_connections: 4, busy_timeout_ms: 5_000 }
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path, options: SqliteOptions) -> Result<Self> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path, &options)).await.map_err(backend)?
    }

    fn open_blocking(path: &Path, options: &SqliteOptions) -> Result<Self> {
        let mut writer = Connection::open(path).map_err(backend)?;
        configure(&writer, options)?;
        let mode: String =
            writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!("could not switch to WAL mode (got {mode})")));
        }
        migrations::run(&mut writer)?;
        let readers = (0..options.read_connections.max(1))
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(backend)?;
                configure(&conn, options)?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            inner: Arc::new(Inner { writer: Mutex::new(writer), readers, next_reader: AtomicUsize::new(0) }),
        })
    }

    /// Runs `f` in one immediate (write-locking) transaction, committed if `f` returns `Ok`.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means a panic mid-transaction; the transaction was rolled back
            // when it was dropped, so the connection itself is still sound.
            let mut conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let out = f(&tx)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
        .map_err(backend)?
    }

    /// Runs `f` on a reader connection (a consistent snapshot for the statements it runs in
    /// one transaction).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let mut conn = inner.readers[i].lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(backend)?;
            f(&tx)
        })
        .await
        .map_err(backend)?
    }
}

fn configure(conn: &Connection, options: &SqliteOptions) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_millis(options.busy_timeout_ms)).map_err(backend)?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(backend)
}

/// SQLite integers are signed; Ward's timestamps and counters are not. Values beyond i64 are
/// clamped rather than wrapped (they are never reached by real timestamps).
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
