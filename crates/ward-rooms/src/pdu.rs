//! A persistent data unit: one signed room event, as stored and as shown to clients.

use ruma::canonical_json::{CanonicalJsonObject, CanonicalJsonValue};
use ruma::events::TimelineEventType;
use ruma::{MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::Deserialize;
use serde_json::value::RawValue as RawJsonValue;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum PduError {
    #[error("malformed PDU: {0}")]
    Malformed(String),
}

/// The fields of a PDU Ward works with, plus the whole signed JSON.
#[derive(Debug, Clone)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub kind: TimelineEventType,
    pub content: Box<RawJsonValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    /// The redacted event, from the top level (before v11) or `content.redacts` (v11 on).
    pub redacts: Option<OwnedEventId>,
    pub depth: u64,
    json: CanonicalJsonObject,
}

#[derive(Deserialize)]
struct Fields {
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    #[serde(rename = "type")]
    kind: TimelineEventType,
    content: Box<RawJsonValue>,
    state_key: Option<String>,
    #[serde(default)]
    prev_events: Vec<OwnedEventId>,
    #[serde(default)]
    auth_events: Vec<OwnedEventId>,
    redacts: Option<OwnedEventId>,
    #[serde(default)]
    depth: u64,
}

#[derive(Deserialize)]
struct ContentRedacts {
    redacts: Option<OwnedEventId>,
}

impl Pdu {
    /// Reads a PDU from its signed JSON. The event ID and (for v12 create events) the room ID
    /// are not part of the JSON in current room versions, so the caller supplies them.
    pub fn from_json(
        json: CanonicalJsonObject,
        event_id: OwnedEventId,
        room_id: OwnedRoomId,
    ) -> Result<Self, PduError> {
        let value = serde_json::to_value(&json).map_err(|e| PduError::Malformed(e.to_string()))?;
        let f: Fields = serde_json::from_value(value).map_err(|e| PduError::Malformed(e.to_string()))?;
        let redacts = match f.redacts {
            Some(r) => Some(r),
            None if f.kind == TimelineEventType::RoomRedaction => {
                serde_json::from_str::<ContentRedacts>(f.content.get()).ok().and_then(|c| c.redacts)
            }
            None => None,
        };
        Ok(Self {
            event_id,
            room_id,
            sender: f.sender,
            origin_server_ts: f.origin_server_ts,
            kind: f.kind,
            content: f.content,
            state_key: f.state_key,
            prev_events: f.prev_events,
            auth_events: f.auth_events,
            redacts,
            depth: f.depth,
            json,
        })
    }

    pub fn from_json_str(s: &str, event_id: OwnedEventId, room_id: OwnedRoomId) -> Result<Self, PduError> {
        let json: CanonicalJsonObject =
            serde_json::from_str(s).map_err(|e| PduError::Malformed(e.to_string()))?;
        Self::from_json(json, event_id, room_id)
    }

    /// The signed JSON, canonical (sorted keys, no insignificant whitespace).
    pub fn to_json_string(&self) -> String {
        // A map of canonical JSON values always serialises.
        serde_json::to_string(&self.json).unwrap_or_default()
    }

    pub fn json(&self) -> &CanonicalJsonObject {
        &self.json
    }

    /// The event as its room version's redaction algorithm leaves it, with
    /// `unsigned.redacted_because` set to `because` (the redaction event, client format).
    pub fn redacted(
        &self,
        rules: &ruma::room_version_rules::RedactionRules,
        because: Option<&Map<String, Value>>,
    ) -> Result<CanonicalJsonObject, PduError> {
        let because = because.map(|b| {
            ruma::canonical_json::RedactedBecause::from_json(
                b.iter()
                    .filter_map(|(k, v)| {
                        ruma::canonical_json::to_canonical_value(v).ok().map(|v| (k.clone(), v))
                    })
                    .collect(),
            )
        });
        ruma::canonical_json::redact(self.json.clone(), rules, because)
            .map_err(|e| PduError::Malformed(e.to_string()))
    }

    pub fn is_state(&self) -> bool {
        self.state_key.is_some()
    }

    /// The content as a JSON value.
    pub fn content_value(&self) -> Value {
        serde_json::from_str(self.content.get()).unwrap_or(Value::Object(Map::new()))
    }

    /// The client-server API's event format (`ClientEvent`), with `room_id`.
    pub fn client_event(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("type".into(), Value::String(self.kind.to_string()));
        m.insert("content".into(), self.content_value());
        m.insert("event_id".into(), Value::String(self.event_id.to_string()));
        m.insert("sender".into(), Value::String(self.sender.to_string()));
        m.insert("origin_server_ts".into(), Value::from(u64::from(self.origin_server_ts.0)));
        m.insert("room_id".into(), Value::String(self.room_id.to_string()));
        if let Some(k) = &self.state_key {
            m.insert("state_key".into(), Value::String(k.clone()));
        }
        if let Some(r) = &self.redacts {
            m.insert("redacts".into(), Value::String(r.to_string()));
        }
        if let Some(CanonicalJsonValue::Object(unsigned)) = self.json.get("unsigned") {
            m.insert("unsigned".into(), serde_json::to_value(unsigned).unwrap_or_default());
        }
        m
    }
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }

    /// `None` for a v12 create event, whose room ID is derived rather than part of it.
    fn room_id(&self) -> Option<&RoomId> {
        self.json.contains_key("room_id").then_some(&*self.room_id)
    }

    fn sender(&self) -> &UserId {
        &self.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }

    fn content(&self) -> &RawJsonValue {
        &self.content
    }

    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }

    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        false
    }
}
