//! Ward's selective forwarding unit (SFU): an I/O-free core that speaks LiveKit's client
//! signalling protocol and forwards RTP between participants without decoding it.
//!
//! The core never touches a socket or a clock: the shell feeds it signalling requests, UDP
//! datagrams and the current time, and drains transmits, signalling responses and the next
//! timeout (the same run loop as str0m, which does the WebRTC underneath).

mod grant;

pub use grant::Grant;
