//! The I/O-free half of sliding sync: from the user's rooms (with the facts lists sort and
//! filter by), the request and what the connection has already sent, decide which rooms go
//! into the response and how each is sent. No store, no clock: everything is passed in, so the
//! rules are unit-tested as plain functions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ward_store::SentRoom;

use super::limits;

/// Which state a client wants per room: `(type, state_key)` pairs, where the type may be `*`
/// and the state key `*` (any), `$ME` (the user) or, for members, `$LAZY` (the timeline's
/// senders).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomConfig {
    pub required_state: Vec<(String, String)>,
    pub timeline_limit: u64,
}

impl RoomConfig {
    /// Several lists and subscriptions naming one room: the union of their state and the
    /// largest timeline.
    pub fn merge(&mut self, other: &RoomConfig) {
        for entry in &other.required_state {
            if !self.required_state.contains(entry) {
                self.required_state.push(entry.clone());
            }
        }
        self.timeline_limit = self.timeline_limit.max(other.timeline_limit);
    }

    /// A stable summary, stored per sent room: when it changes the room's state is sent again.
    /// A digest (the first 16 bytes of SHA-256 of the normalised configuration, in hex, 32
    /// characters) rather than the text, so what is kept per room and version is small however
    /// long the request's `required_state` is. Nothing reads a configuration back from it.
    pub fn key(&self) -> String {
        self.key_with_limit(self.timeline_limit)
    }

    /// [`Self::key`] of this `required_state` with another timeline limit: equal to a stored
    /// key made with that limit exactly when the requested state is the same.
    fn key_with_limit(&self, timeline_limit: u64) -> String {
        use sha2::{Digest, Sha256};
        let set: BTreeSet<(&str, &str)> =
            self.required_state.iter().map(|(t, k)| (t.as_str(), k.as_str())).collect();
        let mut hash = Sha256::new();
        hash.update(timeline_limit.to_be_bytes());
        for (t, k) in set {
            // Length-prefixed, so no choice of strings makes two configurations collide.
            hash.update((t.len() as u64).to_be_bytes());
            hash.update(t.as_bytes());
            hash.update((k.len() as u64).to_be_bytes());
            hash.update(k.as_bytes());
        }
        hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn wants_lazy_members(&self) -> bool {
        self.required_state.iter().any(|(t, k)| (t == "m.room.member" || t == "*") && k == "$LAZY")
    }

    /// Whether a state entry is named by an entry without a wildcard (`$ME` counts as named):
    /// such entries are never cut by `WILDCARD_STATE_EVENTS_PER_ROOM_MAX`.
    pub fn names_state(&self, kind: &str, state_key: &str, me: &str) -> bool {
        self.required_state
            .iter()
            .any(|(t, k)| t == kind && k != "*" && (k == state_key || (k == "$ME" && state_key == me)))
    }

    /// Whether a state entry is asked for (`$LAZY` members are decided by the caller).
    pub fn wants_state(&self, kind: &str, state_key: &str, me: &str) -> bool {
        self.required_state.iter().any(|(t, k)| {
            (t == "*" || t == kind) && (k == "*" || k == state_key || (k == "$ME" && state_key == me))
        })
    }
}

/// Filters of one list; absent fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilters {
    pub is_dm: Option<bool>,
    pub is_encrypted: Option<bool>,
    pub is_invite: Option<bool>,
    /// `None` in the list stands for rooms without a type.
    pub room_types: Vec<Option<String>>,
    pub not_room_types: Vec<Option<String>>,
    /// Rooms that are children (`m.space.child`) of any of these spaces.
    pub spaces: Vec<String>,
    /// Rooms with any of these tags (`m.tag` room account data)…
    pub tags: Vec<String>,
    /// …and none of these (which wins).
    pub not_tags: Vec<String>,
}

impl ListFilters {
    pub fn needs_dm(&self) -> bool {
        self.is_dm.is_some()
    }
    pub fn needs_encryption(&self) -> bool {
        self.is_encrypted.is_some()
    }
    pub fn needs_room_type(&self) -> bool {
        !self.room_types.is_empty() || !self.not_room_types.is_empty()
    }
    pub fn needs_tags(&self) -> bool {
        !self.tags.is_empty() || !self.not_tags.is_empty()
    }

    fn admits(&self, room: &RoomFacts) -> bool {
        self.is_dm.is_none_or(|want| room.is_dm == want)
            && self.is_encrypted.is_none_or(|want| room.is_encrypted == want)
            && self.is_invite.is_none_or(|want| (room.membership == "invite") == want)
            && (self.room_types.is_empty() || self.room_types.contains(&room.room_type))
            && !self.not_room_types.contains(&room.room_type)
            && (self.spaces.is_empty() || self.spaces.iter().any(|s| room.spaces.contains(s)))
            && (self.tags.is_empty() || self.tags.iter().any(|t| room.tags.contains(t)))
            && !self.not_tags.iter().any(|t| room.tags.contains(t))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// Inclusive index ranges into the sorted, filtered rooms.
    pub ranges: Vec<(u64, u64)>,
    pub config: RoomConfig,
    pub filters: ListFilters,
}

/// What lists sort and filter by, per room of the user (joined, invited or knocked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomFacts {
    pub room_id: String,
    pub membership: String,
    /// The stream position of the room's newest "bump" event (a message, the creation), or of
    /// the invite or knock; higher sorts first.
    pub bump_stamp: u64,
    pub is_dm: bool,
    pub is_encrypted: bool,
    pub room_type: Option<String>,
    /// The spaces named by the request's filters that list this room as a child.
    pub spaces: Vec<String>,
    pub tags: Vec<String>,
}

/// The membership a connection's record keeps for a room the client had whose update did not
/// fit into a response: it matches no real membership, so the room is sent whole next time,
/// and a departure is still told (the record has the room).
pub const DEFERRED: &str = "deferred";

/// How a room goes into the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Send {
    /// New to the client (or its membership changed): everything, `initial: true`.
    Initial,
    /// Known to the client with the same configuration: what changed since the position.
    Incremental,
    /// Known to the client, but the requested state changed: all requested state again and
    /// the timeline's changes.
    StateAgain,
    /// The user left (or was removed); the client had it: the events up to the departure.
    Left,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRoom {
    pub send: Send,
    /// The client had the room with a smaller timeline limit (`expanded_timeline`): the
    /// timeline is the newest `timeline_limit` events, not only those after the position.
    pub expanded: bool,
    /// The connection's record had the room (so the client may show it).
    pub had: bool,
    pub membership: String,
    pub config: RoomConfig,
    pub bump_stamp: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per list, the number of rooms after filtering.
    pub counts: BTreeMap<String, u64>,
    /// Per list, the room IDs in its ranges (for extensions scoped to lists).
    pub list_rooms: BTreeMap<String, Vec<String>>,
    pub rooms: BTreeMap<String, PlannedRoom>,
    /// What the connection will have sent once this response arrives.
    pub sent: Vec<SentRoom>,
    /// Rooms in range that did not fit into this response (sent by the next one).
    pub deferred: usize,
    /// The rooms of `rooms` other than left ones, most wanted first (subscriptions, then lists
    /// by position): the order a response is filled in.
    pub order: Vec<String>,
}

impl Plan {
    /// Takes a planned room out of this response (it did not fit). The next response must send
    /// it whole (`initial`) whatever the client had — sending only what changed after this
    /// response's position would skip what this one left out — so the connection's record keeps
    /// it only as [`DEFERRED`] when the client had it (a departure is then still told), and
    /// forgets it otherwise. Left rooms are never deferred (the departure is reported once).
    pub fn defer(&mut self, room_id: &str) {
        let Some(planned) = self.rooms.get(room_id) else { return };
        if planned.send == Send::Left {
            return;
        }
        let had = planned.had;
        self.rooms.remove(room_id);
        self.order.retain(|r| r != room_id);
        if had {
            if let Some(s) = self.sent.iter_mut().find(|s| s.room_id == room_id) {
                s.membership = DEFERRED.to_owned();
            }
        } else {
            self.sent.retain(|s| s.room_id != room_id);
        }
        self.deferred += 1;
    }
}

/// Distinct room configurations whose digest one plan remembers (more are digested per room).
const KEYS_REMEMBERED_MAX: usize = 16;

/// Decides the response's rooms.
///
/// `rooms` are the user's joined, invited and knocked rooms; `left` those whose departure the
/// client has not seen (membership `leave`/`ban` after the position). `subscriptions` must
/// name only rooms in `rooms`.
pub fn plan(
    rooms: &[RoomFacts],
    left: &[(String, String)],
    lists: &BTreeMap<String, ListRequest>,
    subscriptions: &BTreeMap<String, RoomConfig>,
    previously_sent: &[SentRoom],
) -> Plan {
    let mut out = Plan::default();
    let mut order: Vec<&RoomFacts> = rooms.iter().collect();
    // Most recent activity first; the room ID breaks ties so the order is stable.
    order.sort_by(|a, b| b.bump_stamp.cmp(&a.bump_stamp).then_with(|| a.room_id.cmp(&b.room_id)));
    let facts: HashMap<&str, &RoomFacts> = rooms.iter().map(|r| (r.room_id.as_str(), r)).collect();
    let mut wanted: BTreeMap<String, RoomConfig> = BTreeMap::new();
    // Rooms in the order they should be filled in when the response is full: subscriptions
    // first (the room the user opened), then lists by position.
    let mut priority: Vec<String> = Vec::new();
    for (room_id, config) in subscriptions {
        if facts.contains_key(room_id.as_str()) {
            wanted.entry(room_id.clone()).or_default().merge(config);
            priority.push(room_id.clone());
        }
    }
    let mut by_position: Vec<(u64, String)> = Vec::new();
    for (name, list) in lists {
        let filtered: Vec<&&RoomFacts> = order.iter().filter(|r| list.filters.admits(r)).collect();
        out.counts.insert(name.clone(), filtered.len() as u64);
        let mut in_range = Vec::new();
        let mut seen = BTreeSet::new();
        for &(start, end) in &list.ranges {
            let Ok(start) = usize::try_from(start) else { continue };
            let end = usize::try_from(end).unwrap_or(usize::MAX);
            if start >= filtered.len() {
                continue;
            }
            let end = end.min(filtered.len() - 1);
            for (i, room) in filtered.iter().enumerate().take(end + 1).skip(start) {
                // A connection remembers a bounded number of rooms; ranges beyond that are cut
                // (rooms already wanted by another list or a subscription still count once).
                if wanted.len() >= limits::ROOMS_PER_CONNECTION_MAX && !wanted.contains_key(&room.room_id) {
                    break;
                }
                if seen.insert(i) {
                    in_range.push(room.room_id.clone());
                    wanted.entry(room.room_id.clone()).or_default().merge(&list.config);
                    by_position.push((i as u64, room.room_id.clone()));
                }
            }
        }
        out.list_rooms.insert(name.clone(), in_range);
    }
    by_position.sort();
    priority.extend(by_position.into_iter().map(|(_, id)| id));

    let sent_before: HashMap<&str, &SentRoom> =
        previously_sent.iter().map(|s| (s.room_id.as_str(), s)).collect();
    let mut fresh = 0usize;
    let mut done = BTreeSet::new();
    // Most rooms share their list's configuration: its digest is made once, not per room.
    let mut keys: Vec<(&RoomConfig, String)> = Vec::new();
    for room_id in priority {
        if !done.insert(room_id.clone()) {
            continue;
        }
        let (Some(config), Some(room)) = (wanted.get(&room_id), facts.get(room_id.as_str())) else {
            continue;
        };
        let key = match keys.iter().find(|(c, _)| *c == config) {
            Some((_, k)) => k.clone(),
            None => {
                let k = config.key();
                if keys.len() < KEYS_REMEMBERED_MAX {
                    keys.push((config, k.clone()));
                }
                k
            }
        };
        let limit = config.timeline_limit.min(limits::TIMELINE_LIMIT_MAX);
        let (send, expanded) = match sent_before.get(room_id.as_str()) {
            Some(s) if s.membership == room.membership => {
                // The stored key is of the state asked for then and the limit then: a change of
                // the limit alone is no reason to send the state again.
                let same_state = s.config == key
                    || s.timeline_limit.is_some_and(|old| config.key_with_limit(old) == s.config);
                let expanded =
                    s.timeline_limit.is_some_and(|old| limit > old.min(limits::TIMELINE_LIMIT_MAX));
                (if same_state { Send::Incremental } else { Send::StateAgain }, expanded)
            }
            _ => (Send::Initial, false),
        };
        if send != Send::Incremental || expanded {
            if fresh >= limits::FRESH_ROOMS_PER_RESPONSE_MAX {
                // Like `Plan::defer`: the next response sends it whole (a record kept as it was
                // would make it `StateAgain`, whose timeline starts after this response).
                if let Some(s) = sent_before.get(room_id.as_str()) {
                    out.sent.push(SentRoom { membership: DEFERRED.to_owned(), ..(*s).clone() });
                }
                out.deferred += 1;
                continue;
            }
            fresh += 1;
        }
        out.sent.push(SentRoom {
            room_id: room_id.clone(),
            membership: room.membership.clone(),
            config: key,
            timeline_limit: Some(limit),
        });
        out.order.push(room_id.clone());
        out.rooms.insert(
            room_id.clone(),
            PlannedRoom {
                send,
                expanded,
                had: sent_before.contains_key(room_id.as_str()),
                membership: room.membership.clone(),
                config: config.clone(),
                bump_stamp: room.bump_stamp,
            },
        );
    }
    for (room_id, membership) in left {
        if sent_before.contains_key(room_id.as_str()) {
            out.rooms.insert(
                room_id.clone(),
                PlannedRoom {
                    send: Send::Left,
                    expanded: false,
                    had: true,
                    membership: membership.clone(),
                    config: RoomConfig {
                        required_state: vec![],
                        timeline_limit: limits::LEFT_TIMELINE_LIMIT,
                    },
                    bump_stamp: 0,
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str, membership: &str, bump: u64) -> RoomFacts {
        RoomFacts {
            room_id: id.into(),
            membership: membership.into(),
            bump_stamp: bump,
            ..Default::default()
        }
    }

    fn list(start: u64, end: u64, limit: u64) -> ListRequest {
        ListRequest {
            ranges: vec![(start, end)],
            config: RoomConfig {
                required_state: vec![("m.room.name".into(), "".into())],
                timeline_limit: limit,
            },
            filters: ListFilters::default(),
        }
    }

    fn lists(l: ListRequest) -> BTreeMap<String, ListRequest> {
        [("all".to_owned(), l)].into()
    }

    #[test]
    fn lists_sort_by_recency_and_cut_ranges() {
        let rooms = [room("!a", "join", 5), room("!b", "join", 9), room("!c", "invite", 7)];
        let p = plan(&rooms, &[], &lists(list(0, 1, 1)), &BTreeMap::new(), &[]);
        assert_eq!(p.counts["all"], 3);
        assert_eq!(p.list_rooms["all"], ["!b", "!c"]);
        assert!(p.rooms.values().all(|r| r.send == Send::Initial));
        assert_eq!(p.sent.len(), 2);
        // Huge and inverted ranges are harmless.
        let p = plan(&rooms, &[], &lists(list(0, u64::MAX, 1)), &BTreeMap::new(), &[]);
        assert_eq!(p.list_rooms["all"], ["!b", "!c", "!a"]);
        let p = plan(&rooms, &[], &lists(list(7, 9, 1)), &BTreeMap::new(), &[]);
        assert!(p.list_rooms["all"].is_empty() && p.rooms.is_empty());
    }

    #[test]
    fn known_rooms_are_incremental_until_config_or_membership_changes() {
        let rooms = [room("!a", "join", 5), room("!b", "invite", 9)];
        let first = plan(&rooms, &[], &lists(list(0, 9, 1)), &BTreeMap::new(), &[]);
        let again = plan(&rooms, &[], &lists(list(0, 9, 1)), &BTreeMap::new(), &first.sent);
        assert!(again.rooms.values().all(|r| r.send == Send::Incremental));
        let mut other_state = list(0, 9, 1);
        other_state.config.required_state.push(("m.room.topic".into(), "".into()));
        let more = plan(&rooms, &[], &lists(other_state), &BTreeMap::new(), &first.sent);
        assert!(more.rooms.values().all(|r| r.send == Send::StateAgain && !r.expanded));
        let joined = [room("!a", "join", 5), room("!b", "join", 10)];
        let p = plan(&joined, &[], &lists(list(0, 9, 1)), &BTreeMap::new(), &first.sent);
        assert_eq!(p.rooms["!b"].send, Send::Initial);
        assert_eq!(p.rooms["!a"].send, Send::Incremental);
    }

    #[test]
    fn a_larger_timeline_limit_expands_the_timeline_without_sending_the_state_again() {
        let rooms = [room("!a", "join", 5), room("!b", "join", 9)];
        let first = plan(&rooms, &[], &lists(list(0, 9, 1)), &BTreeMap::new(), &[]);
        assert!(first.sent.iter().all(|s| s.timeline_limit == Some(1)));
        // A subscription raises one room's limit: that room expands, the other stays as it was.
        let subs: BTreeMap<String, RoomConfig> = [("!a".to_owned(), list(0, 0, 20).config)].into();
        let p = plan(&rooms, &[], &lists(list(0, 9, 1)), &subs, &first.sent);
        assert_eq!((p.rooms["!a"].send, p.rooms["!a"].expanded), (Send::Incremental, true));
        assert_eq!((p.rooms["!b"].send, p.rooms["!b"].expanded), (Send::Incremental, false));
        let a = p.sent.iter().find(|s| s.room_id == "!a").unwrap();
        assert_eq!(a.timeline_limit, Some(20));
        // Once sent with 20, asking for 20 again is plain incremental; 10 too (fewer is no news).
        let again = plan(&rooms, &[], &lists(list(0, 9, 1)), &subs, &p.sent);
        assert!(!again.rooms["!a"].expanded && again.rooms["!a"].send == Send::Incremental);
        let fewer = plan(&rooms, &[], &lists(list(0, 9, 10)), &BTreeMap::new(), &p.sent);
        assert_eq!((fewer.rooms["!a"].send, fewer.rooms["!a"].expanded), (Send::Incremental, false));
        // Beyond the server's cap nothing more comes, so nothing expands.
        let capped = plan(&rooms, &[], &lists(list(0, 9, limits::TIMELINE_LIMIT_MAX)), &BTreeMap::new(), &[]);
        let over = plan(&rooms, &[], &lists(list(0, 9, 1_000)), &BTreeMap::new(), &capped.sent);
        assert!(over.rooms.values().all(|r| !r.expanded));
        // Records from before timeline limits were kept: the state again, never "expanded".
        let old: Vec<SentRoom> =
            first.sent.iter().map(|s| SentRoom { timeline_limit: None, ..s.clone() }).collect();
        let p = plan(&rooms, &[], &lists(list(0, 9, 20)), &BTreeMap::new(), &old);
        assert!(p.rooms.values().all(|r| r.send == Send::StateAgain && !r.expanded));
        // A changed state and a larger limit together: both.
        let mut both = list(0, 9, 20);
        both.config.required_state.push(("m.room.topic".into(), "".into()));
        let p = plan(&rooms, &[], &lists(both), &BTreeMap::new(), &first.sent);
        assert!(p.rooms.values().all(|r| r.send == Send::StateAgain && r.expanded));
    }

    #[test]
    fn subscriptions_merge_with_lists_and_left_rooms_are_reported_once() {
        let rooms = [room("!a", "join", 5), room("!b", "join", 9)];
        let sub = RoomConfig { required_state: vec![("m.room.topic".into(), "".into())], timeline_limit: 20 };
        let subs: BTreeMap<String, RoomConfig> =
            [("!a".to_owned(), sub), ("!zz".to_owned(), RoomConfig::default())].into();
        let p = plan(&rooms, &[], &lists(list(0, 0, 1)), &subs, &[]);
        assert_eq!(p.rooms.len(), 2, "unknown subscriptions are ignored");
        assert_eq!(p.rooms["!a"].config.timeline_limit, 20);
        let gone = plan(
            &rooms[1..],
            &[("!a".into(), "leave".into())],
            &lists(list(0, 0, 1)),
            &BTreeMap::new(),
            &p.sent,
        );
        assert_eq!(gone.rooms["!a"].send, Send::Left);
        assert!(gone.sent.iter().all(|s| s.room_id != "!a"));
    }

    #[test]
    fn filters_and_the_fresh_room_limit() {
        let mut rooms: Vec<RoomFacts> = (0..(limits::FRESH_ROOMS_PER_RESPONSE_MAX as u64 + 5))
            .map(|i| room(&format!("!r{i:04}"), "join", i))
            .collect();
        rooms[0].is_dm = true;
        rooms[1].membership = "invite".into();
        let mut l = list(0, u64::MAX, 1);
        l.filters.is_dm = Some(true);
        let p = plan(&rooms, &[], &lists(l.clone()), &BTreeMap::new(), &[]);
        assert_eq!(p.counts["all"], 1);
        l.filters = ListFilters { is_invite: Some(false), ..Default::default() };
        let p = plan(&rooms, &[], &lists(l), &BTreeMap::new(), &[]);
        assert_eq!(p.counts["all"], rooms.len() as u64 - 1);
        assert_eq!(p.rooms.len(), limits::FRESH_ROOMS_PER_RESPONSE_MAX);
        assert_eq!(p.deferred, 4);
    }

    #[test]
    fn deferred_rooms_are_sent_whole_next_time_and_their_departures_told() {
        let rooms = [room("!a", "join", 5), room("!b", "join", 9)];
        let first = plan(&rooms, &[], &lists(list(0, 9, 1)), &BTreeMap::new(), &[]);
        assert_eq!(first.order, ["!b", "!a"], "filled in list order");
        let mut again = plan(&rooms, &[], &lists(list(0, 9, 1)), &BTreeMap::new(), &first.sent);
        assert_eq!(again.rooms["!a"].send, Send::Incremental);
        again.defer("!a");
        assert_eq!(again.deferred, 1);
        assert!(!again.rooms.contains_key("!a") && again.order == ["!b"]);
        // The client had it: kept as deferred (not forgotten), so a departure is still told.
        assert!(again.sent.iter().any(|s| s.room_id == "!a" && s.membership == DEFERRED));
        let next = plan(&rooms, &[], &lists(list(0, 9, 1)), &BTreeMap::new(), &again.sent);
        assert_eq!(next.rooms["!a"].send, Send::Initial);
        assert_eq!(next.rooms["!b"].send, Send::Incremental);
        let left = plan(
            &rooms[1..],
            &[("!a".into(), "leave".into())],
            &lists(list(0, 9, 1)),
            &BTreeMap::new(),
            &again.sent,
        );
        assert_eq!(left.rooms["!a"].send, Send::Left);
        // A room the client never had is forgotten when deferred.
        let mut fresh = plan(&rooms, &[], &lists(list(0, 9, 1)), &BTreeMap::new(), &[]);
        fresh.defer("!a");
        assert!(fresh.sent.iter().all(|s| s.room_id != "!a"));
        // A changed configuration deferred by the fresh-room limit is not kept either.
        let mut other_state = list(0, 9, 1);
        other_state.config.required_state.push(("m.room.topic".into(), "".into()));
        let more = plan(&rooms, &[], &lists(other_state.clone()), &BTreeMap::new(), &first.sent);
        assert_eq!(more.rooms["!a"].send, Send::StateAgain);
        let mut more = more;
        more.defer("!a");
        let next = plan(&rooms, &[], &lists(other_state), &BTreeMap::new(), &more.sent);
        assert_eq!(next.rooms["!a"].send, Send::Initial);
        // Departures are not deferred.
        let mut gone = plan(
            &rooms[1..],
            &[("!a".into(), "leave".into())],
            &lists(list(0, 9, 1)),
            &BTreeMap::new(),
            &first.sent,
        );
        gone.defer("!a");
        assert_eq!(gone.rooms["!a"].send, Send::Left);
        assert_eq!(gone.deferred, 0);
    }

    #[test]
    fn space_and_tag_filters() {
        let mut rooms = vec![room("!a", "join", 1), room("!b", "join", 2), room("!c", "join", 3)];
        rooms[0].spaces = vec!["!space".into()];
        rooms[1].tags = vec!["m.favourite".into()];
        rooms[2].tags = vec!["m.favourite".into(), "m.lowpriority".into()];
        let with = |f: ListFilters| {
            let mut l = list(0, 9, 1);
            l.filters = f;
            plan(&rooms, &[], &lists(l), &BTreeMap::new(), &[]).list_rooms["all"].clone()
        };
        assert_eq!(with(ListFilters { spaces: vec!["!space".into()], ..Default::default() }), ["!a"]);
        assert_eq!(
            with(ListFilters { tags: vec!["m.favourite".into()], ..Default::default() }),
            ["!c", "!b"]
        );
        let fav_not_low = ListFilters {
            tags: vec!["m.favourite".into()],
            not_tags: vec!["m.lowpriority".into()],
            ..Default::default()
        };
        assert_eq!(with(fav_not_low), ["!b"]);
    }

    #[test]
    fn required_state_patterns() {
        let c = RoomConfig {
            required_state: vec![
                ("m.room.member".into(), "$ME".into()),
                ("m.room.member".into(), "$LAZY".into()),
                ("m.space.child".into(), "*".into()),
                ("*".into(), "".into()),
            ],
            timeline_limit: 1,
        };
        assert!(c.wants_state("m.room.member", "@me:x", "@me:x"));
        assert!(!c.wants_state("m.room.member", "@other:x", "@me:x"));
        assert!(c.wants_state("m.space.child", "!any:x", "@me:x"));
        assert!(c.wants_state("m.room.topic", "", "@me:x"));
        assert!(c.wants_lazy_members());
        let mut d = c.clone();
        d.required_state.reverse();
        assert_eq!(c.key(), d.key(), "order does not matter");
    }

    #[test]
    fn config_keys_are_small_and_tell_configs_apart() {
        let long = "x".repeat(100_000);
        let c = RoomConfig { required_state: vec![(long.clone(), long)], timeline_limit: 1 };
        assert_eq!(c.key().len(), 32, "a fixed-size digest, whatever the request's size");
        let a = RoomConfig { required_state: vec![("ab".into(), "c".into())], timeline_limit: 1 };
        let b = RoomConfig { required_state: vec![("a".into(), "bc".into())], timeline_limit: 1 };
        assert_ne!(a.key(), b.key());
        let mut more = a.clone();
        more.timeline_limit = 2;
        assert_ne!(a.key(), more.key());
        let mut dup = a.clone();
        dup.merge(&a);
        assert_eq!(a.key(), dup.key());
    }
}
