//! Building an event: draft + relevant room state → signed, authorised PDU.

use std::collections::HashMap;
use std::sync::Arc;

use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue, to_canonical_value};
use ruma::events::{StateEventType, TimelineEventType};
use ruma::room_version_rules::RoomVersionRules;
use ruma::{EventId, MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, RoomId, ServerName, UserId};
use serde_json::Value;

use crate::{Pdu, ServerKey};

/// What a client (or a service on its behalf) wants to send.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub kind: TimelineEventType,
    pub state_key: Option<String>,
    pub content: Value,
    /// For `m.room.redaction`: the event to redact.
    pub redacts: Option<OwnedEventId>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The content does not fit the event type (e.g. a member event without `membership`).
    #[error("invalid event: {0}")]
    Invalid(String),
    /// The room's authorisation rules refuse the event.
    #[error("{0}")]
    Forbidden(String),
    #[error("the event is larger than the 64 KiB a PDU may be")]
    TooLarge,
    #[error("could not build the event: {0}")]
    Internal(String),
}

/// The relevant room state, by (type, state key).
pub type StateLookup = HashMap<(StateEventType, String), Arc<Pdu>>;

/// The state entries the service must look up before building `draft` for `sender`: those the
/// authorisation rules consult, plus the create event.
pub fn auth_state_keys(
    rules: &RoomVersionRules,
    sender: &UserId,
    draft: &EventDraft,
) -> Result<Vec<(StateEventType, String)>, BuildError> {
    let content =
        serde_json::value::to_raw_value(&draft.content).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let mut keys = ruma::state_res::auth_types_for_event(
        &draft.kind,
        sender,
        draft.state_key.as_deref(),
        &content,
        &rules.authorization,
    )
    .map_err(BuildError::Invalid)?;
    let create = (StateEventType::RoomCreate, String::new());
    if !keys.contains(&create) {
        keys.push(create);
    }
    Ok(keys)
}

/// Where the event goes in the room.
pub struct Placement<'a> {
    /// `None` only for the create event of a room version whose room ID is derived from it.
    pub room_id: Option<&'a RoomId>,
    pub prev_events: Vec<OwnedEventId>,
    pub depth: u64,
}

/// Builds, hashes, signs and authorises an event. `state` must hold the entries named by
/// [`auth_state_keys`] that exist in the room (before this event).
// Every input is a distinct part of the event; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn build_event(
    rules: &RoomVersionRules,
    placement: Placement<'_>,
    sender: &UserId,
    draft: EventDraft,
    state: &StateLookup,
    server_name: &ServerName,
    key: &ServerKey,
    now: MilliSecondsSinceUnixEpoch,
) -> Result<Pdu, BuildError> {
    let is_create = draft.kind == TimelineEventType::RoomCreate;
    let mut content = draft.content;
    if let Some(redacts) = &draft.redacts
        && rules.redaction.keep_room_redaction_redacts
        && let Value::Object(map) = &mut content
    {
        map.insert("redacts".into(), Value::String(redacts.to_string()));
    }
    let raw = serde_json::value::to_raw_value(&content).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let auth_types = ruma::state_res::auth_types_for_event(
        &draft.kind,
        sender,
        draft.state_key.as_deref(),
        &raw,
        &rules.authorization,
    )
    .map_err(BuildError::Invalid)?;
    let auth_events: Vec<OwnedEventId> =
        auth_types.iter().filter_map(|k| state.get(k)).map(|p| p.event_id.clone()).collect();

    let canon = |v: Value| to_canonical_value(v).map_err(|e| BuildError::Invalid(e.to_string()));
    let mut obj = CanonicalJsonObject::new();
    obj.insert("type".into(), CanonicalJsonValue::String(draft.kind.to_string()));
    obj.insert("sender".into(), CanonicalJsonValue::String(sender.to_string()));
    obj.insert("origin_server_ts".into(), canon(Value::from(u64::from(now.0)))?);
    obj.insert("content".into(), canon(content)?);
    obj.insert("depth".into(), canon(Value::from(placement.depth))?);
    obj.insert(
        "prev_events".into(),
        canon(serde_json::to_value(&placement.prev_events).unwrap_or_default())?,
    );
    obj.insert("auth_events".into(), canon(serde_json::to_value(&auth_events).unwrap_or_default())?);
    if let Some(k) = &draft.state_key {
        obj.insert("state_key".into(), CanonicalJsonValue::String(k.clone()));
    }
    if let Some(redacts) = &draft.redacts
        && !rules.redaction.keep_room_redaction_redacts
    {
        obj.insert("redacts".into(), CanonicalJsonValue::String(redacts.to_string()));
    }
    let derived_room_id = is_create && rules.authorization.room_create_event_id_as_room_id;
    match (placement.room_id, derived_room_id) {
        (_, true) => {}
        (Some(room_id), false) => {
            obj.insert("room_id".into(), CanonicalJsonValue::String(room_id.to_string()));
        }
        (None, false) => {
            return Err(BuildError::Internal("this room version needs a room ID".into()));
        }
    }

    ruma::signatures::hash_and_sign_event(server_name.as_str(), key.pair(), &mut obj, &rules.redaction)
        .map_err(|e| match e {
            ruma::signatures::JsonError::PduTooLarge => BuildError::TooLarge,
            e => BuildError::Internal(e.to_string()),
        })?;
    ruma::state_res::check_pdu_format(&obj, &rules.event_format).map_err(|e| {
        if e.contains("bytes") || e.contains("size") { BuildError::TooLarge } else { BuildError::Invalid(e) }
    })?;
    let hash = ruma::signatures::reference_hash(&obj, rules).map_err(|e| match e {
        ruma::signatures::JsonError::PduTooLarge => BuildError::TooLarge,
        e => BuildError::Internal(e.to_string()),
    })?;
    let event_id = EventId::parse(format!("${hash}")).map_err(|e| BuildError::Internal(e.to_string()))?;
    let room_id: OwnedRoomId = match placement.room_id {
        Some(r) if !derived_room_id => r.to_owned(),
        _ => RoomId::parse(format!("!{hash}")).map_err(|e| BuildError::Internal(e.to_string()))?,
    };
    let pdu = Pdu::from_json(obj, event_id, room_id).map_err(|e| BuildError::Internal(e.to_string()))?;

    let by_id = |id: &EventId| state.values().find(|p| p.event_id == id).map(|p| &**p);
    ruma::state_res::check_state_independent_auth_rules(&rules.authorization, &pdu, by_id)
        .map_err(BuildError::Forbidden)?;
    ruma::state_res::check_state_dependent_auth_rules(
        &rules.authorization,
        &pdu,
        |t: &StateEventType, k: &str| state.get(&(t.clone(), k.to_owned())).map(|p| &**p),
    )
    .map_err(BuildError::Forbidden)?;
    Ok(pdu)
}

/// A run of events built one after another on a room, tracking the state and the tip in
/// memory: a new room's first events, or one event on top of the state a service fetched.
pub struct Chain<'a> {
    pub rules: RoomVersionRules,
    pub room_id: Option<OwnedRoomId>,
    /// The relevant (or, for a new room, the whole) state before the next event.
    pub state: StateLookup,
    /// The newest event and its depth.
    pub tip: Option<(OwnedEventId, u64)>,
    pub server_name: &'a ServerName,
    pub key: &'a ServerKey,
}

impl Chain<'_> {
    /// Builds the next event, authorised against the chain's state, and advances the chain.
    pub fn push(
        &mut self,
        sender: &UserId,
        draft: EventDraft,
        now: MilliSecondsSinceUnixEpoch,
    ) -> Result<Arc<Pdu>, BuildError> {
        let placement = Placement {
            room_id: self.room_id.as_deref(),
            prev_events: self.tip.iter().map(|(id, _)| id.clone()).collect(),
            depth: self.tip.as_ref().map_or(1, |(_, d)| d + 1),
        };
        let pdu = Arc::new(build_event(
            &self.rules,
            placement,
            sender,
            draft,
            &self.state,
            self.server_name,
            self.key,
            now,
        )?);
        if self.room_id.is_none() {
            self.room_id = Some(pdu.room_id.clone());
        }
        if let Some(k) = &pdu.state_key {
            self.state.insert((StateEventType::from(pdu.kind.to_string()), k.clone()), pdu.clone());
        }
        self.tip = Some((pdu.event_id.clone(), pdu.depth));
        Ok(pdu)
    }
}
