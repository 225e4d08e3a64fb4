//! Ward's services: every account, session, device, profile, room and sync operation, in
//! domain terms.
//!
//! Handlers and the admin CLI reach data only through [`Services`]. This crate knows nothing of
//! HTTP or JSON: it takes plain inputs and returns plain outputs or an [`Error`]. It holds the
//! store as `Arc<dyn Store>`, so it does not know which backend is behind it.

mod account;
mod admin;
pub mod backup;
pub mod e2ee;
mod error;
pub mod media;
pub mod meetings;
mod registration;
pub mod rooms;
mod session;
pub mod sliding;
mod uia;
pub mod userdata;
pub mod users;
mod voip;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ward_config::{Config, EncryptionDefault, RegistrationMode};
use ward_core::throttle::{FailureThrottle, ThrottleConfig};
use ward_store::Store;

pub use account::Profile;
pub use admin::{NewRegistrationToken, generate_password};
pub use error::{Error, Result, UiaChallenge};
pub use meetings::{
    ConferenceGrant, Conferencing, ConferencingError, CreateMeeting, KnockCreated, KnockState, Lobby,
    LobbyEntry, MeetingSettings, MeetingToken, NewPatientLink, PatientLinkInfo, PublicMeeting,
};
pub use registration::{RegisterInput, RegisterOutcome};
pub use session::{Authed, LoginInput, LoginOutcome, Tokens};
pub use uia::{UiaAuth, UiaStageInput};
pub use voip::{TurnCredentials, TurnSettings};
pub use ward_core::uia::{Flow, Stage};
pub use ward_rooms::ServerKey;
pub use ward_store::{
    BackupKey, BackupScope, BackupVersion, Device, KnockStatus, Meeting, MeetingKind, RegistrationToken,
};

/// Fixed limits (the configurable ones live in [`Settings`]).
pub mod limits {
    /// Longest display name, as in Synapse.
    pub const DISPLAY_NAME_MAX_CHARS: usize = 256;
    pub const AVATAR_URL_MAX_BYTES: usize = 1000;
    pub const DEVICE_DISPLAY_NAME_MAX_CHARS: usize = 100;
    pub const DEVICE_ID_MAX_BYTES: usize = 255;
    /// Argon2 takes any length; an upper bound keeps hashing cost predictable.
    pub const PASSWORD_MAX_BYTES: usize = 512;
    pub const DELETE_DEVICES_MAX: usize = 1000;
    pub const REGISTRATION_TOKEN_MAX_BYTES: usize = 64;
    /// How often a device's last-seen time is written at most.
    pub const DEVICE_TOUCH_INTERVAL_MS: u64 = 5 * 60_000;
    /// Devices whose last touch is remembered in memory (the map is cleared when full).
    pub const DEVICE_TOUCH_MAX_ENTRIES: usize = 50_000;
}

/// The parts of the configuration that services act on.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server_name: String,
    pub registration: RegistrationMode,
    pub reserved_usernames: Vec<String>,
    pub password_min_length: usize,
    pub access_token_lifetime_ms: u64,
    pub login_throttle: ThrottleConfig,
    pub uia_session_timeout_ms: u64,
    pub max_devices_per_user: u64,
    pub default_room_version: ruma::RoomVersionId,
    pub sync_timeout_max_ms: u64,
    pub presence_enabled: bool,
    pub encryption_by_default: EncryptionDefault,
    pub to_device_queue_max: u64,
    /// `None` when no TURN server is configured.
    pub turn: Option<TurnSettings>,
    pub media: media::MediaSettings,
    pub meetings: meetings::MeetingSettings,
}

impl Settings {
    pub fn from_config(c: &Config) -> Self {
        Self {
            server_name: c.server_name.clone(),
            registration: c.registration,
            reserved_usernames: c.reserved_usernames.clone(),
            password_min_length: c.password_min_length as usize,
            access_token_lifetime_ms: c.access_token_lifetime_ms,
            login_throttle: ThrottleConfig {
                burst: c.login_failures_burst,
                refill_ms: c.login_failures_refill_ms,
                max_keys: usize::try_from(c.login_throttle_max_keys).unwrap_or(usize::MAX),
            },
            uia_session_timeout_ms: c.uia_session_timeout_ms,
            max_devices_per_user: c.max_devices_per_user.into(),
            // Validated by the config loader to be one of the supported versions.
            default_room_version: ruma::RoomVersionId::try_from(c.default_room_version.as_str())
                .unwrap_or(ward_rooms::DEFAULT_ROOM_VERSION),
            sync_timeout_max_ms: c.sync_timeout_max_ms,
            presence_enabled: c.presence_enabled,
            encryption_by_default: c.encryption_by_default,
            to_device_queue_max: c.to_device_queue_max,
            turn: (!c.turn_uris.is_empty()).then(|| TurnSettings {
                uris: c.turn_uris.clone(),
                shared_secret: c.turn_shared_secret.clone(),
                user_lifetime_ms: c.turn_user_lifetime_ms,
            }),
            media: media::MediaSettings {
                dir: c.media_path(),
                max_upload_bytes: c.max_upload_bytes,
                quota_bytes_per_user: Some(c.media_quota_bytes_per_user).filter(|q| *q > 0),
                legacy_unauthenticated: c.media_legacy_unauthenticated,
            },
            meetings: meetings::MeetingSettings {
                retention_ms: u64::from(c.meeting_retention_days) * 86_400_000,
                token_ttl_ms: c.rtc_token_max_ttl_ms,
                poll_max_ms: c.sync_timeout_max_ms.min(meetings::limits::POLL_TIMEOUT_MAX_MS),
                knock_expiry_ms: c.meeting_knock_expiry_ms,
            },
        }
    }
}

pub struct Services {
    store: Arc<dyn Store>,
    settings: Settings,
    /// Failed password attempts by user ID and by client address. Per process: with several
    /// nodes each throttles on its own (documented in ARCHITECTURE.md).
    failures: Mutex<FailureThrottle>,
    /// When each device's last-seen time was last written.
    touched: Mutex<HashMap<(String, String), u64>>,
    /// Unread counts per (user, room), advanced with each sync instead of recounted.
    unread: Mutex<HashMap<(String, String), rooms::UnreadCache>>,
    /// Signs every event this server creates.
    key: Arc<ServerKey>,
    /// One lock per room (events of a room are built one at a time) and per user's push rules
    /// (read-modify-write). Bounded by the number of rooms and users on this server.
    room_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Stream and typing positions, and who is typing; long-polling syncs wait on it.
    notifier: Arc<rooms::Notifier>,
    /// The media repository's blob store, upload notifications and thumbnail permits.
    media: media::MediaState,
    /// Key and to-device activity known to this process (saves database reads in sync).
    hints: e2ee::Hints,
    /// Meetings' long-poll wake-ups, knock and PIN throttles, and the SFU.
    meet: meetings::MeetState,
    /// Rooms' bump stamps for sliding sync's lists, valid until the notifier sees a new event.
    bumps: sliding::BumpCache,
    /// The newest sliding sync request per connection (a replaced long-poll records nothing).
    sliding_requests: sliding::Requests,
    /// Users' membership lists for sliding sync, valid until a membership event.
    sliding_memberships: sliding::MembershipCache,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Services {
    pub async fn new(store: Arc<dyn Store>, settings: Settings, key: Arc<ServerKey>) -> Result<Self> {
        let position = store.max_stream_pos().await?;
        Ok(Self {
            failures: Mutex::new(FailureThrottle::new(settings.login_throttle)),
            touched: Mutex::new(HashMap::new()),
            unread: Mutex::new(HashMap::new()),
            key,
            room_locks: Mutex::new(HashMap::new()),
            notifier: Arc::new(rooms::Notifier::new(position)),
            hints: e2ee::Hints::new(position),
            meet: meetings::MeetState::new(),
            bumps: sliding::BumpCache::default(),
            sliding_requests: sliding::Requests::default(),
            sliding_memberships: sliding::MembershipCache::default(),
            media: media::MediaState::open(&settings.media).await?,
            store,
            settings,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.settings.server_name)
    }

    /// The throttle is plain in-memory state; a panic while holding it cannot leave it
    /// inconsistent in a way that matters, so a poisoned lock is simply taken over.
    fn failures(&self) -> std::sync::MutexGuard<'_, FailureThrottle> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_throttle(&self, keys: &[&str], now: u64) -> Result<()> {
        let t = self.failures();
        let worst = keys.iter().filter_map(|k| t.check(k, now).err()).max();
        match worst {
            Some(retry_after_ms) => Err(Error::LimitExceeded { retry_after_ms }),
            None => Ok(()),
        }
    }

    fn record_failure(&self, keys: &[&str], now: u64) {
        let mut t = self.failures();
        for k in keys {
            t.record_failure(k, now);
        }
    }

    pub(crate) fn check_new_password(&self, password: &str) -> Result<()> {
        if password.len() > limits::PASSWORD_MAX_BYTES {
            return Err(Error::TooLarge(format!(
                "the password is longer than {} bytes",
                limits::PASSWORD_MAX_BYTES
            )));
        }
        if password.chars().count() < self.settings.password_min_length {
            return Err(Error::WeakPassword(format!(
                "the password must have at least {} characters",
                self.settings.password_min_length
            )));
        }
        Ok(())
    }
}

/// Password hashes computed at once. Each argon2id run takes 19 MiB for tens of milliseconds;
/// without a bound, a burst of logins or registrations multiplies that by the number of
/// blocking threads and leaves the memory fragmented.
pub const PASSWORD_HASHES_IN_PARALLEL_MAX: usize = 2;

static HASH_PERMITS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(PASSWORD_HASHES_IN_PARALLEL_MAX);

/// Runs password hashing on the blocking pool, off the async workers, a bounded number at once.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _permit = HASH_PERMITS.acquire().await.map_err(|e| Error::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(e.to_string()))
}

pub(crate) async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_owned();
    blocking(move || ward_core::secret::hash_password(&password))
        .await?
        .map_err(|e| Error::Internal(e.to_string()))
}

pub(crate) async fn verify_password(password: &str, hash: Option<&str>) -> Result<bool> {
    let password = password.to_owned();
    let hash = hash.map(str::to_owned);
    blocking(move || match hash {
        Some(hash) => ward_core::secret::verify_password(&password, &hash),
        None => {
            ward_core::secret::verify_password(&password, ward_core::secret::dummy_password_hash());
            false
        }
    })
    .await
}
