//! Per-user data: account data (global and per room), room tags, sync filters, push rules.
//!
//! Everything here is stored as account data in the shared stream, so sync reports changes
//! like it reports events. Push rules live in the `m.push_rules` account data, as Synapse
//! exposes them; until a user changes one they are the spec's defaults.

use serde_json::{Map, Value};

use crate::rooms::parse_room_id;
use crate::{Authed, Error, Result, Services};

/// Limits on per-user data.
pub mod userdata_limits {
    /// Largest account data content (serialised JSON).
    pub const ACCOUNT_DATA_MAX_BYTES: usize = 64 * 1024;
    pub const ACCOUNT_DATA_TYPE_MAX_BYTES: usize = 255;
    /// Largest stored filter.
    pub const FILTER_MAX_BYTES: usize = 16 * 1024;
    pub const TAG_MAX_BYTES: usize = 255;
}
use userdata_limits::*;

/// Account data types the server manages through their own endpoints.
const SERVER_MANAGED: &[&str] = &["m.push_rules", "m.fully_read"];

fn check_type(kind: &str) -> Result<()> {
    if kind.is_empty() || kind.len() > ACCOUNT_DATA_TYPE_MAX_BYTES {
        return Err(Error::InvalidParam(format!("types have 1 to {ACCOUNT_DATA_TYPE_MAX_BYTES} bytes")));
    }
    Ok(())
}

fn serialise(content: &Value, max: usize) -> Result<String> {
    if !content.is_object() {
        return Err(Error::InvalidParam("the content must be a JSON object".into()));
    }
    let text = serde_json::to_string(content).map_err(|e| Error::Internal(e.to_string()))?;
    if text.len() > max {
        return Err(Error::TooLarge(format!("the content is larger than {max} bytes")));
    }
    Ok(text)
}

impl Services {
    fn own(&self, authed: &Authed, user_id: &str) -> Result<()> {
        if authed.user_id != user_id {
            return Err(Error::Forbidden("you can only access your own data".into()));
        }
        Ok(())
    }

    pub async fn set_account_data(
        &self,
        authed: &Authed,
        user_id: &str,
        room_id: Option<&str>,
        kind: &str,
        content: &Value,
    ) -> Result<()> {
        self.own(authed, user_id)?;
        check_type(kind)?;
        if SERVER_MANAGED.contains(&kind) {
            return Err(Error::BadJson(format!("{kind} is managed through its own endpoints")));
        }
        let room = match room_id {
            Some(r) => Some(parse_room_id(r)?.to_string()),
            None => None,
        };
        let text = serialise(content, ACCOUNT_DATA_MAX_BYTES)?;
        let pos = self.store.set_account_data(user_id, room.as_deref(), kind, &text).await?;
        self.notify(pos);
        Ok(())
    }

    pub async fn account_data(
        &self,
        authed: &Authed,
        user_id: &str,
        room_id: Option<&str>,
        kind: &str,
    ) -> Result<Value> {
        self.own(authed, user_id)?;
        check_type(kind)?;
        let room = match room_id {
            Some(r) => Some(parse_room_id(r)?.to_string()),
            None => None,
        };
        if room.is_none() && kind == "m.push_rules" {
            return self.push_rules(authed).await;
        }
        match self.store.account_data(user_id, room.as_deref(), kind).await? {
            Some(text) => serde_json::from_str(&text).map_err(|e| Error::Internal(e.to_string())),
            None => Err(Error::NotFound("no account data of that type".into())),
        }
    }

    /// The `m.tag` content of a room: `{"tags": {...}}`.
    async fn tags_content(&self, user_id: &str, room_id: &str) -> Result<Map<String, Value>> {
        let text = self.store.account_data(user_id, Some(room_id), "m.tag").await?;
        let mut content: Map<String, Value> =
            text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        if !content.get("tags").is_some_and(Value::is_object) {
            content.insert("tags".into(), Value::Object(Map::new()));
        }
        Ok(content)
    }

    pub async fn tags(&self, authed: &Authed, user_id: &str, room_id: &str) -> Result<Map<String, Value>> {
        self.own(authed, user_id)?;
        let room = parse_room_id(room_id)?.to_string();
        let content = self.tags_content(user_id, &room).await?;
        Ok(content.get("tags").and_then(Value::as_object).cloned().unwrap_or_default())
    }

    /// Sets (`Some`) or removes (`None`) one tag.
    pub async fn set_tag(
        &self,
        authed: &Authed,
        user_id: &str,
        room_id: &str,
        tag: &str,
        info: Option<Value>,
    ) -> Result<()> {
        self.own(authed, user_id)?;
        if tag.is_empty() || tag.len() > TAG_MAX_BYTES {
            return Err(Error::InvalidParam(format!("tags have 1 to {TAG_MAX_BYTES} bytes")));
        }
        let room = parse_room_id(room_id)?.to_string();
        let mut content = self.tags_content(user_id, &room).await?;
        if let Some(Value::Object(tags)) = content.get_mut("tags") {
            match info {
                Some(i) => {
                    if !i.is_object() {
                        return Err(Error::InvalidParam("tag info must be a JSON object".into()));
                    }
                    tags.insert(tag.to_owned(), i);
                }
                None => {
                    tags.remove(tag);
                }
            }
        }
        let text = serialise(&Value::Object(content), ACCOUNT_DATA_MAX_BYTES)?;
        let pos = self.store.set_account_data(user_id, Some(&room), "m.tag", &text).await?;
        self.notify(pos);
        Ok(())
    }

    pub async fn create_filter(&self, authed: &Authed, user_id: &str, filter: &Value) -> Result<String> {
        self.own(authed, user_id)?;
        let text = serialise(filter, FILTER_MAX_BYTES)?;
        Ok(self.store.create_filter(user_id, &text).await?)
    }

    pub async fn filter(&self, authed: &Authed, user_id: &str, filter_id: &str) -> Result<Value> {
        self.own(authed, user_id)?;
        match self.store.filter(user_id, filter_id).await? {
            Some(text) => serde_json::from_str(&text).map_err(|e| Error::Internal(e.to_string())),
            None => Err(Error::NotFound("no such filter".into())),
        }
    }

    /// The user's push rules (`{"global": {...}}`): stored ones, or the spec's defaults.
    pub async fn push_rules(&self, authed: &Authed) -> Result<Value> {
        if let Some(text) = self.store.account_data(&authed.user_id, None, "m.push_rules").await? {
            return serde_json::from_str(&text).map_err(|e| Error::Internal(e.to_string()));
        }
        let user = crate::rooms::parse_user_id(&authed.user_id)?;
        let ruleset = ruma::push::Ruleset::server_default(&user);
        let global = serde_json::to_value(&ruleset).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(serde_json::json!({ "global": global }))
    }
}

/// Pushers a user may register.
const PUSHERS_PER_USER_MAX: usize = 50;
const PUSHER_MAX_BYTES: usize = 8 * 1024;
/// Events `/notifications` looks at per room.
const NOTIFICATIONS_SCAN_PER_ROOM: usize = 200;
pub const NOTIFICATIONS_LIMIT_MAX: usize = 100;

/// One entry of `GET /notifications`.
#[derive(Debug, Clone)]
pub struct Notification {
    pub room_id: String,
    pub event: serde_json::Map<String, Value>,
    pub actions: Vec<Value>,
    pub read: bool,
    pub ts: u64,
    pub stream_pos: u64,
}

impl Services {
    /// Loads the push rules, lets `edit` change them, and saves them (as `m.push_rules`
    /// account data, which sync reports). Edits of one user are serialised.
    pub async fn edit_push_rules<T>(
        &self,
        authed: &Authed,
        edit: impl FnOnce(&mut ruma::push::Ruleset) -> Result<T>,
    ) -> Result<T> {
        let lock = self.room_lock(&format!("push-rules {}", authed.user_id));
        let _guard = lock.lock().await;
        let current = self.push_rules(authed).await?;
        let mut ruleset: ruma::push::Ruleset =
            serde_json::from_value(current.get("global").cloned().unwrap_or_default())
                .map_err(|e| Error::Internal(e.to_string()))?;
        let out = edit(&mut ruleset)?;
        self.forget_unread(&authed.user_id, None);
        let global = serde_json::to_value(&ruleset).map_err(|e| Error::Internal(e.to_string()))?;
        let text = serde_json::json!({ "global": global }).to_string();
        let pos = self.store.set_account_data(&authed.user_id, None, "m.push_rules", &text).await?;
        self.notify(pos);
        Ok(out)
    }

    /// `POST /pushers/set`. `kind: null` deletes; `append: false` (the default) takes the
    /// push key away from other users of the same app.
    pub async fn set_pusher(
        &self,
        authed: &Authed,
        mut pusher: serde_json::Map<String, Value>,
    ) -> Result<()> {
        let s = |k: &str| match pusher.get(k) {
            Some(Value::String(v)) => Ok(v.clone()),
            Some(_) => Err(Error::BadJson(format!("{k} must be a string"))),
            None => Err(Error::MissingParam(format!("{k} is required"))),
        };
        let app_id = s("app_id")?;
        let pushkey = s("pushkey")?;
        if app_id.len() > 64 || pushkey.len() > 512 {
            return Err(Error::InvalidParam("app_id has at most 64 bytes, pushkey at most 512".into()));
        }
        match pusher.get("kind") {
            Some(Value::Null) => {
                self.store.delete_pusher(&authed.user_id, &app_id, &pushkey).await?;
                return Ok(());
            }
            Some(Value::String(k)) if k == "http" => {
                let url = pusher.get("data").and_then(|d| d.get("url")).and_then(Value::as_str);
                if !url.is_some_and(|u| u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(Error::InvalidParam("http pushers need data.url".into()));
                }
            }
            Some(Value::String(k)) if k == "email" => {}
            _ => return Err(Error::InvalidParam("kind must be http, email or null".into())),
        }
        let append = pusher.remove("append").and_then(|v| v.as_bool()).unwrap_or(false);
        let text = serde_json::to_string(&pusher).map_err(|e| Error::Internal(e.to_string()))?;
        if text.len() > PUSHER_MAX_BYTES {
            return Err(Error::TooLarge(format!("a pusher has at most {PUSHER_MAX_BYTES} bytes")));
        }
        if self.store.pushers(&authed.user_id).await?.len() >= PUSHERS_PER_USER_MAX {
            return Err(Error::Forbidden(format!("at most {PUSHERS_PER_USER_MAX} pushers per user")));
        }
        if !append {
            self.store.delete_pusher_elsewhere(&authed.user_id, &app_id, &pushkey).await?;
        }
        self.store.set_pusher(&authed.user_id, &app_id, &pushkey, &text).await?;
        Ok(())
    }

    pub async fn pushers(&self, authed: &Authed) -> Result<Vec<Value>> {
        Ok(self
            .store
            .pushers(&authed.user_id)
            .await?
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }

    /// `GET /notifications`: recent events that notified the user, newest first.
    pub async fn notifications(
        &self,
        authed: &Authed,
        from: Option<&str>,
        limit: Option<usize>,
        only_highlight: bool,
    ) -> Result<(Vec<Notification>, Option<String>)> {
        let limit = limit.unwrap_or(20).clamp(1, NOTIFICATIONS_LIMIT_MAX);
        let before = match from {
            Some(t) => crate::rooms::parse_token(t)?.saturating_add(1),
            None => self.stream_position().saturating_add(1),
        };
        let rules = self.push_rules(authed).await?;
        let ruleset: ruma::push::Ruleset =
            serde_json::from_value(rules.get("global").cloned().unwrap_or_default()).unwrap_or_default();
        let me = crate::rooms::parse_user_id(&authed.user_id)?;
        let display =
            self.profile(&authed.user_id).await.ok().and_then(|p| p.display_name).unwrap_or_default();
        let mut found = Vec::new();
        for m in self.store.memberships_of_user(&authed.user_id).await? {
            if m.membership != "join" {
                continue;
            }
            let read = self.store.read_up_to(&m.room_id, &authed.user_id, "main").await?.unwrap_or(0);
            let members = self.store.room_members(&m.room_id).await?;
            let joined = members.iter().filter(|x| x.membership == "join").count() as u64;
            let ctx = ruma::push::PushConditionRoomCtx::new(
                parse_room_id(&m.room_id)?,
                ruma::UInt::new(joined).unwrap_or_default(),
                me.clone(),
                display.clone(),
            );
            let events = self
                .store
                .room_events(
                    &m.room_id,
                    before,
                    None,
                    ward_store::Direction::Backward,
                    NOTIFICATIONS_SCAN_PER_ROOM,
                )
                .await?;
            for e in events {
                if e.sender == authed.user_id {
                    continue;
                }
                let event = crate::rooms::client_event(&e)?;
                let Ok(raw) = serde_json::value::to_raw_value(&event) else { continue };
                let raw = ruma::serde::Raw::<Value>::from_json(raw);
                let actions = ruleset.get_actions(&raw, &ctx).await;
                let notify = actions.iter().any(|a| a.should_notify());
                let highlight = actions.iter().any(|a| a.is_highlight());
                if !notify || (only_highlight && !highlight) {
                    continue;
                }
                let actions = actions.iter().filter_map(|a| serde_json::to_value(a).ok()).collect();
                let ts = event.get("origin_server_ts").and_then(Value::as_u64).unwrap_or(0);
                found.push(Notification {
                    room_id: m.room_id.clone(),
                    event,
                    actions,
                    read: e.stream_pos <= read,
                    ts,
                    stream_pos: e.stream_pos,
                });
            }
        }
        found.sort_by_key(|n| std::cmp::Reverse(n.stream_pos));
        let more = found.len() > limit;
        found.truncate(limit);
        let next = if more {
            found.last().map(|n| crate::rooms::token(n.stream_pos.saturating_sub(1)))
        } else {
            None
        };
        Ok((found, next))
    }
}
