//! What end-to-end encryption needs from the server, in domain terms: devices' public keys,
//! one-time and fallback keys, cross-signing keys and signatures, the record of whose device
//! lists changed when, to-device messages and server-side key backups.
//!
//! The server never sees a private key or a decrypted message: everything here is public key
//! material or ciphertext that clients produced. JSON values are stored as the client signed
//! them (text), because signatures cover the exact object.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::Result;

/// Keys a device uploads in one `POST /keys/upload`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUpload {
    /// The device's signed identity keys (JSON object text). Stored only if the device has
    /// none yet; the service rejects changed keys before calling the store.
    pub device_keys: Option<String>,
    /// `(algorithm:key_id, JSON)`; a key ID already stored with different JSON is a
    /// [`crate::StoreError::Conflict`] and nothing of the upload is kept.
    pub one_time_keys: Vec<(String, String)>,
    /// `(algorithm:key_id, JSON)`; replaces the device's fallback key of that algorithm.
    pub fallback_keys: Vec<(String, String)>,
}

/// A device's identity keys as a client sees them in `/keys/query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKeys {
    pub user_id: String,
    pub device_id: String,
    /// The signed JSON object text as uploaded (signatures added later are separate).
    pub json: String,
    pub display_name: Option<String>,
}

/// Which cross-signing key of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrossSigningKind {
    Master,
    SelfSigning,
    UserSigning,
}

impl CrossSigningKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::SelfSigning => "self_signing",
            Self::UserSigning => "user_signing",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "master" => Some(Self::Master),
            "self_signing" => Some(Self::SelfSigning),
            "user_signing" => Some(Self::UserSigning),
            _ => None,
        }
    }
}

/// One signature over a key, made after the key was uploaded (`/keys/signatures/upload`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeySignature {
    pub target_user_id: String,
    /// A device ID, or the public part of a cross-signing key.
    pub target_key_id: String,
    pub signer_user_id: String,
    /// `ed25519:<device ID or public key>`.
    pub signer_key_id: String,
    pub signature: String,
}

/// A claimed key: `(user, device, algorithm:key_id, JSON)`.
pub type ClaimedKey = (String, String, String, String);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// Unclaimed one-time keys per algorithm.
    pub one_time_keys: BTreeMap<String, u64>,
    /// Algorithms with a fallback key that has not been handed out since it was uploaded.
    pub unused_fallback_algorithms: Vec<String>,
}

/// A membership change seen by the device-list tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub user_id: String,
    pub membership: String,
    pub stream_pos: u64,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores an upload atomically. If device keys were stored, the user's device list is
    /// marked changed. Returns the device's key counts after the upload and the stream
    /// position of the device-list change, if there was one.
    async fn upload_keys(
        &self,
        user_id: &str,
        device_id: &str,
        upload: KeyUpload,
    ) -> Result<(KeyCounts, Option<u64>)>;
    async fn key_counts(&self, user_id: &str, device_id: &str) -> Result<KeyCounts>;
    /// Identity keys of all devices of the users (only devices that uploaded keys).
    async fn device_keys(&self, user_ids: &[String]) -> Result<Vec<DeviceKeys>>;
    /// For each `(user, device, algorithm)`: one one-time key, removed as it is handed out,
    /// else the fallback key (marked used, kept). All in one transaction, so two claims never
    /// get the same one-time key. Devices without keys are left out.
    async fn claim_keys(&self, requests: &[(String, String, String)]) -> Result<Vec<ClaimedKey>>;
    /// Replaces the given cross-signing keys of a user (JSON text each) and marks the user's
    /// device list changed; returns that stream position.
    async fn set_cross_signing_keys(&self, user_id: &str, keys: &[(CrossSigningKind, String)])
    -> Result<u64>;
    /// `(user, kind, JSON)` for every cross-signing key of the users.
    async fn cross_signing_keys(
        &self,
        user_ids: &[String],
    ) -> Result<Vec<(String, CrossSigningKind, String)>>;
    /// Adds (or replaces) signatures and marks each target user's device list changed;
    /// returns that stream position.
    async fn add_key_signatures(&self, signatures: &[KeySignature]) -> Result<u64>;
    /// Every signature over keys of the given users.
    async fn key_signatures(&self, target_user_ids: &[String]) -> Result<Vec<KeySignature>>;
    /// Users whose latest change of devices or keys lies in `(since, until]` (a deleted device
    /// counts). A user who changed again after `until` is reported for the later range only.
    async fn device_list_changes(&self, since: u64, until: u64) -> Result<Vec<String>>;
    /// Records a change of the user's device list (a renamed device, say); returns its
    /// stream position.
    async fn mark_device_list_changed(&self, user_id: &str) -> Result<u64>;
    /// Users who are joined to or invited into a room where `user_id` is joined or invited
    /// (the user included if it has such a room).
    async fn room_peers(&self, user_id: &str) -> Result<Vec<String>>;
    /// Membership events in the room in `(since, until]`, in stream order.
    async fn member_changes(&self, room_id: &str, since: u64, until: u64) -> Result<Vec<MemberChange>>;
}

/// A to-device message waiting in a device's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToDeviceMessage {
    pub stream_pos: u64,
    pub sender: String,
    pub kind: String,
    /// JSON object text.
    pub content: String,
}

/// One recipient of a to-device send; `device_id` `*` means every device of the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToDeviceRecipient {
    pub user_id: String,
    pub device_id: String,
    /// JSON object text.
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToDeviceOutcome {
    /// Queued at this stream position; `dropped` recipients' queues were full.
    Queued { stream_pos: u64, dropped: u64 },
    /// The sender's transaction ID was seen before: nothing was queued again.
    Duplicate,
}

#[async_trait]
pub trait ToDeviceStore: Send + Sync {
    /// Queues one message per recipient device (unknown devices are skipped) unless the
    /// transaction `(sender, sender_device, txn_id)` was seen before. A device whose queue
    /// holds `queue_max` messages already gets nothing (counted in `dropped`).
    async fn send_to_device(
        &self,
        sender: (&str, &str),
        txn_id: &str,
        kind: &str,
        recipients: Vec<ToDeviceRecipient>,
        queue_max: u64,
    ) -> Result<ToDeviceOutcome>;
    /// Messages for the device with positions in `(after, until]`, oldest first, at most
    /// `limit`; and whether messages at or before `after` (acknowledged) are still queued.
    async fn to_device_messages(
        &self,
        user_id: &str,
        device_id: &str,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<(Vec<ToDeviceMessage>, bool)>;
    /// Deletes the device's messages at or before `up_to` (the client has them).
    async fn ack_to_device(&self, user_id: &str, device_id: &str, up_to: u64) -> Result<()>;
}

/// A key backup version's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupVersion {
    pub version: u64,
    pub algorithm: String,
    /// JSON object text.
    pub auth_data: String,
    /// Changes whenever the backup's keys change.
    pub etag: u64,
    pub count: u64,
}

/// One backed-up Megolm session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupKey {
    pub room_id: String,
    pub session_id: String,
    pub first_message_index: u64,
    pub forwarded_count: u64,
    pub is_verified: bool,
    /// JSON object text (encrypted by the client).
    pub session_data: String,
}

impl BackupKey {
    /// The spec's rule for two backups of one session: a verified one beats an unverified
    /// one, then the lower first message index, then the lower forwarded count.
    pub fn is_better_than(&self, old: &BackupKey) -> bool {
        if self.is_verified != old.is_verified {
            return self.is_verified;
        }
        if self.first_message_index != old.first_message_index {
            return self.first_message_index < old.first_message_index;
        }
        self.forwarded_count < old.forwarded_count
    }
}

/// Which keys of a backup version a read or delete concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupScope {
    All,
    Room(String),
    Session(String, String),
}

#[async_trait]
pub trait BackupStore: Send + Sync {
    /// Creates a new version, which becomes the current one; returns its number.
    async fn create_backup_version(&self, user_id: &str, algorithm: &str, auth_data: &str) -> Result<u64>;
    /// The given version, or the newest one if `None`; deleted versions are gone.
    async fn backup_version(&self, user_id: &str, version: Option<u64>) -> Result<Option<BackupVersion>>;
    /// Replaces a version's `auth_data`; `false` if there is no such version.
    async fn update_backup_version(&self, user_id: &str, version: u64, auth_data: &str) -> Result<bool>;
    /// Deletes a version and its keys; `false` if there is no such version.
    async fn delete_backup_version(&self, user_id: &str, version: u64) -> Result<bool>;
    /// Adds keys to a version, keeping for each session the better of the stored and the new
    /// key ([`BackupKey::is_better_than`]). `None` if the version is not the current one.
    async fn put_backup_keys(
        &self,
        user_id: &str,
        version: u64,
        keys: Vec<BackupKey>,
    ) -> Result<Option<BackupVersion>>;
    async fn backup_keys(&self, user_id: &str, version: u64, scope: BackupScope) -> Result<Vec<BackupKey>>;
    /// `None` if there is no such version.
    async fn delete_backup_keys(
        &self,
        user_id: &str,
        version: u64,
        scope: BackupScope,
    ) -> Result<Option<BackupVersion>>;
}
