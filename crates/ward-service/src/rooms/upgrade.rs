//! `POST /rooms/{roomId}/upgrade`: replace a room with a new one of another room version.
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#server-behaviour-16>. Whoever may
//! send `m.room.tombstone` may upgrade. The new room's create event names its `predecessor`
//! (the old room and its last event) and keeps the room `type`; the important state is copied
//! (power levels, join rules, history visibility, guest access, encryption, server ACL, name,
//! topic, avatar, canonical alias); local aliases and the directory listing move to the new
//! room; the old room gets a tombstone and its power levels are raised so that ordinary members
//! can no longer talk or invite there (`events_default` and `invite` to at least 50), as
//! Synapse does.
//!
//! Creators of v12 rooms are not listed in the power levels: going to v12 the upgrader (now the
//! creator) and any `additional_creators` are taken out of `users`; leaving v12, a creator of the
//! old room keeps level 100. If the upgrader's level is too low to set the copied state, they
//! get the needed level for the room's first events and the original power levels are sent
//! last. The new room is stored in one transaction; the tombstone follows it, so a crash in
//! between leaves an unused new room and the old room as it was.

use ruma::RoomVersionId;
use ruma::events::{StateEventType, TimelineEventType};
use serde_json::{Map, Value, json};
use ward_rooms::EventDraft;

use super::{parse_room_id, parse_user_id};
use crate::{Authed, Error, Result, Services};

/// State copied into the new room, in this order (power levels come first, separately).
const COPIED_STATE: [&str; 9] = [
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
];

/// `additional_creators` one upgrade may name.
const ADDITIONAL_CREATORS_MAX: usize = 100;

fn draft(kind: &str, content: Value) -> EventDraft {
    EventDraft { kind: TimelineEventType::from(kind), state_key: Some(String::new()), content, redacts: None }
}

fn level(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
}

impl Services {
    pub async fn upgrade_room(
        &self,
        authed: &Authed,
        room_id: &str,
        new_version: &str,
        additional_creators: &[String],
    ) -> Result<String> {
        let old = parse_room_id(room_id)?;
        let version = RoomVersionId::try_from(new_version)
            .map_err(|_| Error::UnsupportedRoomVersion(new_version.to_owned()))?;
        let rules = ward_rooms::rules_for(&version)
            .ok_or_else(|| Error::UnsupportedRoomVersion(version.to_string()))?;
        let to_v12 = rules.authorization.explicitly_privilege_room_creators;
        if additional_creators.len() > ADDITIONAL_CREATORS_MAX {
            return Err(Error::InvalidParam(format!(
                "at most {ADDITIONAL_CREATORS_MAX} additional creators"
            )));
        }
        let extra: Vec<String> = additional_creators
            .iter()
            .map(|u| parse_user_id(u).map(|u| u.to_string()))
            .collect::<Result<_>>()?;
        let me = parse_user_id(&authed.user_id)?;
        if self.store.room(old.as_str()).await?.is_none() {
            return Err(Error::NotFound("no such room".into()));
        }
        // One upgrade of a room at a time.
        let lock = self.room_lock(&format!("upgrade {old}"));
        let _guard = lock.lock().await;
        if self.readable_until(old.as_str(), &authed.user_id).await? != u64::MAX {
            return Err(Error::Forbidden("you are not in this room".into()));
        }
        let (mine, needed) = self.state_power(old.as_str(), &authed.user_id, "m.room.tombstone").await?;
        if mine < needed {
            return Err(Error::Forbidden("you may not upgrade this room".into()));
        }

        let old_str = old.as_str();
        let content = |kind: &'static str| async move {
            self.state_pdu(old_str, &StateEventType::from(kind), "").await
        };
        let old_create =
            content("m.room.create").await?.ok_or_else(|| Error::NotFound("no such room".into()))?;
        let old_create_content = old_create.content_value();
        let tip = self.store.room_tip(old.as_str()).await?.map(|(id, _)| id);

        // 1. The create event, pointing back.
        let mut predecessor = json!({"room_id": old.as_str()});
        if let Some(tip) = &tip {
            predecessor["event_id"] = json!(tip);
        }
        let mut create = json!({"room_version": version.as_str(), "predecessor": predecessor});
        if let Some(t) = old_create_content.get("type") {
            create["type"] = t.clone();
        }
        if !rules.authorization.use_room_create_sender {
            create["creator"] = json!(me.as_str());
        }
        if to_v12 && !extra.is_empty() {
            create["additional_creators"] = json!(extra);
        }
        let mut events = vec![draft("m.room.create", create)];

        // 2. The upgrader joins.
        let profile = self.profile(me.as_str()).await.unwrap_or_default();
        let mut join = json!({"membership": "join"});
        if let Some(n) = &profile.display_name {
            join["displayname"] = json!(n);
        }
        if let Some(a) = &profile.avatar_url {
            join["avatar_url"] = json!(a);
        }
        events.push(EventDraft { state_key: Some(me.to_string()), ..draft("m.room.member", join) });

        // 3. Power levels, with the creators' entries adjusted, and a temporary boost if needed.
        let old_pl = content("m.room.power_levels").await?.map(|p| p.content_value());
        let mut pl = match old_pl.clone() {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let old_creators = creators_if_v12(&old_create_content, old_create.sender.as_str());
        let users = pl.entry("users").or_insert_with(|| json!({}));
        if !users.is_object() {
            *users = json!({});
        }
        if let Some(users) = users.as_object_mut() {
            adjust_creators(users, me.as_str(), &extra, to_v12, &old_creators);
        }
        let mut copied = Vec::new();
        for kind in COPIED_STATE {
            if let Some(p) = content(kind).await? {
                copied.push((kind, p.content_value()));
            }
        }
        let boost =
            if to_v12 { None } else { boost_needed(&pl, me.as_str(), copied.iter().map(|(k, _)| *k)) };
        let mut first_pl = pl.clone();
        if let (Some(needed), Some(users)) = (boost, first_pl.get_mut("users").and_then(Value::as_object_mut))
        {
            users.insert(me.to_string(), json!(needed));
        }
        events.push(draft("m.room.power_levels", Value::Object(first_pl)));
        // 4. The copied state, then the real power levels if they were boosted.
        for (kind, c) in copied {
            events.push(draft(kind, c));
        }
        if boost.is_some() {
            events.push(draft("m.room.power_levels", Value::Object(pl)));
        }

        let published = self.store.is_published(old.as_str()).await?;
        let new = self.store_new_room(&version, &me, &events, None, published).await?;

        // 5. Local aliases and the directory listing move.
        for alias in self.store.room_aliases(old.as_str()).await? {
            let creator = self.store.alias(&alias).await?.map(|(_, c)| c).unwrap_or_else(|| me.to_string());
            self.store.delete_alias(&alias).await?;
            self.store.create_alias(&alias, new.as_str(), &creator, crate::now_ms()).await?;
        }
        if published {
            self.store.set_published(old.as_str(), false, crate::now_ms()).await?;
        }

        // 6. The tombstone, then the old room is quietened.
        let tombstone = json!({"body": "This room has been replaced", "replacement_room": new.as_str()});
        self.append(&old, &me, draft("m.room.tombstone", tombstone), None).await?;
        if let Some(Value::Object(mut quiet)) = old_pl {
            let floor = level(quiet.get("users_default")).unwrap_or(0).saturating_add(1).max(50);
            let mut changed = false;
            for key in ["events_default", "invite"] {
                if level(quiet.get(key)).unwrap_or(0) < floor {
                    quiet.insert(key.to_owned(), json!(floor));
                    changed = true;
                }
            }
            let restrict = draft("m.room.power_levels", Value::Object(quiet));
            if changed && let Err(e) = self.append(&old, &me, restrict, None).await {
                tracing::warn!(error = %e, "could not restrict the upgraded room's power levels");
            }
        }
        tracing::info!(version = %version, "room upgraded");
        Ok(new.to_string())
    }
}

/// The creators of a v12 room (sender of the create event and `additional_creators`); empty
/// for older versions, whose creators are ordinary entries of the power levels.
fn creators_if_v12(create: &Value, sender: &str) -> Vec<String> {
    let v12 = create
        .get("room_version")
        .and_then(Value::as_str)
        .and_then(|v| RoomVersionId::try_from(v).ok())
        .and_then(|v| ward_rooms::rules_for(&v))
        .is_some_and(|r| r.authorization.explicitly_privilege_room_creators);
    if !v12 {
        return vec![];
    }
    let mut creators = vec![sender.to_owned()];
    if let Some(extra) = create.get("additional_creators").and_then(Value::as_array) {
        creators.extend(extra.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    creators
}

/// Creators are not listed in v12 power levels; out of v12, the old room's creators keep 100.
fn adjust_creators(
    users: &mut Map<String, Value>,
    me: &str,
    extra: &[String],
    to_v12: bool,
    old_creators: &[String],
) {
    if to_v12 {
        users.remove(me);
        for u in extra {
            users.remove(u);
        }
    } else {
        for c in old_creators {
            users.entry(c.clone()).or_insert(json!(100));
        }
    }
}

/// The level `me` needs to send the power levels and all copied state, if above their own.
fn boost_needed<'a>(pl: &Map<String, Value>, me: &str, kinds: impl Iterator<Item = &'a str>) -> Option<i64> {
    let mine = level(pl.get("users").and_then(|u| u.get(me)))
        .or_else(|| level(pl.get("users_default")))
        .unwrap_or(0);
    let state_default = level(pl.get("state_default")).unwrap_or(50);
    let for_kind = |k: &str| level(pl.get("events").and_then(|e| e.get(k))).unwrap_or(state_default);
    let needed = kinds.chain(std::iter::once("m.room.power_levels")).map(for_kind).max().unwrap_or(0);
    (mine < needed).then_some(needed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn creators_leave_and_keep_their_power() {
        let mut users = json!({"@me:x": 100, "@b:x": 50, "@c:x": 100}).as_object().cloned().unwrap();
        super::adjust_creators(&mut users, "@me:x", &["@c:x".into()], true, &[]);
        assert_eq!(users.keys().collect::<Vec<_>>(), ["@b:x"]);
        let mut users = json!({"@b:x": 50}).as_object().cloned().unwrap();
        super::adjust_creators(&mut users, "@me:x", &[], false, &["@me:x".into(), "@b:x".into()]);
        assert_eq!(users["@me:x"], 100);
        assert_eq!(users["@b:x"], 50, "an explicit level stays");
    }

    #[test]
    fn boost_only_when_too_low() {
        let pl = json!({"users": {"@me:x": 50}, "state_default": 50, "events": {"m.room.power_levels": 100}})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(super::boost_needed(&pl, "@me:x", ["m.room.name"].into_iter()), Some(100));
        let pl = json!({"users": {"@me:x": 100}, "events": {"m.room.power_levels": 100}})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(super::boost_needed(&pl, "@me:x", ["m.room.name"].into_iter()), None);
    }
}
