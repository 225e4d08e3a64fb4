//! `GET /voip/turnServer`: time-limited TURN credentials for calls.

use crate::{Authed, Services, now_ms};

/// The TURN server clients are sent to and the secret shared with it.
#[derive(Clone)]
pub struct TurnSettings {
    pub uris: Vec<String>,
    pub shared_secret: String,
    pub user_lifetime_ms: u64,
}

/// The secret stays out of logs and debug output.
impl std::fmt::Debug for TurnSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnSettings")
            .field("uris", &self.uris)
            .field("shared_secret", &"<redacted>")
            .field("user_lifetime_ms", &self.user_lifetime_ms)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    pub username: String,
    pub password: String,
    pub uris: Vec<String>,
    pub ttl_s: u64,
}

impl Services {
    /// Credentials for the caller, or `None` when no TURN server is configured.
    pub fn turn_credentials(&self, authed: &Authed) -> Option<TurnCredentials> {
        let turn = self.settings.turn.as_ref()?;
        let (username, password) = ward_core::turn::credentials(
            &turn.shared_secret,
            &authed.user_id,
            now_ms(),
            turn.user_lifetime_ms,
        );
        Some(TurnCredentials {
            username,
            password,
            uris: turn.uris.clone(),
            ttl_s: turn.user_lifetime_ms / 1000,
        })
    }
}
