//! Sending messages and state, and redacting.

use ruma::events::{StateEventType, TimelineEventType};
use ruma::{OwnedEventId, UserId};
use serde_json::Value;
use ward_rooms::EventDraft;
use ward_store::TxnKey;

use super::{parse_room_id, parse_user_id, room_limits, to_pdu};
use crate::{Authed, Error, Result, Services};

fn check_type(kind: &str) -> Result<()> {
    if kind.is_empty() || kind.len() > room_limits::EVENT_TYPE_MAX_BYTES {
        return Err(Error::InvalidParam(format!(
            "event types have 1 to {} bytes",
            room_limits::EVENT_TYPE_MAX_BYTES
        )));
    }
    Ok(())
}

fn check_object(content: &Value) -> Result<()> {
    if !content.is_object() {
        return Err(Error::InvalidParam("event content must be a JSON object".into()));
    }
    Ok(())
}

impl Services {
    fn txn_key(authed: &Authed, txn_id: &str) -> Result<TxnKey> {
        if txn_id.is_empty() || txn_id.len() > room_limits::TXN_ID_MAX_BYTES {
            return Err(Error::InvalidParam(format!(
                "transaction IDs have 1 to {} bytes",
                room_limits::TXN_ID_MAX_BYTES
            )));
        }
        Ok(TxnKey {
            user_id: authed.user_id.clone(),
            device_id: authed.device_id.clone(),
            txn_id: txn_id.to_owned(),
        })
    }

    /// `PUT /rooms/{roomId}/send/{eventType}/{txnId}`: idempotent per device and transaction ID.
    pub async fn send_message(
        &self,
        authed: &Authed,
        room_id: &str,
        kind: &str,
        txn_id: &str,
        content: Value,
    ) -> Result<String> {
        check_type(kind)?;
        check_object(&content)?;
        let room_id = parse_room_id(room_id)?;
        let key = Self::txn_key(authed, txn_id)?;
        let sender = parse_user_id(&authed.user_id)?;
        let draft =
            EventDraft { kind: TimelineEventType::from(kind), state_key: None, content, redacts: None };
        let pdu = self.append(&room_id, &sender, draft, Some(key)).await?;
        Ok(pdu.event_id.to_string())
    }

    /// `PUT /rooms/{roomId}/state/{eventType}/{stateKey}`. Setting a state entry to the content
    /// it already has (from the same sender) creates no new event, as in Synapse.
    pub async fn send_state(
        &self,
        authed: &Authed,
        room_id: &str,
        kind: &str,
        state_key: &str,
        content: Value,
    ) -> Result<String> {
        check_type(kind)?;
        check_object(&content)?;
        if state_key.len() > room_limits::STATE_KEY_MAX_BYTES {
            return Err(Error::InvalidParam(format!(
                "state keys have at most {} bytes",
                room_limits::STATE_KEY_MAX_BYTES
            )));
        }
        let room_id = parse_room_id(room_id)?;
        let current = self.state_pdu(room_id.as_str(), &StateEventType::from(kind), state_key).await?;
        // Clients treat encryption as one-way; an event that drops the algorithm would only
        // make the room look unencrypted to new clients, so it is refused.
        if kind == "m.room.encryption"
            && current.is_some()
            && !content.get("algorithm").is_some_and(Value::is_string)
        {
            return Err(Error::Forbidden("encryption cannot be switched off in a room".into()));
        }
        if let Some(current) = current
            && current.sender.as_str() == authed.user_id
            && current.content_value() == content
            && self.readable_until(room_id.as_str(), &authed.user_id).await? == u64::MAX
        {
            return Ok(current.event_id.to_string());
        }
        let sender = parse_user_id(&authed.user_id)?;
        let draft = EventDraft {
            kind: TimelineEventType::from(kind),
            state_key: Some(state_key.to_owned()),
            content,
            redacts: None,
        };
        let pdu = self.append(&room_id, &sender, draft, None).await?;
        Ok(pdu.event_id.to_string())
    }

    /// `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`. Redacting someone else's event needs the
    /// room's `redact` power level; the redacted event's content is pruned in storage for good.
    pub async fn redact(
        &self,
        authed: &Authed,
        room_id: &str,
        event_id: &str,
        txn_id: &str,
        reason: Option<String>,
    ) -> Result<String> {
        let room_id = parse_room_id(room_id)?;
        let key = Self::txn_key(authed, txn_id)?;
        let target_id = OwnedEventId::try_from(event_id)
            .map_err(|_| Error::InvalidParam(format!("`{event_id}` is not an event ID")))?;
        let until = self.readable_until(room_id.as_str(), &authed.user_id).await?;
        let visibility = self.visibility(room_id.as_str(), &authed.user_id).await?;
        let target = match self.store.event(target_id.as_str()).await? {
            Some(e)
                if e.room_id == room_id.as_str()
                    && e.stream_pos <= until
                    && visibility.can_see(e.stream_pos) =>
            {
                e
            }
            _ => return Err(Error::NotFound("no such event".into())),
        };
        let sender = parse_user_id(&authed.user_id)?;
        if target.sender != authed.user_id {
            let (mine, needed) = self.power_of(room_id.as_str(), &sender, "redact").await?;
            if mine < needed {
                return Err(Error::Forbidden("you may only redact your own events here".into()));
            }
        }
        let mut content = serde_json::Map::new();
        if let Some(r) = reason {
            content.insert("reason".into(), Value::String(r));
        }
        let draft = EventDraft {
            kind: TimelineEventType::RoomRedaction,
            state_key: None,
            content: Value::Object(content),
            redacts: Some(target_id),
        };
        let redaction = self.append(&room_id, &sender, draft, Some(key)).await?;
        if target.redacted_by.is_none() {
            let room = self
                .store
                .room(room_id.as_str())
                .await?
                .ok_or_else(|| Error::NotFound("no such room".into()))?;
            let rules = ruma::RoomVersionId::try_from(room.room_version.as_str())
                .ok()
                .and_then(|v| ward_rooms::rules_for(&v))
                .ok_or_else(|| Error::Internal("unsupported room version".into()))?;
            let pdu = to_pdu(&target)?;
            let redacted = pdu
                .redacted(&rules.redaction, Some(&redaction.client_event()))
                .map_err(|e| Error::Internal(e.to_string()))?;
            let json = serde_json::to_string(&redacted).map_err(|e| Error::Internal(e.to_string()))?;
            self.store.redact_event(&target.event_id, &json, redaction.event_id.as_str()).await?;
        }
        Ok(redaction.event_id.to_string())
    }

    /// A user's power level in a room and the level `action` (a top-level key of the power
    /// levels content, such as `redact`) requires. Creators of v12 rooms have unlimited power.
    pub(crate) async fn power_of(&self, room_id: &str, user: &UserId, action: &str) -> Result<(i64, i64)> {
        let create = self.state_pdu(room_id, &StateEventType::RoomCreate, "").await?;
        let Some(create) = create else { return Err(Error::NotFound("no such room".into())) };
        let create_content = create.content_value();
        let v12 = create_content.get("room_version").and_then(Value::as_str) == Some("12");
        if v12 {
            let extra = create_content.get("additional_creators").and_then(Value::as_array);
            let is_creator = create.sender == user
                || extra.is_some_and(|a| a.iter().any(|v| v.as_str() == Some(user.as_str())));
            if is_creator {
                return Ok((i64::MAX, 0));
            }
        }
        let defaults = |a: &str| if a == "invite" { 0 } else { 50 };
        let Some(pl) = self.state_pdu(room_id, &StateEventType::RoomPowerLevels, "").await? else {
            let mine = if create.sender == user { 100 } else { 0 };
            return Ok((mine, defaults(action)));
        };
        let c = pl.content_value();
        let int = |v: Option<&Value>| {
            v.and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        };
        let mine = int(c.get("users").and_then(|u| u.get(user.as_str())))
            .or_else(|| int(c.get("users_default")))
            .unwrap_or(0);
        let needed = int(c.get(action)).unwrap_or(defaults(action));
        Ok((mine, needed))
    }
}
