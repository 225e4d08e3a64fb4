//! The embedded storage backend: one SQLite file in WAL mode.
//!
//! One writer thread owns the only writing connection (SQLite has one writer at a time
//! anyway) and commits in groups: it takes every write waiting in its queue (up to
//! [`WRITE_BATCH_MAX`]), runs each in its own savepoint inside one transaction — a failing
//! write is rolled back alone — and commits once, so many concurrent writes share one fsync.
//! No write is answered before its group has committed. A few reader connections run beside it
//! (WAL) on tokio's blocking pool, never on the async workers. `synchronous = FULL`: a
//! transaction that has returned is on disk, so a write that Ward acknowledged survives
//! `kill -9` and power loss alike.
//!
//! Other processes (`ward admin …`) may open the same file while the server runs; SQLite's
//! file locks and `busy_timeout` serialise them with the server's writer.

mod accounts;
mod e2ee;
mod media;
mod meetings;
mod migrations;
mod rooms;
mod search;
mod sliding;
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

/// Writes committed together at most.
pub const WRITE_BATCH_MAX: usize = 64;
/// Writes waiting for the writer at most; further writers wait for room.
pub const WRITE_QUEUE_MAX: usize = 1024;

/// A write: runs inside the group's transaction and says whether it succeeded, returning
/// what to do once the group's commit outcome is known.
type WriteJob = Box<dyn FnOnce(&Transaction<'_>) -> (bool, Completion) + Send>;
type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

struct Inner {
    writes: tokio::sync::mpsc::Sender<WriteJob>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// The writer thread: group commit with a savepoint per write.
fn writer_loop(mut conn: Connection, mut jobs: tokio::sync::mpsc::Receiver<WriteJob>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH_MAX {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                // Nothing ran: every write of the group fails with the reason. Dropping a job
                // drops its reply channel, which its caller reports as an error.
                tracing::error!(error = %e, "cannot begin a write transaction");
                drop(batch);
                continue;
            }
        };
        let mut completions = Vec::with_capacity(batch.len());
        for job in batch {
            if let Err(e) = tx.execute_batch("SAVEPOINT write") {
                tracing::error!(error = %e, "cannot open a savepoint");
                continue;
            }
            // A panicking write is rolled back like a failed one; its caller sees an error.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&tx)));
            let ok = matches!(outcome, Ok((true, _)));
            let end = if ok { "RELEASE write" } else { "ROLLBACK TO write; RELEASE write" };
            if let Err(e) = tx.execute_batch(end) {
                tracing::error!(error = %e, "cannot close a savepoint");
            }
            if let Ok((_, done)) = outcome {
                completions.push(done);
            }
        }
        let committed = tx.commit().map_err(|e| e.to_string());
        for done in completions {
            done(committed.clone());
        }
    }
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
        let (writes, jobs) = tokio::sync::mpsc::channel(WRITE_QUEUE_MAX);
        std::thread::Builder::new()
            .name("ward-sqlite-writer".into())
            .spawn(move || writer_loop(writer, jobs))
            .map_err(backend)?;
        Ok(Self { inner: Arc::new(Inner { writes, readers, next_reader: AtomicUsize::new(0) }) })
    }

    /// Runs `f` as one atomic write: kept if it returns `Ok` and answered only once it is
    /// committed (durably), rolled back alone if it returns `Err`.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(move |tx| {
            let out = f(tx);
            let ok = out.is_ok();
            let done: Completion = Box::new(move |committed| {
                let result = match committed {
                    Ok(()) => out,
                    Err(e) => Err(StoreError::Backend(format!("commit failed: {e}"))),
                };
                // The caller may have gone away; then nobody needs the answer.
                let _ = reply.send(result);
            });
            (ok, done)
        });
        self.inner
            .writes
            .send(job)
            .await
            .map_err(|_| StoreError::Backend("the writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Backend("the write was abandoned".into()))?
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

/// Runs a query and collects every row.
pub(crate) fn all<T>(
    tx: &Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = tx.prepare_cached(sql).map_err(backend)?;
    let rows = stmt.query_map(params, row).map_err(backend)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
}

/// SQLite integers are signed; Ward's timestamps and counters are not. Values beyond i64 are
/// clamped rather than wrapped (they are never reached by real timestamps).
fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
