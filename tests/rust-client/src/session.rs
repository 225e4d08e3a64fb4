//! One logged-in device: a matrix-sdk `Client` with in-memory stores, plus the chores every
//! scenario needs (first sync, a background sync loop, cross-signing with UIA, bounded waits).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::api::client::uiaa::{AuthData, MatrixUserIdentifier, Password, UserIdentifier};
use matrix_sdk::{Client, Room};
use tokio::task::JoinHandle;

/// Upper bound for one step of a scenario (a login, a round of key uploads, a message arriving).
pub const STEP_TIMEOUT_MS: u64 = 30_000;
/// How long the background sync loop's long poll waits on the server.
const SYNC_LONG_POLL_MS: u64 = 5_000;
/// How often `wait_until` re-checks its condition.
const POLL_INTERVAL_MS: u64 = 50;

/// A registered account, as the test hands it over.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub password: String,
}

/// Runs `fut`, failing with "timed out: <what>" after `STEP_TIMEOUT_MS`.
pub async fn within<T>(what: &str, fut: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(Duration::from_millis(STEP_TIMEOUT_MS), fut).await {
        Ok(result) => result.with_context(|| what.to_owned()),
        Err(_) => bail!("timed out after {STEP_TIMEOUT_MS} ms: {what}"),
    }
}

/// Re-checks `check` every `POLL_INTERVAL_MS` until it yields a value, for at most
/// `STEP_TIMEOUT_MS`.
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    within(what, async {
        loop {
            if let Some(value) = check().await? {
                return Ok(value);
            }
            tokio::time::sleep(Duration::from_millis(POLL_INTERVAL_MS)).await;
        }
    })
    .await
}

/// Milliseconds since `start`, for the report.
pub fn ms_since(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}

/// How cross-signing was bootstrapped: the spec lets a server accept the first upload of
/// cross-signing keys without user-interactive auth (Synapse does); otherwise we answer the
/// UIA challenge with the password.
#[derive(Clone, Copy, Debug)]
pub enum CrossSigningAuth {
    NotAsked,
    Password,
}

impl CrossSigningAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            CrossSigningAuth::NotAsked => "none",
            CrossSigningAuth::Password => "password",
        }
    }
}

/// A logged-in device. Dropping it stops its sync loop.
pub struct Session {
    pub client: Client,
    pub user: User,
    sync_loop: Option<JoinHandle<()>>,
}

impl Session {
    /// Logs `user` in as a new device with fresh (in-memory) stores.
    pub async fn login(homeserver: &str, user: &User, device_name: &str) -> anyhow::Result<Session> {
        within(&format!("login of {} ({device_name})", user.name), async {
            let client = Client::builder().homeserver_url(homeserver).build().await?;
            client
                .matrix_auth()
                .login_username(&user.name, &user.password)
                .initial_device_display_name(device_name)
                .await?;
            client.encryption().wait_for_e2ee_initialization_tasks().await;
            Ok(Session { client, user: user.clone(), sync_loop: None })
        })
        .await
    }

    pub fn device_id(&self) -> String {
        self.client.device_id().map(|d| d.to_string()).unwrap_or_default()
    }

    /// One sync that does not wait for news: it also sends what the crypto machine has queued (device
    /// keys, one-time keys, key queries), so the server knows this device afterwards.
    pub async fn sync_once(&self) -> anyhow::Result<()> {
        within(&format!("a sync of {}", self.user.name), async {
            self.client.sync_once(SyncSettings::default().timeout(Duration::ZERO)).await?;
            Ok(())
        })
        .await
    }

    /// Starts syncing in the background until the session is dropped.
    pub fn start_sync(&mut self) {
        let client = self.client.clone();
        let settings = SyncSettings::default().timeout(Duration::from_millis(SYNC_LONG_POLL_MS));
        self.sync_loop = Some(tokio::spawn(async move {
            if let Err(e) = client.sync(settings).await {
                tracing::error!("sync loop ended: {e}");
            }
        }));
    }

    /// Creates and uploads a cross-signing identity (master, self-signing and user-signing
    /// keys, signing this device), answering a UIA challenge with the password if one comes.
    pub async fn bootstrap_cross_signing(&self) -> anyhow::Result<CrossSigningAuth> {
        within("bootstrapping cross-signing", async {
            let encryption = self.client.encryption();
            let Err(e) = encryption.bootstrap_cross_signing(None).await else {
                return Ok(CrossSigningAuth::NotAsked);
            };
            let Some(uiaa) = e.as_uiaa_response() else { return Err(e.into()) };
            let identifier = UserIdentifier::Matrix(MatrixUserIdentifier::new(self.user.name.clone()));
            let mut password = Password::new(identifier, self.user.password.clone());
            password.session = uiaa.session.clone();
            encryption.bootstrap_cross_signing(Some(AuthData::Password(password))).await?;
            Ok(CrossSigningAuth::Password)
        })
        .await
    }

    /// The room once this device's sync has seen it.
    pub async fn room(&self, room_id: &matrix_sdk::ruma::RoomId) -> anyhow::Result<Room> {
        wait_until(&format!("room {room_id} in {}'s sync", self.user.name), || async {
            Ok(self.client.get_room(room_id))
        })
        .await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(task) = self.sync_loop.take() {
            task.abort();
        }
    }
}
