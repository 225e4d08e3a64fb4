//! Room aliases and the published room directory.

use ruma::events::StateEventType;
use serde_json::Value;
use ward_store::StoreError;

use super::{parse_room_id, parse_user_id};
use crate::{Authed, Error, Result, Services, now_ms};

/// Longest alias, `#` and server name included.
pub const ALIAS_MAX_BYTES: usize = 255;
/// Rooms one `/publicRooms` page may hold.
pub const PUBLIC_ROOMS_LIMIT_MAX: usize = 500;
/// Published rooms a search looks through.
const PUBLIC_ROOMS_SEARCH_MAX: usize = 1000;

/// One room of the directory, as `/publicRooms` lists it.
#[derive(Debug, Clone, Default)]
pub struct PublicRoom {
    pub room_id: String,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub canonical_alias: Option<String>,
    pub avatar_url: Option<String>,
    pub num_joined_members: u64,
    pub world_readable: bool,
    pub guest_can_join: bool,
    pub join_rule: Option<String>,
    pub room_type: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PublicRoomsPage {
    pub chunk: Vec<PublicRoom>,
    pub next_batch: Option<String>,
    pub prev_batch: Option<String>,
    pub total_room_count_estimate: u64,
}

impl Services {
    /// Checks `#localpart:server` with our server name.
    pub(crate) fn check_alias(&self, alias: &str) -> Result<()> {
        let ok = alias.len() <= ALIAS_MAX_BYTES
            && alias.strip_prefix('#').and_then(|rest| rest.split_once(':')).is_some_and(
                |(local, server)| {
                    !local.is_empty()
                        && !local.contains(|c: char| c.is_whitespace() || c == ':')
                        && !server.is_empty()
                },
            );
        if !ok {
            return Err(Error::InvalidParam(format!("`{alias}` is not a room alias")));
        }
        if alias.split_once(':').map(|(_, s)| s) != Some(self.settings.server_name.as_str()) {
            return Err(Error::InvalidParam("aliases must belong to this server".into()));
        }
        Ok(())
    }

    /// `PUT /directory/room/{roomAlias}`: members may add aliases for their room.
    pub async fn create_alias(&self, authed: &Authed, alias: &str, room_id: &str) -> Result<()> {
        self.check_alias(alias)?;
        let room_id = parse_room_id(room_id)?;
        if self.store.room(room_id.as_str()).await?.is_none() {
            return Err(Error::NotFound("no such room".into()));
        }
        if self.readable_until(room_id.as_str(), &authed.user_id).await? != u64::MAX {
            return Err(Error::Forbidden("you must be in the room to give it an alias".into()));
        }
        match self.store.create_alias(alias, room_id.as_str(), &authed.user_id, now_ms()).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(Error::AliasConflict(format!("{alias} is taken"))),
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /directory/room/{roomAlias}`: the room ID and the servers that know it.
    pub async fn resolve_alias(&self, alias: &str) -> Result<(String, Vec<String>)> {
        match self.store.alias(alias).await? {
            Some((room_id, _)) => Ok((room_id, vec![self.settings.server_name.clone()])),
            None => Err(Error::NotFound(format!("no room has the alias {alias}"))),
        }
    }

    /// `DELETE /directory/room/{roomAlias}`: the alias's creator or whoever may set the room's
    /// canonical alias.
    pub async fn delete_alias(&self, authed: &Authed, alias: &str) -> Result<()> {
        let Some((room_id, creator)) = self.store.alias(alias).await? else {
            return Err(Error::NotFound(format!("no room has the alias {alias}")));
        };
        if creator != authed.user_id {
            let (mine, needed) =
                self.state_power(&room_id, &authed.user_id, "m.room.canonical_alias").await?;
            if mine < needed {
                return Err(Error::Forbidden(
                    "only the alias's creator or a room moderator may remove it".into(),
                ));
            }
        }
        self.store.delete_alias(alias).await?;
        Ok(())
    }

    /// `GET /rooms/{roomId}/aliases`.
    pub async fn room_aliases(&self, authed: &Authed, room_id: &str) -> Result<Vec<String>> {
        let room_id = parse_room_id(room_id)?;
        if self.store.room(room_id.as_str()).await?.is_none() {
            return Err(Error::Forbidden("you are not a member of this room".into()));
        }
        self.readable_until(room_id.as_str(), &authed.user_id).await?;
        Ok(self.store.room_aliases(room_id.as_str()).await?)
    }

    /// `GET /directory/list/room/{roomId}`.
    pub async fn is_published(&self, room_id: &str) -> Result<bool> {
        let room_id = parse_room_id(room_id)?;
        if self.store.room(room_id.as_str()).await?.is_none() {
            return Err(Error::NotFound("no such room".into()));
        }
        Ok(self.store.is_published(room_id.as_str()).await?)
    }

    /// `PUT /directory/list/room/{roomId}`: whoever may set the canonical alias.
    pub async fn set_published(&self, authed: &Authed, room_id: &str, published: bool) -> Result<()> {
        let room_id = parse_room_id(room_id)?;
        if self.store.room(room_id.as_str()).await?.is_none() {
            return Err(Error::NotFound("no such room".into()));
        }
        if self.readable_until(room_id.as_str(), &authed.user_id).await? != u64::MAX {
            return Err(Error::Forbidden("you are not in this room".into()));
        }
        let (mine, needed) =
            self.state_power(room_id.as_str(), &authed.user_id, "m.room.canonical_alias").await?;
        if mine < needed {
            return Err(Error::Forbidden("only room moderators may publish a room".into()));
        }
        self.store.set_published(room_id.as_str(), published, now_ms()).await?;
        Ok(())
    }

    /// The sender's power and the level sending state `kind` needs.
    pub(crate) async fn state_power(&self, room_id: &str, user_id: &str, kind: &str) -> Result<(i64, i64)> {
        let user = parse_user_id(user_id)?;
        let (mine, state_default) = self.power_of(room_id, &user, "state_default").await?;
        let pl = self.state_pdu(room_id, &StateEventType::RoomPowerLevels, "").await?;
        let needed = pl
            .and_then(|p| p.content_value().get("events").and_then(|e| e.get(kind)).and_then(Value::as_i64))
            .unwrap_or(state_default);
        Ok((mine, needed))
    }

    pub(crate) async fn public_room(&self, room_id: &str) -> Result<PublicRoom> {
        let state = |kind: &'static str| async move {
            Ok::<_, Error>(
                self.state_pdu(room_id, &StateEventType::from(kind), "").await?.map(|p| p.content_value()),
            )
        };
        let s = |v: &Option<Value>, k: &str| {
            v.as_ref().and_then(|c| c.get(k)).and_then(Value::as_str).map(str::to_owned)
        };
        let name = state("m.room.name").await?;
        let topic = state("m.room.topic").await?;
        let alias = state("m.room.canonical_alias").await?;
        let avatar = state("m.room.avatar").await?;
        let visibility = state("m.room.history_visibility").await?;
        let guests = state("m.room.guest_access").await?;
        let join_rules = state("m.room.join_rules").await?;
        let create = state("m.room.create").await?;
        let members = self.store.room_members(room_id).await?;
        Ok(PublicRoom {
            room_id: room_id.to_owned(),
            name: s(&name, "name"),
            topic: s(&topic, "topic"),
            canonical_alias: s(&alias, "alias"),
            avatar_url: s(&avatar, "url"),
            num_joined_members: members.iter().filter(|m| m.membership == "join").count() as u64,
            world_readable: s(&visibility, "history_visibility").as_deref() == Some("world_readable"),
            guest_can_join: s(&guests, "guest_access").as_deref() == Some("can_join"),
            join_rule: s(&join_rules, "join_rule"),
            room_type: s(&create, "type"),
        })
    }

    /// `GET|POST /publicRooms`: the published rooms, paged by `p<offset>` tokens.
    pub async fn public_rooms(
        &self,
        limit: Option<usize>,
        since: Option<&str>,
        search: Option<&str>,
    ) -> Result<PublicRoomsPage> {
        let limit = limit.unwrap_or(PUBLIC_ROOMS_LIMIT_MAX).clamp(1, PUBLIC_ROOMS_LIMIT_MAX);
        let offset = match since {
            Some(t) => t
                .strip_prefix('p')
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| Error::InvalidParam(format!("`{t}` is not a directory token")))?,
            None => 0,
        };
        let total = self.store.count_published_rooms().await?;
        let search = search.map(str::to_lowercase).filter(|s| !s.is_empty());
        let mut chunk = Vec::new();
        let mut next = None;
        match search {
            None => {
                for id in self.store.published_rooms(offset, limit).await? {
                    chunk.push(self.public_room(&id).await?);
                }
                if offset + (chunk.len() as u64) < total {
                    next = Some(format!("p{}", offset + chunk.len() as u64));
                }
            }
            Some(term) => {
                let ids = self.store.published_rooms(0, PUBLIC_ROOMS_SEARCH_MAX).await?;
                let mut matched = Vec::new();
                for id in ids {
                    let room = self.public_room(&id).await?;
                    let hay = [&room.name, &room.topic, &room.canonical_alias]
                        .iter()
                        .filter_map(|v| v.as_deref())
                        .any(|v| v.to_lowercase().contains(&term));
                    if hay {
                        matched.push(room);
                    }
                }
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(matched.len());
                let end = (start + limit).min(matched.len());
                if end < matched.len() {
                    next = Some(format!("p{end}"));
                }
                chunk = matched.drain(start..end).collect();
            }
        }
        let prev_batch = (offset > 0).then(|| format!("p{}", offset.saturating_sub(limit as u64)));
        Ok(PublicRoomsPage { chunk, next_batch: next, prev_batch, total_room_count_estimate: total })
    }
}
