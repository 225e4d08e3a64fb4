//! Per-user data: account data (global and per room) and sync filters.

use async_trait::async_trait;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDataEntry {
    /// `None` for global account data.
    pub room_id: Option<String>,
    pub kind: String,
    /// JSON object text.
    pub content: String,
    pub stream_pos: u64,
}

#[async_trait]
pub trait UserDataStore: Send + Sync {
    /// Sets (replaces) one account data entry; returns its new stream position.
    async fn set_account_data(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        kind: &str,
        content: &str,
    ) -> Result<u64>;
    async fn account_data(&self, user_id: &str, room_id: Option<&str>, kind: &str) -> Result<Option<String>>;
    /// Entries changed after `since` and at or before `until`, oldest first.
    async fn account_data_changes(
        &self,
        user_id: &str,
        since: u64,
        until: u64,
    ) -> Result<Vec<AccountDataEntry>>;
    /// Stores a filter and returns its ID (unique per user).
    async fn create_filter(&self, user_id: &str, json: &str) -> Result<String>;
    async fn filter(&self, user_id: &str, filter_id: &str) -> Result<Option<String>>;
    /// Adds or replaces a pusher (keyed by app ID and push key).
    async fn set_pusher(&self, user_id: &str, app_id: &str, pushkey: &str, json: &str) -> Result<()>;
    async fn delete_pusher(&self, user_id: &str, app_id: &str, pushkey: &str) -> Result<bool>;
    /// Removes the pushkey (for this app) from other users, as `append: false` requires.
    async fn delete_pusher_elsewhere(&self, user_id: &str, app_id: &str, pushkey: &str) -> Result<()>;
    async fn pushers(&self, user_id: &str) -> Result<Vec<String>>;
}
