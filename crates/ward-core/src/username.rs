//! Rules for the localpart a user may register.
//!
//! Spec: <https://spec.matrix.org/latest/appendices/#user-identifiers>. New accounts get the
//! strict historical grammar (`a-z 0-9 . _ = - / +`); the whole user ID may not exceed 255 bytes.

/// The longest a full user ID (`@localpart:server`) may be, in bytes.
pub const USER_ID_MAX_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("the username is empty")]
    Empty,
    #[error("the username may only contain a-z, 0-9 and the characters . _ = - / +")]
    InvalidCharacter,
    #[error("the user ID would be longer than {USER_ID_MAX_BYTES} bytes")]
    TooLong,
}

/// Normalises a requested username (lower-cases it, strips a leading `@` and a matching
/// `:server` suffix) and checks it against the grammar for new accounts.
pub fn normalise_new_localpart(requested: &str, server_name: &str) -> Result<String, UsernameError> {
    let requested = requested.strip_prefix('@').unwrap_or(requested);
    let requested =
        requested.strip_suffix(server_name).and_then(|s| s.strip_suffix(':')).unwrap_or(requested);
    let localpart = requested.to_lowercase();
    if localpart.is_empty() {
        return Err(UsernameError::Empty);
    }
    if !localpart.bytes().all(is_localpart_byte) {
        return Err(UsernameError::InvalidCharacter);
    }
    // '@' + localpart + ':' + server name
    if 1 + localpart.len() + 1 + server_name.len() > USER_ID_MAX_BYTES {
        return Err(UsernameError::TooLong);
    }
    Ok(localpart)
}

fn is_localpart_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+')
}

/// Whether `localpart` matches one of the operator's reserved patterns. A pattern is an exact
/// localpart, or a prefix followed by `*` (`"bot_*"`).
pub fn is_reserved(localpart: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => localpart.starts_with(prefix),
        None => localpart == p,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_full_ids() {
        assert_eq!(normalise_new_localpart("Alice", "example.org").unwrap(), "alice");
        assert_eq!(normalise_new_localpart("@bob:example.org", "example.org").unwrap(), "bob");
        assert_eq!(normalise_new_localpart("dr.x_1=a-b/c+d", "e.org").unwrap(), "dr.x_1=a-b/c+d");
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(normalise_new_localpart("", "e.org"), Err(UsernameError::Empty));
        assert_eq!(normalise_new_localpart("a b", "e.org"), Err(UsernameError::InvalidCharacter));
        assert_eq!(normalise_new_localpart("ä", "e.org"), Err(UsernameError::InvalidCharacter));
        assert_eq!(normalise_new_localpart("@x:other.org", "e.org"), Err(UsernameError::InvalidCharacter));
        let long = "a".repeat(250);
        assert_eq!(normalise_new_localpart(&long, "e.org"), Err(UsernameError::TooLong));
    }

    #[test]
    fn reserved_patterns() {
        let p = vec!["admin".to_owned(), "bot_*".to_owned()];
        assert!(is_reserved("admin", &p));
        assert!(!is_reserved("admins", &p));
        assert!(is_reserved("bot_x", &p));
        assert!(!is_reserved("robot", &p));
    }
}
