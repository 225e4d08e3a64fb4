//! Ward's storage, described in domain terms.
//!
//! The traits here say what Ward keeps (accounts, devices and their tokens, registration
//! tokens, user-interactive-auth sessions, rooms, media, meetings), never how: no SQL, no byte keys, no HTTP. A backend
//! (SQLite now, PostgreSQL later) implements [`Store`] and must pass the shared
//! [`conformance`] suite, run with [`store_conformance_tests!`].
//!
//! Every method is one atomic transaction: when it returns `Ok`, the change is durable (it
//! survives a crash of the process) and wholly applied; when it returns `Err`, nothing changed.

use async_trait::async_trait;
use ward_core::secret::TokenHash;

pub mod conformance;
pub mod e2ee;
pub mod media;
pub mod meetings;
pub mod rooms;
pub mod search;
pub mod sliding;
pub mod userdata;

pub use e2ee::{
    BackupKey, BackupScope, BackupStore, BackupVersion, ClaimedKey, CrossSigningKind, DeviceKeys, KeyCounts,
    KeySignature, KeyStore, KeyUpload, MemberChange, ToDeviceMessage, ToDeviceOutcome, ToDeviceRecipient,
    ToDeviceStore,
};
pub use media::{Media, MediaContent, MediaStore, MediaThumbnail, MediaWrite};
pub use meetings::{
    Knock, KnockStatus, KnockUpdate, Meeting, MeetingCounts, MeetingKind, MeetingStore, MeetingWrite,
    NewKnock, NewMeeting, PatientLink,
};
pub use rooms::{
    Direction, Membership, NewEvent, NewRoom, Receipt, Room, RoomStore, StateEntry, StoredEvent, TxnKey,
};
pub use search::{NewReport, Report, ReportStore, SearchHit, SearchOrder, SearchQuery, SearchStore};
pub use sliding::{SentRoom, SlidingSyncStore};
pub use userdata::{AccountDataEntry, UserDataStore};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record already exists (a user ID, a device, a registration token).
    #[error("already exists: {0}")]
    Conflict(String),
    /// A registration token was unknown, expired or used up when the registration committed.
    #[error("the registration token is not valid")]
    RegistrationTokenInvalid,
    /// The database is newer than this program understands.
    #[error("the database schema is version {found}, this build of Ward knows up to {supported}")]
    SchemaTooNew { found: u32, supported: u32 },
    /// Anything else the backend reports (I/O, corruption, a full disk).
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// A local account. `user_id` is the full Matrix user ID (`@alice:example.org`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: String,
    /// argon2id PHC string; `None` for an account that cannot log in with a password.
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub created_ms: u64,
    pub deactivated: bool,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub user_id: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub display_name: Option<String>,
    pub created_ms: u64,
}

/// A device and the access (and refresh) token it logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub device_id: String,
    pub device_display_name: Option<String>,
    pub access_token_hash: TokenHash,
    pub refresh_token_hash: Option<TokenHash>,
    /// When the access token stops working; `None` for tokens without expiry.
    pub access_expires_ms: Option<u64>,
}

/// The identity behind an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: String,
    pub device_id: String,
    pub access_expires_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: String,
    pub display_name: Option<String>,
    /// Last use, at coarse granularity. Ward never stores client IP addresses.
    pub last_seen_ms: Option<u64>,
}

/// An account to create, optionally paid for by a registration token and logged in at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub account: NewAccount,
    /// Consumed (one use) in the same transaction that creates the account.
    pub registration_token: Option<String>,
    pub session: Option<NewSession>,
}

/// What a password change does to the account's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRetention {
    KeepAll,
    /// Delete every device except this one (the device that asked for the change).
    KeepOnly(String),
    RemoveAll,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationToken {
    pub token: String,
    /// `None`: unlimited.
    pub uses_allowed: Option<u32>,
    pub completed: u32,
    pub expires_ms: Option<u64>,
    pub created_ms: u64,
}

impl RegistrationToken {
    pub fn is_valid(&self, now_ms: u64) -> bool {
        self.uses_allowed.is_none_or(|allowed| self.completed < allowed)
            && self.expires_ms.is_none_or(|exp| now_ms < exp)
    }
}

/// A user-interactive-auth session: which operation it authorises and which stages are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiaSession {
    pub id: String,
    /// The operation and its subject, e.g. `"register"` or `"delete_devices"`; a session is
    /// only good for the operation it was started for.
    pub purpose: String,
    /// The authenticated user who started it; `None` for registration.
    pub user_id: Option<String>,
    pub completed: Vec<String>,
    /// The registration token accepted by the `m.login.registration_token` stage, consumed when
    /// the registration commits.
    pub registration_token: Option<String>,
    pub created_ms: u64,
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates the account, consumes one use of the registration token and creates the first
    /// device session, all or nothing. [`StoreError::Conflict`] if the user ID is taken,
    /// [`StoreError::RegistrationTokenInvalid`] if the token cannot pay.
    async fn register(&self, registration: Registration, now_ms: u64) -> Result<()>;
    async fn account(&self, user_id: &str) -> Result<Option<Account>>;
    async fn count_accounts(&self) -> Result<u64>;
    /// Returns `false` if there is no such account.
    async fn set_password_hash(
        &self,
        user_id: &str,
        password_hash: &str,
        devices: DeviceRetention,
    ) -> Result<bool>;
    async fn set_admin(&self, user_id: &str, is_admin: bool) -> Result<bool>;
    /// Marks the account deactivated for good, deletes its devices, tokens, UIA sessions and
    /// profile. The user ID stays taken. Returns `false` if there is no such account.
    async fn deactivate_account(&self, user_id: &str) -> Result<bool>;
    async fn set_display_name(&self, user_id: &str, display_name: Option<&str>) -> Result<bool>;
    async fn set_avatar_url(&self, user_id: &str, avatar_url: Option<&str>) -> Result<bool>;
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Logs a device in: creates the device, or, if the user already has one with this ID,
    /// replaces its tokens (the old ones stop working).
    async fn create_session(&self, user_id: &str, session: NewSession, now_ms: u64) -> Result<()>;
    /// The session an access token belongs to (expired ones included: the caller decides).
    /// The first use of an access token made by a refresh revokes the token pair it replaced.
    async fn session_by_access_token(&self, access_token_hash: &TokenHash) -> Result<Option<Session>>;
    /// Exchanges a refresh token for a new token pair on the same device. The old pair keeps
    /// working until the new pair is first used, so a lost response does not log the client
    /// out. `None` if the refresh token is unknown.
    async fn refresh_session(
        &self,
        refresh_token_hash: &TokenHash,
        new_access_token_hash: TokenHash,
        new_refresh_token_hash: TokenHash,
        access_expires_ms: Option<u64>,
    ) -> Result<Option<Session>>;
    async fn devices(&self, user_id: &str) -> Result<Vec<Device>>;
    async fn device(&self, user_id: &str, device_id: &str) -> Result<Option<Device>>;
    async fn count_devices(&self, user_id: &str) -> Result<u64>;
    /// Returns `false` if there is no such device.
    async fn set_device_display_name(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<bool>;
    /// Deletes the devices and their tokens; unknown IDs are skipped. Returns how many went.
    async fn delete_devices(&self, user_id: &str, device_ids: &[String]) -> Result<u64>;
    async fn delete_all_devices(&self, user_id: &str) -> Result<u64>;
    async fn touch_device(&self, user_id: &str, device_id: &str, now_ms: u64) -> Result<()>;
}

#[async_trait]
pub trait RegistrationTokenStore: Send + Sync {
    /// [`StoreError::Conflict`] if the token exists already.
    async fn create_registration_token(&self, token: RegistrationToken) -> Result<()>;
    async fn registration_token(&self, token: &str) -> Result<Option<RegistrationToken>>;
    /// All tokens, oldest first.
    async fn registration_tokens(&self) -> Result<Vec<RegistrationToken>>;
    /// Returns `false` if there was no such token.
    async fn delete_registration_token(&self, token: &str) -> Result<bool>;
}

#[async_trait]
pub trait UiaStore: Send + Sync {
    async fn create_uia_session(&self, session: UiaSession) -> Result<()>;
    async fn uia_session(&self, id: &str) -> Result<Option<UiaSession>>;
    /// Saves the session's progress (`completed`, `registration_token`); `false` if it is gone.
    async fn update_uia_session(&self, session: &UiaSession) -> Result<bool>;
    async fn delete_uia_session(&self, id: &str) -> Result<()>;
    /// Deletes sessions begun before `created_before_ms`; returns how many.
    async fn delete_uia_sessions_before(&self, created_before_ms: u64) -> Result<u64>;
}

/// Everything Ward stores. Services hold an `Arc<dyn Store>` and never see the backend.
pub trait Store:
    AccountStore
    + DeviceStore
    + RegistrationTokenStore
    + UiaStore
    + RoomStore
    + UserDataStore
    + KeyStore
    + ToDeviceStore
    + BackupStore
    + SearchStore
    + ReportStore
    + MediaStore
    + MeetingStore
    + SlidingSyncStore
{
}

impl<T> Store for T where
    T: AccountStore
        + DeviceStore
        + RegistrationTokenStore
        + UiaStore
        + RoomStore
        + UserDataStore
        + KeyStore
        + ToDeviceStore
        + BackupStore
        + SearchStore
        + ReportStore
        + MediaStore
        + MeetingStore
        + SlidingSyncStore
{
}
