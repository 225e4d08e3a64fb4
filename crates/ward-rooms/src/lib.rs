//! Ward's room core, without I/O.
//!
//! Rooms are made of real, signed Matrix PDUs from the first event on, so federation can come
//! later without a migration. This crate builds an event from a draft (type, content, state
//! key) and the room's relevant state, hashes and signs it, computes its reference-hash event
//! ID, and runs the room version's authorisation rules (ruma's state-res) on it. It also turns
//! PDUs into the client format. It never reads a clock, a socket or a database: the caller
//! passes the time and the state.

mod build;
mod keys;
mod pdu;

pub use build::{BuildError, Chain, EventDraft, Placement, StateLookup, auth_state_keys, build_event};
pub use keys::{KeyError, ServerKey};
pub use pdu::{Pdu, PduError};
pub use ruma::RoomVersionId;

/// Room versions Ward can create and join.
pub const SUPPORTED_ROOM_VERSIONS: &[RoomVersionId] =
    &[RoomVersionId::V10, RoomVersionId::V11, RoomVersionId::V12];

/// The version new rooms get unless the client or the operator asks for another.
pub const DEFAULT_ROOM_VERSION: RoomVersionId = RoomVersionId::V12;

/// Rules of a version Ward supports; `None` for others.
pub fn rules_for(version: &RoomVersionId) -> Option<ruma::room_version_rules::RoomVersionRules> {
    if SUPPORTED_ROOM_VERSIONS.contains(version) { version.rules() } else { None }
}
