//! Simplified sliding sync (MSC4186): `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`.
//!
//! The client names lists (ranges over its rooms sorted by recent activity, with filters) and
//! room subscriptions; the server answers with the rooms in them — new ones whole (`initial`),
//! known ones with what changed since the position — plus the extensions (to-device messages,
//! end-to-end-encryption counts and device lists, account data, receipts, typing).
//!
//! `plan.rs` decides which rooms are sent and how without I/O; this file reads the store,
//! assembles the rooms and waits for news like `/v3/sync` does (on the in-process notifier,
//! never by polling the database).
//!
//! **Positions.** `pos` is `<version>_<stream>_<ephemeral>`: the version of the connection's
//! stored record (which rooms it has sent; `ward_store::SlidingSyncStore`) and the stream and
//! ephemeral positions the response covers. Records live in the store, so a position stays
//! valid across restarts; a position whose record is gone (replaced twice, the connection
//! evicted by the per-device limit, the device deleted) is answered with `M_UNKNOWN_POS` and
//! the client starts the connection over.
//!
//! **Exactly once with `/v3/sync`.** Room events, receipts and account data are read from the
//! shared stream by position, so each endpoint reports what is new to its own position.
//! To-device messages share the device's one queue: the `to_device` extension's `since` acknowledges (deletes) what
//! it covers, exactly like the to-device part of a `/v3/sync` token.

mod plan;
mod room;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;
use ward_store::{Direction, Membership, SentRoom, StoredEvent};

pub use plan::{ListFilters, ListRequest, RoomConfig};
use plan::{Plan, PlannedRoom, RoomFacts, Send};

use crate::e2ee::DeviceListChanges;
use crate::e2ee::e2ee_limits::TO_DEVICE_PER_SYNC_MAX;
use crate::rooms::{ClientEvent, Positions, token};
use crate::{Authed, Error, Result, Services, now_ms};

/// Limits of sliding sync requests and connections.
pub mod limits {
    /// Connections one device keeps; writing one more forgets the least recently used.
    pub const CONNECTIONS_PER_DEVICE_MAX: usize = 16;
    /// The longest `conn_id` (clients use short names such as `room-list`).
    pub const CONN_ID_MAX_BYTES: usize = 64;
    /// Lists in one request.
    pub const LISTS_MAX: usize = 32;
    pub const LIST_NAME_MAX_BYTES: usize = 64;
    /// Ranges in one list.
    pub const RANGES_PER_LIST_MAX: usize = 16;
    /// Room subscriptions in one request.
    pub const SUBSCRIPTIONS_MAX: usize = 256;
    /// `required_state` entries of one list or subscription.
    pub const REQUIRED_STATE_MAX: usize = 128;
    /// The longest event type or state key in a `required_state` entry (the Matrix limit on
    /// both in events).
    pub const REQUIRED_STATE_FIELD_MAX_BYTES: usize = 255;
    /// State events one room's response carries because a wildcard (`["*", "*"]`, `[type, "*"]`)
    /// asked for them; beyond it the room's own state goes first and members are cut (a room
    /// with thousands of members would otherwise fill a response, and its memory, alone).
    /// Entries named without a wildcard, `$ME` and `$LAZY` members are not counted. Clients
    /// get the full member list from `/members`.
    pub const WILDCARD_STATE_EVENTS_PER_ROOM_MAX: usize = 200;
    /// Events per room timeline in one response.
    pub const TIMELINE_LIMIT_MAX: u64 = 100;
    /// Rooms sent whole (new to the client or with changed settings) in one response; the
    /// rest follow in the next responses. Bounds a response's time and memory whatever the
    /// ranges ask for.
    pub const FRESH_ROOMS_PER_RESPONSE_MAX: usize = 100;
    /// Events (timeline and `required_state` together) in one response's rooms: once reached,
    /// the remaining rooms with news are deferred to the next response (sent whole then). One
    /// room may overshoot it by its own events.
    pub const EVENTS_PER_RESPONSE_MAX: usize = 1_000;
    /// How long a connection is kept after its last request: older ones are purged (their
    /// positions are answered with `M_UNKNOWN_POS`), so the server does not keep a per-device
    /// "last synced" time longer than needed.
    pub const CONNECTION_IDLE_MAX_MS: u64 = 30 * 24 * 3600 * 1000;
    /// Rooms one connection remembers having sent (its stored record and its memory); list
    /// ranges are cut where they would exceed it.
    pub const ROOMS_PER_CONNECTION_MAX: usize = 5_000;
    /// Events of a left room's timeline sent with the departure.
    pub const LEFT_TIMELINE_LIMIT: u64 = 10;
    /// Heroes per room without a name.
    pub const HEROES_MAX: usize = 5;
    /// Values in one list filter (`tags`, `not_tags`, `spaces`, `room_types`, `not_room_types`).
    pub const FILTER_VALUES_MAX: usize = 64;
    /// Spaces the `spaces` filters of one request may name together (more are ignored).
    pub const SPACES_PER_REQUEST_MAX: usize = 16;
    /// Connections whose newest request is remembered in memory (cleared when full, which at
    /// worst lets a replaced long-poll record its answer).
    pub const TRACKED_CONNECTIONS_MAX: usize = 100_000;
    /// Membership rows (all users together) kept in memory for sliding sync's lists; the map
    /// is cleared when full.
    pub const MEMBERSHIPS_CACHE_ROWS_MAX: usize = 200_000;
    /// How long a cached membership list is trusted without a membership event in this process.
    pub const MEMBERSHIPS_CACHE_TTL_MS: u64 = 30_000;
    /// Rooms whose bump stamp (and, apart, whose room type) is remembered in memory (each map
    /// is cleared when full).
    pub const BUMP_CACHE_MAX_ENTRIES: usize = 100_000;
}

/// Rooms' bump stamps, each with the stream position it was read at. An entry holds while the
/// notifier has seen no event in the room after that position (so rooms unseen since start-up
/// are always read), which makes a list's sort cost a read only for rooms with news.
/// A room's bump stamp (`None`: no bump event yet) and the stream position it was read at.
type BumpEntry = (Option<u64>, u64);

#[derive(Default)]
pub(crate) struct BumpCache {
    rooms: std::sync::Mutex<HashMap<String, BumpEntry>>,
    /// Rooms' types (`m.room.create`'s `type`), which never change; at most
    /// `BUMP_CACHE_MAX_ENTRIES`, cleared when full.
    types: std::sync::Mutex<HashMap<String, Option<String>>>,
}

/// Users' membership lists, each with the stream position it was read at. An entry holds while
/// the notifier has seen no membership event anywhere after that position, and for at most
/// `MEMBERSHIPS_CACHE_TTL_MS` (membership changes made by another process, such as
/// `ward admin`, show up after that).
#[derive(Default)]
pub(crate) struct MembershipCache {
    users: std::sync::Mutex<MembershipEntries>,
}

#[derive(Default)]
struct MembershipEntries {
    by_user: HashMap<String, (std::sync::Arc<Vec<Membership>>, u64, u64)>,
    rows: usize,
}

impl MembershipCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, MembershipEntries> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The newest request of each connection in this process. A client replaces a long-poll by
/// dropping it and asking again; the replaced request must not record what it would have
/// sent, or it would overwrite the record the newer one answered from.
#[derive(Default)]
pub(crate) struct Requests {
    latest: std::sync::Mutex<HashMap<(String, String, String), u64>>,
    serial: std::sync::atomic::AtomicU64,
}

impl Requests {
    fn begin(&self, key: &(String, String, String)) -> u64 {
        let serial = self.serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut map = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= limits::TRACKED_CONNECTIONS_MAX && !map.contains_key(key) {
            map.clear();
        }
        map.insert(key.clone(), serial);
        serial
    }

    fn is_latest(&self, key: &(String, String, String), serial: u64) -> bool {
        let map = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).is_none_or(|s| *s == serial)
    }
}

impl BumpCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, BumpEntry>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Events that move a room up the list (its `bump_stamp`): new conversation, not state or
/// reactions.
const BUMP_KINDS: &[&str] = &[
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "org.matrix.msc3381.poll.start",
    "m.beacon_info",
];

/// Which rooms an extension covers: `None` lists means every list, `None` rooms means every
/// subscription; `*` in `rooms` is every subscription too.
#[derive(Debug, Clone, Default)]
pub struct ExtensionScope {
    pub enabled: bool,
    pub lists: Option<Vec<String>>,
    pub rooms: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct SlidingInput {
    pub pos: Option<String>,
    pub conn_id: Option<String>,
    pub timeout_ms: u64,
    pub lists: BTreeMap<String, ListRequest>,
    pub subscriptions: BTreeMap<String, RoomConfig>,
    /// `Some` when the to-device extension is on, with its `since`.
    pub to_device: Option<Option<String>>,
    pub e2ee: bool,
    pub account_data: ExtensionScope,
    pub receipts: ExtensionScope,
    pub typing: ExtensionScope,
}

#[derive(Debug, Clone, Default)]
pub struct Hero {
    pub user_id: String,
    pub name: Option<String>,
    pub avatar: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SlidingRoom {
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub initial: bool,
    pub invite_state: Option<Vec<ClientEvent>>,
    pub counts: Option<(u64, u64)>,
    pub timeline: Vec<ClientEvent>,
    pub required_state: Vec<ClientEvent>,
    pub prev_batch: Option<String>,
    pub limited: bool,
    pub joined_count: Option<u64>,
    pub invited_count: Option<u64>,
    pub num_live: Option<u64>,
    pub bump_stamp: Option<u64>,
    pub heroes: Option<Vec<Hero>>,
    /// The timeline is longer than what the client had because its `timeline_limit` grew: the
    /// newest events, some of which it may have (MSC4186 `expanded_timeline`).
    pub expanded_timeline: bool,
}

#[derive(Debug, Clone, Default)]
pub struct E2eeOutput {
    pub device_lists: DeviceListChanges,
    pub one_time_keys_count: BTreeMap<String, u64>,
    pub unused_fallback_key_types: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SlidingOutput {
    pub pos: String,
    pub lists: BTreeMap<String, u64>,
    pub rooms: BTreeMap<String, SlidingRoom>,
    /// `(next_batch, events)` when the to-device extension is on.
    pub to_device: Option<(String, Vec<ClientEvent>)>,
    pub e2ee: Option<E2eeOutput>,
    pub account_data: Vec<ClientEvent>,
    pub room_account_data: BTreeMap<String, Vec<ClientEvent>>,
    pub receipts: BTreeMap<String, Value>,
    pub typing: BTreeMap<String, Value>,
}

impl SlidingOutput {
    /// Nothing the client needs to hear about (list counts alone change only with rooms).
    fn is_empty(&self) -> bool {
        self.rooms.is_empty()
            && self.to_device.as_ref().is_none_or(|(_, e)| e.is_empty())
            && self.e2ee.as_ref().is_none_or(|e| e.device_lists.is_empty())
            && self.account_data.is_empty()
            && self.room_account_data.is_empty()
            && self.receipts.is_empty()
            && self.typing.is_empty()
    }
}

/// `<version>_<stream>_<ephemeral>`.
fn parse_pos(pos: &str) -> Option<(u64, Positions)> {
    let mut parts = pos.split('_');
    let version = parts.next()?.parse().ok()?;
    let stream = parts.next()?.parse().ok()?;
    let ephemeral = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((version, Positions { stream, ephemeral }))
}

fn format_pos(version: u64, p: Positions) -> String {
    format!("{version}_{}_{}", p.stream, p.ephemeral)
}

/// Where a new connection's versions start: random (below 2^48, so positions stay short and
/// versions fit the store's signed integers for ever), so that a position of a forgotten
/// connection with the same ID names no version of the new one.
fn first_version() -> u64 {
    let digits = ward_core::secret::random_string(14, b"0123456789");
    // 14 decimal digits are below 10^14 < 2^48; never 0 (positions start above it).
    digits.parse::<u64>().unwrap_or(0).max(1)
}

fn unknown_pos() -> Error {
    Error::UnknownPos("unknown or expired position: start the connection again without `pos`".into())
}

fn validate(input: &SlidingInput) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidParam(m));
    if input.conn_id.as_ref().is_some_and(|c| c.len() > limits::CONN_ID_MAX_BYTES) {
        return bad(format!("conn_id is longer than {} bytes", limits::CONN_ID_MAX_BYTES));
    }
    if input.lists.len() > limits::LISTS_MAX {
        return bad(format!("at most {} lists per request", limits::LISTS_MAX));
    }
    if input.subscriptions.len() > limits::SUBSCRIPTIONS_MAX {
        return bad(format!("at most {} room subscriptions per request", limits::SUBSCRIPTIONS_MAX));
    }
    let check_config = |c: &RoomConfig, what: &str| {
        if c.required_state.len() > limits::REQUIRED_STATE_MAX {
            return bad(format!("{what}: at most {} required_state entries", limits::REQUIRED_STATE_MAX));
        }
        let max = limits::REQUIRED_STATE_FIELD_MAX_BYTES;
        if c.required_state.iter().any(|(t, k)| t.len() > max || k.len() > max) {
            return bad(format!("{what}: required_state types and state keys are at most {max} bytes"));
        }
        Ok(())
    };
    for (name, list) in &input.lists {
        if name.len() > limits::LIST_NAME_MAX_BYTES {
            return bad(format!("list names are at most {} bytes", limits::LIST_NAME_MAX_BYTES));
        }
        if list.ranges.len() > limits::RANGES_PER_LIST_MAX {
            return bad(format!("list {name}: at most {} ranges", limits::RANGES_PER_LIST_MAX));
        }
        if let Some((s, e)) = list.ranges.iter().find(|(s, e)| s > e) {
            return bad(format!("list {name}: range [{s}, {e}] ends before it starts"));
        }
        check_config(&list.config, &format!("list {name}"))?;
        let f = &list.filters;
        let lens =
            [f.tags.len(), f.not_tags.len(), f.spaces.len(), f.room_types.len(), f.not_room_types.len()];
        if lens.iter().any(|n| *n > limits::FILTER_VALUES_MAX) {
            return bad(format!("list {name}: at most {} values per filter", limits::FILTER_VALUES_MAX));
        }
    }
    for (room, config) in &input.subscriptions {
        crate::rooms::parse_room_id(room)?;
        check_config(config, &format!("subscription {room}"))?;
    }
    Ok(())
}

fn content_of(e: &StoredEvent) -> Value {
    serde_json::from_str::<Value>(&e.json).ok().and_then(|j| j.get("content").cloned()).unwrap_or_default()
}

fn string_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Rooms covered by an extension's scope among those in the response's lists and
/// subscriptions.
fn in_scope(
    scope: &ExtensionScope,
    plan: &Plan,
    subscriptions: &BTreeMap<String, RoomConfig>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, rooms) in &plan.list_rooms {
        if scope.lists.as_ref().is_none_or(|l| l.iter().any(|x| x == name || x == "*")) {
            out.extend(rooms.iter().cloned());
        }
    }
    match &scope.rooms {
        None => out.extend(subscriptions.keys().cloned()),
        Some(rooms) => {
            for r in rooms {
                if r == "*" {
                    out.extend(subscriptions.keys().cloned());
                } else {
                    out.insert(r.clone());
                }
            }
        }
    }
    out
}

impl Services {
    pub async fn sliding_sync(&self, authed: &Authed, input: SlidingInput) -> Result<SlidingOutput> {
        validate(&input)?;
        let conn_id = input.conn_id.clone().unwrap_or_default();
        let (base_version, since) = match input.pos.as_deref() {
            None => (None, None),
            Some(pos) => {
                let (version, positions) = parse_pos(pos).ok_or_else(unknown_pos)?;
                (Some(version), Some(positions))
            }
        };
        let previously_sent = match base_version {
            None => Vec::new(),
            Some(v) => self
                .store
                .sliding_connection(&authed.user_id, &authed.device_id, &conn_id, v)
                .await?
                .ok_or_else(unknown_pos)?,
        };
        let key = (authed.user_id.clone(), authed.device_id.clone(), conn_id.clone());
        let serial = self.sliding_requests.begin(&key);
        let replaced = || Error::Unknown("replaced by a newer request on the same connection".into());
        let timeout = Duration::from_millis(input.timeout_ms.min(self.settings.sync_timeout_max_ms));
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.notifier.subscribe();
        let (out, sent, target) = loop {
            if !self.sliding_requests.is_latest(&key, serial) {
                return Err(replaced());
            }
            let target = *rx.borrow_and_update();
            let since =
                since.map(|s| Positions { stream: s.stream.min(target.stream), ephemeral: s.ephemeral });
            let (out, plan) = self.sliding_once(authed, &input, since, target, &previously_sent).await?;
            let first = since.is_none();
            if first || !out.is_empty() || plan.deferred > 0 {
                break (out, plan.sent, target);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out (or the server is shutting down): report "nothing new".
                _ => break (out, plan.sent, target),
            }
        };
        if !self.sliding_requests.is_latest(&key, serial) {
            return Err(replaced());
        }
        let unchanged = base_version.is_some() && same_rooms(&previously_sent, &sent);
        let version = match base_version {
            Some(v) if unchanged => v,
            _ => {
                let mut sent = sent;
                sent.truncate(limits::ROOMS_PER_CONNECTION_MAX);
                self.store
                    .put_sliding_connection(
                        &authed.user_id,
                        &authed.device_id,
                        &conn_id,
                        base_version,
                        sent,
                        first_version(),
                        now_ms(),
                        limits::CONNECTIONS_PER_DEVICE_MAX,
                    )
                    .await?
            }
        };
        Ok(SlidingOutput { pos: format_pos(version, target), ..out })
    }

    async fn sliding_once(
        &self,
        authed: &Authed,
        input: &SlidingInput,
        since: Option<Positions>,
        target: Positions,
        previously_sent: &[SentRoom],
    ) -> Result<(SlidingOutput, Plan)> {
        let me = authed.user_id.as_str();
        let all = self.memberships_of(me).await?;
        let memberships = room::memberships_at(&all, target.stream, previously_sent);
        let facts = self.room_facts(me, &memberships.current, input).await?;
        let left: Vec<(String, String)> =
            memberships.left.iter().map(|m| (m.room_id.clone(), m.membership.clone())).collect();
        let mut plan = plan::plan(&facts, &left, &input.lists, &input.subscriptions, previously_sent);
        plan.sent.extend(memberships.carried);
        let mut out = SlidingOutput { lists: plan.counts.clone(), ..Default::default() };
        let by_room: HashMap<&str, &Membership> = memberships
            .current
            .iter()
            .chain(&memberships.left)
            .filter(|m| plan.rooms.contains_key(&m.room_id))
            .map(|m| (m.room_id.as_str(), *m))
            .collect();
        let mut ruleset: Option<ruma::push::Ruleset> = None;
        // Most wanted first, departures last; once the response's event budget is spent, rooms
        // with news wait for the next response.
        let mut order = plan.order.clone();
        order.extend(plan.rooms.iter().filter(|(_, r)| r.send == Send::Left).map(|(id, _)| id.clone()));
        let mut events = 0usize;
        for room_id in order {
            let Some(planned) = plan.rooms.get(&room_id).cloned() else { continue };
            // A room the client has, where the notifier saw no event and no receipt after the
            // position, has nothing to send: decided without reading the store, so a wake-up
            // costs no reads for the rooms in range that did not change. (Membership changes
            // and invites are events in the room; a changed membership or configuration is
            // not `Incremental`.)
            let quiet = planned.send == Send::Incremental
                && !planned.expanded
                && since
                    .is_some_and(|s| self.notifier.room_changes_after(&room_id, s.stream) == (false, false));
            if quiet {
                continue;
            }
            if events >= limits::EVENTS_PER_RESPONSE_MAX && planned.send != Send::Left {
                plan.defer(&room_id);
                continue;
            }
            let Some(m) = by_room.get(room_id.as_str()) else { continue };
            let room = self.sliding_room(authed, m, &planned, since, target, &mut ruleset).await?;
            if let Some(room) = room {
                events = events.saturating_add(room.timeline.len() + room.required_state.len());
                out.rooms.insert(room_id, room);
            }
        }
        self.sliding_extensions(authed, input, since, target, &plan, &mut out).await?;
        Ok((out, plan))
    }

    /// The user's joined, invited and knocked rooms with what lists sort and filter by.
    async fn room_facts(
        &self,
        me: &str,
        memberships: &[&Membership],
        input: &SlidingInput,
    ) -> Result<Vec<RoomFacts>> {
        let current: Vec<&Membership> = memberships
            .iter()
            .copied()
            .filter(|m| matches!(m.membership.as_str(), "join" | "invite" | "knock"))
            .collect();
        let joined: Vec<String> =
            current.iter().filter(|m| m.membership == "join").map(|m| m.room_id.clone()).collect();
        let bumps = self.bump_stamps(&joined).await?;
        let filters: Vec<&ListFilters> = input.lists.values().map(|l| &l.filters).collect();
        let mut dms = BTreeSet::new();
        if filters.iter().any(|f| f.needs_dm())
            && let Some(text) = self.store.account_data(me, None, "m.direct").await?
        {
            let direct: Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(map) = direct.as_object() {
                for rooms in map.values().filter_map(Value::as_array) {
                    dms.extend(rooms.iter().filter_map(Value::as_str).map(str::to_owned));
                }
            }
        }
        let all_ids: Vec<String> = current.iter().map(|m| m.room_id.clone()).collect();
        let encrypted: BTreeSet<String> = if filters.iter().any(|f| f.needs_encryption()) {
            self.store.rooms_with_state(&all_ids, "m.room.encryption").await?.into_iter().collect()
        } else {
            BTreeSet::new()
        };
        let mut room_types: HashMap<String, Option<String>> = HashMap::new();
        if filters.iter().any(|f| f.needs_room_type()) {
            {
                let cache = self.bumps.types.lock().unwrap_or_else(|p| p.into_inner());
                for id in &all_ids {
                    if let Some(kind) = cache.get(id) {
                        room_types.insert(id.clone(), kind.clone());
                    }
                }
            }
            for id in &all_ids {
                if room_types.contains_key(id) {
                    continue;
                }
                let kind = self
                    .store
                    .current_state_event(id, "m.room.create", "")
                    .await?
                    .and_then(|e| string_field(&content_of(&e), "type"));
                let mut cache = self.bumps.types.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= limits::BUMP_CACHE_MAX_ENTRIES {
                    cache.clear();
                }
                cache.insert(id.clone(), kind.clone());
                room_types.insert(id.clone(), kind);
            }
        }
        // Tags: from the user's m.tag room account data.
        let mut tags: HashMap<String, Vec<String>> = HashMap::new();
        if filters.iter().any(|f| f.needs_tags()) {
            for entry in self.store.account_data_changes(me, 0, u64::MAX).await? {
                if entry.kind != "m.tag" {
                    continue;
                }
                let Some(room) = entry.room_id else { continue };
                let content: Value = serde_json::from_str(&entry.content).unwrap_or_default();
                if let Some(t) = content.get("tags").and_then(Value::as_object) {
                    tags.insert(room, t.keys().cloned().collect());
                }
            }
        }
        // Spaces: the children of the named spaces the user has joined.
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        let spaces: BTreeSet<&String> = filters.iter().flat_map(|f| f.spaces.iter()).collect();
        let joined_set: BTreeSet<&String> = joined.iter().collect();
        for space in spaces.into_iter().take(limits::SPACES_PER_REQUEST_MAX) {
            if !joined_set.contains(space) {
                continue;
            }
            let ids: Vec<String> = self
                .store
                .current_state(space)
                .await?
                .into_iter()
                .filter(|e| e.kind == "m.space.child")
                .map(|e| e.event_id)
                .collect();
            for child in self.store.events_by_id(&ids).await? {
                // A removed child keeps an event with empty content (no `via`).
                let via =
                    content_of(&child).get("via").and_then(Value::as_array).is_some_and(|v| !v.is_empty());
                if let (true, Some(room)) = (via, child.state_key) {
                    parents.entry(room).or_default().push(space.clone());
                }
            }
        }
        Ok(current
            .into_iter()
            .map(|m| RoomFacts {
                spaces: parents.remove(&m.room_id).unwrap_or_default(),
                tags: tags.remove(&m.room_id).unwrap_or_default(),
                room_id: m.room_id.clone(),
                membership: m.membership.clone(),
                bump_stamp: match m.membership.as_str() {
                    "join" => bumps.get(&m.room_id).copied().unwrap_or(m.stream_pos),
                    _ => m.stream_pos,
                },
                is_dm: dms.contains(&m.room_id),
                is_encrypted: encrypted.contains(&m.room_id),
                room_type: room_types.remove(&m.room_id).flatten(),
            })
            .collect())
    }

    /// The user's memberships, from memory while no membership event happened since they were
    /// read (see [`MembershipCache`]).
    async fn memberships_of(&self, user_id: &str) -> Result<std::sync::Arc<Vec<Membership>>> {
        let now = now_ms();
        {
            let cache = self.sliding_memberships.entries();
            if let Some((rows, read_at, read_ms)) = cache.by_user.get(user_id)
                && !self.notifier.members_changed_after(None, *read_at)
                && now.saturating_sub(*read_ms) < limits::MEMBERSHIPS_CACHE_TTL_MS
            {
                return Ok(rows.clone());
            }
        }
        // Taken before the read: a membership event after it makes the entry stale, never wrong.
        let read_at = self.notifier.positions().stream;
        let rows = std::sync::Arc::new(self.store.memberships_of_user(user_id).await?);
        let mut cache = self.sliding_memberships.entries();
        if let Some((old, _, _)) = cache.by_user.remove(user_id) {
            cache.rows = cache.rows.saturating_sub(old.len());
        }
        if cache.rows + rows.len() > limits::MEMBERSHIPS_CACHE_ROWS_MAX {
            cache.by_user.clear();
            cache.rows = 0;
        }
        if rows.len() <= limits::MEMBERSHIPS_CACHE_ROWS_MAX {
            cache.rows += rows.len();
            cache.by_user.insert(user_id.to_owned(), (rows.clone(), read_at, now));
        }
        Ok(rows)
    }

    /// The newest bump event's position per room (rooms without one are left out), from
    /// memory where the notifier has seen nothing newer.
    async fn bump_stamps(&self, room_ids: &[String]) -> Result<HashMap<String, u64>> {
        let at = self.notifier.positions().stream;
        let mut out = HashMap::with_capacity(room_ids.len());
        let mut unknown = Vec::new();
        {
            let cache = self.bumps.map();
            let cached: Vec<(&String, Option<&BumpEntry>)> =
                room_ids.iter().map(|id| (id, cache.get(id))).collect();
            let stale = self
                .notifier
                .events_after_each(cached.iter().map(|(id, c)| (id.as_str(), c.map_or(0, |&(_, at)| at))));
            for ((id, entry), stale) in cached.into_iter().zip(stale) {
                match entry {
                    Some(&(bump, _)) if !stale => {
                        if let Some(b) = bump {
                            out.insert(id.clone(), b);
                        }
                    }
                    _ => unknown.push(id.clone()),
                }
            }
        }
        if unknown.is_empty() {
            return Ok(out);
        }
        let read: HashMap<String, u64> =
            self.store.newest_event_positions(&unknown, BUMP_KINDS).await?.into_iter().collect();
        let mut cache = self.bumps.map();
        if cache.len() + unknown.len() > limits::BUMP_CACHE_MAX_ENTRIES {
            cache.clear();
        }
        for id in unknown {
            let bump = read.get(&id).copied();
            // Read at `at` or later: an event after `at` makes the entry stale, never wrong.
            cache.insert(id.clone(), (bump, at));
            if let Some(b) = bump {
                out.insert(id, b);
            }
        }
        Ok(out)
    }

    /// One room of the response; `None` when an incremental room has nothing new.
    async fn sliding_room(
        &self,
        authed: &Authed,
        m: &Membership,
        planned: &PlannedRoom,
        since: Option<Positions>,
        target: Positions,
        ruleset: &mut Option<ruma::push::Ruleset>,
    ) -> Result<Option<SlidingRoom>> {
        let me = authed.user_id.as_str();
        let room_id = m.room_id.as_str();
        let since_stream = since.map(|s| s.stream);
        if planned.membership == "invite" || planned.membership == "knock" {
            if planned.send == Send::Incremental {
                return Ok(None); // stripped state does not change while invited
            }
            let invited = self.invited_room(m).await?;
            let name = invited
                .invite_state
                .iter()
                .find(|e| e.get("type").and_then(Value::as_str) == Some("m.room.name"))
                .and_then(|e| e.get("content").and_then(|c| string_field(c, "name")));
            return Ok(Some(SlidingRoom {
                name,
                initial: true,
                invite_state: Some(invited.invite_state),
                bump_stamp: Some(planned.bump_stamp),
                ..Default::default()
            }));
        }
        let fresh = planned.send == Send::Initial;
        let until = if planned.send == Send::Left { m.stream_pos } else { target.stream };
        let limit =
            usize::try_from(planned.config.timeline_limit.min(limits::TIMELINE_LIMIT_MAX)).unwrap_or(1);
        // An expanded timeline is the newest events whatever the client had (MSC4186's
        // "changing room configs"); `limited` then says whether there are more before them.
        let after = if fresh || planned.expanded { None } else { since_stream };
        let read = if limit == 0 {
            vec![]
        } else {
            self.store
                .room_events(room_id, until.saturating_add(1), after, Direction::Backward, limit + 1)
                .await?
        };
        let read_count = read.len();
        let mut visible = read;
        if !visible.is_empty() {
            self.visibility(room_id, me).await?.retain(&mut visible);
        }
        // Derived from what the user may see only (hidden events neither count nor name senders).
        let room::Window { events, limited, num_live, has_state_events, senders } =
            room::window(read_count, visible, limit, since_stream);
        if planned.send == Send::Incremental && !planned.expanded && events.is_empty() {
            // Without new events only the user's own receipts change what the client shows
            // (the unread counts); receipts of others go through the receipts extension.
            let Some(s) = since_stream else { return Ok(None) };
            if !self.notifier.room_changes_after(room_id, s).1 {
                return Ok(None);
            }
            let receipts = self.store.receipts_changed(room_id, s, target.stream).await?;
            if !receipts.iter().any(|r| r.user_id == me) {
                return Ok(None);
            }
        }
        let timeline_start = events.first().map_or(until, |e| e.stream_pos.saturating_sub(1));
        // State: all that is asked for when the client has none (or asked differently), the
        // asked-for changes otherwise; and `$LAZY` members of the timeline's senders from the
        // state now, whether or not they changed (the client may never have had them).
        let whole_state = matches!(planned.send, Send::Initial | Send::StateAgain);
        let mut state_ids: Vec<String> = Vec::new();
        let mut name_avatar_ids: Vec<String> = Vec::new();
        let lazy = planned.config.wants_lazy_members() && !senders.is_empty();
        let diff = whole_state || limited || has_state_events;
        if diff || lazy {
            let now_state = self.store.state_at(room_id, until).await?;
            let before: HashMap<(String, String), String> = match (whole_state, since_stream) {
                (false, Some(s)) if diff => Self::state_map(&self.store.state_at(room_id, s).await?),
                _ => HashMap::new(),
            };
            let mut wildcard: Vec<(String, String)> = Vec::new();
            for e in now_state {
                let lazy_member = lazy && e.kind == "m.room.member" && senders.contains(&e.state_key);
                let changed = diff && before.get(&(e.kind.clone(), e.state_key.clone())) != Some(&e.event_id);
                if changed && (e.kind == "m.room.name" || e.kind == "m.room.avatar") {
                    name_avatar_ids.push(e.event_id.clone());
                }
                let config = &planned.config;
                if lazy_member || (changed && config.names_state(&e.kind, &e.state_key, me)) {
                    state_ids.push(e.event_id);
                } else if changed && config.wants_state(&e.kind, &e.state_key, me) {
                    wildcard.push((e.kind, e.event_id));
                }
            }
            state_ids.extend(room::cap_wildcard_state(wildcard, limits::WILDCARD_STATE_EVENTS_PER_ROOM_MAX));
        }
        // Once each: a name or avatar asked for is in both lists (and would be sent twice).
        let mut fetch = state_ids.clone();
        fetch.extend(name_avatar_ids.iter().filter(|id| !state_ids.contains(id)).cloned());
        let fetched = if fetch.is_empty() { vec![] } else { self.store.events_by_id(&fetch).await? };
        let mut room =
            SlidingRoom { initial: fresh, expanded_timeline: planned.expanded, ..Default::default() };
        for e in &fetched {
            let content = content_of(e);
            match e.kind.as_str() {
                "m.room.name" => room.name = Some(string_field(&content, "name").unwrap_or_default()),
                "m.room.avatar" => room.avatar = string_field(&content, "url"),
                _ => {}
            }
        }
        let wanted_ids: BTreeSet<&String> = state_ids.iter().collect();
        let state: Vec<StoredEvent> =
            fetched.iter().filter(|e| wanted_ids.contains(&e.event_id)).cloned().collect();
        room.required_state = Self::client_events(&state, false)?;
        let membership_changed = events.iter().any(|e| e.kind == "m.room.member");
        room.timeline = Self::client_events(&events, false)?;
        room.limited = limited;
        room.prev_batch = Some(token(timeline_start));
        room.num_live = Some(num_live);
        if planned.send != Send::Left {
            room.bump_stamp = Some(planned.bump_stamp);
            if ruleset.is_none() {
                let rules = self.push_rules(authed).await?;
                *ruleset = Some(
                    serde_json::from_value(rules.get("global").cloned().unwrap_or_default())
                        .unwrap_or_default(),
                );
            }
            if let Some(rules) = ruleset.as_ref() {
                let counts = self.unread_counts(room_id, authed, rules, target.stream, false).await?;
                room.counts = Some(counts.main);
            }
        }
        // A departed user learns nothing of the room after the departure (the current
        // members, counts and heroes would tell who joined since).
        if planned.send != Send::Left && (whole_state || membership_changed) {
            self.sliding_summary(room_id, me, &mut room).await?;
        }
        Ok(Some(room))
    }

    /// Member counts, and heroes for rooms without a name.
    async fn sliding_summary(&self, room_id: &str, me: &str, room: &mut SlidingRoom) -> Result<()> {
        let members = self.store.room_members(room_id).await?;
        room.joined_count = Some(members.iter().filter(|m| m.membership == "join").count() as u64);
        room.invited_count = Some(members.iter().filter(|m| m.membership == "invite").count() as u64);
        let heroes: Vec<&Membership> = members
            .iter()
            .filter(|m| m.user_id != me && (m.membership == "join" || m.membership == "invite"))
            .take(limits::HEROES_MAX)
            .collect();
        let ids: Vec<String> = heroes.iter().map(|m| m.event_id.clone()).collect();
        let events = self.store.events_by_id(&ids).await?;
        let profile: HashMap<&str, Value> =
            events.iter().map(|e| (e.event_id.as_str(), content_of(e))).collect();
        room.heroes = Some(
            heroes
                .into_iter()
                .map(|m| {
                    let content = profile.get(m.event_id.as_str());
                    Hero {
                        user_id: m.user_id.clone(),
                        name: content.and_then(|c| string_field(c, "displayname")),
                        avatar: content.and_then(|c| string_field(c, "avatar_url")),
                    }
                })
                .collect(),
        );
        Ok(())
    }

    async fn sliding_extensions(
        &self,
        authed: &Authed,
        input: &SlidingInput,
        since: Option<Positions>,
        target: Positions,
        plan: &Plan,
        out: &mut SlidingOutput,
    ) -> Result<()> {
        let me = authed.user_id.as_str();
        if let Some(to_device_since) = &input.to_device {
            let after = match to_device_since {
                Some(s) => Some(
                    s.strip_prefix('s')
                        .unwrap_or(s)
                        .parse::<u64>()
                        .map_err(|_| {
                            Error::InvalidParam("to_device.since is not a token of this server".into())
                        })?
                        .min(target.stream),
                ),
                None => None,
            };
            let messages =
                self.to_device_for_sync(authed, after.unwrap_or(0), target.stream, after.is_some()).await?;
            let delivered_to = if messages.len() >= TO_DEVICE_PER_SYNC_MAX {
                messages.last().map_or(target.stream, |m| m.stream_pos)
            } else {
                target.stream
            };
            let mut events = Vec::with_capacity(messages.len());
            for m in messages {
                let content: Value = serde_json::from_str(&m.content).unwrap_or_default();
                if let Value::Object(ev) =
                    serde_json::json!({"sender": m.sender, "type": m.kind, "content": content})
                {
                    events.push(ev);
                }
            }
            out.to_device = Some((token(delivered_to), events));
        }
        if input.e2ee {
            let mut e2ee = E2eeOutput::default();
            if let Some(s) = since.filter(|s| s.stream < target.stream) {
                e2ee.device_lists = self.device_list_changes(me, s.stream, target.stream).await?;
            }
            let counts = self.key_counts(authed).await?;
            e2ee.one_time_keys_count = counts.one_time_keys;
            e2ee.one_time_keys_count.entry("signed_curve25519".into()).or_insert(0);
            e2ee.unused_fallback_key_types = counts.unused_fallback_algorithms;
            out.e2ee = Some(e2ee);
        }
        let fresh_rooms: BTreeSet<&String> =
            plan.rooms.iter().filter(|(_, r)| r.send != Send::Incremental).map(|(id, _)| id).collect();
        if input.account_data.enabled {
            let scope = in_scope(&input.account_data, plan, &input.subscriptions);
            let from = since.map_or(0, |s| s.stream);
            let mut changes = self.store.account_data_changes(me, from, target.stream).await?;
            if since.is_some() && scope.iter().any(|r| fresh_rooms.contains(r)) {
                // Rooms new to the client get all their account data.
                let all = self.store.account_data_changes(me, 0, target.stream).await?;
                changes.extend(all.into_iter().filter(|e| {
                    e.room_id.as_ref().is_some_and(|r| fresh_rooms.contains(r)) && e.stream_pos <= from
                }));
            }
            for entry in changes {
                let mut ev = ClientEvent::new();
                ev.insert("type".into(), Value::String(entry.kind));
                ev.insert("content".into(), serde_json::from_str(&entry.content).unwrap_or_default());
                match entry.room_id {
                    Some(room) if scope.contains(&room) => {
                        out.room_account_data.entry(room).or_default().push(ev)
                    }
                    Some(_) => {}
                    None => out.account_data.push(ev),
                }
            }
            let has_rules =
                out.account_data.iter().any(|e| e.get("type") == Some(&Value::from("m.push_rules")));
            if since.is_none() && !has_rules {
                let mut ev = ClientEvent::new();
                ev.insert("type".into(), Value::from("m.push_rules"));
                ev.insert("content".into(), self.push_rules(authed).await?);
                out.account_data.push(ev);
            }
        }
        let joined: BTreeSet<&str> = plan
            .rooms
            .iter()
            .filter(|(_, r)| r.membership == "join" && r.send != Send::Left)
            .map(|(id, _)| id.as_str())
            .collect();
        if input.receipts.enabled {
            for room_id in in_scope(&input.receipts, plan, &input.subscriptions) {
                if !joined.contains(room_id.as_str()) {
                    continue;
                }
                // Rooms sent whole or with an expanded timeline get all receipts (the timeline
                // may hold events the client never had receipts for), as Synapse does.
                let fresh =
                    fresh_rooms.contains(&room_id) || plan.rooms.get(&room_id).is_some_and(|r| r.expanded);
                let from = if fresh { 0 } else { since.map_or(0, |s| s.stream) };
                if !fresh && since.is_some_and(|s| !self.notifier.room_changes_after(&room_id, s.stream).1) {
                    continue;
                }
                if let Some(ev) = self.receipt_event(&room_id, me, from, target.stream).await? {
                    out.receipts.insert(room_id, ev);
                }
            }
        }
        if input.typing.enabled {
            for room_id in in_scope(&input.typing, plan, &input.subscriptions) {
                if !joined.contains(room_id.as_str()) {
                    continue;
                }
                let typing_since =
                    if fresh_rooms.contains(&room_id) { None } else { since.map(|s| s.ephemeral) };
                if let Some(users) = self.notifier.typing_in(&room_id, typing_since) {
                    out.typing.insert(
                        room_id,
                        serde_json::json!({"type": "m.typing", "content": {"user_ids": users}}),
                    );
                }
            }
        }
        Ok(())
    }
}

impl Services {
    /// Forgets connections idle for `CONNECTION_IDLE_MAX_MS`; run by the periodic purge.
    /// Returns how many went.
    pub async fn purge_sliding_connections(&self) -> Result<u64> {
        let before = now_ms().saturating_sub(limits::CONNECTION_IDLE_MAX_MS);
        Ok(self.store.purge_sliding_connections(before).await?)
    }
}

fn same_rooms(a: &[SentRoom], b: &[SentRoom]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let index: HashMap<&str, &SentRoom> = a.iter().map(|s| (s.room_id.as_str(), s)).collect();
    b.iter().all(|s| index.get(s.room_id.as_str()).is_some_and(|x| *x == s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_garbage_is_refused() {
        let p = Positions { stream: 42, ephemeral: 7 };
        assert_eq!(parse_pos(&format_pos(3, p)), Some((3, p)));
        for bad in ["", "x", "1_2", "1_2_3_4", "-1_2_3", "a_b_c", "99999999999999999999_1_1"] {
            assert_eq!(parse_pos(bad), None, "{bad}");
        }
    }

    fn one_list(list: ListRequest) -> SlidingInput {
        SlidingInput { lists: [("a".to_owned(), list)].into(), ..Default::default() }
    }

    #[test]
    fn long_required_state_entries_are_refused() {
        let max = limits::REQUIRED_STATE_FIELD_MAX_BYTES;
        let with = |t: usize, k: usize| {
            let config =
                RoomConfig { required_state: vec![("t".repeat(t), "k".repeat(k))], timeline_limit: 1 };
            validate(&one_list(ListRequest { config, ..Default::default() }))
        };
        assert!(with(max, max).is_ok());
        assert!(matches!(with(max + 1, 1), Err(Error::InvalidParam(_))));
        assert!(matches!(with(1, max + 1), Err(Error::InvalidParam(_))));
        let config =
            RoomConfig { required_state: vec![("t".into(), "k".repeat(max + 1))], timeline_limit: 1 };
        let input =
            SlidingInput { subscriptions: [("!r:x".to_owned(), config)].into(), ..Default::default() };
        assert!(matches!(validate(&input), Err(Error::InvalidParam(_))));
    }

    #[test]
    fn long_filter_arrays_are_refused() {
        let n = limits::FILTER_VALUES_MAX;
        let values = |n: usize| (0..n).map(|i| format!("v{i}")).collect::<Vec<_>>();
        let filters = ListFilters { tags: values(n), spaces: values(n), ..Default::default() };
        assert!(validate(&one_list(ListRequest { filters, ..Default::default() })).is_ok());
        let too_many = [
            ListFilters { tags: values(n + 1), ..Default::default() },
            ListFilters { not_tags: values(n + 1), ..Default::default() },
            ListFilters { spaces: values(n + 1), ..Default::default() },
            ListFilters { room_types: vec![None; n + 1], ..Default::default() },
            ListFilters { not_room_types: vec![None; n + 1], ..Default::default() },
        ];
        for filters in too_many {
            let r = validate(&one_list(ListRequest { filters, ..Default::default() }));
            assert!(matches!(r, Err(Error::InvalidParam(_))));
        }
    }
}
