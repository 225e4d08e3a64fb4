//! Full-text search over room events, and content reports for the operator.
//!
//! What is searchable is decided when an event is appended: the service gives a
//! [`crate::NewEvent`] its `search_text` (the body of a message, a room's name or topic). The
//! store indexes that text unless the room has `m.room.encryption` state at that moment, and
//! drops a room's indexed text when encryption is switched on, so no event of an encrypted room
//! is ever found. A redacted event's text leaves the index with its content.

use async_trait::async_trait;

use crate::{Result, StoredEvent};

/// How results are ordered, and where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchOrder {
    /// Best match first; skip this many results.
    Rank { skip: u64 },
    /// Newest first; only events before this stream position (all if `None`).
    Recent { before: Option<u64> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Words an event's text must all contain, each as the start of a word, case- and
    /// diacritic-insensitively. Nothing matches when empty.
    pub terms: Vec<String>,
    /// The rooms to search, each up to and including a stream position.
    pub rooms: Vec<(String, u64)>,
    /// Event types to search in (`m.room.message`, `m.room.name`, `m.room.topic`).
    pub kinds: Vec<String>,
    /// Only events of these senders, if given.
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
    pub order: SearchOrder,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub event: StoredEvent,
    /// Higher is a better match.
    pub rank: f64,
}

/// A report about an event (or a whole room, `event_id: None`), kept for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    pub room_id: String,
    pub event_id: Option<String>,
    pub reporter: String,
    pub reason: Option<String>,
    /// The offensiveness score older clients send (-100 most offensive to 0).
    pub score: Option<i64>,
    pub received_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub id: u64,
    pub report: NewReport,
}

#[async_trait]
pub trait SearchStore: Send + Sync {
    /// One page of matching events and the number of matches in all (an exact count).
    async fn search_events(&self, query: SearchQuery) -> Result<(Vec<SearchHit>, u64)>;
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Stores a report; returns its ID (increasing).
    async fn add_report(&self, report: NewReport) -> Result<u64>;
    /// Reports newest first, those with an ID below `before_id` if given, at most `limit`.
    async fn reports(&self, before_id: Option<u64>, limit: usize) -> Result<Vec<Report>>;
}
