//! `POST /createRoom`: the room's first events, built in memory and stored in one transaction.
//!
//! Order and presets follow the spec: create, creator's join, power levels, (alias), preset
//! events, `initial_state`, name and topic, invites. Guest access is always `forbidden`: Ward
//! has no guest accounts, and a practice's rooms should say so.

use std::sync::Arc;

use ruma::events::TimelineEventType;
use ruma::{OwnedRoomId, RoomId, RoomVersionId, UserId};
use serde_json::{Map, Value, json};
use ward_config::EncryptionDefault;
use ward_rooms::{Chain, EventDraft, Pdu, StateLookup};
use ward_store::{NewRoom, StoreError};

use super::{forbidden_from, new_event, parse_user_id, room_limits, ts};
use crate::{Authed, Error, Result, Services, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    PrivateChat,
    TrustedPrivateChat,
    PublicChat,
}

#[derive(Debug, Clone, Default)]
pub struct CreateRoomInput {
    pub preset: Option<Preset>,
    pub visibility_public: bool,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub invite: Vec<String>,
    pub is_direct: bool,
    pub room_version: Option<String>,
    pub creation_content: Option<Map<String, Value>>,
    /// (type, state_key, content)
    pub initial_state: Vec<(String, String, Value)>,
    pub power_level_content_override: Option<Map<String, Value>>,
    pub room_alias_name: Option<String>,
}

/// A timestamp for a create event that no earlier creation in this process used.
fn unique_create_ms() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms();
    let prev = LAST.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1)));
    // The closure always returns Some, so both arms carry the previous value.
    let prev = prev.unwrap_or_else(|p| p);
    now.max(prev + 1)
}

/// Limits on what one createRoom may ask for.
const INVITES_MAX: usize = 100;
/// The room encryption algorithm every Matrix client implements.
const MEGOLM_ALGORITHM: &str = "m.megolm.v1.aes-sha2";
const INITIAL_STATE_MAX: usize = 100;

fn draft(kind: &str, state_key: Option<&str>, content: Value) -> EventDraft {
    EventDraft {
        kind: TimelineEventType::from(kind),
        state_key: state_key.map(str::to_owned),
        content,
        redacts: None,
    }
}

/// Deep-merges `over` into `base` (objects recursively, everything else replaced).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

impl Services {
    pub async fn create_room(&self, authed: &Authed, input: CreateRoomInput) -> Result<String> {
        let creator = parse_user_id(&authed.user_id)?;
        let version = match &input.room_version {
            Some(v) => {
                RoomVersionId::try_from(v.as_str()).map_err(|_| Error::UnsupportedRoomVersion(v.clone()))?
            }
            None => self.settings.default_room_version.clone(),
        };
        let rules = ward_rooms::rules_for(&version)
            .ok_or_else(|| Error::UnsupportedRoomVersion(version.to_string()))?;
        let alias = match &input.room_alias_name {
            Some(name) => {
                let alias = format!("#{name}:{}", self.settings.server_name);
                self.check_alias(&alias)?;
                if self.store.alias(&alias).await?.is_some() {
                    return Err(Error::RoomInUse(format!("the alias {alias} is taken")));
                }
                Some(alias)
            }
            None => None,
        };
        if input.invite.len() > INVITES_MAX {
            return Err(Error::InvalidParam(format!("at most {INVITES_MAX} invites per createRoom")));
        }
        if input.initial_state.len() > INITIAL_STATE_MAX {
            return Err(Error::InvalidParam(format!("at most {INITIAL_STATE_MAX} initial_state events")));
        }
        let mut invitees = Vec::new();
        for i in &input.invite {
            let user = parse_user_id(i)?;
            if user.server_name() != self.server_name()? {
                return Err(Error::Forbidden(
                    "inviting users of other servers needs federation, which is not enabled".into(),
                ));
            }
            if self.store.account(user.as_str()).await?.is_none_or(|a| a.deactivated) {
                return Err(Error::NotFound(format!("no user {user}")));
            }
            if user != creator && !invitees.contains(&user) {
                invitees.push(user);
            }
        }
        for (kind, key, _) in &input.initial_state {
            if kind.len() > room_limits::EVENT_TYPE_MAX_BYTES || key.len() > room_limits::STATE_KEY_MAX_BYTES
            {
                return Err(Error::InvalidParam("initial_state type or state_key too long".into()));
            }
            if kind == "m.room.create" || kind == "m.room.member" {
                return Err(Error::InvalidParam(format!("{kind} cannot be given in initial_state")));
            }
        }
        let preset = input.preset.unwrap_or(if input.visibility_public {
            Preset::PublicChat
        } else {
            Preset::PrivateChat
        });
        let v12 = rules.authorization.explicitly_privilege_room_creators;

        // 1. m.room.create
        let mut create = Value::Object(input.creation_content.clone().unwrap_or_default());
        if let Value::Object(c) = &mut create {
            c.remove("creator");
            c.insert("room_version".into(), Value::String(version.to_string()));
            if !rules.authorization.use_room_create_sender {
                c.insert("creator".into(), Value::String(creator.to_string()));
            }
            if v12 && preset == Preset::TrustedPrivateChat && !invitees.is_empty() {
                let mut extra: Vec<Value> =
                    c.get("additional_creators").and_then(Value::as_array).cloned().unwrap_or_default();
                for i in &invitees {
                    let v = Value::String(i.to_string());
                    if !extra.contains(&v) {
                        extra.push(v);
                    }
                }
                c.insert("additional_creators".into(), Value::Array(extra));
            }
        }
        let mut events: Vec<EventDraft> = vec![draft("m.room.create", Some(""), create)];

        // 2. The creator joins.
        let profile = self.profile(creator.as_str()).await.unwrap_or_default();
        let mut join = json!({"membership": "join"});
        if let Some(n) = &profile.display_name {
            join["displayname"] = json!(n);
        }
        if let Some(a) = &profile.avatar_url {
            join["avatar_url"] = json!(a);
        }
        events.push(draft("m.room.member", Some(creator.as_str()), join));

        // 3. Power levels.
        let mut users = Map::new();
        if !v12 {
            users.insert(creator.to_string(), json!(100));
            if preset == Preset::TrustedPrivateChat {
                for i in &invitees {
                    users.insert(i.to_string(), json!(100));
                }
            }
        }
        let tombstone = if v12 { 150 } else { 100 };
        let mut power = json!({
            "users": users,
            "users_default": 0,
            "events": {
                "m.room.name": 50,
                "m.room.power_levels": 100,
                "m.room.history_visibility": 100,
                "m.room.canonical_alias": 50,
                "m.room.avatar": 50,
                "m.room.tombstone": tombstone,
                "m.room.server_acl": 100,
                "m.room.encryption": 100,
            },
            "events_default": 0,
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": 0,
            "notifications": {"room": 50},
        });
        if let Some(o) = &input.power_level_content_override {
            merge(&mut power, &Value::Object(o.clone()));
        }
        events.push(draft("m.room.power_levels", Some(""), power));

        // 4. The canonical alias.
        if let Some(a) = &alias {
            events.push(draft("m.room.canonical_alias", Some(""), json!({"alias": a})));
        }

        // 5. Preset events.
        let join_rule = if preset == Preset::PublicChat { "public" } else { "invite" };
        events.push(draft("m.room.join_rules", Some(""), json!({"join_rule": join_rule})));
        events.push(draft("m.room.history_visibility", Some(""), json!({"history_visibility": "shared"})));
        events.push(draft("m.room.guest_access", Some(""), json!({"guest_access": "forbidden"})));
        let encrypt = match self.settings.encryption_by_default {
            EncryptionDefault::All => true,
            EncryptionDefault::Private => preset != Preset::PublicChat || input.is_direct,
            EncryptionDefault::Off => false,
        };
        if encrypt && !input.initial_state.iter().any(|(kind, _, _)| kind == "m.room.encryption") {
            events.push(draft("m.room.encryption", Some(""), json!({"algorithm": MEGOLM_ALGORITHM})));
        }

        // 6. initial_state, 7. name and topic.
        for (kind, key, content) in input.initial_state {
            events.push(draft(&kind, Some(&key), content));
        }
        if let Some(name) = input.name {
            events.push(draft("m.room.name", Some(""), json!({"name": name})));
        }
        if let Some(topic) = input.topic {
            events.push(draft("m.room.topic", Some(""), json!({"topic": topic})));
        }

        // 8. Invites.
        for i in &invitees {
            let mut content = json!({"membership": "invite"});
            if input.is_direct {
                content["is_direct"] = json!(true);
            }
            let p = self.profile(i.as_str()).await.unwrap_or_default();
            if let Some(n) = p.display_name {
                content["displayname"] = json!(n);
            }
            events.push(draft("m.room.member", Some(i.as_str()), content));
        }

        let room_id = self
            .store_new_room(&version, &creator, &events, alias.as_deref(), input.visibility_public)
            .await?;
        tracing::info!(version = %version, "room created");
        Ok(room_id.to_string())
    }

    /// Builds a new room's first events in memory and stores them with the room in one
    /// transaction: nothing is stored unless every event passes the authorisation rules (a
    /// failing one is `InvalidRoomState`). Wakes waiting syncs.
    pub(crate) async fn store_new_room(
        &self,
        version: &RoomVersionId,
        creator: &UserId,
        events: &[EventDraft],
        alias: Option<&str>,
        published: bool,
    ) -> Result<OwnedRoomId> {
        let rules = ward_rooms::rules_for(version)
            .ok_or_else(|| Error::UnsupportedRoomVersion(version.to_string()))?;
        let alias = alias.map(str::to_owned);
        // Build the chain in memory; nothing is stored unless every event passes. A v12 room ID
        // is the hash of the create event, so two identical createRoom calls in the same
        // millisecond would collide: each creation takes a timestamp no other creation of this
        // process has used, and a collision anyway (another node) is retried with a new one.
        const ROOM_ID_ATTEMPTS: u64 = 5;
        let mut attempt = 0;
        let (room_id, positions, write) = loop {
            let pre_v12_room_id: Option<OwnedRoomId> = if rules.authorization.room_create_event_id_as_room_id
            {
                None
            } else {
                let local = ward_core::secret::random_string(
                    18,
                    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                );
                Some(
                    RoomId::parse(format!("!{local}:{}", self.settings.server_name))
                        .map_err(|e| Error::Internal(e.to_string()))?,
                )
            };
            let mut chain = Chain {
                rules: rules.clone(),
                room_id: pre_v12_room_id,
                state: StateLookup::new(),
                tip: None,
                server_name: self.server_name()?,
                key: &self.key,
            };
            let now = unique_create_ms();
            let mut pdus: Vec<Arc<Pdu>> = Vec::with_capacity(events.len());
            for d in events.iter().cloned() {
                let sender: &UserId = creator;
                pdus.push(chain.push(sender, d, ts(now)).map_err(|e| match forbidden_from(e) {
                    Error::Forbidden(m) | Error::InvalidParam(m) => Error::InvalidRoomState(m),
                    other => other,
                })?);
            }
            let room_id = chain.room_id.clone().ok_or_else(|| Error::Internal("no room ID".into()))?;
            let room = NewRoom {
                room_id: room_id.to_string(),
                room_version: version.to_string(),
                creator: creator.to_string(),
                created_ms: now,
                alias: alias.clone(),
                published,
            };
            let new_events = pdus.iter().map(|p| new_event(p, None)).collect();
            // Held until the notifier recorded the room (dropped with this iteration on error).
            let write = self.notifier.room_write(room_id.as_str());
            match self.store.create_room(room, new_events).await {
                Ok(p) => break (room_id, p, write),
                Err(StoreError::Conflict(what)) if alias.as_deref() == Some(what.as_str()) => {
                    return Err(Error::RoomInUse(format!("the alias {what} is taken")));
                }
                Err(StoreError::Conflict(_)) if attempt + 1 < ROOM_ID_ATTEMPTS => attempt += 1,
                Err(StoreError::Conflict(_)) => {
                    return Err(Error::Internal("room ID collision; try again".into()));
                }
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(p) = positions.last() {
            // The creator's join (and any invites) are among the first events.
            self.notifier.member_changed(room_id.as_str(), *p);
            self.notifier.room_changed(room_id.as_str(), *p, false);
        }
        write.recorded();
        Ok(room_id)
    }
}
