//! Access tokens, refresh tokens and passwords.
//!
//! Tokens are 256 random bits; only their SHA-256 is ever stored, so a copy of the database
//! does not let anyone act as a user. Passwords are hashed with argon2id in PHC string format,
//! which carries its own parameters, so they can be raised later without a migration.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};

/// The SHA-256 of a token, which is what storage keeps.
pub type TokenHash = [u8; 32];

/// A fresh random token of 256 bits with a short prefix that tells what it is
/// (`"syt"`-style prefixes help operators spot tokens pasted into the wrong place).
pub fn new_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A random identifier of `len` characters from `alphabet`.
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

/// A device ID as Synapse and Element make them: ten upper-case letters.
pub fn new_device_id() -> String {
    random_string(10, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordHashError(String);

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes). CPU-bound for tens of
/// milliseconds: call it off the async runtime.
pub fn hash_password(password: &str) -> Result<String, PasswordHashError> {
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordHashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordHashError(e.to_string()))
}

/// Checks a password against a stored PHC hash. A malformed stored hash never matches.
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A real argon2id hash of a random password nobody knows, used so that a login for an unknown
/// user costs the same time as one for a known user (no user enumeration by timing).
pub fn dummy_password_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        // Hashing only fails for out-of-range parameters, and the defaults are in range; an
        // unparsable hash would still never match, only faster.
        hash_password(&new_token("dummy")).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hashes_stable() {
        let a = new_token("ward_at");
        let b = new_token("ward_at");
        assert_ne!(a, b);
        assert!(a.starts_with("ward_at_"));
        assert!(a.len() >= 8 + 43);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("x", dummy_password_hash()));
        assert!(dummy_password_hash().starts_with("$argon2id$"));
    }

    #[test]
    fn device_ids() {
        let d = new_device_id();
        assert_eq!(d.len(), 10);
        assert!(d.bytes().all(|b| b.is_ascii_uppercase()));
    }
}
