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

    async fn room_for_account_data(&self, room_id: &str) -> Result<String> {
        let id = parse_room_id(room_id)?;
        Ok(id.to_string())
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
            Some(r) => Some(self.room_for_account_data(r).await?),
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
            Some(r) => Some(self.room_for_account_data(r).await?),
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
        let room = self.room_for_account_data(room_id).await?;
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
        let room = self.room_for_account_data(room_id).await?;
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
