//! The I/O shell around [`ward_sfu`]: LiveKit access tokens, the `/rtc` WebSocket signalling
//! endpoints on Ward's HTTP listener, and the SFU's UDP socket.
//!
//! Like the other library crates it knows nothing of `ward.toml`: the binary resolves the
//! configuration (including the generated API secret) into [`RtcSettings`].

pub mod http;
pub mod token;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

pub use token::{ApiKeys, MintError, MintRequest, TokenError, mint, verify};
use ward_sfu::Grant;

/// Conferencing settings, resolved: every value here is final and valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcSettings {
    /// The API key and secret that sign and verify access tokens.
    pub keys: ApiKeys,
    /// Where the SFU's UDP socket listens (port 0: any free port).
    pub udp_bind: SocketAddr,
    /// Announced to clients as the ICE host candidate; never an unspecified address.
    pub public_ip: IpAddr,
    pub max_participants_per_room: u32,
    pub max_participants: u32,
    pub max_tracks_per_participant: u32,
    pub max_bitrate_bps_per_track: u64,
    /// How long a room with nobody in it is kept.
    pub empty_room_timeout: Duration,
    /// Longest lifetime of tokens Ward mints itself.
    pub token_max_ttl: Duration,
}

/// The conferencing service as the HTTP layer holds it (`Arc<Rtc>` in Ward's app state).
/// The signalling endpoints and the SFU's run loop hang off it too.
#[derive(Debug)]
pub struct Rtc {
    pub settings: RtcSettings,
}

impl Rtc {
    pub fn new(settings: RtcSettings) -> Self {
        Self { settings }
    }

    /// Checks a join token against the configured API key and secret.
    pub fn verify_token(&self, token: &str, now: SystemTime) -> Result<Grant, TokenError> {
        verify(token, &self.settings.keys, now)
    }
}
