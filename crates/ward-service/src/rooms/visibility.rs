//! History visibility: which events of a room a user may see.
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#server-behaviour-7>. Decided per
//! event from the room's `m.room.history_visibility` and the user's membership at that event:
//! members who were joined then see it; `shared` history is visible to anyone who joined at
//! that point or later; `invited` also to those invited at the time; `joined` only to those
//! joined at the time; `world_readable` to all (Ward still lets only people who have been in a
//! room read it). Both histories are short lists read once per request.

use serde_json::Value;
use ward_store::StoredEvent;

use crate::{Result, Services};

/// Membership and visibility changes read per request (a bound, not an expected size).
const HISTORY_EVENTS_MAX: usize = 10_000;

#[derive(Debug, Clone, Default)]
pub(crate) struct Visibility {
    /// (stream position, membership) of the user's member events, oldest first.
    memberships: Vec<(u64, String)>,
    /// (stream position, history_visibility), oldest first.
    visibilities: Vec<(u64, String)>,
}

fn content_str(e: &StoredEvent, key: &str) -> Option<String> {
    let json: Value = serde_json::from_str(&e.json).ok()?;
    json.get("content")?.get(key)?.as_str().map(str::to_owned)
}

impl Visibility {
    fn latest(list: &[(u64, String)], pos: u64) -> Option<&str> {
        list.iter().rev().find(|(p, _)| *p <= pos).map(|(_, v)| v.as_str())
    }

    pub(crate) fn can_see(&self, pos: u64) -> bool {
        // Users always see their own membership events: a client learns of its leave (or of
        // a rejected invite) only through that event.
        if self.memberships.iter().any(|(p, _)| *p == pos) {
            return true;
        }
        let membership = Self::latest(&self.memberships, pos);
        if membership == Some("join") {
            return true;
        }
        match Self::latest(&self.visibilities, pos).unwrap_or("shared") {
            "world_readable" => true,
            "invited" => membership == Some("invite"),
            "joined" => false,
            // "shared", and unknown values (the spec says to treat them as shared).
            _ => self.memberships.iter().any(|(p, m)| *p > pos && m == "join"),
        }
    }

    pub(crate) fn retain(&self, events: &mut Vec<StoredEvent>) {
        events.retain(|e| self.can_see(e.stream_pos));
    }
}

impl Services {
    pub(crate) async fn visibility(&self, room_id: &str, user_id: &str) -> Result<Visibility> {
        let members =
            self.store.state_history(room_id, "m.room.member", Some(user_id), HISTORY_EVENTS_MAX).await?;
        let visibilities = self
            .store
            .state_history(room_id, "m.room.history_visibility", Some(""), HISTORY_EVENTS_MAX)
            .await?;
        Ok(Visibility {
            memberships: members
                .iter()
                .map(|e| (e.stream_pos, content_str(e, "membership").unwrap_or_default()))
                .collect(),
            visibilities: visibilities
                .iter()
                .map(|e| {
                    (e.stream_pos, content_str(e, "history_visibility").unwrap_or_else(|| "shared".into()))
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Visibility;

    fn v(memberships: &[(u64, &str)], visibilities: &[(u64, &str)]) -> Visibility {
        Visibility {
            memberships: memberships.iter().map(|(p, m)| (*p, m.to_string())).collect(),
            visibilities: visibilities.iter().map(|(p, m)| (*p, m.to_string())).collect(),
        }
    }

    #[test]
    fn own_membership_events_are_always_visible() {
        let vis = v(
            &[(10, "invite"), (20, "join"), (30, "leave"), (40, "invite"), (45, "leave")],
            &[(1, "joined")],
        );
        for pos in [10, 20, 30, 40, 45] {
            assert!(vis.can_see(pos), "{pos}");
        }
        assert!(!vis.can_see(35) && !vis.can_see(42));
    }

    #[test]
    fn shared_history_is_visible_to_later_joiners() {
        let vis = v(&[(10, "invite"), (20, "join"), (30, "leave")], &[(1, "shared")]);
        assert!(vis.can_see(5), "joined later: sees earlier shared history");
        assert!(vis.can_see(25));
        assert!(!vis.can_see(35), "after leaving, nothing new");
    }

    #[test]
    fn joined_history_only_while_joined() {
        let vis = v(&[(10, "invite"), (20, "join"), (30, "leave")], &[(1, "joined")]);
        assert!(!vis.can_see(5));
        assert!(!vis.can_see(15), "invited is not joined");
        assert!(vis.can_see(20), "one's own join");
        assert!(vis.can_see(25));
        assert!(!vis.can_see(31));
    }

    #[test]
    fn invited_history_from_the_invite() {
        let vis = v(&[(10, "invite"), (20, "join")], &[(1, "invited")]);
        assert!(!vis.can_see(5));
        assert!(vis.can_see(15));
        assert!(vis.can_see(25));
    }

    #[test]
    fn visibility_changes_apply_from_then_on() {
        let vis = v(&[(50, "join")], &[(1, "shared"), (30, "joined")]);
        assert!(vis.can_see(10), "shared back then, joined later");
        assert!(!vis.can_see(40), "joined-only since 30, and not yet joined");
        assert!(vis.can_see(60));
    }

    #[test]
    fn rejected_invite_sees_nothing_under_shared() {
        let vis = v(&[(10, "invite"), (12, "leave")], &[(1, "shared")]);
        assert!(!vis.can_see(5));
        assert!(!vis.can_see(11));
        let world = v(&[(10, "invite"), (12, "leave")], &[(1, "world_readable")]);
        assert!(world.can_see(5));
    }
}
