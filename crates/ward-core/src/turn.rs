//! Time-limited TURN credentials, the "TURN REST API" scheme coturn's `use-auth-secret` and
//! Synapse's `turn_shared_secret` use: the username is `<expiry in Unix seconds>:<user ID>`,
//! the password `base64(HMAC-SHA1(shared secret, username))`. The TURN server recomputes the
//! password from the username and refuses it after the expiry; no state is shared.

use base64::Engine;
use hmac::{Hmac, Mac};

/// Credentials for `user_id`, valid until `now_ms + lifetime_ms` (rounded down to seconds).
pub fn credentials(shared_secret: &str, user_id: &str, now_ms: u64, lifetime_ms: u64) -> (String, String) {
    let expiry_s = now_ms.saturating_add(lifetime_ms) / 1000;
    let username = format!("{expiry_s}:{user_id}");
    // HMAC takes a key of any length, so `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(shared_secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    #[test]
    fn username_and_password_follow_the_turn_rest_scheme() {
        let (user, pass) =
            super::credentials("s3cret", "@anna:praxis.example", 1_700_000_000_500, 86_400_000);
        assert_eq!(user, "1700086400:@anna:praxis.example");
        // Computed independently:
        // printf %s "1700086400:@anna:praxis.example" | openssl dgst -sha1 -hmac s3cret -binary | base64
        assert_eq!(pass, "mQ2wgds3Brc+Cqk4Xtjj21IY4nQ=");
    }
}
