//! What a participant may do, as granted by its access token.

use std::time::SystemTime;

/// A verified access token's identity and permissions (LiveKit's `video` grant). The shell
/// verifies the token; the core only enforces what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The participant's identity (the token's `sub`), unique within a room.
    pub identity: String,
    /// Display name (`name` claim).
    pub name: String,
    /// Opaque application metadata (`metadata` claim).
    pub metadata: String,
    /// The room the token admits to (`video.room`).
    pub room: String,
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
    /// Track sources the participant may publish (`camera`, `microphone`, `screen_share`,
    /// `screen_share_audio`); empty means all.
    pub can_publish_sources: Vec<String>,
    /// Hidden participants (e.g. recorders, monitors) are not announced to others.
    pub hidden: bool,
    pub can_update_own_metadata: bool,
    /// The token's `exp`: the SFU refuses joins after it.
    pub expires_at: SystemTime,
}
