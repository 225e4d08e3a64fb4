//! The I/O-free parts of assembling rooms: which memberships count at the response's position.
//! Plain functions over what the store returned, unit-tested like `plan.rs`.

use std::collections::HashMap;

use ward_store::{Membership, SentRoom};

/// The user's memberships as one response sees them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Memberships<'a> {
    /// Joined, invited and knocked rooms at the response's position (what lists show).
    pub current: Vec<&'a Membership>,
    /// Departures (`leave`, `ban`, forgotten or not) of rooms the connection had: each is told
    /// once with `Send::Left`, then dropped from the connection's record.
    pub left: Vec<&'a Membership>,
    /// Rooms the connection had whose membership changed after the position (a kick between
    /// reading the position and the memberships): kept in the record as they were, so the next
    /// response still knows the client has them and tells the change.
    pub carried: Vec<SentRoom>,
}

/// Sorts the store's memberships (the newest per room) for a response at `target`.
pub fn memberships_at<'a>(
    all: &'a [Membership],
    target: u64,
    previously_sent: &[SentRoom],
) -> Memberships<'a> {
    let had: HashMap<&str, &SentRoom> = previously_sent.iter().map(|s| (s.room_id.as_str(), s)).collect();
    let mut out = Memberships::default();
    for m in all {
        if m.stream_pos > target {
            if let Some(s) = had.get(m.room_id.as_str()) {
                out.carried.push((*s).clone());
            }
            continue;
        }
        match m.membership.as_str() {
            "join" | "invite" | "knock" if !m.forgotten => out.current.push(m),
            "leave" | "ban" if had.contains_key(m.room_id.as_str()) => out.left.push(m),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(room: &str, membership: &str, pos: u64, forgotten: bool) -> Membership {
        Membership {
            room_id: room.into(),
            user_id: "@me:x".into(),
            membership: membership.into(),
            event_id: format!("$m{pos}"),
            stream_pos: pos,
            forgotten,
        }
    }

    fn sent(room: &str) -> SentRoom {
        SentRoom { room_id: room.into(), membership: "join".into(), config: "1".into() }
    }

    fn ids(ms: &[&Membership]) -> Vec<String> {
        ms.iter().map(|m| m.room_id.clone()).collect()
    }

    #[test]
    fn a_kick_after_the_position_keeps_the_room_in_the_record() {
        // The kick (position 12) committed after the response's position (10) was read.
        let all = [member("!a", "leave", 12, false), member("!b", "join", 3, false)];
        let m = memberships_at(&all, 10, &[sent("!a"), sent("!b")]);
        assert_eq!(ids(&m.current), ["!b"]);
        assert!(m.left.is_empty());
        assert_eq!(m.carried, [sent("!a")]);
        // The next response (position 12) tells it.
        let m = memberships_at(&all, 12, &[sent("!a"), sent("!b")]);
        assert_eq!(ids(&m.left), ["!a"]);
        assert!(m.carried.is_empty());
        // A room the connection never had is not carried.
        let m = memberships_at(&all, 10, &[sent("!b")]);
        assert!(m.carried.is_empty() && m.left.is_empty());
    }

    #[test]
    fn forgotten_rooms_the_connection_had_are_left() {
        let all =
            [member("!a", "leave", 5, true), member("!b", "ban", 6, true), member("!c", "leave", 2, false)];
        let m = memberships_at(&all, 10, &[sent("!a")]);
        assert_eq!(ids(&m.left), ["!a"]);
        assert!(m.current.is_empty());
        // Departures of rooms the client does not have are not told.
        let m = memberships_at(&all, 10, &[]);
        assert!(m.left.is_empty());
    }
}
