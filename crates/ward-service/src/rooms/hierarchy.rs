//! `GET /rooms/{roomId}/hierarchy`: the rooms of a space, depth first.
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1roomsroomidhierarchy>.
//! Only `m.space.child` state of spaces (rooms whose create event has `type: m.space`) is
//! followed; a child without `via` is no child. Children are ordered by their `order` string,
//! then by the child event's timestamp, then by room ID. A room is listed — and walked into —
//! only if the user may see it: joined or invited, a `public`, `knock` or `knock_restricted`
//! room, a `restricted` one whose allowed rooms include one they are in, or `world_readable`
//! history. Rooms this server does not know are skipped (there is no federation).
//!
//! Each page walks the tree again from the top (the token is the number of rooms already
//! returned, plus the `max_depth` and `suggested_only` it was made with); the walk visits at
//! most [`HIERARCHY_ROOMS_VISITED_MAX`] rooms, which bounds the work of every request.

use std::collections::HashSet;

use ruma::events::StateEventType;
use serde_json::{Map, Value, json};

use super::directory::PublicRoom;
use super::parse_room_id;
use crate::{Authed, Error, Result, Services};

/// Rooms one page may hold.
pub const HIERARCHY_LIMIT_DEFAULT: usize = 50;
pub const HIERARCHY_LIMIT_MAX: usize = 100;
/// How deep the walk goes unless asked for less (and at most).
pub const HIERARCHY_DEPTH_MAX: usize = 20;
/// Rooms one walk looks at, whatever the page size.
pub const HIERARCHY_ROOMS_VISITED_MAX: usize = 2000;
/// `order` strings longer than this, or with characters outside 0x20–0x7E, are ignored.
const ORDER_MAX_CHARS: usize = 50;

#[derive(Debug, Clone, Default)]
pub struct HierarchyQuery {
    pub from: Option<String>,
    pub limit: Option<usize>,
    pub max_depth: Option<usize>,
    pub suggested_only: bool,
}

#[derive(Debug, Clone, Default)]
pub struct HierarchyRoom {
    pub summary: PublicRoom,
    pub room_version: String,
    pub encryption: Option<String>,
    pub allowed_room_ids: Vec<String>,
    /// The space's `m.space.child` events, stripped, with `origin_server_ts`.
    pub children_state: Vec<Map<String, Value>>,
}

#[derive(Debug, Clone, Default)]
pub struct HierarchyPage {
    pub rooms: Vec<HierarchyRoom>,
    pub next_batch: Option<String>,
}

/// A child link: the child room, its sort key and whether it is suggested.
struct Child {
    room_id: String,
    order: Option<String>,
    ts: u64,
    suggested: bool,
}

fn token(skip: usize, max_depth: usize, suggested_only: bool) -> String {
    format!("h{skip}_{max_depth}_{}", u8::from(suggested_only))
}

fn parse_token(t: &str, max_depth: usize, suggested_only: bool) -> Result<usize> {
    let bad = || Error::InvalidParam(format!("`{t}` is not a hierarchy token of this server"));
    let mut parts = t.strip_prefix('h').ok_or_else(bad)?.split('_');
    let skip: usize = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let depth: usize = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let suggested = parts.next().ok_or_else(bad)? == "1";
    if parts.next().is_some() {
        return Err(bad());
    }
    if depth != max_depth || suggested != suggested_only {
        return Err(Error::InvalidParam("suggested_only and max_depth cannot change while paging".into()));
    }
    Ok(skip)
}

fn valid_order(o: &str) -> bool {
    o.chars().count() <= ORDER_MAX_CHARS && o.chars().all(|c| (' '..='~').contains(&c))
}

impl Services {
    pub async fn hierarchy(
        &self,
        authed: &Authed,
        room_id: &str,
        q: HierarchyQuery,
    ) -> Result<HierarchyPage> {
        let root = parse_room_id(room_id)?;
        if q.limit == Some(0) {
            return Err(Error::InvalidParam("limit must be greater than 0".into()));
        }
        let limit = q.limit.unwrap_or(HIERARCHY_LIMIT_DEFAULT).min(HIERARCHY_LIMIT_MAX);
        let max_depth = q.max_depth.unwrap_or(HIERARCHY_DEPTH_MAX).min(HIERARCHY_DEPTH_MAX);
        let skip = match &q.from {
            Some(t) => parse_token(t, max_depth, q.suggested_only)?,
            None => 0,
        };
        if self.store.room(root.as_str()).await?.is_none()
            || !self.may_preview(root.as_str(), &authed.user_id).await?
        {
            return Err(Error::Forbidden("you may not view this room".into()));
        }
        // Depth-first: a stack of (room, depth), children pushed in reverse order.
        let mut stack = vec![(root.to_string(), 0usize)];
        let mut seen: HashSet<String> = HashSet::new();
        let mut listed = 0usize;
        let mut rooms = Vec::new();
        let mut more = false;
        while let Some((room, depth)) = stack.pop() {
            if !seen.insert(room.clone()) {
                continue;
            }
            if seen.len() > HIERARCHY_ROOMS_VISITED_MAX {
                break;
            }
            if depth > 0
                && (self.store.room(&room).await?.is_none()
                    || !self.may_preview(&room, &authed.user_id).await?)
            {
                continue;
            }
            if listed >= skip + limit {
                more = true;
                break;
            }
            let is_space =
                self.create_content(&room).await?.get("type").and_then(Value::as_str) == Some("m.space");
            let (children, children_state) =
                if is_space { self.children(&room).await? } else { (vec![], vec![]) };
            if listed >= skip {
                rooms.push(self.hierarchy_room(&room, children_state).await?);
            }
            listed += 1;
            if depth < max_depth {
                for c in children.iter().rev() {
                    if !q.suggested_only || c.suggested {
                        stack.push((c.room_id.clone(), depth + 1));
                    }
                }
            }
        }
        let next_batch = more.then(|| token(skip + rooms.len(), max_depth, q.suggested_only));
        Ok(HierarchyPage { rooms, next_batch })
    }

    async fn create_content(&self, room_id: &str) -> Result<Value> {
        Ok(self
            .state_pdu(room_id, &StateEventType::RoomCreate, "")
            .await?
            .map(|p| p.content_value())
            .unwrap_or_default())
    }

    /// Whether the user may see a room's summary (the spec's list for the hierarchy).
    async fn may_preview(&self, room_id: &str, user_id: &str) -> Result<bool> {
        if let Some(m) = self.store.membership(room_id, user_id).await?
            && (m.membership == "join" || m.membership == "invite")
        {
            return Ok(true);
        }
        let content = |kind: StateEventType| async move {
            Ok::<_, Error>(
                self.state_pdu(room_id, &kind, "").await?.map(|p| p.content_value()).unwrap_or_default(),
            )
        };
        let visibility = content(StateEventType::RoomHistoryVisibility).await?;
        if visibility.get("history_visibility").and_then(Value::as_str) == Some("world_readable") {
            return Ok(true);
        }
        let rules = content(StateEventType::RoomJoinRules).await?;
        match rules.get("join_rule").and_then(Value::as_str) {
            Some("public" | "knock" | "knock_restricted") => Ok(true),
            Some("restricted") => {
                for allowed in allowed_rooms(&rules) {
                    if self.store.membership(&allowed, user_id).await?.is_some_and(|m| m.membership == "join")
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// A space's valid children in order, and its `m.space.child` events as stripped state.
    async fn children(&self, room_id: &str) -> Result<(Vec<Child>, Vec<Map<String, Value>>)> {
        let ids: Vec<String> = self
            .store
            .current_state(room_id)
            .await?
            .into_iter()
            .filter(|e| e.kind == "m.space.child")
            .map(|e| e.event_id)
            .collect();
        let mut children = Vec::new();
        let mut stripped = Vec::new();
        for e in self.store.events_by_id(&ids).await? {
            let pdu = super::to_pdu(&e)?;
            let content = pdu.content_value();
            let via_ok = content.get("via").and_then(Value::as_array).is_some_and(|v| !v.is_empty());
            let Some(child) = pdu.state_key.clone().filter(|k| via_ok && k.starts_with('!')) else {
                continue;
            };
            let ts = u64::from(pdu.origin_server_ts.0);
            stripped.push(
                json!({
                    "type": "m.space.child",
                    "state_key": child,
                    "sender": pdu.sender.to_string(),
                    "content": content,
                    "origin_server_ts": ts,
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            );
            children.push(Child {
                order: content
                    .get("order")
                    .and_then(Value::as_str)
                    .filter(|o| valid_order(o))
                    .map(str::to_owned),
                suggested: content.get("suggested").and_then(Value::as_bool).unwrap_or(false),
                room_id: child,
                ts,
            });
        }
        // Children with an `order` come first, by it; then by timestamp, then room ID.
        children.sort_by(|a, b| {
            let key = |c: &Child| (c.order.is_none(), c.order.clone(), c.ts, c.room_id.clone());
            key(a).cmp(&key(b))
        });
        Ok((children, stripped))
    }

    async fn hierarchy_room(
        &self,
        room_id: &str,
        children_state: Vec<Map<String, Value>>,
    ) -> Result<HierarchyRoom> {
        let summary = self.public_room(room_id).await?;
        let room_version = self.store.room(room_id).await?.map(|r| r.room_version).unwrap_or_default();
        let encryption = self
            .state_pdu(room_id, &StateEventType::RoomEncryption, "")
            .await?
            .and_then(|p| p.content_value().get("algorithm").and_then(Value::as_str).map(str::to_owned));
        let rules =
            self.state_pdu(room_id, &StateEventType::RoomJoinRules, "").await?.map(|p| p.content_value());
        let allowed_room_ids = match &rules {
            Some(r)
                if matches!(
                    r.get("join_rule").and_then(Value::as_str),
                    Some("restricted" | "knock_restricted")
                ) =>
            {
                allowed_rooms(r)
            }
            _ => vec![],
        };
        Ok(HierarchyRoom { summary, room_version, encryption, allowed_room_ids, children_state })
    }
}

/// The rooms a restricted join rule names.
fn allowed_rooms(join_rules: &Value) -> Vec<String> {
    join_rules
        .get("allow")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|c| c.get("type").and_then(Value::as_str) == Some("m.room_membership"))
                .filter_map(|c| c.get("room_id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_keep_their_parameters() {
        let t = super::token(7, 3, true);
        assert_eq!(super::parse_token(&t, 3, true).unwrap(), 7);
        assert!(super::parse_token(&t, 4, true).is_err());
        assert!(super::parse_token(&t, 3, false).is_err());
        for bad in ["", "h", "h1", "h1_2", "x1_2_0", "h1_2_0_9", "h-1_2_0"] {
            assert!(super::parse_token(bad, 2, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_strings() {
        assert!(super::valid_order("a"));
        assert!(!super::valid_order("ä"));
        assert!(!super::valid_order(&"a".repeat(51)));
    }
}
