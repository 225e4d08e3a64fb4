//! Reading back what a room's history says about events we sent.

use matrix_sdk::Room;
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::{OwnedEventId, uint};

/// What a device could make of one of our events in `/messages`.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// Decrypted to an `m.room.message` with this body.
    Decrypted(String),
    /// Still `m.room.encrypted` (no room key on this device).
    Undecryptable,
    /// Not encrypted at all: a failure for an encrypted room.
    Plaintext,
    /// Not in the page.
    Missing,
}

/// Fetches the newest page of history (one `/messages` call) and reports, for each of
/// `events` in order, what this device could read of it.
pub async fn read_back(room: &Room, events: &[OwnedEventId]) -> anyhow::Result<Vec<Seen>> {
    let mut options = MessagesOptions::backward();
    options.limit = uint!(100);
    let page = room.messages(options).await?;
    Ok(events
        .iter()
        .map(|id| {
            let Some(event) = page.chunk.iter().find(|e| e.event_id().as_ref() == Some(id)) else {
                return Seen::Missing;
            };
            let json: serde_json::Value = match serde_json::from_str(event.raw().json().get()) {
                Ok(v) => v,
                Err(_) => return Seen::Missing,
            };
            match (json["type"].as_str(), event.encryption_info().is_some()) {
                (Some("m.room.message"), true) => {
                    Seen::Decrypted(json["content"]["body"].as_str().unwrap_or_default().to_owned())
                }
                (Some("m.room.encrypted"), _) => Seen::Undecryptable,
                _ => Seen::Plaintext,
            }
        })
        .collect())
}
