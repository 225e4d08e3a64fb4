//! The scenarios. Each is one file with `pub async fn run(ctx: Context) -> anyhow::Result<Value>`
//! that returns a JSON report of what it checked and measured, plus a line in `SCENARIOS`.
//! To add one (e.g. sliding sync with matrix-sdk-ui's `SyncService`): write the file, add
//! the `mod` and the entry below, and a test in tests/acceptance/test_rust_sdk.py.

mod backup;
mod chat;
mod sliding;

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::session::User;

/// What the command line and the environment hand a scenario.
pub struct Context {
    pub homeserver: String,
    pub users: Vec<User>,
}

type Run = fn(Context) -> Pin<Box<dyn Future<Output = anyhow::Result<Value>> + Send>>;

pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// How many registered users the scenario needs in `WARD_TESTCLIENT_USERS`.
    pub users: usize,
    pub run: Run,
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "backup",
        about: "cross-signing, secret storage and key backup on device A; device B restores and decrypts history",
        users: 1,
        run: |ctx| Box::pin(backup::run(ctx)),
    },
    Scenario {
        name: "chat",
        about: "two users exchange encrypted messages both ways (key query/claim, to-device room keys)",
        users: 2,
        run: |ctx| Box::pin(chat::run(ctx)),
    },
    Scenario {
        name: "sliding",
        about: "Element X's services (SyncService + RoomListService over sliding sync): sorted room list, invites, pagination, E2EE with a later device, a server restart",
        users: 2,
        run: |ctx| Box::pin(sliding::run(ctx)),
    },
];
