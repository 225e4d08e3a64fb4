//! Typing notifications, presence and read receipts, and the notifier that wakes long-polling
//! syncs.
//!
//! Typing and presence live in memory only (they are stale after seconds or minutes anyway);
//! their changes are numbered by one "ephemeral" serial that is part of the sync token
//! (`s<stream>_<ephemeral>`). A restart resets the serial, so an old token at worst brings the
//! current typing and presence state once more. Receipts are stored and take stream positions
//! like events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruma::events::TimelineEventType;
use serde_json::{Value, json};
use ward_store::Receipt;

use super::{parse_room_id, parse_user_id};
use crate::{Authed, Error, Result, Services, now_ms};

/// Longest a typing notification lasts before it must be renewed.
pub const TYPING_TIMEOUT_MAX_MS: u64 = 30_000;
/// Receipt types clients may send.
const RECEIPT_TYPES: &[&str] = &["m.read", "m.read.private"];
const THREAD_ID_MAX_BYTES: usize = 255;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Positions {
    pub stream: u64,
    /// Serial of the last typing or presence change.
    pub ephemeral: u64,
}

/// A user's presence, when presence is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub state: String,
    pub status_msg: Option<String>,
    pub last_active_ms: u64,
    /// Serial of the last change that clients should hear about.
    pub serial: u64,
}

#[derive(Default)]
struct Ephemeral {
    serial: u64,
    /// room → user → expiry (ms since the epoch)
    typers: HashMap<String, HashMap<String, u64>>,
    /// room → serial of its last typing change
    changed: HashMap<String, u64>,
    /// user → presence (only local users; bounded by the accounts of this server)
    presence: HashMap<String, Presence>,
}

/// Rooms the notifier tracks (for events and receipts, and for membership events apiece); the
/// map is cleared when full, and its floor moves up so that nothing is lost.
pub const NOTIFIER_ROOMS_MAX: usize = 200_000;

/// What the notifier knows of changes per room, with the floor below which it knows nothing:
/// a room absent from the map had its last change at or before `floor` (the stream position
/// at start-up, or the newest position seen when the map was last cleared).
struct Seen<T> {
    by_room: HashMap<String, T>,
    floor: u64,
    newest: u64,
}

impl<T> Seen<T> {
    fn new(floor: u64) -> Self {
        Self { by_room: HashMap::new(), floor, newest: floor }
    }

    /// The entry of a room, making room for it first (clearing the map and raising the floor
    /// to the newest position seen, so absent rooms still count as changed up to there).
    fn entry(&mut self, room_id: &str, pos: u64, new: impl FnOnce() -> T) -> &mut T {
        if self.by_room.len() >= NOTIFIER_ROOMS_MAX && !self.by_room.contains_key(room_id) {
            self.by_room.clear();
            self.floor = self.floor.max(self.newest);
        }
        self.newest = self.newest.max(pos);
        self.by_room.entry(room_id.to_owned()).or_insert_with(new)
    }
}

/// Room writes under way: each holds back the stream position syncs see at what the notifier
/// had seen when the write began, so no sync takes a position past a committed event whose
/// room the notifier has not recorded yet (writes that commit together are recorded by their
/// tasks in any order).
#[derive(Default)]
struct Writes {
    next_id: u64,
    /// write → the newest position seen when it began (its own will be larger).
    under_way: std::collections::BTreeMap<u64, u64>,
    /// The newest position passed to `advance_stream`.
    newest: u64,
}

pub struct Notifier {
    positions: tokio::sync::watch::Sender<Positions>,
    ephemeral: Mutex<Ephemeral>,
    /// room → (newest event position, newest receipt position) seen by this process, so a
    /// sync can skip rooms where nothing happened without asking the database.
    rooms: Mutex<Seen<(u64, u64)>>,
    /// room → newest membership event position seen by this process (and the newest of all).
    members: Mutex<Seen<u64>>,
    writes: Mutex<Writes>,
}

/// A room write under way (see [`Notifier::room_write`]); dropping it lets the stream position
/// syncs see move on. Dropped without [`RoomWrite::recorded`] — the write failed, or the request
/// was cancelled while the store was committing it, so its position never reached the notifier —
/// the room counts as changed for every sync from then on (until restart): a few needless reads
/// rather than an event no sync ever delivers.
pub struct RoomWrite<'a> {
    notifier: &'a Notifier,
    id: u64,
    room_id: String,
    recorded: bool,
}

impl RoomWrite<'_> {
    /// The store's answer is in and the notifier has recorded what it changed (if anything).
    pub fn recorded(mut self) {
        self.recorded = true;
    }
}

impl Drop for RoomWrite<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            let mut rooms = self.notifier.rooms();
            let entry = rooms.entry(&self.room_id, 0, || (0, 0));
            *entry = (u64::MAX, u64::MAX);
            drop(rooms);
            let mut members = self.notifier.members();
            *members.entry(&self.room_id, 0, || 0) = u64::MAX;
        }
        let mut w = self.notifier.writes();
        w.under_way.remove(&self.id);
        self.notifier.publish(&w);
    }
}

impl Notifier {
    /// `stream` is the store's newest position at start-up: every change before it counts as
    /// made at it (the notifier saw none of them).
    pub fn new(stream: u64) -> Self {
        Self {
            positions: tokio::sync::watch::Sender::new(Positions { stream, ephemeral: 0 }),
            ephemeral: Mutex::new(Ephemeral::default()),
            rooms: Mutex::new(Seen::new(stream)),
            members: Mutex::new(Seen::new(stream)),
            writes: Mutex::new(Writes { newest: stream, ..Default::default() }),
        }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Seen<u64>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writes(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Announces a write of room events or receipts, to be held until the notifier has recorded
    /// it ([`Self::room_changed`]) or the write failed. Every write whose room
    /// [`Self::room_changes_after`] answers for must hold one.
    pub fn room_write(&self, room_id: &str) -> RoomWrite<'_> {
        let mut w = self.writes();
        w.next_id += 1;
        let (id, newest) = (w.next_id, w.newest);
        w.under_way.insert(id, newest);
        RoomWrite { notifier: self, id, room_id: room_id.to_owned(), recorded: false }
    }

    /// Sets the position syncs see: the newest one announced, but not past any write under way.
    fn publish(&self, w: &Writes) {
        let held = w.under_way.values().min().copied().unwrap_or(u64::MAX);
        let pos = w.newest.min(held);
        self.positions.send_if_modified(|p| {
            if pos > p.stream {
                p.stream = pos;
                true
            } else {
                false
            }
        });
    }

    /// Records a membership event (before [`Self::room_changed`] wakes syncs for it).
    pub fn member_changed(&self, room_id: &str, pos: u64) {
        let mut m = self.members();
        let entry = m.entry(room_id, pos, || pos);
        *entry = (*entry).max(pos);
    }

    /// Whether any room (`None`) or the given room had a membership event after `since`, as far
    /// as this process knows (changes before start-up count as at the start-up position).
    pub fn members_changed_after(&self, room_id: Option<&str>, since: u64) -> bool {
        let m = self.members();
        match room_id {
            None => m.newest > since,
            Some(room) => m.by_room.get(room).copied().unwrap_or(0).max(m.floor) > since,
        }
    }

    pub fn positions(&self) -> Positions {
        *self.positions.borrow()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Positions> {
        self.positions.subscribe()
    }

    pub fn advance_stream(&self, pos: u64) {
        let mut w = self.writes();
        w.newest = w.newest.max(pos);
        self.publish(&w);
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, Seen<(u64, u64)>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new event (`receipt == false`) or receipt in a room, then wakes syncs.
    pub fn room_changed(&self, room_id: &str, pos: u64, receipt: bool) {
        {
            let mut rooms = self.rooms();
            let entry = rooms.entry(room_id, pos, || (0, 0));
            if receipt {
                entry.1 = entry.1.max(pos);
            } else {
                entry.0 = entry.0.max(pos);
            }
        }
        self.advance_stream(pos);
    }

    /// (events changed, receipts changed) after `since`, as far as this process knows. A room
    /// it has no entry for changed last at or before its floor (start-up, or the last time the
    /// map was cleared), so it counts as changed only for `since` below that.
    pub fn room_changes_after(&self, room_id: &str, since: u64) -> (bool, bool) {
        let rooms = self.rooms();
        match rooms.by_room.get(room_id) {
            Some(&(event, receipt)) => (event.max(rooms.floor) > since, receipt.max(rooms.floor) > since),
            None => (rooms.floor > since, rooms.floor > since),
        }
    }

    /// [`Self::room_changes_after`]'s "events changed" for many rooms under one lock.
    pub fn events_after_each<'a>(&self, queries: impl Iterator<Item = (&'a str, u64)>) -> Vec<bool> {
        let rooms = self.rooms();
        let floor = rooms.floor;
        queries
            .map(|(room, since)| {
                rooms.by_room.get(room).map_or(floor, |&(event, _)| event.max(floor)) > since
            })
            .collect()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Ephemeral> {
        self.ephemeral.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a presence change; wakes syncs only if state or status message changed.
    pub fn set_presence(&self, user_id: &str, state: &str, status_msg: Option<Option<&str>>, active: bool) {
        let serial = {
            let mut e = self.state();
            let now = now_ms();
            let next = e.serial + 1;
            let entry = e.presence.entry(user_id.to_owned()).or_insert_with(|| Presence {
                state: "offline".into(),
                status_msg: None,
                last_active_ms: now,
                serial: 0,
            });
            if active {
                entry.last_active_ms = now;
            }
            let msg = match status_msg {
                Some(m) => m.map(str::to_owned),
                None => entry.status_msg.clone(),
            };
            if entry.state == state && entry.status_msg == msg {
                return;
            }
            entry.state = state.to_owned();
            entry.status_msg = msg;
            entry.serial = next;
            e.serial = next;
            next
        };
        self.positions.send_modify(|p| p.ephemeral = serial);
    }

    pub fn presence_of(&self, user_id: &str) -> Option<Presence> {
        self.state().presence.get(user_id).cloned()
    }

    /// Presence of `users` changed after `since` (all known ones if `None`).
    pub fn presence_changes(
        &self,
        users: &std::collections::BTreeSet<String>,
        since: Option<u64>,
    ) -> Vec<(String, Presence)> {
        let e = self.state();
        users
            .iter()
            .filter_map(|u| e.presence.get(u).map(|p| (u.clone(), p.clone())))
            .filter(|(_, p)| since.is_none_or(|s| p.serial > s || s > e.serial))
            .collect()
    }

    /// Sets or clears a typing entry; wakes syncs if that changed anything.
    fn set_typing(&self, room_id: &str, user_id: &str, expires_ms: Option<u64>) {
        let serial = {
            let mut t = self.state();
            let room = t.typers.entry(room_id.to_owned()).or_default();
            let changed = match expires_ms {
                Some(exp) => room.insert(user_id.to_owned(), exp).is_none(),
                None => room.remove(user_id).is_some(),
            };
            if room.is_empty() {
                t.typers.remove(room_id);
            }
            if !changed {
                return;
            }
            t.serial += 1;
            let serial = t.serial;
            t.changed.insert(room_id.to_owned(), serial);
            serial
        };
        self.positions.send_modify(|p| p.ephemeral = serial);
    }

    /// Clears an entry whose time ran out (unless it was renewed meanwhile).
    fn expire(&self, room_id: &str, user_id: &str, now: u64) {
        let still =
            self.state().typers.get(room_id).and_then(|r| r.get(user_id)).is_some_and(|&exp| exp <= now);
        if still {
            self.set_typing(room_id, user_id, None);
        }
    }

    /// Who types in a room now, and whether that changed after `since_serial`.
    pub fn typing_in(&self, room_id: &str, since_serial: Option<u64>) -> Option<Vec<String>> {
        let t = self.state();
        let now = now_ms();
        let users: Vec<String> = t
            .typers
            .get(room_id)
            .map(|r| r.iter().filter(|(_, exp)| **exp > now).map(|(u, _)| u.clone()).collect())
            .unwrap_or_default();
        let changed = t.changed.get(room_id).copied().unwrap_or(0);
        match since_serial {
            None if users.is_empty() => None,
            None => Some(users),
            // A serial from before a restart is larger than ours: report the current state.
            Some(s) if changed > s || s > t.serial => Some(users),
            Some(_) => None,
        }
    }
}

impl Services {
    /// `PUT /rooms/{roomId}/typing/{userId}`.
    pub async fn set_typing(
        &self,
        authed: &Authed,
        room_id: &str,
        user_id: &str,
        typing: bool,
        timeout_ms: Option<u64>,
    ) -> Result<()> {
        if authed.user_id != user_id {
            return Err(Error::Forbidden("you can only set your own typing state".into()));
        }
        let room_id = parse_room_id(room_id)?;
        if self.readable_until(room_id.as_str(), user_id).await? != u64::MAX {
            return Err(Error::Forbidden("you are not in this room".into()));
        }
        if !typing {
            self.notifier.set_typing(room_id.as_str(), user_id, None);
            return Ok(());
        }
        let timeout = timeout_ms.unwrap_or(TYPING_TIMEOUT_MAX_MS).clamp(1, TYPING_TIMEOUT_MAX_MS);
        let expires = now_ms() + timeout;
        self.notifier.set_typing(room_id.as_str(), user_id, Some(expires));
        let notifier: Arc<Notifier> = self.notifier.clone();
        let (room, user) = (room_id.to_string(), user_id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(timeout)).await;
            notifier.expire(&room, &user, now_ms());
        });
        Ok(())
    }

    /// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`. A receipt that does not move
    /// forward is accepted and ignored, as the spec allows.
    pub async fn send_receipt(
        &self,
        authed: &Authed,
        room_id: &str,
        receipt_type: &str,
        event_id: &str,
        thread_id: Option<&str>,
    ) -> Result<()> {
        if receipt_type == "m.fully_read" {
            return self.set_fully_read(authed, room_id, event_id).await;
        }
        if !RECEIPT_TYPES.contains(&receipt_type) {
            return Err(Error::InvalidParam(format!("unknown receipt type `{receipt_type}`")));
        }
        let thread = thread_id.unwrap_or("");
        if thread.len() > THREAD_ID_MAX_BYTES {
            return Err(Error::InvalidParam("thread_id too long".into()));
        }
        let room_id = parse_room_id(room_id)?;
        if self.readable_until(room_id.as_str(), &authed.user_id).await? != u64::MAX {
            return Err(Error::Forbidden("you are not in this room".into()));
        }
        match self.store.event(event_id).await? {
            Some(e) if e.room_id == room_id.as_str() => {}
            _ => return Err(Error::NotFound("no such event in this room".into())),
        }
        let receipt = Receipt {
            room_id: room_id.to_string(),
            user_id: authed.user_id.clone(),
            receipt_type: receipt_type.to_owned(),
            thread_id: thread.to_owned(),
            event_id: event_id.to_owned(),
            ts: now_ms(),
            stream_pos: 0,
        };
        let write = self.notifier.room_write(room_id.as_str());
        if let Some(pos) = self.store.set_receipt(receipt).await? {
            self.forget_unread(&authed.user_id, Some(room_id.as_str()));
            self.notifier.room_changed(room_id.as_str(), pos, true);
        }
        write.recorded();
        Ok(())
    }

    /// `POST /rooms/{roomId}/read_markers`.
    pub async fn set_read_markers(
        &self,
        authed: &Authed,
        room_id: &str,
        fully_read: Option<&str>,
        read: Option<&str>,
        read_private: Option<&str>,
    ) -> Result<()> {
        if let Some(e) = fully_read {
            self.set_fully_read(authed, room_id, e).await?;
        }
        if let Some(e) = read {
            self.send_receipt(authed, room_id, "m.read", e, None).await?;
        }
        if let Some(e) = read_private {
            self.send_receipt(authed, room_id, "m.read.private", e, None).await?;
        }
        Ok(())
    }

    async fn set_fully_read(&self, authed: &Authed, room_id: &str, event_id: &str) -> Result<()> {
        let room_id = parse_room_id(room_id)?;
        if self.readable_until(room_id.as_str(), &authed.user_id).await? != u64::MAX {
            return Err(Error::Forbidden("you are not in this room".into()));
        }
        match self.store.event(event_id).await? {
            Some(e) if e.room_id == room_id.as_str() => {}
            _ => return Err(Error::NotFound("no such event in this room".into())),
        }
        let content = json!({ "event_id": event_id }).to_string();
        let pos = self
            .store
            .set_account_data(&authed.user_id, Some(room_id.as_str()), "m.fully_read", &content)
            .await?;
        self.notify(pos);
        Ok(())
    }

    /// The `m.receipt` event for receipts changed in `(since, until]`, as `me` may see them.
    pub(crate) async fn receipt_event(
        &self,
        room_id: &str,
        me: &str,
        since: u64,
        until: u64,
    ) -> Result<Option<Value>> {
        let receipts = self.store.receipts_changed(room_id, since, until).await?;
        let mut content = serde_json::Map::new();
        for r in receipts {
            if r.receipt_type == "m.read.private" && r.user_id != me {
                continue;
            }
            let mut info = json!({ "ts": r.ts });
            if !r.thread_id.is_empty() {
                info["thread_id"] = json!(r.thread_id);
            }
            let by_event = content.entry(r.event_id).or_insert_with(|| json!({}));
            by_event[&r.receipt_type][&r.user_id] = info;
        }
        if content.is_empty() {
            return Ok(None);
        }
        Ok(Some(json!({ "type": "m.receipt", "content": content })))
    }

    /// Notification and highlight counts since the user's read receipts, from push rules.
    /// With `split_threads`, events in threads are counted per thread root (against that
    /// thread's receipts) instead of in the main counts.
    async fn count_unread(
        &self,
        room_id: &str,
        authed: &Authed,
        ruleset: &ruma::push::Ruleset,
        until: u64,
        entry: &mut UnreadCache,
    ) -> Result<()> {
        /// Events looked at per room per call; clients show "99+" beyond that anyway.
        const UNREAD_SCAN_MAX: usize = 100;
        let me = &authed.user_id;
        let (split_threads, from) = (entry.split_threads, entry.counted_to);
        let (unthreaded, main) = (entry.reads.unthreaded, entry.reads.main);
        let events = self
            .store
            .room_events(room_id, from, Some(until), ward_store::Direction::Forward, UNREAD_SCAN_MAX)
            .await?;
        // A full batch may not reach `until`: the next call goes on from its last event.
        let scanned_to = if events.len() == UNREAD_SCAN_MAX {
            events.last().map_or(until, |e| e.stream_pos)
        } else {
            until
        };
        entry.counted_to = scanned_to;
        if events.iter().all(|e| &e.sender == me) {
            return Ok(());
        }
        let members = self.store.room_members(room_id).await?;
        let joined = members.iter().filter(|m| m.membership == "join").count() as u64;
        let display = self.profile(me).await.ok().and_then(|p| p.display_name).unwrap_or_else(|| me.clone());
        let ctx = ruma::push::PushConditionRoomCtx::new(
            parse_room_id(room_id)?,
            ruma::UInt::new(joined).unwrap_or_default(),
            parse_user_id(me)?,
            display,
        );
        let thread_read = &mut entry.reads.threads;
        let counts = &mut entry.counts;
        for e in &events {
            if &e.sender == me || e.kind == TimelineEventType::RoomRedaction.to_string() {
                continue;
            }
            let pdu = super::to_pdu(e)?;
            let thread = split_threads
                .then(|| {
                    let c = pdu.content_value();
                    let rel = c.get("m.relates_to")?;
                    (rel.get("rel_type")?.as_str()? == "m.thread")
                        .then(|| rel.get("event_id")?.as_str().map(str::to_owned))?
                })
                .flatten();
            let read = match &thread {
                Some(root) => match thread_read.get(root) {
                    Some(p) => *p,
                    None => {
                        let p = self
                            .store
                            .read_up_to(room_id, me, root)
                            .await?
                            .unwrap_or(unthreaded)
                            .max(unthreaded);
                        thread_read.insert(root.clone(), p);
                        p
                    }
                },
                None => main,
            };
            if e.stream_pos <= read {
                continue;
            }
            let raw = match serde_json::value::to_raw_value(&pdu.client_event()) {
                Ok(r) => ruma::serde::Raw::<Value>::from_json(r),
                Err(_) => continue,
            };
            let actions = ruleset.get_actions(&raw, &ctx).await;
            let (notify, highlight) =
                (actions.iter().any(|a| a.should_notify()), actions.iter().any(|a| a.is_highlight()));
            let bucket = match thread {
                Some(root) => counts.threads.entry(root).or_default(),
                None => &mut counts.main,
            };
            bucket.0 += u64::from(notify);
            bucket.1 += u64::from(highlight);
        }
        counts.threads.retain(|_, c| *c != (0, 0));
        Ok(())
    }

    /// Notification and highlight counts since the user's read receipts, from push rules.
    /// With `split_threads`, events in threads are counted per thread root (against that
    /// thread's receipts) instead of in the main counts. Counts are cached per user and room
    /// and advanced over new events only; a receipt, a membership change or a push-rule edit
    /// of the user starts them afresh.
    pub(crate) async fn unread_counts(
        &self,
        room_id: &str,
        authed: &Authed,
        ruleset: &ruma::push::Ruleset,
        until: u64,
        split_threads: bool,
    ) -> Result<UnreadCounts> {
        let key = (authed.user_id.clone(), room_id.to_owned());
        let cached = self.unread_cache().get(&key).cloned();
        let mut entry = match cached {
            Some(c) if c.split_threads == split_threads && c.counted_to <= until => c,
            _ => {
                let me = &authed.user_id;
                let joined_at = self.store.membership(room_id, me).await?.map_or(0, |m| m.stream_pos);
                let unthreaded =
                    self.store.read_up_to(room_id, me, "").await?.unwrap_or(joined_at).max(joined_at);
                let main =
                    self.store.read_up_to(room_id, me, "main").await?.unwrap_or(joined_at).max(joined_at);
                UnreadCache {
                    split_threads,
                    counted_to: unthreaded,
                    counts: UnreadCounts::default(),
                    reads: UnreadReads { unthreaded, main, threads: HashMap::new() },
                }
            }
        };
        if entry.counted_to >= until {
            return Ok(entry.counts);
        }
        self.count_unread(room_id, authed, ruleset, until, &mut entry).await?;
        let counts = entry.counts.clone();
        let mut cache = self.unread_cache();
        if cache.len() >= UNREAD_CACHE_MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(key, entry);
        Ok(counts)
    }

    fn unread_cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), UnreadCache>> {
        self.unread.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops cached unread counts of a user (in one room, or everywhere).
    pub(crate) fn forget_unread(&self, user_id: &str, room_id: Option<&str>) {
        let mut cache = self.unread_cache();
        match room_id {
            Some(r) => {
                cache.remove(&(user_id.to_owned(), r.to_owned()));
            }
            None => cache.retain(|(u, _), _| u != user_id),
        }
    }
}

/// (user, room) entries of the unread-count cache; cleared when full.
const UNREAD_CACHE_MAX_ENTRIES: usize = 100_000;

/// Read positions the counts were made against.
#[derive(Debug, Clone, Default)]
pub(crate) struct UnreadReads {
    unthreaded: u64,
    main: u64,
    threads: HashMap<String, u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct UnreadCache {
    split_threads: bool,
    counted_to: u64,
    counts: UnreadCounts,
    reads: UnreadReads,
}

/// (notification count, highlight count), for the room and per thread root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnreadCounts {
    pub main: (u64, u64),
    pub threads: std::collections::BTreeMap<String, (u64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_unseen_since_start_up_are_unchanged_after_it() {
        let n = Notifier::new(100);
        // Before start-up the notifier knows nothing: a room may have changed.
        assert_eq!(n.room_changes_after("!a:x", 99), (true, true));
        // From the start-up position on, a room it has not seen did not change.
        assert_eq!(n.room_changes_after("!a:x", 100), (false, false));
        assert_eq!(n.events_after_each([("!a:x", 100), ("!a:x", 50)].into_iter()), vec![false, true]);
        assert!(!n.members_changed_after(Some("!a:x"), 100));
        assert!(n.members_changed_after(Some("!a:x"), 99));
        n.room_changed("!a:x", 105, false);
        assert_eq!(n.room_changes_after("!a:x", 104), (true, false));
        assert_eq!(n.room_changes_after("!a:x", 105), (false, false));
        // A receipt in a room seen only for events before: receipts count from the floor.
        assert_eq!(n.room_changes_after("!a:x", 99), (true, true));
        n.room_changed("!a:x", 107, true);
        assert_eq!(n.room_changes_after("!a:x", 106), (false, true));
    }

    #[test]
    fn clearing_the_full_map_raises_the_floor() {
        let n = Notifier::new(0);
        for i in 0..NOTIFIER_ROOMS_MAX {
            n.room_changed(&format!("!r{i}:x"), i as u64 + 1, false);
        }
        let newest = NOTIFIER_ROOMS_MAX as u64;
        n.room_changed("!new:x", newest + 1, false);
        // The evicted rooms may have changed up to the newest position seen before clearing…
        assert_eq!(n.room_changes_after("!r0:x", newest - 1), (true, true));
        // …and not after it.
        assert_eq!(n.room_changes_after("!r0:x", newest), (false, false));
        assert_eq!(n.room_changes_after("!new:x", newest), (true, false));
    }

    #[test]
    fn a_write_under_way_holds_back_the_position_syncs_see() {
        let n = Notifier::new(10);
        let a = n.room_write("!a:x"); // will commit at 11
        let b = n.room_write("!b:x"); // will commit at 12
        // b is recorded first (both committed in one group; tasks run in any order).
        n.room_changed("!b:x", 12, false);
        b.recorded();
        // A sync must not take 12 while a's room is not recorded: it would skip a's event.
        assert_eq!(n.positions().stream, 10);
        n.room_changed("!a:x", 11, false);
        a.recorded();
        assert_eq!(n.positions().stream, 12);
        // Other announcements go through at once when no write is under way.
        n.advance_stream(13);
        assert_eq!(n.positions().stream, 13);
        // A write that fails (or whose request is cancelled while the store commits) releases
        // the position too, and its room counts as changed from then on.
        let c = n.room_write("!c:x");
        n.advance_stream(14);
        assert_eq!(n.positions().stream, 13);
        assert_eq!(n.room_changes_after("!c:x", 14), (false, false));
        drop(c);
        assert_eq!(n.positions().stream, 14);
        assert_eq!(n.room_changes_after("!c:x", 1_000), (true, true));
        assert!(n.members_changed_after(Some("!c:x"), 1_000));
        n.room_changed("!c:x", 15, false);
        assert_eq!(n.room_changes_after("!c:x", 1_000), (true, true));
    }
}
