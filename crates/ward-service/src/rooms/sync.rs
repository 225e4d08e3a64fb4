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

use super::Positions;
use super::read::{
    ClientEvent, parse_sync_token, parse_to_device_position, sync_token, sync_token_with_to_device, token,
};
use super::room_limits;
use crate::e2ee::DeviceListChanges;
use crate::e2ee::e2ee_limits::TO_DEVICE_PER_SYNC_MAX;
use crate::{Authed, Result, Services};

#[derive(Debug, Clone)]
pub enum FilterInput {
    /// A filter definition given inline.
    Inline(Value),
    /// The ID of a filter stored with `POST /user/{userId}/filter`.
    Id(String),
}

#[derive(Debug, Clone, Default)]
pub struct SyncInput {
    pub since: Option<String>,
    pub timeout_ms: u64,
    pub full_state: bool,
    pub filter: Option<FilterInput>,
    /// The `set_presence` parameter: `online` (the default), `unavailable` or `offline`.
    pub set_presence: Option<String>,
    /// Report the state at the end of each timeline (`state_after`) instead of before it.
    pub use_state_after: bool,
}

/// The parts of a filter Ward applies to sync.
#[derive(Debug, Clone, Default)]
struct SyncFilter {
    timeline_limit: Option<usize>,
    lazy_load_members: bool,
    rooms: Option<Vec<String>>,
    not_rooms: Vec<String>,
    timeline_types: Option<Vec<String>>,
    timeline_not_types: Vec<String>,
    unread_thread_notifications: bool,
    /// Not a filter setting but a request option that shapes the response the same way.
    use_state_after: bool,
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
}

/// Filter type patterns may end in `*`.
fn type_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

impl SyncFilter {
    fn from_json(v: &Value) -> Self {
        let room = v.get("room");
        let timeline = room.and_then(|r| r.get("timeline"));
        let state = room.and_then(|r| r.get("state"));
        SyncFilter {
            timeline_limit: timeline
                .and_then(|t| t.get("limit"))
                .and_then(Value::as_u64)
                .map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
            lazy_load_members: state
                .and_then(|s| s.get("lazy_load_members"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            rooms: strings(room.and_then(|r| r.get("rooms"))),
            not_rooms: strings(room.and_then(|r| r.get("not_rooms"))).unwrap_or_default(),
            timeline_types: strings(timeline.and_then(|t| t.get("types"))),
            timeline_not_types: strings(timeline.and_then(|t| t.get("not_types"))).unwrap_or_default(),
            unread_thread_notifications: timeline
                .and_then(|t| t.get("unread_thread_notifications"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            use_state_after: false,
        }
    }

    fn wants_room(&self, room_id: &str) -> bool {
        self.rooms.as_ref().is_none_or(|r| r.iter().any(|x| x == room_id))
            && !self.not_rooms.iter().any(|x| x == room_id)
    }

    fn wants_event(&self, kind: &str) -> bool {
        self.timeline_types.as_ref().is_none_or(|t| t.iter().any(|p| type_matches(p, kind)))
            && !self.timeline_not_types.iter().any(|p| type_matches(p, kind))
    }
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
    /// Typing and receipts.
    pub ephemeral: Vec<ClientEvent>,
    pub notification_count: u64,
    pub highlight_count: u64,
    /// Per thread root, when the filter asks for `unread_thread_notifications`.
    pub thread_counts: BTreeMap<String, (u64, u64)>,
    /// Room account data (`{type, content}`).
    pub account_data: Vec<ClientEvent>,
    /// The room summary (joined and invited counts, heroes): on fresh rooms and when
    /// membership changed in the timeline; `None` when unchanged.
    pub summary: Option<(u64, u64, Vec<String>)>,
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
    /// Rooms the user knocked on: stripped state, like invites.
    pub knock: BTreeMap<String, InvitedRoom>,
    /// Global account data (`{type, content}`).
    pub account_data: Vec<ClientEvent>,
    /// `m.presence` events of people who share a room (presence enabled only).
    pub presence: Vec<ClientEvent>,
    pub join: BTreeMap<String, JoinedRoom>,
    pub invite: BTreeMap<String, InvitedRoom>,
    pub leave: BTreeMap<String, LeftRoom>,
    /// To-device messages for the syncing device (`{sender, type, content}`).
    pub to_device: Vec<ClientEvent>,
    /// Incremental syncs only.
    pub device_lists: DeviceListChanges,
    /// Always present: clients decide from it whether to upload more keys.
    pub one_time_keys_count: BTreeMap<String, u64>,
    pub unused_fallback_key_types: Vec<String>,
}

impl SyncOutput {
    fn is_empty(&self) -> bool {
        self.join.is_empty()
            && self.invite.is_empty()
            && self.leave.is_empty()
            && self.account_data.is_empty()
            && self.to_device.is_empty()
            && self.device_lists.is_empty()
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
        let since = input.since.as_deref().map(parse_sync_token).transpose()?;
        let to_device_since = input.since.as_deref().map(parse_to_device_position).transpose()?;
        let filter = match &input.filter {
            None => SyncFilter::default(),
            Some(FilterInput::Inline(v)) => SyncFilter::from_json(v),
            // An unknown filter ID falls back to the defaults, as in Synapse.
            Some(FilterInput::Id(id)) => match self.store.filter(&authed.user_id, id).await? {
                Some(text) => SyncFilter::from_json(&serde_json::from_str(&text).unwrap_or_default()),
                None => SyncFilter::default(),
            },
        };
        let filter = SyncFilter { use_state_after: input.use_state_after, ..filter };
        let limit = filter
            .timeline_limit
            .unwrap_or(room_limits::SYNC_TIMELINE_LIMIT_DEFAULT)
            .clamp(1, room_limits::SYNC_TIMELINE_LIMIT_MAX);
        let timeout = Duration::from_millis(input.timeout_ms.min(self.settings.sync_timeout_max_ms));
        let deadline = tokio::time::Instant::now() + timeout;
        if self.settings.presence_enabled {
            let state = input.set_presence.as_deref().unwrap_or("online");
            if state == "online" || state == "unavailable" {
                self.notifier.set_presence(&authed.user_id, state, None, state == "online");
            }
        }
        let mut rx = self.notifier.subscribe();
        loop {
            let target = *rx.borrow_and_update();
            // A token from the future (e.g. a restored backup) counts as "now".
            let since =
                since.map(|s| Positions { stream: s.stream.min(target.stream), ephemeral: s.ephemeral });
            let mut out = self.sync_once(authed, since, target, limit, input.full_state, &filter).await?;
            let to_device_since = to_device_since.map(|p| p.min(target.stream));
            self.sync_e2ee(authed, since.map(|s| s.stream), to_device_since, target, &mut out).await?;
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
        since_positions: Option<Positions>,
        target_positions: Positions,
        limit: usize,
        full_state: bool,
        filter: &SyncFilter,
    ) -> Result<SyncOutput> {
        let since = since_positions.map(|p| p.stream);
        let target = target_positions.stream;
        let mut out = SyncOutput { next_batch: sync_token(target_positions), ..Default::default() };
        // Push rules are read only if some room has new events to count.
        let mut ruleset: Option<ruma::push::Ruleset> = None;
        // Account data: all of it on an initial sync, the changes otherwise.
        let mut room_data: HashMap<String, Vec<ClientEvent>> = HashMap::new();
        let changes = self.store.account_data_changes(&authed.user_id, since.unwrap_or(0), target).await?;
        for entry in changes {
            let mut ev = ClientEvent::new();
            ev.insert("type".into(), Value::String(entry.kind));
            ev.insert("content".into(), serde_json::from_str(&entry.content).unwrap_or_default());
            match entry.room_id {
                Some(room) => room_data.entry(room).or_default().push(ev),
                None => out.account_data.push(ev),
            }
        }
        let has_rules = out.account_data.iter().any(|e| e.get("type") == Some(&Value::from("m.push_rules")));
        if since.is_none() && !has_rules {
            let mut ev = ClientEvent::new();
            ev.insert("type".into(), Value::from("m.push_rules"));
            ev.insert("content".into(), self.push_rules(authed).await?);
            out.account_data.push(ev);
        }
        let memberships = self.store.memberships_of_user(&authed.user_id).await?;
        if self.settings.presence_enabled {
            let mut people = std::collections::BTreeSet::new();
            for m in memberships.iter().filter(|m| m.membership == "join") {
                for other in self.store.room_members(&m.room_id).await? {
                    if other.membership == "join" {
                        people.insert(other.user_id);
                    }
                }
            }
            let since_ephemeral = since_positions.map(|p| p.ephemeral);
            for (user, p) in self.notifier.presence_changes(&people, since_ephemeral) {
                let view = crate::users::PresenceView::from(p);
                let mut content = serde_json::json!({"presence": view.presence});
                if let Some(m) = view.status_msg {
                    content["status_msg"] = Value::from(m);
                }
                if let Some(a) = view.last_active_ago_ms {
                    content["last_active_ago"] = Value::from(a);
                }
                if let Some(c) = view.currently_active {
                    content["currently_active"] = Value::from(c);
                }
                if let Value::Object(ev) =
                    serde_json::json!({"type": "m.presence", "sender": user, "content": content})
                {
                    out.presence.push(ev);
                }
            }
        }
        for m in memberships {
            if m.stream_pos > target || !filter.wants_room(&m.room_id) {
                continue; // arrived after this sync's snapshot (the next sync reports it), or filtered out
            }
            let changed_since = since.is_none_or(|s| m.stream_pos > s);
            match m.membership.as_str() {
                "join" => {
                    let fresh = changed_since || full_state;
                    let (events_changed, receipts_changed) = match since {
                        Some(s) if !fresh => self.notifier.room_changes_after(&m.room_id, s),
                        _ => (true, true),
                    };
                    let mut room = if fresh {
                        Some(self.full_room(&m.room_id, &authed.user_id, target, limit, filter).await?)
                    } else if !events_changed {
                        None
                    } else {
                        self.incremental_room(
                            &m.room_id,
                            &authed.user_id,
                            since.unwrap_or(0),
                            target,
                            limit,
                            filter,
                        )
                        .await?
                    };
                    if let Some(data) = room_data.remove(&m.room_id) {
                        room.get_or_insert_with(JoinedRoom::default).account_data = data;
                    }
                    let typing_since = if fresh { None } else { since_positions.map(|p| p.ephemeral) };
                    if let Some(users) = self.notifier.typing_in(&m.room_id, typing_since) {
                        let ev = serde_json::json!({"type": "m.typing", "content": {"user_ids": users}});
                        if let Value::Object(ev) = ev {
                            room.get_or_insert_with(JoinedRoom::default).ephemeral.push(ev);
                        }
                    }
                    let receipts_since = if fresh { 0 } else { since.unwrap_or(0) };
                    if receipts_changed
                        && let Some(Value::Object(ev)) =
                            self.receipt_event(&m.room_id, &authed.user_id, receipts_since, target).await?
                    {
                        room.get_or_insert_with(JoinedRoom::default).ephemeral.push(ev);
                    }
                    if let Some(mut room) = room {
                        if ruleset.is_none() {
                            let rules = self.push_rules(authed).await?;
                            ruleset = Some(
                                serde_json::from_value(rules.get("global").cloned().unwrap_or_default())
                                    .unwrap_or_default(),
                            );
                        }
                        let ruleset =
                            ruleset.as_ref().ok_or_else(|| crate::Error::Internal("push rules".into()))?;
                        let counts = self
                            .unread_counts(
                                &m.room_id,
                                authed,
                                ruleset,
                                target,
                                filter.unread_thread_notifications,
                            )
                            .await?;
                        (room.notification_count, room.highlight_count) = counts.main;
                        room.thread_counts = counts.threads;
                        let membership_changed = room
                            .timeline
                            .events
                            .iter()
                            .any(|e| e.get("type") == Some(&Value::from("m.room.member")));
                        if fresh || membership_changed {
                            self.summarise(&m.room_id, &authed.user_id, &mut room).await?;
                        }
                        out.join.insert(m.room_id.clone(), room);
                    }
                }
                "invite" if changed_since => {
                    out.invite.insert(m.room_id.clone(), self.invited_room(&m).await?);
                }
                "knock" if changed_since => {
                    out.knock.insert(m.room_id.clone(), self.invited_room(&m).await?);
                }
                "leave" | "ban" if since.is_some() && changed_since && !m.forgotten => {
                    let left = self
                        .incremental_room(
                            &m.room_id,
                            &authed.user_id,
                            since.unwrap_or(0),
                            m.stream_pos,
                            limit,
                            filter,
                        )
                        .await?;
                    let left = left.unwrap_or_default();
                    out.leave
                        .insert(m.room_id.clone(), LeftRoom { timeline: left.timeline, state: left.state });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// To-device messages, device-list changes and key counts for the syncing device.
    async fn sync_e2ee(
        &self,
        authed: &Authed,
        since: Option<u64>,
        to_device_since: Option<u64>,
        target: Positions,
        out: &mut SyncOutput,
    ) -> Result<()> {
        let after = to_device_since.unwrap_or(0);
        // With a token, the client has the messages up to it: they can go.
        let messages =
            self.to_device_for_sync(authed, after, target.stream, to_device_since.is_some()).await?;
        let delivered_to = if messages.len() >= TO_DEVICE_PER_SYNC_MAX {
            messages.last().map_or(target.stream, |m| m.stream_pos)
        } else {
            target.stream
        };
        out.next_batch = sync_token_with_to_device(target, delivered_to);
        for m in messages {
            let content: Value = serde_json::from_str(&m.content).unwrap_or_default();
            if let Value::Object(ev) =
                serde_json::json!({"sender": m.sender, "type": m.kind, "content": content})
            {
                out.to_device.push(ev);
            }
        }
        if let Some(since) = since.filter(|s| *s < target.stream) {
            out.device_lists = self.device_list_changes(&authed.user_id, since, target.stream).await?;
        }
        let counts = self.key_counts(authed).await?;
        out.one_time_keys_count = counts.one_time_keys;
        out.one_time_keys_count.entry("signed_curve25519".into()).or_insert(0);
        out.unused_fallback_key_types = counts.unused_fallback_algorithms;
        Ok(())
    }

    /// The newest `limit` events at or before `target`, and the full state before them.
    async fn full_room(
        &self,
        room_id: &str,
        me: &str,
        target: u64,
        limit: usize,
        filter: &SyncFilter,
    ) -> Result<JoinedRoom> {
        let mut events = self
            .store
            .room_events(room_id, target.saturating_add(1), None, Direction::Backward, limit + 1)
            .await?;
        let limited = events.len() > limit;
        events.truncate(limit);
        events.reverse();
        let state_pos = events.first().map_or(target, |e| e.stream_pos.saturating_sub(1));
        let state_ref =
            if filter.use_state_after { events.last().map_or(target, |e| e.stream_pos) } else { state_pos };
        let entries = self.store.state_at(room_id, state_ref).await?;
        let ids: Vec<String> = entries
            .into_iter()
            .filter(|e| {
                !filter.lazy_load_members
                    || e.kind != "m.room.member"
                    || Self::sender_in(&events, &e.state_key)
            })
            .map(|e| e.event_id)
            .collect();
        let state = self.store.events_by_id(&ids).await?;
        events.retain(|e| filter.wants_event(&e.kind));
        self.visibility(room_id, me).await?.retain(&mut events);
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
    // The per-room inputs of one sync pass; bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    async fn incremental_room(
        &self,
        room_id: &str,
        me: &str,
        since: u64,
        target: u64,
        limit: usize,
        filter: &SyncFilter,
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
        if limited || filter.use_state_after {
            // State that changed in the gap between `since` and the timeline (or, with
            // state_after, by the end of the timeline).
            let before: HashMap<_, _> = Self::state_map(&self.store.state_at(room_id, since).await?);
            let reference =
                if filter.use_state_after { events.last().map_or(target, |e| e.stream_pos) } else { first };
            let at_start = self.store.state_at(room_id, reference).await?;
            let changed: Vec<String> = at_start
                .into_iter()
                .filter(|e| before.get(&(e.kind.clone(), e.state_key.clone())) != Some(&e.event_id))
                .filter(|e| {
                    !filter.lazy_load_members
                        || e.kind != "m.room.member"
                        || Self::sender_in(&events, &e.state_key)
                })
                .map(|e| e.event_id)
                .collect();
            state = self.store.events_by_id(&changed).await?;
        } else if filter.lazy_load_members {
            // Members of the timeline's senders, so the client can render them.
            let at_start = self.store.state_at(room_id, first).await?;
            let ids: Vec<String> = at_start
                .into_iter()
                .filter(|e| e.kind == "m.room.member" && Self::sender_in(&events, &e.state_key))
                .map(|e| e.event_id)
                .collect();
            state = self.store.events_by_id(&ids).await?;
        }
        events.retain(|e| filter.wants_event(&e.kind));
        self.visibility(room_id, me).await?.retain(&mut events);
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

    fn sender_in(events: &[StoredEvent], user_id: &str) -> bool {
        events.iter().any(|e| e.sender == user_id)
    }

    pub(crate) async fn invited_room(&self, m: &Membership) -> Result<InvitedRoom> {
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
        let joined = members.iter().filter(|m| m.membership == "join").count() as u64;
        let invited = members.iter().filter(|m| m.membership == "invite").count() as u64;
        let heroes = members
            .iter()
            .filter(|m| m.user_id != me && (m.membership == "join" || m.membership == "invite"))
            .take(HEROES_MAX)
            .map(|m| m.user_id.clone())
            .collect();
        room.summary = Some((joined, invited, heroes));
        Ok(())
    }
}
