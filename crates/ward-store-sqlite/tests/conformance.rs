//! The shared storage conformance suite, run against the SQLite backend.

use std::sync::Arc;

use ward_store::Store;
use ward_store_sqlite::{SqliteOptions, SqliteStore};

async fn fresh() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store =
        SqliteStore::open(&dir.path().join("ward.db"), SqliteOptions::default()).await.expect("open store");
    (dir, Arc::new(store))
}

ward_store::store_conformance_tests!(fresh);
