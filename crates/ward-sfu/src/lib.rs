//! Ward's selective forwarding unit (SFU): an I/O-free core that speaks LiveKit's client
//! signalling protocol and forwards RTP between participants without decoding it.
//!
//! The core never touches a socket or a clock: the shell feeds it signalling requests, UDP
//! datagrams and the current time, and drains transmits, signalling responses and the next
//! timeout (the same run loop as str0m, which does the WebRTC underneath):
//!
//! 1. [`Sfu::join`] / [`Sfu::handle_signal_bytes`] / [`Sfu::handle_receive`] /
//!    [`Sfu::handle_timeout`] with `now` (several in a row when they are at hand: media
//!    written by all of them leaves in one round per subscriber connection);
//! 2. [`Sfu::poll_output`] until `None`: send datagrams and signals, close sockets;
//! 3. sleep until [`Sfu::poll_timeout`] or the next input.

mod bwe;
pub mod codec;
mod config;
mod engine;
pub mod forward;
mod grant;

pub use config::{BandwidthEstimator, SfuConfig};
pub use engine::{
    JoinError, JoinOptions, MAX_SIGNAL_BYTES, Output, ParticipantId, ServiceError, Sfu, SfuStats,
};
pub use grant::Grant;
pub use livekit_protocol as protocol;

/// Whether a datagram is a STUN binding request with a username, the only thing a client may
/// send first on a new connection (ICE checks before DTLS or media).
pub fn is_connectivity_check(data: &[u8]) -> bool {
    // RFC 7983: STUN packets start with 0–3.
    data.first().is_some_and(|b| *b <= 3)
        && str0m::ice::StunMessage::parse(data)
            .is_ok_and(|m| m.is_binding_request() && m.split_username().is_some())
}
