//! Meetings with a lobby, moderator controls and video consultations (Videosprechstunde).
//!
//! A meeting is a conference room of the SFU (`meet-<meeting ID>`) plus a little state kept in
//! the store ([`ward_store::MeetingStore`]): who created it, from which chat room, whether it is
//! locked or has a PIN, and the lobby — guests' knocks. Moderators are the creator and, with
//! the `members_enter` policy, the joined members of the chat room it was started from — asked
//! at every call, so whoever is a member at the time (also someone who joined the chat after
//! the meeting began; not someone who left it); they get conferencing tokens directly. Guests knock with a display name, wait (long-polling their
//! knock) and get a token once a moderator admits them.
//!
//! Consultations are meetings for one doctor–patient session at a time: patients enter only
//! with a single-use, expiring patient link (optionally bound to a time slot), and only one
//! patient is admitted at a time.
//!
//! The end-to-end encryption secret is not the server's business: the browser puts it in the
//! link's URL fragment, which is never sent here, and no endpoint takes it.
//!
//! The SFU is reached through [`Conferencing`], which the binary implements with `ward-rtc`
//! (this crate does not depend on it). The SFU asks back through [`Services::meeting_admits`]
//! before anyone joins a meeting's room, so a removed guest or an ended meeting cannot be
//! re-entered with an old token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ward_core::secret::{TokenHash, hash_token, new_token, random_string};
use ward_core::throttle::{FailureThrottle, ThrottleConfig};
use ward_store::{
    Knock, KnockStatus, KnockUpdate, Meeting, MeetingKind, MeetingWrite, NewKnock, NewMeeting, PatientLink,
};

use crate::{Authed, Error, Result, Services, now_ms};

/// Fixed limits of meetings (the configurable ones are in [`MeetingSettings`]).
pub mod limits {
    /// Meetings a user may have open (not ended) at once.
    pub const OPEN_MEETINGS_PER_USER_MAX: u64 = 100;
    /// Guests waiting in one meeting's lobby at once.
    pub const WAITING_KNOCKS_PER_MEETING_MAX: u64 = 100;
    /// Unused, unexpired patient links of one consultation.
    pub const OPEN_PATIENT_LINKS_PER_MEETING_MAX: u64 = 500;
    /// Longest lifetime of a patient link.
    pub const PATIENT_LINK_LIFETIME_MAX_MS: u64 = 30 * 86_400_000;
    /// Shortest lifetime of a patient link.
    pub const PATIENT_LINK_LIFETIME_MIN_MS: u64 = 60_000;
    /// How early before its slot a patient link lets the patient into the waiting room.
    pub const PATIENT_EARLY_ENTRY_MS: u64 = 30 * 60_000;
    pub const TITLE_MAX_CHARS: usize = 100;
    pub const DISPLAY_NAME_MAX_CHARS: usize = 64;
    pub const PIN_MIN_CHARS: usize = 4;
    pub const PIN_MAX_CHARS: usize = 32;
    /// Longest long-poll of a knock or the lobby (shortened further by `sync_timeout_max_ms`).
    pub const POLL_TIMEOUT_MAX_MS: u64 = 60_000;
    /// Waiting knocks whose last poll is remembered (in memory); at this many, those of guests
    /// long gone are dropped, and if none are, new ones are not remembered (their knocks may
    /// expire early, and their pages knock again).
    pub const KNOCKS_SEEN_MAX: usize = 100_000;
    /// Knocks from one client address: a burst of this many, then one per
    /// [`KNOCK_REFILL_MS`].
    pub const KNOCK_BURST: u32 = 10;
    pub const KNOCK_REFILL_MS: u64 = 6_000;
    /// Wrong PINs per meeting and per client address: a burst of this many, then one more try
    /// per [`PIN_REFILL_MS`].
    pub const PIN_FAILURE_BURST: u32 = 5;
    pub const PIN_REFILL_MS: u64 = 60_000;
    /// Entries of the in-memory knock and PIN throttles (oldest recovered ones are dropped).
    pub const THROTTLE_MAX_KEYS: usize = 100_000;
    /// Longest retention of meeting metadata (Anlage 31b BMV-Ä: three months at most).
    pub const RETENTION_DAYS_MAX: u32 = 90;
    /// A running consultation session that neither its patient nor any of its holders has been
    /// connected to since at least this long after the admission (or the last hand-over) is
    /// abandoned: another moderator entering the room closes it instead of being refused, so
    /// that a session left behind (both pages closed without a word) cannot lock the practice
    /// out of its room. Long enough for pages that are still connecting or reloading.
    pub const SESSION_ABANDONED_AFTER_MS: u64 = 120_000;
}

/// Prefix of the SFU room of a meeting; the rest is the meeting ID.
pub const ROOM_PREFIX: &str = "meet-";
/// Prefix of guests' conferencing identities (Matrix users appear as their user ID).
pub const GUEST_IDENTITY_PREFIX: &str = "guest-";

/// Meeting IDs, knock IDs: 22 characters from 62, about 131 random bits, URL-safe.
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const ID_CHARS: usize = 22;

#[derive(Debug, Clone)]
pub struct MeetingSettings {
    /// Ended or unused meetings, knocks and patient links older than this are deleted.
    pub retention_ms: u64,
    /// Lifetime of the conferencing tokens handed out (`rtc_token_max_ttl_ms`).
    pub token_ttl_ms: u64,
    /// Longest long-poll (`sync_timeout_max_ms` and [`limits::POLL_TIMEOUT_MAX_MS`]).
    pub poll_max_ms: u64,
    /// A waiting knock nobody has polled for this long (and none is polling now) expires
    /// (`meeting_knock_expiry_ms`): the long-poll is the guest's heartbeat.
    pub knock_expiry_ms: u64,
}

/// What a conferencing token grants: one room, one identity, LiveKit's permission flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceGrant {
    pub room: String,
    pub identity: String,
    pub name: String,
    /// JSON the other participants see (`{"role":"moderator"}`).
    pub metadata: String,
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
    pub can_update_own_metadata: bool,
    pub ttl_ms: u64,
}

/// Why the SFU could not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConferencingError {
    /// No such room, participant or track.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    /// The media server is not running or overloaded.
    #[error("{0}")]
    Unavailable(String),
}

/// The SFU as the meeting service needs it. Implemented by the binary over `ward-rtc`, so that
/// this crate stays free of the conferencing shell.
#[async_trait::async_trait]
pub trait Conferencing: Send + Sync {
    /// A signed join token (LiveKit format) for the grant.
    fn mint_token(&self, grant: &ConferenceGrant) -> std::result::Result<String, String>;
    /// Disconnects the participant; `Ok(false)` if they are not connected.
    async fn remove_participant(
        &self,
        room: &str,
        identity: &str,
    ) -> std::result::Result<bool, ConferencingError>;
    /// Whether the participant is connected to the room now (`Ok(false)` also if the room does
    /// not exist).
    async fn is_connected(&self, room: &str, identity: &str) -> std::result::Result<bool, ConferencingError>;
    /// Disconnects everyone and closes the room; fine if it does not exist.
    async fn end_room(&self, room: &str) -> std::result::Result<(), ConferencingError>;
    /// Mutes a published track (only its owner can unmute it).
    async fn mute_track(
        &self,
        room: &str,
        identity: &str,
        track_sid: &str,
    ) -> std::result::Result<(), ConferencingError>;
}

/// In-process state: wake-ups for long-polls and the knock and PIN throttles. With several
/// nodes each would need a shared notifier, like sync's.
pub(crate) struct MeetState {
    /// One change counter per meeting that someone is waiting on.
    watchers: Mutex<HashMap<String, tokio::sync::watch::Sender<u64>>>,
    knocks: Mutex<FailureThrottle>,
    pins: Mutex<FailureThrottle>,
    /// Waiting knocks' heartbeats: when each was last polled, and how many polls are open.
    seen: Mutex<HashMap<String, Seen>>,
    /// Knocks older than this process count as polled when it started (a restart must not
    /// expire a lobby at once).
    started_ms: u64,
    conferencing: std::sync::OnceLock<Arc<dyn Conferencing>>,
}

/// A knock's heartbeat.
struct Seen {
    last_ms: u64,
    open_polls: u32,
}

/// An open poll of a knock (see [`MeetState::polling`]).
struct Polling<'a> {
    state: &'a MeetState,
    /// `None` if the table was full.
    knock_id: Option<String>,
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        let Some(knock_id) = &self.knock_id else { return };
        if let Some(s) = lock(&self.state.seen).get_mut(knock_id) {
            s.open_polls = s.open_polls.saturating_sub(1);
            s.last_ms = s.last_ms.max(now_ms());
        }
    }
}

/// When a waiting knock last polled at `last_polled_ms` expires.
fn knock_expires_ms(last_polled_ms: u64, expiry_ms: u64) -> u64 {
    last_polled_ms.saturating_add(expiry_ms)
}

/// A PIN attempt counted against both budgets before the PIN is checked.
struct PinAttempt {
    meeting_key: String,
    addr_key: String,
}

/// Wake-up entries kept at most before those nobody waits on are swept.
const WATCHERS_SWEEP_AT: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain in-memory maps: a panic while holding one cannot leave them inconsistent in a way
    // that matters, so a poisoned lock is taken over.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MeetState {
    pub(crate) fn new() -> Self {
        let throttle = |burst, refill_ms| {
            Mutex::new(FailureThrottle::new(ThrottleConfig {
                burst,
                refill_ms,
                max_keys: limits::THROTTLE_MAX_KEYS,
            }))
        };
        Self {
            watchers: Mutex::new(HashMap::new()),
            knocks: throttle(limits::KNOCK_BURST, limits::KNOCK_REFILL_MS),
            pins: throttle(limits::PIN_FAILURE_BURST, limits::PIN_REFILL_MS),
            seen: Mutex::new(HashMap::new()),
            started_ms: now_ms(),
            conferencing: std::sync::OnceLock::new(),
        }
    }

    /// A poll of the knock begins; it counts as alive until the guard is dropped and for the
    /// expiry time after that.
    fn polling<'a>(&'a self, knock_id: &str, now_ms: u64, expiry_ms: u64) -> Polling<'a> {
        let mut seen = lock(&self.seen);
        if !seen.contains_key(knock_id) && seen.len() >= limits::KNOCKS_SEEN_MAX {
            seen.retain(|_, s| s.open_polls > 0 || s.last_ms.saturating_add(expiry_ms) > now_ms);
        }
        let remembered = seen.contains_key(knock_id) || seen.len() < limits::KNOCKS_SEEN_MAX;
        if remembered {
            let entry = seen.entry(knock_id.to_owned()).or_insert(Seen { last_ms: now_ms, open_polls: 0 });
            entry.open_polls += 1;
            entry.last_ms = entry.last_ms.max(now_ms);
        }
        Polling { state: self, knock_id: remembered.then(|| knock_id.to_owned()) }
    }

    /// When the waiting knock was last polled; `None` while a poll is open.
    fn last_polled_ms(&self, knock: &Knock) -> Option<u64> {
        let floor = self.started_ms.max(knock.updated_ms);
        match lock(&self.seen).get(&knock.knock_id) {
            Some(s) if s.open_polls > 0 => None,
            Some(s) => Some(s.last_ms.max(floor)),
            None => Some(floor),
        }
    }

    fn forget_knock(&self, knock_id: &str) {
        let mut seen = lock(&self.seen);
        if seen.get(knock_id).is_some_and(|s| s.open_polls == 0) {
            seen.remove(knock_id);
        }
    }

    /// Reserves one PIN attempt before the (slow) check, so attempts in parallel cannot overrun
    /// the budgets: it is recorded as a failure at once and taken back if the PIN was right.
    ///
    /// Each client address has [`limits::PIN_FAILURE_BURST`] wrong PINs, then one per
    /// [`limits::PIN_REFILL_MS`]. The meeting's own budget (the same numbers, over all
    /// addresses) does not lock the meeting: once it is spent, only addresses with a wrong PIN
    /// still on record (within the last refill period) are refused. So guessing from many
    /// addresses gets one try per address and minute, and a guest with the right PIN is not
    /// locked out by someone else's guesses. `Err(retry_after_ms)` when refused.
    fn reserve_pin_attempt(
        &self,
        meeting_id: &str,
        client_addr: &str,
        now_ms: u64,
    ) -> std::result::Result<PinAttempt, u64> {
        let attempt = PinAttempt {
            meeting_key: format!("pin:{meeting_id}"),
            addr_key: format!("pin-addr:{client_addr}"),
        };
        let mut t = lock(&self.pins);
        t.check(&attempt.addr_key, now_ms)?;
        if t.check(&attempt.meeting_key, now_ms).is_err() {
            let clear_in_ms = t.clear_in_ms(&attempt.addr_key, now_ms);
            if clear_in_ms > 0 {
                return Err(clear_in_ms);
            }
        }
        t.record_failure(&attempt.addr_key, now_ms);
        t.record_failure(&attempt.meeting_key, now_ms);
        Ok(attempt)
    }

    fn pin_was_right(&self, attempt: &PinAttempt, now_ms: u64) {
        let mut t = lock(&self.pins);
        t.forgive(&attempt.addr_key, now_ms);
        t.forgive(&attempt.meeting_key, now_ms);
    }

    fn subscribe(&self, meeting_id: &str) -> tokio::sync::watch::Receiver<u64> {
        let mut watchers = lock(&self.watchers);
        if watchers.len() >= WATCHERS_SWEEP_AT {
            watchers.retain(|_, w| w.receiver_count() > 0);
        }
        watchers.entry(meeting_id.to_owned()).or_insert_with(|| tokio::sync::watch::channel(0).0).subscribe()
    }

    fn notify(&self, meeting_id: &str) {
        let mut watchers = lock(&self.watchers);
        if let Some(w) = watchers.get(meeting_id) {
            if w.receiver_count() == 0 {
                watchers.remove(meeting_id);
            } else {
                w.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

/// What `GET /meetings/{id}` shows anyone with the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicMeeting {
    pub kind: MeetingKind,
    pub title: Option<String>,
    pub locked: bool,
    pub pin_required: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CreateMeeting {
    pub kind: Option<String>,
    pub title: Option<String>,
    pub origin_room: Option<String>,
    /// Lobby policy; default `true`: origin-room members enter directly as moderators.
    pub members_enter: Option<bool>,
}

/// A conferencing token and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingToken {
    pub token: String,
    pub identity: String,
    pub room: String,
    /// `moderator`, `guest` or `patient` (also in the token's metadata).
    pub role: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnockCreated {
    pub meeting_id: String,
    pub knock_id: String,
    /// Shown once; only its hash is kept.
    pub knock_secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnockState {
    pub status: KnockStatus,
    /// While admitted: a fresh token (also after a reconnect).
    pub token: Option<MeetingToken>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LobbyEntry {
    pub knock_id: String,
    pub display_name: String,
    pub identity: String,
    pub status: KnockStatus,
    /// Came with a patient link.
    pub patient: bool,
    /// The patient link's reference (`link_ref`), for a patient: the browsers of the practice
    /// derive the appointment's end-to-end key from the room's secret and this.
    pub link_ref: Option<String>,
    pub since_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lobby {
    pub entries: Vec<LobbyEntry>,
    /// Opaque; pass it back as `since` to wait for the next change.
    pub since: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPatientLink {
    /// Shown once; only its hash is kept.
    pub link_token: String,
    /// The link's public reference (see `link_ref`), shown with its patient in the lobby.
    pub link_ref: String,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientLinkInfo {
    pub meeting_id: String,
    pub title: Option<String>,
    pub expires_ms: u64,
    pub slot_start_ms: Option<u64>,
    pub slot_end_ms: Option<u64>,
}

fn new_id() -> String {
    random_string(ID_CHARS, ID_ALPHABET)
}

/// IDs we make are 22 alphanumerics; anything else cannot exist, so it is "not found" without
/// asking the store.
fn plausible_id(id: &str) -> bool {
    id.len() == ID_CHARS && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub fn room_of(meeting_id: &str) -> String {
    format!("{ROOM_PREFIX}{meeting_id}")
}

fn not_found() -> Error {
    Error::NotFound("no such meeting, or it has ended".into())
}

/// A display name as guests type it: trimmed, 1 to 64 characters, no control characters.
pub(crate) fn check_display_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::InvalidParam("the display name must not be empty".into()));
    }
    if name.chars().count() > limits::DISPLAY_NAME_MAX_CHARS {
        return Err(Error::InvalidParam(format!(
            "the display name is longer than {} characters",
            limits::DISPLAY_NAME_MAX_CHARS
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidParam("the display name must not contain control characters".into()));
    }
    Ok(name.to_owned())
}

pub(crate) fn check_title(title: Option<&str>) -> Result<Option<String>> {
    let Some(title) = title.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if title.chars().count() > limits::TITLE_MAX_CHARS || title.chars().any(char::is_control) {
        return Err(Error::InvalidParam(format!(
            "the title must have at most {} characters and no control characters",
            limits::TITLE_MAX_CHARS
        )));
    }
    Ok(Some(title.to_owned()))
}

pub(crate) fn check_pin(pin: &str) -> Result<()> {
    let n = pin.chars().count();
    if !(limits::PIN_MIN_CHARS..=limits::PIN_MAX_CHARS).contains(&n)
        || pin.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Error::InvalidParam(format!(
            "a PIN has {} to {} characters without spaces",
            limits::PIN_MIN_CHARS,
            limits::PIN_MAX_CHARS
        )));
    }
    Ok(())
}

/// Whether a patient link lets its patient into the waiting room at `now_ms`: not used up,
/// not expired, and within its slot (from [`limits::PATIENT_EARLY_ENTRY_MS`] before the start
/// until the end). The messages are shown to patients.
pub(crate) fn check_patient_link(link: &PatientLink, now_ms: u64) -> Result<()> {
    if link.spent {
        return Err(Error::Forbidden(
            "this link has been used already; please ask the practice for a new one".into(),
        ));
    }
    if now_ms >= link.expires_ms {
        return Err(Error::Forbidden("this link has expired; please ask the practice for a new one".into()));
    }
    if let Some(start) = link.slot_start_ms
        && now_ms < start.saturating_sub(limits::PATIENT_EARLY_ENTRY_MS)
    {
        return Err(Error::Forbidden(format!(
            "your appointment has not started yet; the waiting room opens {} minutes before it",
            limits::PATIENT_EARLY_ENTRY_MS / 60_000
        )));
    }
    if let Some(end) = link.slot_end_ms
        && now_ms >= end
    {
        return Err(Error::Forbidden("the time slot of this appointment is over".into()));
    }
    Ok(())
}

/// A patient link's public reference: the first 16 bytes of its token's SHA-256 (what the store
/// keeps), hex. Moderators see it with the patient in the lobby; the practice's browser derives
/// the appointment's end-to-end key from the room's secret and it (web/src/meet/keys.ts). It is
/// no credential: the token cannot be recovered from it, and knocking needs the token.
pub fn link_ref(link_hash: &TokenHash) -> String {
    link_hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A fingerprint of the lobby, so a moderator's long-poll waits only while nothing changed.
fn lobby_fingerprint(knocks: &[Knock]) -> String {
    let text: String = knocks.iter().map(|k| format!("{}={};", k.knock_id, k.status.as_str())).collect();
    hash_token(&text)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn role_metadata(role: &str) -> String {
    serde_json::json!({ "role": role }).to_string()
}

impl Services {
    /// Hands the service its SFU (once, at start; the binary does it when conferencing is on).
    pub fn set_conferencing(&self, conferencing: Arc<dyn Conferencing>) {
        if self.meet.conferencing.set(conferencing).is_err() {
            tracing::warn!("conferencing was set twice; keeping the first");
        }
    }

    fn conferencing(&self) -> Result<&Arc<dyn Conferencing>> {
        self.meet
            .conferencing
            .get()
            .ok_or_else(|| Error::Unavailable("conferencing is switched off on this server".into()))
    }

    fn poll_timeout(&self, timeout_ms: Option<u64>) -> Duration {
        Duration::from_millis(timeout_ms.unwrap_or(0).min(self.settings.meetings.poll_max_ms))
    }

    /// The meeting if it exists and has not ended.
    async fn open_meeting(&self, meeting_id: &str) -> Result<Meeting> {
        if !plausible_id(meeting_id) {
            return Err(not_found());
        }
        match self.store.meeting(meeting_id).await? {
            Some(m) if m.ended_ms.is_none() => Ok(m),
            _ => Err(not_found()),
        }
    }

    async fn is_moderator(&self, meeting: &Meeting, user_id: &str) -> Result<bool> {
        if meeting.creator == user_id {
            return Ok(true);
        }
        match (&meeting.origin_room, meeting.members_enter) {
            (Some(room), true) => {
                Ok(self.store.membership(room, user_id).await?.is_some_and(|m| m.membership == "join"))
            }
            _ => Ok(false),
        }
    }

    async fn moderated_meeting(&self, authed: &Authed, meeting_id: &str) -> Result<Meeting> {
        let meeting = self.open_meeting(meeting_id).await?;
        if !self.is_moderator(&meeting, &authed.user_id).await? {
            return Err(Error::Forbidden("only the meeting's moderators may do this".into()));
        }
        Ok(meeting)
    }

    /// A moderator's action that changes the running call (admit, lock, PIN, remove, mute,
    /// end): in a consultation with a session running only its holders may take it, so that
    /// nobody else disturbs the session (the words); others still see the lobby,
    /// reject people waiting and make patient links.
    async fn session_action(&self, authed: &Authed, meeting_id: &str) -> Result<Meeting> {
        let meeting = self.moderated_meeting(authed, meeting_id).await?;
        if let Some(session) = self.consultation_session(&meeting).await?
            && !session.held_by(&authed.user_id)
        {
            return Err(Error::Forbidden(
                "a consultation is in progress; only the doctor in it can do this".into(),
            ));
        }
        Ok(meeting)
    }

    fn mint(
        &self,
        meeting: &Meeting,
        identity: &str,
        name: &str,
        role: &'static str,
    ) -> Result<MeetingToken> {
        let room = room_of(&meeting.meeting_id);
        let grant = ConferenceGrant {
            room: room.clone(),
            identity: identity.to_owned(),
            name: name.to_owned(),
            metadata: role_metadata(role),
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            // Roles live in the metadata; nobody may rewrite their own.
            can_update_own_metadata: false,
            ttl_ms: self.settings.meetings.token_ttl_ms,
        };
        let token = self.conferencing()?.mint_token(&grant).map_err(Error::Internal)?;
        Ok(MeetingToken { token, identity: identity.to_owned(), room, role })
    }

    /// `POST /meetings`: a new meeting created by the caller.
    pub async fn create_meeting(&self, authed: &Authed, input: CreateMeeting) -> Result<String> {
        let kind = match input.kind.as_deref() {
            None => MeetingKind::Meeting,
            Some(k) => MeetingKind::parse(k)
                .ok_or_else(|| Error::InvalidParam("kind must be \"meeting\" or \"consultation\"".into()))?,
        };
        let title = check_title(input.title.as_deref())?;
        if let Some(room) = &input.origin_room {
            if !room.starts_with('!') || room.len() > 255 {
                return Err(Error::InvalidParam("origin_room must be a room ID (!…)".into()));
            }
            let joined =
                self.store.membership(room, &authed.user_id).await?.is_some_and(|m| m.membership == "join");
            if !joined {
                return Err(Error::Forbidden("you are not joined to the origin room".into()));
            }
        }
        let meeting_id = new_id();
        let new = NewMeeting {
            meeting_id: meeting_id.clone(),
            kind,
            title,
            creator: authed.user_id.clone(),
            origin_room: input.origin_room,
            members_enter: input.members_enter.unwrap_or(true),
            created_ms: now_ms(),
        };
        match self.store.create_meeting(new, limits::OPEN_MEETINGS_PER_USER_MAX).await? {
            MeetingWrite::Done => Ok(meeting_id),
            _ => Err(Error::LimitReached(format!(
                "you have {} open meetings; end one first",
                limits::OPEN_MEETINGS_PER_USER_MAX
            ))),
        }
    }

    /// The caller's open meetings, newest first.
    pub async fn my_meetings(&self, authed: &Authed) -> Result<Vec<Meeting>> {
        Ok(self.store.open_meetings_of(&authed.user_id).await?)
    }

    /// `GET /meetings/{id}`: what the link's page shows before joining.
    pub async fn meeting_public(&self, meeting_id: &str) -> Result<PublicMeeting> {
        let m = self.open_meeting(meeting_id).await?;
        Ok(PublicMeeting {
            kind: m.kind,
            title: m.title,
            locked: m.locked,
            pin_required: m.pin_hash.is_some(),
        })
    }

    /// `POST /meetings/{id}/join`: a moderator's token. In a consultation with a session running,
    /// only for the session's holders ([`Self::check_session_entry`]).
    pub async fn join_meeting(&self, authed: &Authed, meeting_id: &str) -> Result<MeetingToken> {
        let meeting = self.open_meeting(meeting_id).await?;
        if !self.is_moderator(&meeting, &authed.user_id).await? {
            return Err(Error::Forbidden(match meeting.kind {
                MeetingKind::Consultation => {
                    "only the practice's team enters this consultation room directly; patients use their personal link"
                        .into()
                }
                MeetingKind::Meeting => {
                    "you cannot enter this meeting directly; knock as a guest and wait to be admitted".into()
                }
            }));
        }
        self.check_session_entry(&meeting, &authed.user_id, true).await?;
        let name = match self.store.account(&authed.user_id).await? {
            Some(a) => a.display_name.unwrap_or_else(|| authed.user_id.clone()),
            None => authed.user_id.clone(),
        };
        let token = self.mint(&meeting, &authed.user_id, &name, "moderator")?;
        self.store.touch_meeting(meeting_id, now_ms()).await?;
        Ok(token)
    }

    /// Ends an admitted guest's session (the knock becomes `left`); false if it was not
    /// admitted any more.
    async fn close_session(&self, knock_id: &str) -> Result<bool> {
        let update = self.store.update_knock(
            knock_id,
            &[KnockStatus::Admitted],
            KnockStatus::Left,
            false,
            None,
            now_ms(),
        );
        Ok(matches!(update.await?, KnockUpdate::Done(_)))
    }

    /// A consultation's running session: its admitted patient's knock (at most one, by the
    /// store's exclusive admission). `None` for team meetings and idle consultation rooms.
    async fn consultation_session(&self, meeting: &Meeting) -> Result<Option<Knock>> {
        if meeting.kind != MeetingKind::Consultation {
            return Ok(None);
        }
        let knocks = self.store.open_knocks(&meeting.meeting_id).await?;
        Ok(knocks.into_iter().find(|k| k.status == KnockStatus::Admitted))
    }

    /// Whether a moderator may enter the meeting now: in a consultation with a session running
    /// (issue 8: nobody else may join or disturb it), only one of the session's holders may —
    /// the moderator who admitted the patient, or the colleague it was handed over to
    /// ([`Knock::held_by`]); a holder reconnecting gets in again. With `reclaim`, a session
    /// abandoned by everyone in it ([`limits::SESSION_ABANDONED_AFTER_MS`]) is closed (the knock
    /// becomes `left`) and the caller enters. The SFU's gate does not reclaim: it must not ask
    /// the SFU back while it decides a join.
    async fn check_session_entry(&self, meeting: &Meeting, user_id: &str, reclaim: bool) -> Result<()> {
        let refused = || {
            Error::Forbidden("a consultation is in progress; the doctor in it can hand it over to you".into())
        };
        let Some(session) = self.consultation_session(meeting).await? else {
            return Ok(());
        };
        if session.held_by(user_id) {
            return Ok(());
        }
        if !(reclaim && self.session_abandoned(&session).await?) {
            return Err(refused());
        }
        if self.close_session(&session.knock_id).await? {
            tracing::info!("closed an abandoned consultation session");
            self.meet.notify(&meeting.meeting_id);
        }
        // Judged again: a patient admitted meanwhile has a session of their own.
        match self.consultation_session(meeting).await? {
            Some(s) if !s.held_by(user_id) => Err(refused()),
            _ => Ok(()),
        }
    }

    /// Whether nobody of the session — its patient, its holders — has been connected to the
    /// conference since [`limits::SESSION_ABANDONED_AFTER_MS`] after its admission or hand-over.
    async fn session_abandoned(&self, session: &Knock) -> Result<bool> {
        if now_ms() < session.updated_ms.saturating_add(limits::SESSION_ABANDONED_AFTER_MS) {
            return Ok(false);
        }
        let Ok(conf) = self.conferencing() else {
            return Ok(false);
        };
        let room = room_of(&session.meeting_id);
        let people = [Some(&session.identity), session.admitted_by.as_ref(), session.handed_to.as_ref()];
        for identity in people.into_iter().flatten() {
            if conf.is_connected(&room, identity).await.map_err(conferencing_error)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `POST /meetings/{id}/handover`: a holder of the consultation's running session hands it
    /// over to a colleague, who may then enter (the hand-over link carries the appointment's
    /// key; this grants the entry). The colleague must be allowed to moderate the room. The
    /// holder keeps holding it (to come back, or until they leave); handing it over again
    /// replaces the earlier colleague.
    pub async fn hand_over_consultation(
        &self,
        authed: &Authed,
        meeting_id: &str,
        user_id: &str,
    ) -> Result<()> {
        let meeting = self.moderated_meeting(authed, meeting_id).await?;
        if meeting.kind != MeetingKind::Consultation {
            return Err(Error::InvalidParam("only a consultation's session can be handed over".into()));
        }
        let target = ruma::UserId::parse(user_id)
            .map_err(|_| Error::InvalidParam("user_id must be a Matrix user ID (@name:server)".into()))?;
        let target = target.as_str();
        if target == authed.user_id {
            return Err(Error::InvalidParam("hand the session over to a colleague, not to yourself".into()));
        }
        let Some(session) = self.consultation_session(&meeting).await? else {
            return Err(Error::Conflict(
                "no patient is in the consultation; there is no session to hand over".into(),
            ));
        };
        let not_holder = || Error::Forbidden("only the doctor in the consultation can hand it over".into());
        if !session.held_by(&authed.user_id) {
            return Err(not_holder());
        }
        if !self.is_moderator(&meeting, target).await? {
            return Err(Error::Forbidden(format!(
                "{target} may not moderate this consultation room (they must be a member of its chat)"
            )));
        }
        match self.store.hand_over_knock(&session.knock_id, &authed.user_id, target, now_ms()).await? {
            KnockUpdate::Done(_) => {
                metrics::counter!("ward_meet_handovers_total").increment(1);
                self.meet.notify(meeting_id);
                Ok(())
            }
            KnockUpdate::NotHolder => Err(not_holder()),
            KnockUpdate::NotFound | KnockUpdate::WrongState(_) => {
                Err(Error::Conflict("the session ended meanwhile; there is nothing to hand over".into()))
            }
            KnockUpdate::Busy => Err(Error::Internal("a hand-over answered as an admission".into())),
        }
    }

    fn throttle_knock(&self, client_addr: &str, now: u64) -> Result<()> {
        let mut t = lock(&self.meet.knocks);
        let key = format!("knock:{client_addr}");
        t.check(&key, now).map_err(|retry_after_ms| Error::LimitExceeded { retry_after_ms })?;
        // Every knock counts, successful or not: the throttle bounds how fast one address fills
        // lobbies.
        t.record_failure(&key, now);
        Ok(())
    }

    async fn check_meeting_pin(&self, meeting: &Meeting, pin: Option<&str>, client_addr: &str) -> Result<()> {
        let Some(hash) = &meeting.pin_hash else {
            return Ok(());
        };
        let Some(pin) = pin.filter(|p| !p.is_empty()) else {
            return Err(Error::Forbidden("this meeting needs a PIN".into()));
        };
        let attempt = self
            .meet
            .reserve_pin_attempt(&meeting.meeting_id, client_addr, now_ms())
            .map_err(|retry_after_ms| Error::LimitExceeded { retry_after_ms })?;
        let right = pin.chars().count() <= limits::PIN_MAX_CHARS
            && crate::verify_password(pin, Some(hash.as_str())).await?;
        if !right {
            metrics::counter!("ward_meet_pin_failures_total").increment(1);
            return Err(Error::Forbidden("the PIN is wrong".into()));
        }
        self.meet.pin_was_right(&attempt, now_ms());
        Ok(())
    }

    async fn add_knock(
        &self,
        meeting: &Meeting,
        display_name: String,
        link_hash: Option<TokenHash>,
    ) -> Result<KnockCreated> {
        // Guests gone without a word free their places (and a patient's link) first.
        self.live_knocks(&meeting.meeting_id).await?;
        let knock_id = new_id();
        let knock_secret = new_token("ward_knock");
        let knock = NewKnock {
            knock_id: knock_id.clone(),
            meeting_id: meeting.meeting_id.clone(),
            secret_hash: hash_token(&knock_secret),
            display_name,
            identity: format!("{GUEST_IDENTITY_PREFIX}{}", random_string(16, ID_ALPHABET)),
            link_hash,
            created_ms: now_ms(),
        };
        match self.store.create_knock(knock, limits::WAITING_KNOCKS_PER_MEETING_MAX).await? {
            MeetingWrite::Done => {}
            MeetingWrite::MeetingGone => return Err(not_found()),
            MeetingWrite::Locked => return Err(Error::Forbidden("the meeting is locked".into())),
            MeetingWrite::TooMany => {
                return Err(Error::LimitReached("the waiting room is full; try again later".into()));
            }
            MeetingWrite::LinkUnknown => return Err(Error::NotFound("unknown link".into())),
            MeetingWrite::LinkSpent => {
                return Err(Error::Forbidden(
                    "this link has been used already or has expired; please ask the practice for a new one"
                        .into(),
                ));
            }
            MeetingWrite::LinkBusy => {
                return Err(Error::Forbidden("someone is already waiting with this link".into()));
            }
        }
        metrics::counter!("ward_meet_knocks_total").increment(1);
        self.meet.notify(&meeting.meeting_id);
        Ok(KnockCreated { meeting_id: meeting.meeting_id.clone(), knock_id, knock_secret })
    }

    /// `POST /meetings/{id}/knock`: a guest asks to be let in.
    pub async fn knock_meeting(
        &self,
        meeting_id: &str,
        display_name: &str,
        pin: Option<&str>,
        client_addr: &str,
    ) -> Result<KnockCreated> {
        self.throttle_knock(client_addr, now_ms())?;
        let display_name = check_display_name(display_name)?;
        let meeting = self.open_meeting(meeting_id).await?;
        if meeting.kind == MeetingKind::Consultation {
            return Err(Error::Forbidden(
                "this consultation room is entered with a personal patient link only".into(),
            ));
        }
        if meeting.locked {
            return Err(Error::Forbidden("the meeting is locked".into()));
        }
        self.check_meeting_pin(&meeting, pin, client_addr).await?;
        self.add_knock(&meeting, display_name, None).await
    }

    async fn usable_patient_link(&self, link_token: &str) -> Result<(PatientLink, Meeting)> {
        let link = self
            .store
            .patient_link(&hash_token(link_token))
            .await?
            .ok_or_else(|| Error::NotFound("unknown link; please check it or ask the practice".into()))?;
        check_patient_link(&link, now_ms())?;
        let meeting = self.open_meeting(&link.meeting_id).await?;
        Ok((link, meeting))
    }

    /// `GET /patient-links/{token}`: what the patient's page shows before the camera check.
    pub async fn patient_link_info(&self, link_token: &str) -> Result<PatientLinkInfo> {
        let (link, meeting) = self.usable_patient_link(link_token).await?;
        Ok(PatientLinkInfo {
            meeting_id: meeting.meeting_id,
            title: meeting.title,
            expires_ms: link.expires_ms,
            slot_start_ms: link.slot_start_ms,
            slot_end_ms: link.slot_end_ms,
        })
    }

    /// `POST /patient-links/{token}/knock`: a patient enters the waiting room.
    pub async fn knock_patient_link(
        &self,
        link_token: &str,
        display_name: &str,
        client_addr: &str,
    ) -> Result<KnockCreated> {
        self.throttle_knock(client_addr, now_ms())?;
        let display_name = check_display_name(display_name)?;
        let (link, meeting) = self.usable_patient_link(link_token).await?;
        self.add_knock(&meeting, display_name, Some(link.link_hash)).await
    }

    /// The knock, if `secret` is its secret and it belongs to the meeting.
    async fn own_knock(&self, meeting_id: &str, knock_id: &str, secret: &str) -> Result<Knock> {
        let unknown = || Error::NotFound("no such knock".into());
        if !plausible_id(meeting_id) || !plausible_id(knock_id) {
            return Err(unknown());
        }
        let knock =
            self.store.knock(knock_id).await?.filter(|k| k.meeting_id == meeting_id).ok_or_else(unknown)?;
        // Hashes of 256-bit secrets: comparing them in variable time reveals nothing usable.
        if knock.secret_hash != hash_token(secret) {
            return Err(Error::Forbidden("wrong knock secret".into()));
        }
        Ok(knock)
    }

    /// `GET /meetings/{id}/knock/{knock_id}`: the guest's long-poll. Answers at once unless the
    /// knock is waiting; then waits up to `timeout_ms` for a moderator.
    pub async fn poll_knock(
        &self,
        meeting_id: &str,
        knock_id: &str,
        secret: &str,
        timeout_ms: Option<u64>,
    ) -> Result<KnockState> {
        // No watcher for IDs that cannot exist: unauthenticated polls with made-up IDs would
        // otherwise fill the watcher map.
        if !plausible_id(meeting_id) || !plausible_id(knock_id) {
            return Err(Error::NotFound("no such knock".into()));
        }
        let deadline = tokio::time::Instant::now() + self.poll_timeout(timeout_ms);
        // Subscribed before reading, so a change in between is not missed.
        let mut changes = self.meet.subscribe(meeting_id);
        let mut polling = None;
        loop {
            let knock = self.own_knock(meeting_id, knock_id, secret).await?;
            if knock.status == KnockStatus::Waiting && polling.is_none() {
                // The guest is here: the knock stays alive while this poll is open.
                polling = Some(self.meet.polling(knock_id, now_ms(), self.settings.meetings.knock_expiry_ms));
            }
            let waited_out = tokio::time::Instant::now() >= deadline;
            if knock.status != KnockStatus::Waiting || waited_out {
                return self.knock_state(&knock).await;
            }
            if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                continue; // One last read at the deadline.
            }
        }
    }

    async fn knock_state(&self, knock: &Knock) -> Result<KnockState> {
        let token = match knock.status {
            KnockStatus::Admitted => {
                let meeting = self.open_meeting(&knock.meeting_id).await?;
                let role = if knock.link_hash.is_some() { "patient" } else { "guest" };
                Some(self.mint(&meeting, &knock.identity, &knock.display_name, role)?)
            }
            _ => None,
        };
        Ok(KnockState { status: knock.status, token })
    }

    /// `DELETE /meetings/{id}/knock/{knock_id}`: the guest leaves the lobby (or the meeting).
    pub async fn leave_knock(&self, meeting_id: &str, knock_id: &str, secret: &str) -> Result<()> {
        let knock = self.own_knock(meeting_id, knock_id, secret).await?;
        let update = self
            .store
            .update_knock(
                &knock.knock_id,
                &[KnockStatus::Waiting, KnockStatus::Admitted],
                KnockStatus::Left,
                false,
                None,
                now_ms(),
            )
            .await?;
        if let KnockUpdate::Done(_) = update {
            self.meet.notify(meeting_id);
            if knock.status == KnockStatus::Admitted
                && let Ok(conf) = self.conferencing()
                && let Err(e) = conf.remove_participant(&room_of(meeting_id), &knock.identity).await
            {
                tracing::debug!(error = %e, "could not disconnect a guest who left");
            }
        }
        // Leaving twice, or after the meeting ended, is not an error: the guest is out.
        Ok(())
    }

    /// `GET /meetings/{id}/lobby`: waiting and admitted guests. With `since` (from an earlier
    /// answer) and `timeout_ms`, waits until the lobby differs from that answer.
    pub async fn lobby(
        &self,
        authed: &Authed,
        meeting_id: &str,
        since: Option<&str>,
        timeout_ms: Option<u64>,
    ) -> Result<Lobby> {
        self.moderated_meeting(authed, meeting_id).await?;
        let deadline = tokio::time::Instant::now() + self.poll_timeout(timeout_ms);
        let mut changes = self.meet.subscribe(meeting_id);
        loop {
            let (knocks, next_expiry_ms) = self.live_knocks(meeting_id).await?;
            let fingerprint = lobby_fingerprint(&knocks);
            if since != Some(fingerprint.as_str()) || tokio::time::Instant::now() >= deadline {
                let entries = knocks
                    .into_iter()
                    .map(|k| LobbyEntry {
                        patient: k.link_hash.is_some(),
                        link_ref: k.link_hash.as_ref().map(link_ref),
                        knock_id: k.knock_id,
                        display_name: k.display_name,
                        identity: k.identity,
                        status: k.status,
                        since_ms: k.updated_ms,
                    })
                    .collect();
                return Ok(Lobby { entries, since: fingerprint });
            }
            // A meeting that ends while we wait answers with its empty lobby at the next change;
            // a guest who stops polling is dropped when their knock expires.
            let wake = match next_expiry_ms {
                Some(ms) => deadline.min(tokio::time::Instant::now() + Duration::from_millis(ms)),
                None => deadline,
            };
            let _ = tokio::time::timeout_at(wake, changes.changed()).await;
        }
    }

    /// The meeting's open knocks, after expiring waiting ones nobody has polled for the expiry
    /// time; and in how many ms the next waiting one would expire, if none polls before.
    async fn live_knocks(&self, meeting_id: &str) -> Result<(Vec<Knock>, Option<u64>)> {
        let expiry_ms = self.settings.meetings.knock_expiry_ms;
        let now = now_ms();
        let mut knocks = self.store.open_knocks(meeting_id).await?;
        let stale: Vec<String> = knocks
            .iter()
            .filter(|k| k.status == KnockStatus::Waiting)
            .filter(|k| self.meet.last_polled_ms(k).is_some_and(|at| knock_expires_ms(at, expiry_ms) <= now))
            .map(|k| k.knock_id.clone())
            .collect();
        if !stale.is_empty() {
            for knock_id in &stale {
                let update = self
                    .store
                    .update_knock(knock_id, &[KnockStatus::Waiting], KnockStatus::Expired, false, None, now)
                    .await?;
                // Otherwise the guest was admitted, rejected or left in the meantime.
                if let KnockUpdate::Done(_) = update {
                    metrics::counter!("ward_meet_knocks_expired_total").increment(1);
                }
                self.meet.forget_knock(knock_id);
            }
            self.meet.notify(meeting_id);
            knocks = self.store.open_knocks(meeting_id).await?;
        }
        let next_expiry_ms = knocks
            .iter()
            .filter(|k| k.status == KnockStatus::Waiting)
            .filter_map(|k| self.meet.last_polled_ms(k))
            .map(|at| knock_expires_ms(at, expiry_ms).saturating_sub(now).max(1))
            .min();
        Ok((knocks, next_expiry_ms))
    }

    async fn decide(&self, authed: &Authed, meeting_id: &str, knock_id: &str, to: KnockStatus) -> Result<()> {
        let meeting = if to == KnockStatus::Admitted {
            self.session_action(authed, meeting_id).await?
        } else {
            self.moderated_meeting(authed, meeting_id).await?
        };
        let knock = match self.store.knock(knock_id).await? {
            Some(k) if k.meeting_id == meeting.meeting_id => k,
            _ => return Err(Error::NotFound("nobody with this knock is in the lobby".into())),
        };
        let exclusive = meeting.kind == MeetingKind::Consultation;
        let attempt = || {
            let by = Some(authed.user_id.as_str());
            self.store.update_knock(&knock.knock_id, &[KnockStatus::Waiting], to, exclusive, by, now_ms())
        };
        let mut update = attempt().await?;
        if update == KnockUpdate::Busy
            && to == KnockStatus::Admitted
            && self.close_departed_sessions(meeting_id, &knock.knock_id).await?
        {
            // The store stays the arbiter: a moderator admitting someone else at the same time
            // may have taken the place meanwhile (then this one is `Busy` again).
            update = attempt().await?;
        }
        match update {
            KnockUpdate::Done(_) => {
                if to == KnockStatus::Admitted {
                    metrics::counter!("ward_meet_admissions_total").increment(1);
                }
                self.meet.notify(meeting_id);
                Ok(())
            }
            KnockUpdate::NotFound => Err(Error::NotFound("nobody with this knock is in the lobby".into())),
            KnockUpdate::WrongState(status) => Err(Error::Conflict(format!(
                "this guest is no longer waiting (they are {})",
                status.as_str()
            ))),
            KnockUpdate::Busy => Err(Error::Conflict(
                "another patient is in the consultation; end their session before admitting the next".into(),
            )),
            KnockUpdate::NotHolder => Err(Error::Internal("admission answered as a hand-over".into())),
        }
    }

    /// A consultation's moderator admits the next patient while another one is admitted: if
    /// none of those admitted (but `except`) is connected to the conference, their sessions are
    /// over — the patient left without a word (the page closed, the connection lost, or it never
    /// got through) — and their knocks become `left` (which spends their links). `Ok(false)`
    /// (nothing changed) if one of them is connected: that session goes on.
    ///
    /// A patient connecting just as this runs is refused: the SFU asks [`Self::meeting_admits`]
    /// again right after every join, and the removal below disconnects whoever got in between.
    async fn close_departed_sessions(&self, meeting_id: &str, except: &str) -> Result<bool> {
        let room = room_of(meeting_id);
        let conf = self.conferencing()?;
        let admitted: Vec<Knock> = self
            .store
            .open_knocks(meeting_id)
            .await?
            .into_iter()
            .filter(|k| k.status == KnockStatus::Admitted && k.knock_id != except)
            .collect();
        for knock in &admitted {
            if conf.is_connected(&room, &knock.identity).await.map_err(conferencing_error)? {
                return Ok(false);
            }
        }
        for knock in &admitted {
            if self.close_session(&knock.knock_id).await?
                && let Err(e) = conf.remove_participant(&room, &knock.identity).await
            {
                tracing::debug!(error = %e, "could not disconnect a departed patient");
            }
        }
        self.meet.notify(meeting_id);
        Ok(true)
    }

    /// `POST /meetings/{id}/lobby/{knock_id}/admit`.
    pub async fn admit_knock(&self, authed: &Authed, meeting_id: &str, knock_id: &str) -> Result<()> {
        self.decide(authed, meeting_id, knock_id, KnockStatus::Admitted).await
    }

    /// `POST /meetings/{id}/lobby/{knock_id}/reject`.
    pub async fn reject_knock(&self, authed: &Authed, meeting_id: &str, knock_id: &str) -> Result<()> {
        self.decide(authed, meeting_id, knock_id, KnockStatus::Rejected).await
    }

    /// `PUT /meetings/{id}/lock`.
    pub async fn set_meeting_locked(&self, authed: &Authed, meeting_id: &str, locked: bool) -> Result<()> {
        self.session_action(authed, meeting_id).await?;
        if !self.store.set_meeting_locked(meeting_id, locked, now_ms()).await? {
            return Err(not_found());
        }
        Ok(())
    }

    /// `PUT /meetings/{id}/pin`: sets (hashed) or clears the PIN guests must give.
    pub async fn set_meeting_pin(&self, authed: &Authed, meeting_id: &str, pin: Option<&str>) -> Result<()> {
        self.session_action(authed, meeting_id).await?;
        let hash = match pin {
            Some(pin) => {
                check_pin(pin)?;
                Some(crate::hash_password(pin).await?)
            }
            None => None,
        };
        if !self.store.set_meeting_pin(meeting_id, hash.as_deref(), now_ms()).await? {
            return Err(not_found());
        }
        Ok(())
    }

    /// `POST /meetings/{id}/participants/{identity}/remove`: disconnects someone. A guest's
    /// knock becomes `removed`, so their token no longer lets them in; to come back they must
    /// knock again (refused while the meeting is locked). A removed patient's link is used up.
    pub async fn remove_meeting_participant(
        &self,
        authed: &Authed,
        meeting_id: &str,
        identity: &str,
    ) -> Result<()> {
        self.session_action(authed, meeting_id).await?;
        let mut known = false;
        if let Some(knock) = self.store.knock_by_identity(meeting_id, identity).await? {
            let update = self
                .store
                .update_knock(
                    &knock.knock_id,
                    &[KnockStatus::Waiting, KnockStatus::Admitted],
                    KnockStatus::Removed,
                    false,
                    None,
                    now_ms(),
                )
                .await?;
            known = matches!(update, KnockUpdate::Done(_));
            self.meet.notify(meeting_id);
        }
        let connected = self
            .conferencing()?
            .remove_participant(&room_of(meeting_id), identity)
            .await
            .map_err(conferencing_error)?;
        if !known && !connected {
            return Err(Error::NotFound("nobody with this identity is in the meeting".into()));
        }
        Ok(())
    }

    /// `POST /meetings/{id}/participants/{identity}/mute`.
    pub async fn mute_meeting_participant(
        &self,
        authed: &Authed,
        meeting_id: &str,
        identity: &str,
        track_sid: &str,
    ) -> Result<()> {
        self.session_action(authed, meeting_id).await?;
        self.conferencing()?
            .mute_track(&room_of(meeting_id), identity, track_sid)
            .await
            .map_err(conferencing_error)
    }

    /// `POST /meetings/{id}/end`: everyone is disconnected, every knock closed, every patient
    /// link used up; the meeting's link stops working.
    pub async fn end_meeting(&self, authed: &Authed, meeting_id: &str) -> Result<()> {
        self.session_action(authed, meeting_id).await?;
        self.finish_meeting(meeting_id).await
    }

    /// `ward admin meetings end`: ends an open meeting like its moderators can. In a process
    /// without the SFU (the admin command), those connected stay until the server's sweep
    /// ([`Self::stale_meeting_room`]) closes the conference; nobody can join or rejoin meanwhile.
    pub async fn admin_end_meeting(&self, meeting_id: &str) -> Result<()> {
        self.open_meeting(meeting_id).await?;
        self.finish_meeting(meeting_id).await
    }

    /// `ward admin meetings list`: open meetings, newest first.
    pub async fn admin_open_meetings(&self, limit: u64) -> Result<Vec<Meeting>> {
        Ok(self.store.open_meetings(limit).await?)
    }

    /// Sets the `ward_meet_*` gauges: open meetings, waiting and admitted guests.
    pub async fn refresh_meeting_metrics(&self) -> Result<()> {
        let c = self.store.meeting_counts().await?;
        metrics::gauge!("ward_meet_open_meetings").set(c.open_meetings as f64);
        metrics::gauge!("ward_meet_waiting_knocks").set(c.waiting_knocks as f64);
        metrics::gauge!("ward_meet_admitted_guests").set(c.admitted_knocks as f64);
        Ok(())
    }

    /// Whether a conference room is a meeting's that has ended (or never existed), so nobody
    /// should be in it: the server closes such rooms now and then (a meeting ended by
    /// `ward admin meetings end`, or a room a late-refused join left behind).
    pub async fn stale_meeting_room(&self, room: &str) -> Result<bool> {
        let Some(meeting_id) = room.strip_prefix(ROOM_PREFIX) else {
            return Ok(false);
        };
        match self.open_meeting(meeting_id).await {
            Ok(_) => Ok(false),
            Err(Error::NotFound(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn finish_meeting(&self, meeting_id: &str) -> Result<()> {
        if !self.store.end_meeting(meeting_id, now_ms()).await? {
            return Err(not_found());
        }
        self.meet.notify(meeting_id);
        if let Ok(conf) = self.conferencing()
            && let Err(e) = conf.end_room(&room_of(meeting_id)).await
        {
            // The meeting is ended in the store, so the SFU refuses anyone with its tokens.
            tracing::warn!(error = %e, "could not close an ended meeting's conference");
        }
        Ok(())
    }

    /// `POST /meetings/{id}/patient-links`: a single-use link for one appointment.
    pub async fn create_patient_link(
        &self,
        authed: &Authed,
        meeting_id: &str,
        expires_in_ms: u64,
        slot_start_ms: Option<u64>,
        slot_end_ms: Option<u64>,
    ) -> Result<NewPatientLink> {
        let meeting = self.moderated_meeting(authed, meeting_id).await?;
        if meeting.kind != MeetingKind::Consultation {
            return Err(Error::InvalidParam("patient links are for consultations only".into()));
        }
        let max = limits::PATIENT_LINK_LIFETIME_MAX_MS.min(self.settings.meetings.retention_ms);
        if !(limits::PATIENT_LINK_LIFETIME_MIN_MS..=max).contains(&expires_in_ms) {
            return Err(Error::InvalidParam(format!(
                "expires_in_ms must be between {} and {max}",
                limits::PATIENT_LINK_LIFETIME_MIN_MS
            )));
        }
        if let (Some(start), Some(end)) = (slot_start_ms, slot_end_ms)
            && start >= end
        {
            return Err(Error::InvalidParam("slot_start_ms must be before slot_end_ms".into()));
        }
        let now = now_ms();
        let link_token = new_token("ward_pl");
        let link = PatientLink {
            link_hash: hash_token(&link_token),
            meeting_id: meeting.meeting_id.clone(),
            created_ms: now,
            expires_ms: now.saturating_add(expires_in_ms),
            slot_start_ms,
            slot_end_ms,
            knock_id: None,
            spent: false,
        };
        let expires_ms = link.expires_ms;
        let reference = link_ref(&link.link_hash);
        match self.store.create_patient_link(link, limits::OPEN_PATIENT_LINKS_PER_MEETING_MAX).await? {
            MeetingWrite::Done => Ok(NewPatientLink { link_token, link_ref: reference, expires_ms }),
            MeetingWrite::MeetingGone => Err(not_found()),
            _ => Err(Error::LimitReached(format!(
                "this consultation has {} unused patient links already",
                limits::OPEN_PATIENT_LINKS_PER_MEETING_MAX
            ))),
        }
    }

    /// Asked by the SFU before anyone joins (or rejoins) a room: meeting rooms admit only
    /// while the meeting is open, guests only while admitted. Other rooms are not meetings'
    /// business. `Err` carries the reason shown to the client.
    pub async fn meeting_admits(&self, room: &str, identity: &str) -> std::result::Result<(), String> {
        let Some(meeting_id) = room.strip_prefix(ROOM_PREFIX) else {
            return Ok(());
        };
        let check = async {
            let meeting = self.open_meeting(meeting_id).await?;
            if identity.starts_with(GUEST_IDENTITY_PREFIX) {
                let admitted = self
                    .store
                    .knock_by_identity(meeting_id, identity)
                    .await?
                    .is_some_and(|k| k.status == KnockStatus::Admitted);
                if !admitted {
                    return Err(Error::Forbidden("you have not been admitted to this meeting".into()));
                }
                return Ok(());
            }
            if !self.is_moderator(&meeting, identity).await? {
                return Err(Error::Forbidden("you are not a participant of this meeting".into()));
            }
            self.check_session_entry(&meeting, identity, false).await
        };
        check.await.map_err(|e| match e {
            Error::Store(e) => {
                tracing::error!(error = %e, "meeting admission check failed");
                "the server could not check your admission".to_owned()
            }
            e => e.to_string(),
        })
    }

    /// Retention: deletes meetings ended (or unused) longer than `meeting_retention_days` ago,
    /// with their knocks and patient links, and older knocks and links of the others.
    pub async fn purge_meetings(&self) -> Result<u64> {
        let before = now_ms().saturating_sub(self.settings.meetings.retention_ms);
        Ok(self.store.purge_meetings(before).await?)
    }
}

fn conferencing_error(e: ConferencingError) -> Error {
    match e {
        ConferencingError::NotFound(m) => Error::NotFound(m),
        ConferencingError::Refused(m) => Error::Forbidden(m),
        ConferencingError::Unavailable(m) => Error::Unavailable(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(spent: bool, expires_ms: u64, slot: Option<(u64, u64)>) -> PatientLink {
        PatientLink {
            link_hash: [1; 32],
            meeting_id: "m".into(),
            created_ms: 0,
            expires_ms,
            slot_start_ms: slot.map(|s| s.0),
            slot_end_ms: slot.map(|s| s.1),
            knock_id: None,
            spent,
        }
    }

    fn forbidden(r: Result<()>) -> String {
        match r {
            Err(Error::Forbidden(m)) => m,
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    #[test]
    fn patient_link_rules() {
        let hour = 3_600_000;
        assert!(check_patient_link(&link(false, 10 * hour, None), hour).is_ok());
        assert!(forbidden(check_patient_link(&link(true, 10 * hour, None), hour)).contains("used already"));
        assert!(forbidden(check_patient_link(&link(false, hour, None), hour)).contains("expired"));
        // A slot from 5 h to 6 h: the waiting room opens half an hour before.
        let slot = Some((5 * hour, 6 * hour));
        assert!(
            forbidden(check_patient_link(&link(false, 10 * hour, slot), 4 * hour)).contains("not started")
        );
        assert!(
            check_patient_link(&link(false, 10 * hour, slot), 5 * hour - limits::PATIENT_EARLY_ENTRY_MS)
                .is_ok()
        );
        assert!(check_patient_link(&link(false, 10 * hour, slot), 6 * hour - 1).is_ok());
        assert!(forbidden(check_patient_link(&link(false, 10 * hour, slot), 6 * hour)).contains("over"));
    }

    #[test]
    fn display_names_titles_and_pins() {
        assert_eq!(check_display_name("  Frau Müller ").unwrap(), "Frau Müller");
        assert_eq!(check_display_name(&"ä".repeat(64)).unwrap().chars().count(), 64);
        for bad in ["", "   ", "a\nb", &"x".repeat(65)] {
            assert!(matches!(check_display_name(bad), Err(Error::InvalidParam(_))), "{bad:?}");
        }
        assert_eq!(check_title(Some("  ")).unwrap(), None);
        assert_eq!(check_title(Some("Team")).unwrap().as_deref(), Some("Team"));
        assert!(check_title(Some(&"t".repeat(101))).is_err());
        assert!(check_pin("1234").is_ok());
        for bad in ["123", "12 34", &"1".repeat(33)] {
            assert!(check_pin(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pin_attempts_per_address_a_burst_then_one_per_refill() {
        let state = MeetState::new();
        // Reserved, never settled: as if all five were still being checked in parallel.
        for _ in 0..limits::PIN_FAILURE_BURST {
            assert!(state.reserve_pin_attempt("m", "a", 0).is_ok());
        }
        assert_eq!(state.reserve_pin_attempt("m", "a", 0).err(), Some(limits::PIN_REFILL_MS));
        assert_eq!(state.reserve_pin_attempt("other", "a", 0).err(), Some(limits::PIN_REFILL_MS));
        assert!(
            state.reserve_pin_attempt("m", "a", limits::PIN_REFILL_MS).is_ok(),
            "one more after the refill"
        );
    }

    #[test]
    fn a_spent_meeting_budget_refuses_only_addresses_that_guessed_wrong() {
        let state = MeetState::new();
        // Five addresses guess wrong once each: the meeting's budget is spent.
        for addr in ["a1", "a2", "a3", "a4", "a5"] {
            assert!(state.reserve_pin_attempt("m", addr, 0).is_ok());
        }
        // Each of them is refused now, until its wrong guess is a refill period old.
        assert_eq!(state.reserve_pin_attempt("m", "a1", 1_000).err(), Some(limits::PIN_REFILL_MS - 1_000));
        assert!(state.reserve_pin_attempt("m", "a1", limits::PIN_REFILL_MS).is_ok());
        // A guest from another address still gets to try, and a right PIN is taken back.
        let attempt = state.reserve_pin_attempt("m", "guest", 1_000).expect("a fresh address may try");
        state.pin_was_right(&attempt, 1_000);
        assert!(state.reserve_pin_attempt("m", "guest", 1_000).is_ok(), "the right PIN left no mark");
        // Another meeting is not affected by this one's budget.
        assert!(state.reserve_pin_attempt("n", "a2", 1_000).is_ok());
    }

    #[test]
    fn ids_and_fingerprints() {
        let id = new_id();
        assert!(plausible_id(&id), "{id}");
        assert!(!plausible_id("short") && !plausible_id(&format!("{}-", &id[1..])));
        assert_eq!(room_of("abc"), "meet-abc");
        let knock = |status| Knock {
            knock_id: "k".into(),
            meeting_id: "m".into(),
            secret_hash: [0; 32],
            display_name: "G".into(),
            identity: "guest-x".into(),
            link_hash: None,
            status,
            created_ms: 0,
            updated_ms: 0,
            admitted_by: None,
            handed_to: None,
        };
        assert_ne!(
            lobby_fingerprint(&[knock(KnockStatus::Waiting)]),
            lobby_fingerprint(&[knock(KnockStatus::Admitted)])
        );
        assert_ne!(lobby_fingerprint(&[]), lobby_fingerprint(&[knock(KnockStatus::Waiting)]));
    }

    #[test]
    fn a_knock_is_alive_while_polled_and_for_the_expiry_time_after() {
        let state = MeetState::new();
        let mut knock = Knock {
            knock_id: "k".into(),
            meeting_id: "m".into(),
            secret_hash: [0; 32],
            display_name: "G".into(),
            identity: "guest-x".into(),
            link_hash: None,
            status: KnockStatus::Waiting,
            created_ms: 0,
            updated_ms: 0,
            admitted_by: None,
            handed_to: None,
        };
        // Never polled: it counts from this process's start (or from the knock, if later).
        assert_eq!(state.last_polled_ms(&knock), Some(state.started_ms));
        knock.updated_ms = state.started_ms + 5;
        assert_eq!(state.last_polled_ms(&knock), Some(state.started_ms + 5));
        let far = state.started_ms + 1_000_000;
        {
            let _a = state.polling("k", far, 120_000);
            let _b = state.polling("k", far, 120_000);
            assert_eq!(state.last_polled_ms(&knock), None, "a poll is open: never expires");
        }
        assert!(state.last_polled_ms(&knock).is_some_and(|at| at >= far));
        assert_eq!(knock_expires_ms(far, 120_000), far + 120_000);
        state.forget_knock("k");
        assert!(lock(&state.seen).is_empty());
    }

    #[tokio::test]
    async fn a_notification_wakes_a_waiter_and_idle_entries_go() {
        let state = MeetState::new();
        let mut rx = state.subscribe("m");
        state.notify("m");
        assert!(rx.changed().await.is_ok());
        drop(rx);
        state.notify("m");
        assert!(lock(&state.watchers).is_empty(), "nobody waits: the entry is dropped");
    }
}
