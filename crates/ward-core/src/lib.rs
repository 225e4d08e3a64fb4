//! Ward's domain rules without I/O.
//!
//! Everything here is a pure function of its inputs (time is passed in as milliseconds since
//! the Unix epoch), so it is tested without sockets, databases or clocks. The crate knows
//! nothing of HTTP, SQL or Matrix JSON; the service layer feeds it and acts on its answers.

pub mod secret;
pub mod throttle;
pub mod turn;
pub mod uia;
pub mod username;
