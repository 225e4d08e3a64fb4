//! Rooms: creating them, sending events, membership, reading history and state, sync.
//!
//! Every event goes through [`Services::append`]: take the room's lock (events of one room are
//! built one at a time, so `prev_events` always names the current tip), fetch the state the
//! authorisation rules need, let the room core build, sign and authorise the event, append it
//! to the store, and wake waiting syncs.

mod create;
mod directory;
mod ephemeral;
mod extras;
mod hierarchy;
mod membership;
mod read;
mod report;
mod search;
mod send;
mod sync;
mod upgrade;
mod visibility;

use std::collections::HashMap;
use std::sync::Arc;

use ruma::events::{StateEventType, TimelineEventType};
use ruma::{MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, RoomId, ServerName, UInt, UserId};
use serde_json::Value;
use ward_rooms::{BuildError, Chain, EventDraft, Pdu, StateLookup};
use ward_store::{NewEvent, StoredEvent, TxnKey};

use crate::{Error, Result, Services, now_ms};

pub use create::{CreateRoomInput, Preset};
pub use directory::{PublicRoom, PublicRoomsPage};
pub(crate) use ephemeral::Notifier;
pub(crate) use ephemeral::UnreadCache;
pub use ephemeral::{Positions, Presence};
pub use extras::{Context, RelationsPage};
pub use hierarchy::{HierarchyPage, HierarchyQuery, HierarchyRoom};
pub use read::{ClientEvent, MessagesFilter, MessagesPage, MessagesQuery, PageDirection, parse_token, token};
pub use search::{SearchContext, SearchFilter, SearchInput, SearchOutput, SearchResult, search_limits};
pub use sync::{FilterInput, InvitedRoom, JoinedRoom, LeftRoom, SyncInput, SyncOutput, Timeline};

/// Limits for room reads.
pub mod room_limits {
    /// Events one `/messages` page may hold.
    pub const MESSAGES_LIMIT_MAX: usize = 1000;
    pub const MESSAGES_LIMIT_DEFAULT: usize = 10;
    /// Events per room in one sync response's timeline.
    pub const SYNC_TIMELINE_LIMIT_MAX: usize = 500;
    pub const SYNC_TIMELINE_LIMIT_DEFAULT: usize = 10;
    pub const TXN_ID_MAX_BYTES: usize = 255;
    pub const EVENT_TYPE_MAX_BYTES: usize = 255;
    pub const STATE_KEY_MAX_BYTES: usize = 255;
}

pub(crate) fn ts(ms: u64) -> MilliSecondsSinceUnixEpoch {
    MilliSecondsSinceUnixEpoch(UInt::new(ms).unwrap_or(UInt::MAX))
}

pub(crate) fn forbidden_from(e: BuildError) -> Error {
    match e {
        BuildError::Forbidden(m) => Error::Forbidden(m),
        BuildError::Invalid(m) => Error::InvalidParam(m),
        BuildError::TooLarge => Error::TooLarge("the event is larger than 64 KiB".into()),
        BuildError::Internal(m) => Error::Internal(m),
    }
}

pub fn parse_room_id(room_id: &str) -> Result<OwnedRoomId> {
    RoomId::parse(room_id).map_err(|_| Error::InvalidParam(format!("`{room_id}` is not a room ID")))
}

pub fn parse_user_id(user_id: &str) -> Result<ruma::OwnedUserId> {
    UserId::parse(user_id).map_err(|_| Error::InvalidParam(format!("`{user_id}` is not a user ID")))
}

/// A stored event in the client format.
pub(crate) fn client_event(e: &StoredEvent) -> Result<serde_json::Map<String, Value>> {
    Ok(to_pdu(e)?.client_event())
}

/// A stored event as a PDU.
pub(crate) fn to_pdu(e: &StoredEvent) -> Result<Pdu> {
    let event_id =
        OwnedEventId::try_from(e.event_id.as_str()).map_err(|err| Error::Internal(err.to_string()))?;
    let room_id = parse_room_id(&e.room_id)?;
    Pdu::from_json_str(&e.json, event_id, room_id).map_err(|err| Error::Internal(err.to_string()))
}

fn new_event(pdu: &Pdu, txn: Option<TxnKey>) -> NewEvent {
    let content = pdu.content_value();
    let membership = (pdu.kind == TimelineEventType::RoomMember)
        .then(|| content.get("membership").and_then(Value::as_str).map(str::to_owned))
        .flatten();
    let relates_to = content.get("m.relates_to").and_then(|r| {
        Some((r.get("event_id")?.as_str()?.to_owned(), r.get("rel_type")?.as_str()?.to_owned()))
    });
    NewEvent {
        relates_to,
        event_id: pdu.event_id.to_string(),
        kind: pdu.kind.to_string(),
        state_key: pdu.state_key.clone(),
        sender: pdu.sender.to_string(),
        depth: pdu.depth,
        origin_server_ts: u64::from(pdu.origin_server_ts.0),
        json: pdu.to_json_string(),
        membership,
        txn,
        search_text: search::searchable_text(pdu, &content),
    }
}

/// The event's JSON with `unsigned.replaces_state`, `prev_content` and `prev_sender` from the
/// state event it replaces. `unsigned` is outside the signed part of an event.
fn with_replaced_state(pdu: &Pdu, old: &StoredEvent) -> String {
    let old_json: Value = serde_json::from_str(&old.json).unwrap_or_default();
    let mut unsigned = serde_json::json!({ "replaces_state": old.event_id, "prev_sender": old.sender });
    if let Some(content) = old_json.get("content") {
        unsigned["prev_content"] = content.clone();
    }
    let mut json = pdu.json().clone();
    match ruma::canonical_json::to_canonical_value(&unsigned) {
        Ok(v) => {
            json.insert("unsigned".into(), v);
            serde_json::to_string(&json).unwrap_or_else(|_| pdu.to_json_string())
        }
        // Old content that is not canonical JSON (cannot happen for stored events): leave it out.
        Err(_) => pdu.to_json_string(),
    }
}

impl Services {
    pub(crate) fn server_name(&self) -> Result<&ServerName> {
        <&ServerName>::try_from(self.settings.server_name.as_str())
            .map_err(|e| Error::Internal(e.to_string()))
    }

    pub(crate) fn room_lock(&self, room_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.room_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(room_id.to_owned()).or_default().clone()
    }

    /// The newest stream position.
    pub fn stream_position(&self) -> u64 {
        self.notifier.positions().stream
    }

    pub(crate) fn notify(&self, pos: u64) {
        self.notifier.advance_stream(pos);
    }

    /// Builds, authorises and stores one event in an existing room.
    pub(crate) async fn append(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        draft: EventDraft,
        txn: Option<TxnKey>,
    ) -> Result<Arc<Pdu>> {
        let lock = self.room_lock(room_id.as_str());
        let _guard = lock.lock().await;
        if let Some(key) = &txn
            && let Some(existing) = self.store.txn_event(key).await?
        {
            let stored =
                self.store.event(&existing).await?.ok_or_else(|| Error::Internal("lost txn event".into()))?;
            return Ok(Arc::new(to_pdu(&stored)?));
        }
        let room =
            self.store.room(room_id.as_str()).await?.ok_or_else(|| Error::NotFound("no such room".into()))?;
        let version = ruma::RoomVersionId::try_from(room.room_version.as_str())
            .map_err(|e| Error::Internal(e.to_string()))?;
        let rules = ward_rooms::rules_for(&version)
            .ok_or_else(|| Error::Internal(format!("room version {version} is not supported")))?;
        let keys = ward_rooms::auth_state_keys(&rules, sender, &draft).map_err(forbidden_from)?;
        let mut state = StateLookup::new();
        for (kind, state_key) in keys {
            if let Some(e) =
                self.store.current_state_event(room_id.as_str(), &kind.to_string(), &state_key).await?
            {
                state.insert((kind, state_key), Arc::new(to_pdu(&e)?));
            }
        }
        let tip = self.store.room_tip(room_id.as_str()).await?;
        let tip = match tip {
            Some((id, depth)) => Some((
                OwnedEventId::try_from(id.as_str()).map_err(|e| Error::Internal(e.to_string()))?,
                depth,
            )),
            None => None,
        };
        let server_name = self.server_name()?;
        let mut chain =
            Chain { rules, room_id: Some(room_id.to_owned()), state, tip, server_name, key: &self.key };
        // The state entry this event replaces, for `unsigned.prev_content` (clients show "X
        // changed the topic from … to …" from it).
        let replaced = match &draft.state_key {
            Some(key) => {
                self.store.current_state_event(room_id.as_str(), &draft.kind.to_string(), key).await?
            }
            None => None,
        };
        let pdu = chain.push(sender, draft, ts(now_ms())).map_err(forbidden_from)?;
        let mut event = new_event(&pdu, txn);
        if let Some(old) = replaced {
            event.json = with_replaced_state(&pdu, &old);
        }
        let write = self.notifier.room_write(room_id.as_str());
        let pos = self.store.append_events(room_id.as_str(), vec![event]).await?;
        if pdu.kind == TimelineEventType::RoomMember
            && let Some(member) = &pdu.state_key
        {
            self.forget_unread(member, Some(room_id.as_str()));
        }
        if let Some(p) = pos.last() {
            if pdu.kind == TimelineEventType::RoomMember {
                self.notifier.member_changed(room_id.as_str(), *p);
            }
            self.notifier.room_changed(room_id.as_str(), *p, false);
        }
        write.recorded();
        Ok(pdu)
    }

    /// The current state event of a room, as a PDU.
    pub(crate) async fn state_pdu(
        &self,
        room_id: &str,
        kind: &StateEventType,
        state_key: &str,
    ) -> Result<Option<Pdu>> {
        match self.store.current_state_event(room_id, &kind.to_string(), state_key).await? {
            Some(e) => Ok(Some(to_pdu(&e)?)),
            None => Ok(None),
        }
    }

    /// How far into a room's stream `user_id` may read: everything while joined, up to the
    /// moment they left otherwise. `Forbidden` if they were never in the room.
    pub(crate) async fn readable_until(&self, room_id: &str, user_id: &str) -> Result<u64> {
        match self.store.membership(room_id, user_id).await? {
            Some(m) if m.membership == "join" => Ok(u64::MAX),
            // Nothing after the departure; which earlier events are visible is decided per
            // event by history visibility (visibility.rs).
            Some(m) if m.membership == "leave" || m.membership == "ban" => Ok(m.stream_pos),
            _ => Err(Error::Forbidden("you are not a member of this room".into())),
        }
    }

    /// Events as clients see them (with `unsigned.transaction_id` for the sender's own device
    /// when known).
    pub(crate) fn client_events(
        events: &[StoredEvent],
        with_room_id: bool,
    ) -> Result<Vec<serde_json::Map<String, Value>>> {
        events
            .iter()
            .map(|e| {
                let mut m = to_pdu(e)?.client_event();
                if !with_room_id {
                    m.remove("room_id");
                }
                Ok(m)
            })
            .collect()
    }

    pub(crate) fn state_map(entries: &[ward_store::StateEntry]) -> HashMap<(String, String), String> {
        entries.iter().map(|e| ((e.kind.clone(), e.state_key.clone()), e.event_id.clone())).collect()
    }
}
