//! The I/O-free parts of assembling rooms: which memberships count at the response's position,
//! and what a room's timeline window says once the user's visibility is applied. Plain
//! functions over what the store returned, unit-tested like `plan.rs`.

use std::collections::{BTreeSet, HashMap};

use ward_store::{Membership, SentRoom, StoredEvent};

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

/// A room's timeline as the client gets it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Oldest first, at most the limit, only events the user may see.
    pub events: Vec<StoredEvent>,
    /// Whether the client may be missing events before `events` (it paginates with
    /// `prev_batch`).
    pub limited: bool,
    /// How many of `events` are after the client's position.
    pub num_live: u64,
    pub has_state_events: bool,
    /// The senders of `events` (whose members `$LAZY` asks for).
    pub senders: BTreeSet<String>,
}

/// From the newest `limit + 1` events (newest first, as read) of which `visible` are those the
/// user may see (same order): the window. Everything is derived after visibility, so hidden
/// events neither count as live nor name senders.
pub fn window(read_count: usize, visible: Vec<StoredEvent>, limit: usize, since: Option<u64>) -> Window {
    let hidden = read_count.saturating_sub(visible.len());
    // A full read with hidden events in it: whether visible events lie before the read is
    // unknown, so the client is told it may be missing some (paginating finds out).
    let limited = visible.len() > limit || (read_count > limit && hidden > 0);
    let mut events = visible;
    events.truncate(limit);
    events.reverse();
    Window {
        limited,
        num_live: since.map_or(0, |s| events.iter().filter(|e| e.stream_pos > s).count() as u64),
        has_state_events: events.iter().any(|e| e.state_key.is_some()),
        senders: events.iter().map(|e| e.sender.clone()).collect(),
        events,
    }
}

/// A room's state entries matched only by a wildcard (`["*", "*"]`, `[type, "*"]`), as
/// `(type, event ID)`, cut to `max`: the room's own state (name, topic, power levels, …) before
/// its members, otherwise in the given order. Entries named without a wildcard are not passed
/// here and never cut.
pub fn cap_wildcard_state(mut matched: Vec<(String, String)>, max: usize) -> Vec<String> {
    if matched.len() > max {
        // Stable: members keep their order behind everything else.
        matched.sort_by_key(|(kind, _)| kind == "m.room.member");
        matched.truncate(max);
    }
    matched.into_iter().map(|(_, id)| id).collect()
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
        SentRoom {
            room_id: room.into(),
            membership: "join".into(),
            config: "1".into(),
            timeline_limit: Some(1),
        }
    }

    fn ids(ms: &[&Membership]) -> Vec<String> {
        ms.iter().map(|m| m.room_id.clone()).collect()
    }

    #[test]
    fn wildcard_state_is_cut_members_last() {
        let entry = |k: &str, i: usize| (k.to_owned(), format!("${k}{i}"));
        let mut matched: Vec<(String, String)> = (0..5).map(|i| entry("m.room.member", i)).collect();
        matched.push(entry("m.room.name", 0));
        matched.push(entry("m.room.topic", 0));
        // Under the cap nothing changes, not even the order.
        let all: Vec<String> = matched.iter().map(|(_, id)| id.clone()).collect();
        assert_eq!(cap_wildcard_state(matched.clone(), 7), all);
        // Over it: the room's own state first, then members in their order.
        assert_eq!(
            cap_wildcard_state(matched.clone(), 4),
            ["$m.room.name0", "$m.room.topic0", "$m.room.member0", "$m.room.member1"]
        );
        assert!(cap_wildcard_state(matched, 0).is_empty());
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

    fn event(pos: u64, sender: &str, state: bool) -> StoredEvent {
        StoredEvent {
            stream_pos: pos,
            event_id: format!("$e{pos}"),
            room_id: "!r".into(),
            kind: "m.room.message".into(),
            state_key: state.then(String::new),
            sender: sender.into(),
            json: "{}".into(),
            redacted_by: None,
        }
    }

    #[test]
    fn the_window_is_derived_after_visibility() {
        // Read newest first: 9 (hidden state by @h), 8, 7 (limit 2, so 3 read).
        let read = [event(9, "@h", true), event(8, "@a", false), event(7, "@b", false)];
        let visible = vec![read[1].clone(), read[2].clone()];
        let w = window(read.len(), visible, 2, Some(7));
        assert_eq!(w.events.iter().map(|e| e.stream_pos).collect::<Vec<_>>(), [7, 8]);
        assert_eq!(w.num_live, 1);
        assert!(!w.has_state_events);
        assert_eq!(w.senders, BTreeSet::from(["@a".to_owned(), "@b".to_owned()]));
        // A full read with a hidden event: maybe missing events.
        assert!(w.limited);
        // Everything visible and more than the limit: limited; fewer than the limit: not.
        assert!(window(3, read.to_vec(), 2, None).limited);
        assert!(!window(2, read[1..].to_vec(), 2, None).limited);
        assert_eq!(window(3, read.to_vec(), 2, None).num_live, 0);
    }
}
