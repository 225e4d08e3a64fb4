//! What sliding sync (MSC4186) keeps between requests, in domain terms: per connection of a
//! device, which rooms the client has been sent and how, so that a position (`pos`) stays
//! valid across restarts and on any node.
//!
//! A connection's record is versioned: every change makes a new version, and a request names
//! the version it continues from. The version before the newest is kept too, so a client that
//! lost a response and repeats its request still finds the record it was answered from.

use async_trait::async_trait;

use crate::Result;

/// One room a connection has sent its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRoom {
    pub room_id: String,
    /// The user's membership when the room was sent (`join`, `invite`, `knock`): a change
    /// means the client needs the room afresh.
    pub membership: String,
    /// Which state and timeline the client asked for when the room was sent (the service's
    /// own summary of `required_state` and `timeline_limit`); a change means the client needs
    /// the state again.
    pub config: String,
    /// The `timeline_limit` the room was last sent with (`None` in records written before it
    /// was kept): a larger one later means the client wants more history (`expanded_timeline`).
    pub timeline_limit: Option<u64>,
}

#[async_trait]
pub trait SlidingSyncStore: Send + Sync {
    /// The rooms a connection had sent as of `version`, in no particular order; `None` when
    /// that version is not stored (never written, replaced by newer ones, or the device gone).
    async fn sliding_connection(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        version: u64,
    ) -> Result<Option<Vec<SentRoom>>>;

    /// Stores `rooms` as the next version of the connection (one past the newest version it
    /// has, or `first_version` when it has none) and returns that version. Callers pick
    /// `first_version` at random, so that the positions of an evicted or purged connection do
    /// not name versions of a new one with the same ID. Afterwards the connection keeps only the
    /// new version and `keep` (the version the request continued from, if any), and the device
    /// keeps only its `connections_per_device_max` most recently written connections.
    // The identity of a connection is three strings; bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    async fn put_sliding_connection(
        &self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        keep: Option<u64>,
        rooms: Vec<SentRoom>,
        first_version: u64,
        now_ms: u64,
        connections_per_device_max: usize,
    ) -> Result<u64>;

    /// Forgets every connection (all its versions) last written before `written_before_ms`
    /// (a client that has not synced since then starts over); returns how many went.
    async fn purge_sliding_connections(&self, written_before_ms: u64) -> Result<u64>;

    /// Forgets every version of a connection.
    async fn delete_sliding_connection(&self, user_id: &str, device_id: &str, conn_id: &str) -> Result<()>;

    /// For each of `room_ids`, the stream position of its newest event whose type is one of
    /// `kinds` (rooms without such an event are left out).
    async fn newest_event_positions(&self, room_ids: &[String], kinds: &[&str])
    -> Result<Vec<(String, u64)>>;

    /// Which of `room_ids` have a current state event of type `kind` (any state key).
    async fn rooms_with_state(&self, room_ids: &[String], kind: &str) -> Result<Vec<String>>;
}
