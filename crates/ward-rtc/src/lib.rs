//! The I/O shell around [`ward_sfu`]: LiveKit access tokens, the `/rtc` WebSocket signalling
//! endpoints on Ward's HTTP listener, and the SFU's UDP socket.

pub mod runtime;
pub mod signal;
pub mod token;

pub use runtime::{SfuHandle, start};
