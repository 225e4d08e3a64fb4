//! Meetings and video consultations: who created a meeting, its lobby (knocks by guests) and
//! the single-use patient links of consultations.
//!
//! Deliberately little is kept (Anlage 31b BMV-Ä: minimal data, deleted after at most three
//! months): no client addresses, no media, no end-to-end secrets (those live in the link's URL
//! fragment, which browsers never send). A guest's display name lives with their knock and
//! goes with it when old meetings and knocks are purged ([`MeetingStore::purge_meetings`]).

use async_trait::async_trait;
use ward_core::secret::TokenHash;

use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingKind {
    /// A team meeting: guests knock with the meeting's link.
    Meeting,
    /// A doctor's video consultation room: patients knock with a single-use patient link, one
    /// patient is admitted at a time.
    Consultation,
}

impl MeetingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meeting => "meeting",
            Self::Consultation => "consultation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "meeting" => Some(Self::Meeting),
            "consultation" => Some(Self::Consultation),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMeeting {
    pub meeting_id: String,
    pub kind: MeetingKind,
    pub title: Option<String>,
    /// The Matrix user who created it.
    pub creator: String,
    /// The chat room it was started from; its joined members may be moderators.
    pub origin_room: Option<String>,
    /// Lobby policy: members of the origin room enter directly (as moderators).
    pub members_enter: bool,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meeting {
    pub meeting_id: String,
    pub kind: MeetingKind,
    pub title: Option<String>,
    pub creator: String,
    pub origin_room: Option<String>,
    pub members_enter: bool,
    pub created_ms: u64,
    /// Last join, knock or moderator action; a meeting unused for the retention period is
    /// purged like an ended one.
    pub last_used_ms: u64,
    pub ended_ms: Option<u64>,
    /// No new knocks while locked.
    pub locked: bool,
    /// argon2id PHC string of the meeting's PIN, if it has one.
    pub pin_hash: Option<String>,
}

/// Where a guest's knock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnockStatus {
    /// In the lobby, waiting for a moderator.
    Waiting,
    /// Let in: the guest may fetch a conferencing token.
    Admitted,
    /// Refused by a moderator while waiting.
    Rejected,
    /// Removed from the conference by a moderator after admission.
    Removed,
    /// The guest left the lobby or the conference.
    Left,
    /// The meeting ended.
    Ended,
    /// The guest stopped asking while waiting (their page closed or crashed, the device slept):
    /// dropped from the lobby; a patient's link works again.
    Expired,
}

impl KnockStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Admitted => "admitted",
            Self::Rejected => "rejected",
            Self::Removed => "removed",
            Self::Left => "left",
            Self::Ended => "ended",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Waiting, Self::Admitted, Self::Rejected, Self::Removed, Self::Left, Self::Ended, Self::Expired]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// Waiting or admitted: the knock still occupies the lobby or the conference.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Waiting | Self::Admitted)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKnock {
    /// Random, public (part of the polling URL).
    pub knock_id: String,
    pub meeting_id: String,
    /// SHA-256 of the secret the guest polls with.
    pub secret_hash: TokenHash,
    pub display_name: String,
    /// The guest's conferencing identity (`guest-…`).
    pub identity: String,
    /// The patient link it was made with (its hash), for consultations.
    pub link_hash: Option<TokenHash>,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knock {
    pub knock_id: String,
    pub meeting_id: String,
    pub secret_hash: TokenHash,
    pub display_name: String,
    pub identity: String,
    pub link_hash: Option<TokenHash>,
    pub status: KnockStatus,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// The moderator (Matrix user) who admitted the guest or patient. In a consultation they
    /// hold the session while it runs: see [`Knock::held_by`].
    pub admitted_by: Option<String>,
    /// The colleague a running consultation session was handed over to (the latest; handing it
    /// over again replaces them).
    pub handed_to: Option<String>,
}

impl Knock {
    /// Whether the user holds this knock's session: admitted it, or had it handed over to them.
    /// While a consultation's patient is admitted, only the session's holders may enter.
    pub fn held_by(&self, user_id: &str) -> bool {
        self.admitted_by.as_deref() == Some(user_id) || self.handed_to.as_deref() == Some(user_id)
    }
}

/// A single-use patient link of a consultation. Only the token's hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientLink {
    pub link_hash: TokenHash,
    pub meeting_id: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub slot_start_ms: Option<u64>,
    pub slot_end_ms: Option<u64>,
    /// The knock currently (or last) made with it.
    pub knock_id: Option<String>,
    /// Used up: its patient was admitted, rejected or removed, or the meeting ended.
    pub spent: bool,
}

/// How a meeting write went, when it was not a storage failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetingWrite {
    Done,
    /// The meeting does not exist or has ended.
    MeetingGone,
    /// A limit given to the method was reached (open meetings, waiting knocks, open links).
    TooMany,
    /// The meeting is locked (knocks).
    Locked,
    /// The patient link is unknown, or belongs to another meeting.
    LinkUnknown,
    /// The patient link is used up.
    LinkSpent,
    /// Another knock with the patient link is waiting.
    LinkBusy,
}

/// Counts over every meeting, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeetingCounts {
    /// Meetings that have not ended.
    pub open_meetings: u64,
    /// Knocks waiting in a lobby.
    pub waiting_knocks: u64,
    /// Guests and patients admitted and not yet gone.
    pub admitted_knocks: u64,
}

/// The outcome of a knock status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnockUpdate {
    /// Changed; the knock as it is now.
    Done(Box<Knock>),
    NotFound,
    /// The knock is not in one of the states the change starts from; its current state.
    WrongState(KnockStatus),
    /// Admission refused: another knock of the meeting is admitted (consultations).
    Busy,
    /// Hand-over refused: the user does not hold the session ([`Knock::held_by`]).
    NotHolder,
}

#[async_trait]
pub trait MeetingStore: Send + Sync {
    /// Creates a meeting unless its creator has `open_max` meetings that have not ended
    /// ([`MeetingWrite::TooMany`]). [`crate::StoreError::Conflict`] if the ID exists.
    async fn create_meeting(&self, meeting: NewMeeting, open_max: u64) -> Result<MeetingWrite>;
    async fn meeting(&self, meeting_id: &str) -> Result<Option<Meeting>>;
    /// The user's meetings that have not ended, newest first.
    async fn open_meetings_of(&self, creator: &str) -> Result<Vec<Meeting>>;
    /// Every meeting that has not ended, newest first, at most `limit` (for operators).
    async fn open_meetings(&self, limit: u64) -> Result<Vec<Meeting>>;
    async fn meeting_counts(&self) -> Result<MeetingCounts>;
    /// `false` if the meeting does not exist or has ended (for this and the setters below).
    async fn set_meeting_locked(&self, meeting_id: &str, locked: bool, now_ms: u64) -> Result<bool>;
    async fn set_meeting_pin(&self, meeting_id: &str, pin_hash: Option<&str>, now_ms: u64) -> Result<bool>;
    async fn touch_meeting(&self, meeting_id: &str, now_ms: u64) -> Result<bool>;
    /// Ends the meeting: every waiting or admitted knock becomes [`KnockStatus::Ended`], every
    /// patient link is spent.
    async fn end_meeting(&self, meeting_id: &str, now_ms: u64) -> Result<bool>;

    /// Adds a waiting knock, checking in the same transaction that the meeting is open and
    /// not locked, that fewer than `waiting_max` knocks wait, and, with a patient link, that
    /// the link belongs to the meeting, is neither spent nor expired at `created_ms`, and has
    /// no other waiting knock. The link is then bound to the new knock.
    async fn create_knock(&self, knock: NewKnock, waiting_max: u64) -> Result<MeetingWrite>;
    async fn knock(&self, knock_id: &str) -> Result<Option<Knock>>;
    /// The latest knock of the meeting with this conferencing identity.
    async fn knock_by_identity(&self, meeting_id: &str, identity: &str) -> Result<Option<Knock>>;
    /// Waiting and admitted knocks of the meeting, oldest first.
    async fn open_knocks(&self, meeting_id: &str) -> Result<Vec<Knock>>;
    /// Moves the knock from one of `from` to `to`. With `exclusive`, admission is refused
    /// ([`KnockUpdate::Busy`]) while another knock of the meeting is admitted. A knock made
    /// with a patient link spends the link when it becomes admitted, rejected, removed or
    /// ended; leaving the lobby before admission, or expiring there ([`KnockStatus::Left`] or
    /// [`KnockStatus::Expired`] from [`KnockStatus::Waiting`]), frees the link for another
    /// attempt. `by` is the moderator making the change, if one does: a knock that becomes
    /// admitted records them as [`Knock::admitted_by`].
    async fn update_knock(
        &self,
        knock_id: &str,
        from: &[KnockStatus],
        to: KnockStatus,
        exclusive: bool,
        by: Option<&str>,
        now_ms: u64,
    ) -> Result<KnockUpdate>;
    /// Hands an admitted knock's session over: records `to` as [`Knock::handed_to`], in the same
    /// write that checks that the knock is admitted ([`KnockUpdate::WrongState`] otherwise) and
    /// that `holder` holds it now ([`KnockUpdate::NotHolder`] otherwise).
    async fn hand_over_knock(
        &self,
        knock_id: &str,
        holder: &str,
        to: &str,
        now_ms: u64,
    ) -> Result<KnockUpdate>;

    /// Stores a patient link for an open meeting unless it has `open_max` links that are
    /// neither spent nor expired at `link.created_ms`.
    async fn create_patient_link(&self, link: PatientLink, open_max: u64) -> Result<MeetingWrite>;
    async fn patient_link(&self, link_hash: &TokenHash) -> Result<Option<PatientLink>>;

    /// Retention: deletes meetings that ended, or were last used, before `before_ms` (with
    /// their knocks and links), and knocks and patient links created before it in the
    /// meetings that remain. Returns how many meetings went.
    async fn purge_meetings(&self, before_ms: u64) -> Result<u64>;
}
