//! `GET /sync`: what changed in the user's rooms since a stream position.
//!
//! Initial sync (no `since`) and rooms joined since `since` get their latest timeline and the
//! full state at its start; other joined rooms get the events after `since` (the newest
//! `timeline_limit`, `limited` with a `prev_batch` if there were more, and then the state that
//! changed in the gap). A sync with nothing to report waits on the in-process stream position
//! (never by polling the database) until something happens or the timeout ends.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;
use ward_store::{Direction, Membership, StoredEvent};

use super::read::{ClientEvent, parse_token, token};
use super::room_limits;
use crate::{Authed, Result, Services};

#[derive(Debug, Clone, Default)]
pub struct SyncInput {
    pub since: Option<String>,
    pub timeout_ms: u64,
    pub full_state: bool,
    pub timeline_limit: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub events: Vec<ClientEvent>,
    pub limited: bool,
    pub prev_batch: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct JoinedRoom {
    pub timeline: Timeline,
    pub state: Vec<ClientEvent>,
    pub joined_member_count: u64,
    pub invited_member_count: u64,
    pub heroes: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct InvitedRoom {
    /// Stripped state: `type`, `state_key`, `content`, `sender` only.
    pub invite_state: Vec<ClientEvent>,
}

#[derive(Debug, Clone, Default)]
pub struct LeftRoom {
    pub timeline: Timeline,
    pub state: Vec<ClientEvent>,
}

#[derive(Debug, Clone, Default)]
pub struct SyncOutput {
    pub next_batch: String,
    pub join: BTreeMap<String, JoinedRoom>,
    pub invite: BTreeMap<String, InvitedRoom>,
    pub leave: BTreeMap<String, LeftRoom>,
}

impl SyncOutput {
    fn is_empty(&self) -> bool {
        self.join.is_empty() && self.invite.is_empty() && self.leave.is_empty()
    }
}

/// State types shown to invitees before they join.
const STRIPPED_STATE_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];

/// Heroes listed in a room summary.
const HEROES_MAX: usize = 5;

fn stripped(e: &StoredEvent) -> Option<ClientEvent> {
    let json: Value = serde_json::from_str(&e.json).ok()?;
    let mut m = ClientEvent::new();
    for k in ["type", "state_key", "content", "sender"] {
        m.insert(k.into(), json.get(k)?.clone());
    }
    Some(m)
}

impl Services {
    pub async fn sync(&self, authed: &Authed, input: SyncInput) -> Result<SyncOutput> {
        let since = input.since.as_deref().map(parse_token).transpose()?;
        let limit = input
            .timeline_limit
            .unwrap_or(room_limits::SYNC_TIMELINE_LIMIT_DEFAULT)
            .clamp(1, room_limits::SYNC_TIMELINE_LIMIT_MAX);
        let timeout = Duration::from_millis(input.timeout_ms.min(self.settings.sync_timeout_max_ms));
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.stream.subscribe();
        loop {
            let target = *rx.borrow_and_update();
            // A token from the future (e.g. a restored backup) counts as "now".
            let since = since.map(|s| s.min(target));
            let out = self.sync_once(authed, since, target, limit, input.full_state).await?;
            if since.is_none() || input.full_state || !out.is_empty() {
                return Ok(out);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out (or the server is shutting down): report "nothing new".
                _ => return Ok(out),
            }
        }
    }

    async fn sync_once(
        &self,
        authed: &Authed,
        since: Option<u64>,
        target: u64,
        limit: usize,
        full_state: bool,
    ) -> Result<SyncOutput> {
        let mut out = SyncOutput { next_batch: token(target), ..Default::default() };
        for m in self.store.memberships_of_user(&authed.user_id).await? {
            if m.stream_pos > target {
                continue; // arrived after this sync's snapshot; the next sync reports it
            }
            let changed_since = since.is_none_or(|s| m.stream_pos > s);
            match m.membership.as_str() {
                "join" => {
                    let room = if changed_since || full_state {
                        Some(self.full_room(&m.room_id, target, limit).await?)
                    } else {
                        self.incremental_room(&m.room_id, since.unwrap_or(0), target, limit).await?
                    };
                    if let Some(mut room) = room {
                        self.summarise(&m.room_id, &authed.user_id, &mut room).await?;
                        out.join.insert(m.room_id.clone(), room);
                    }
                }
                "invite" if changed_since => {
                    out.invite.insert(m.room_id.clone(), self.invited_room(&m).await?);
                }
                "leave" | "ban" if since.is_some() && changed_since => {
                    let left =
                        self.incremental_room(&m.room_id, since.unwrap_or(0), m.stream_pos, limit).await?;
                    let left = left.unwrap_or_default();
                    out.leave
                        .insert(m.room_id.clone(), LeftRoom { timeline: left.timeline, state: left.state });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The newest `limit` events at or before `target`, and the full state before them.
    async fn full_room(&self, room_id: &str, target: u64, limit: usize) -> Result<JoinedRoom> {
        let mut events = self
            .store
            .room_events(room_id, target.saturating_add(1), None, Direction::Backward, limit + 1)
            .await?;
        let limited = events.len() > limit;
        events.truncate(limit);
        events.reverse();
        let state_pos = events.first().map_or(target, |e| e.stream_pos.saturating_sub(1));
        let entries = self.store.state_at(room_id, state_pos).await?;
        let ids: Vec<String> = entries.into_iter().map(|e| e.event_id).collect();
        let state = self.store.events_by_id(&ids).await?;
        Ok(JoinedRoom {
            timeline: Timeline {
                prev_batch: Some(token(state_pos)),
                limited,
                events: Self::client_events(&events, false)?,
            },
            state: Self::client_events(&state, false)?,
            ..Default::default()
        })
    }

    /// Events in `(since, target]`; `None` if there are none.
    async fn incremental_room(
        &self,
        room_id: &str,
        since: u64,
        target: u64,
        limit: usize,
    ) -> Result<Option<JoinedRoom>> {
        let mut events = self
            .store
            .room_events(room_id, target.saturating_add(1), Some(since), Direction::Backward, limit + 1)
            .await?;
        if events.is_empty() {
            return Ok(None);
        }
        let limited = events.len() > limit;
        events.truncate(limit);
        events.reverse();
        let first = events.first().map_or(target, |e| e.stream_pos.saturating_sub(1));
        let mut state = Vec::new();
        if limited {
            // State that changed in the gap between `since` and the timeline.
            let before: HashMap<_, _> = Self::state_map(&self.store.state_at(room_id, since).await?);
            let at_start = self.store.state_at(room_id, first).await?;
            let changed: Vec<String> = at_start
                .into_iter()
                .filter(|e| before.get(&(e.kind.clone(), e.state_key.clone())) != Some(&e.event_id))
                .map(|e| e.event_id)
                .collect();
            state = self.store.events_by_id(&changed).await?;
        }
        Ok(Some(JoinedRoom {
            timeline: Timeline {
                prev_batch: Some(token(first)),
                limited,
                events: Self::client_events(&events, false)?,
            },
            state: Self::client_events(&state, false)?,
            ..Default::default()
        }))
    }

    async fn invited_room(&self, m: &Membership) -> Result<InvitedRoom> {
        let entries = self.store.current_state(&m.room_id).await?;
        let mut ids: Vec<String> = entries
            .into_iter()
            .filter(|e| STRIPPED_STATE_TYPES.contains(&e.kind.as_str()))
            .map(|e| e.event_id)
            .collect();
        ids.push(m.event_id.clone());
        let events = self.store.events_by_id(&ids).await?;
        Ok(InvitedRoom { invite_state: events.iter().filter_map(stripped).collect() })
    }

    async fn summarise(&self, room_id: &str, me: &str, room: &mut JoinedRoom) -> Result<()> {
        let members = self.store.room_members(room_id).await?;
        room.joined_member_count = members.iter().filter(|m| m.membership == "join").count() as u64;
        room.invited_member_count = members.iter().filter(|m| m.membership == "invite").count() as u64;
        room.heroes = members
            .iter()
            .filter(|m| m.user_id != me && (m.membership == "join" || m.membership == "invite"))
            .take(HEROES_MAX)
            .map(|m| m.user_id.clone())
            .collect();
        Ok(())
    }
}
