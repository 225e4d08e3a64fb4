//! User-interactive authentication (UIA) flows.
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#user-interactive-authentication-api>.
//! A request that needs UIA names a set of flows (each an ordered list of stages); the client
//! completes stages one at a time within a session until one whole flow is done. This module
//! decides, from the flows and the completed stages, whether the request may proceed. Checking
//! a stage's credentials (a password, a registration token) is the service layer's job.

use std::fmt;

/// The stages Ward offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Password,
    RegistrationToken,
    Dummy,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Password => "m.login.password",
            Stage::RegistrationToken => "m.login.registration_token",
            Stage::Dummy => "m.login.dummy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Stage::Password, Stage::RegistrationToken, Stage::Dummy].into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub type Flow = Vec<Stage>;

/// Whether `stage` may be completed now: some flow must contain it and every stage completed so
/// far. Order within a flow is not enforced, as in Synapse: matrix-nio, for one, completes
/// `m.login.registration_token` before `m.login.dummy` whatever the advertised order.
pub fn stage_allowed(flows: &[Flow], completed: &[Stage], stage: Stage) -> bool {
    flows.iter().any(|flow| flow.contains(&stage) && completed.iter().all(|done| flow.contains(done)))
}

/// Whether some flow has all its stages completed.
pub fn is_complete(flows: &[Flow], completed: &[Stage]) -> bool {
    flows.iter().any(|flow| flow.iter().all(|s| completed.contains(s)))
}

/// Whether a session begun at `created_ms` has timed out at `now_ms`.
pub fn is_expired(created_ms: u64, now_ms: u64, timeout_ms: u64) -> bool {
    now_ms.saturating_sub(created_ms) > timeout_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_stage_flow() {
        let flows = vec![vec![Stage::RegistrationToken]];
        assert!(!is_complete(&flows, &[]));
        assert!(stage_allowed(&flows, &[], Stage::RegistrationToken));
        assert!(!stage_allowed(&flows, &[], Stage::Dummy));
        assert!(is_complete(&flows, &[Stage::RegistrationToken]));
    }

    #[test]
    fn multi_stage_flows() {
        let flows = vec![vec![Stage::RegistrationToken, Stage::Dummy], vec![Stage::Password]];
        assert!(stage_allowed(&flows, &[], Stage::Dummy));
        assert!(stage_allowed(&flows, &[Stage::RegistrationToken], Stage::Dummy));
        assert!(stage_allowed(&flows, &[], Stage::Password));
        assert!(!stage_allowed(&flows, &[Stage::Dummy], Stage::Password), "no flow has both");
        assert!(!is_complete(&flows, &[Stage::RegistrationToken]));
        assert!(is_complete(&flows, &[Stage::Dummy, Stage::RegistrationToken]));
    }

    #[test]
    fn names_round_trip_and_expiry() {
        for s in [Stage::Password, Stage::RegistrationToken, Stage::Dummy] {
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
        assert_eq!(Stage::parse("m.login.recaptcha"), None);
        assert!(!is_expired(1000, 2000, 1000));
        assert!(is_expired(1000, 2001, 1000));
        assert!(!is_expired(5000, 1000, 10));
    }
}
