//! Rooms in domain terms: events in stream order, room state, memberships.

use async_trait::async_trait;

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    pub room_id: String,
    pub room_version: String,
    pub creator: String,
    pub created_ms: u64,
    /// An alias to create with the room (its creator is the room's creator).
    pub alias: Option<String>,
    /// Whether to publish the room in the directory.
    pub published: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub room_id: String,
    pub room_version: String,
    pub creator: String,
    pub created_ms: u64,
}

/// A client's transaction ID: a send with the same key is answered with the same event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnKey {
    pub user_id: String,
    pub device_id: String,
    pub txn_id: String,
}

/// An event accepted by the room core, to be appended to its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_id: String,
    pub kind: String,
    pub state_key: Option<String>,
    pub sender: String,
    pub depth: u64,
    pub origin_server_ts: u64,
    /// The signed PDU as canonical JSON.
    pub json: String,
    /// For `m.room.member`: the membership it gives `state_key`.
    pub membership: Option<String>,
    /// `content.m.relates_to`: the related event and relation type.
    pub relates_to: Option<(String, String)>,
    pub txn: Option<TxnKey>,
    /// Text for full-text search (see [`crate::search`]); `None` for events not searched.
    pub search_text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub stream_pos: u64,
    pub event_id: String,
    pub room_id: String,
    pub kind: String,
    pub state_key: Option<String>,
    pub sender: String,
    pub json: String,
    pub redacted_by: Option<String>,
}

/// One entry of a room's state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StateEntry {
    pub kind: String,
    pub state_key: String,
    pub event_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub room_id: String,
    pub user_id: String,
    pub membership: String,
    pub event_id: String,
    pub stream_pos: u64,
    pub forgotten: bool,
}

/// A read receipt. `thread_id` is empty for unthreaded receipts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub room_id: String,
    pub user_id: String,
    pub receipt_type: String,
    pub thread_id: String,
    pub event_id: String,
    pub ts: u64,
    /// Position of the receipt itself in the stream (0 when setting one).
    pub stream_pos: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Creates the room with its first events (create event, creator's join, …) in one
    /// transaction; returns their positions. [`crate::StoreError::Conflict`] if it exists.
    async fn create_room(&self, room: NewRoom, events: Vec<NewEvent>) -> Result<Vec<u64>>;
    async fn room(&self, room_id: &str) -> Result<Option<Room>>;
    /// Appends events to a room, in order, in one transaction: stream positions, state (current
    /// and per event), memberships and transaction IDs. Returns the new events' positions.
    async fn append_events(&self, room_id: &str, events: Vec<NewEvent>) -> Result<Vec<u64>>;
    async fn event(&self, event_id: &str) -> Result<Option<StoredEvent>>;
    async fn events_by_id(&self, event_ids: &[String]) -> Result<Vec<StoredEvent>>;
    /// The room's newest event (its forward extremity) and its depth.
    async fn room_tip(&self, room_id: &str) -> Result<Option<(String, u64)>>;
    async fn current_state(&self, room_id: &str) -> Result<Vec<StateEntry>>;
    async fn current_state_event(
        &self,
        room_id: &str,
        kind: &str,
        state_key: &str,
    ) -> Result<Option<StoredEvent>>;
    /// The room's state after the last event at or before `stream_pos` (empty before the room).
    async fn state_at(&self, room_id: &str, stream_pos: u64) -> Result<Vec<StateEntry>>;
    /// Up to `limit` events of the room strictly after (`Forward`) or before (`Backward`)
    /// `from`, and not beyond `to` if given; backward results come newest first.
    async fn room_events(
        &self,
        room_id: &str,
        from: u64,
        to: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<StoredEvent>>;
    async fn membership(&self, room_id: &str, user_id: &str) -> Result<Option<Membership>>;
    /// Every room the user has a membership in (any state), with its latest membership.
    async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<Membership>>;
    async fn room_members(&self, room_id: &str) -> Result<Vec<Membership>>;
    async fn txn_event(&self, key: &TxnKey) -> Result<Option<String>>;
    /// The newest stream position (0 for none).
    async fn max_stream_pos(&self) -> Result<u64>;
    /// Records a receipt if it moves the user's receipt of that type and thread forward (to a
    /// later event of the room); returns its stream position, or `None` if it was older or
    /// the event is not in the room.
    async fn set_receipt(&self, receipt: Receipt) -> Result<Option<u64>>;
    /// Receipts in a room that changed after `since`, at or before `until`.
    async fn receipts_changed(&self, room_id: &str, since: u64, until: u64) -> Result<Vec<Receipt>>;
    /// The stream position of the latest event the user has read in the room (public or
    /// private receipts; unthreaded ones, plus those of `thread` — `"main"` for the main
    /// timeline).
    async fn read_up_to(&self, room_id: &str, user_id: &str, thread: &str) -> Result<Option<u64>>;
    /// Every state event of one type (and state key, if given) in the room, oldest first, up
    /// to `limit`: a user's membership history, the history-visibility changes.
    async fn state_history(
        &self,
        room_id: &str,
        kind: &str,
        state_key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>>;
    /// Marks the user's (non-joined) membership forgotten; `false` if there is none.
    async fn forget_room(&self, room_id: &str, user_id: &str) -> Result<bool>;
    /// Events relating to `event_id` (newest first), optionally of one relation type and
    /// event type, before stream position `from`.
    async fn relations(
        &self,
        event_id: &str,
        rel_type: Option<&str>,
        kind: Option<&str>,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>>;
    /// The event closest to `ts_ms` at or after it (`Forward`) or at or before it (`Backward`).
    async fn event_near_time(
        &self,
        room_id: &str,
        ts_ms: u64,
        direction: Direction,
    ) -> Result<Option<(String, u64)>>;
    /// [`crate::StoreError::Conflict`] if the alias is taken.
    async fn create_alias(&self, alias: &str, room_id: &str, creator: &str, now_ms: u64) -> Result<()>;
    /// The room and creator of an alias.
    async fn alias(&self, alias: &str) -> Result<Option<(String, String)>>;
    async fn delete_alias(&self, alias: &str) -> Result<bool>;
    async fn room_aliases(&self, room_id: &str) -> Result<Vec<String>>;
    async fn set_published(&self, room_id: &str, published: bool, now_ms: u64) -> Result<()>;
    async fn is_published(&self, room_id: &str) -> Result<bool>;
    /// Published rooms, oldest publication first, from `offset`, at most `limit`.
    async fn published_rooms(&self, offset: u64, limit: usize) -> Result<Vec<String>>;
    async fn count_published_rooms(&self) -> Result<u64>;
    /// Replaces an event's JSON with its redacted form and records what redacted it; its
    /// search text leaves the index.
    async fn redact_event(&self, event_id: &str, redacted_json: &str, redacted_by: &str) -> Result<bool>;
}
