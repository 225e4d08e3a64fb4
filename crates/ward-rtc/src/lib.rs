//! The I/O shell around [`ward_sfu`]: LiveKit access tokens, the `/rtc` WebSocket signalling
//! endpoints on Ward's HTTP listener, and the SFU's UDP socket.
//!
//! Like the other library crates it knows nothing of `ward.toml`: the binary resolves the
//! configuration (including the generated API secret) into [`RtcSettings`].

pub mod http;
pub mod runtime;
pub mod signal;
pub mod token;
pub mod twirp;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

pub use runtime::SfuHandle;
pub use token::{ApiKeys, MintError, MintRequest, TokenError, mint, verify};
use ward_sfu::{Grant, SfuConfig};

/// Conferencing settings, resolved: every value here is final and valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcSettings {
    /// The API key and secret that sign and verify access tokens.
    pub keys: ApiKeys,
    /// Where the SFU's UDP socket listens (port 0: any free port).
    pub udp_bind: SocketAddr,
    /// Where the ICE-TCP listener binds; `None`: UDP only.
    pub tcp_bind: Option<SocketAddr>,
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
    pub bandwidth_estimator: ward_sfu::BandwidthEstimator,
}

/// Asked before anyone joins or rejoins a room, after their token checked out: lets the
/// application close rooms to valid tokens (Ward's meetings refuse removed guests and ended
/// meetings). `Err` carries the reason the client is shown.
///
/// It is asked a second time once the participant has joined, and a refusal then removes them.
/// So an application that first records a refusal and then asks the SFU to remove the
/// participant (or to delete the room) cannot miss a join that passed the first question just
/// before: the SFU does one thing at a time, so either the join came before the removal, which
/// kicks them, or after it, and then the second question sees the refusal.
pub trait JoinGate: Send + Sync {
    fn admits<'a>(
        &'a self,
        room: &'a str,
        identity: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

/// The conferencing service as the HTTP layer holds it (`Arc<Rtc>` in Ward's app state).
/// The signalling endpoints and the SFU's run loop hang off it too.
pub struct Rtc {
    pub settings: RtcSettings,
    /// The running SFU; `None` only for HTTP tests that need no media.
    sfu: Option<SfuHandle>,
    /// Set once at start by the application, if it wants a say in who joins.
    gate: std::sync::OnceLock<std::sync::Arc<dyn JoinGate>>,
}

impl std::fmt::Debug for Rtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtc").field("settings", &self.settings).field("sfu", &self.sfu.is_some()).finish()
    }
}

impl Rtc {
    /// Settings only, no media server (`/rtc` answers 503).
    pub fn new(settings: RtcSettings) -> Self {
        Self { settings, sfu: None, gate: std::sync::OnceLock::new() }
    }

    /// Binds the media UDP socket and starts the SFU.
    pub async fn start(settings: RtcSettings) -> std::io::Result<Self> {
        let public = SocketAddr::new(settings.public_ip, settings.udp_bind.port());
        let mut cfg = SfuConfig::new(settings.udp_bind, public);
        cfg.tcp_local_addr = settings.tcp_bind;
        cfg.tcp_public_addr = settings.tcp_bind.map(|b| SocketAddr::new(settings.public_ip, b.port()));
        cfg.max_participants_per_room =
            usize::try_from(settings.max_participants_per_room).unwrap_or(usize::MAX);
        cfg.max_participants = usize::try_from(settings.max_participants).unwrap_or(usize::MAX);
        cfg.max_tracks_per_participant =
            usize::try_from(settings.max_tracks_per_participant).unwrap_or(usize::MAX);
        cfg.max_bitrate_bps_per_track = settings.max_bitrate_bps_per_track;
        cfg.empty_room_timeout_ms =
            u64::try_from(settings.empty_room_timeout.as_millis()).unwrap_or(u64::MAX);
        cfg.bandwidth_estimator = settings.bandwidth_estimator;
        cfg.id_seed = rand::random();
        cfg.server_version = "1.9.0".into();
        cfg.node_id = format!("ward-{}", env!("CARGO_PKG_VERSION"));
        let sfu = runtime::start(cfg, settings.udp_bind, settings.tcp_bind).await?;
        Ok(Self { settings, sfu: Some(sfu), gate: std::sync::OnceLock::new() })
    }

    pub fn sfu(&self) -> Option<&SfuHandle> {
        self.sfu.as_ref()
    }

    /// Installs the join gate (the first one set stays).
    pub fn set_gate(&self, gate: std::sync::Arc<dyn JoinGate>) {
        if self.gate.set(gate).is_err() {
            tracing::warn!("a join gate was set twice; keeping the first");
        }
    }

    /// Whether the gate (if any) lets `grant`'s participant into its room.
    pub async fn admits(&self, grant: &Grant) -> Result<(), String> {
        match self.gate.get() {
            Some(gate) => gate.admits(&grant.room, &grant.identity).await,
            None => Ok(()),
        }
    }

    /// The gate's second question, once the participant is in (see [`JoinGate`]).
    pub async fn admits_again(&self, room: &str, identity: &str) -> Result<(), String> {
        match self.gate.get() {
            Some(gate) => gate.admits(room, identity).await,
            None => Ok(()),
        }
    }

    /// Checks a join token against the configured API key and secret.
    pub fn verify_token(&self, token: &str, now: SystemTime) -> Result<Grant, TokenError> {
        verify(token, &self.settings.keys, now)
    }
}
