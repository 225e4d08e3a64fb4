//! Reading rooms: single events, state, history pages, members.
//!
//! A user reads a room while joined, and up to the moment they left afterwards; anyone else
//! gets `M_FORBIDDEN` (or `M_NOT_FOUND` for single events, as the spec asks).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use ward_store::{Direction, StoredEvent};

use super::{parse_room_id, room_limits};
use crate::{Authed, Error, Result, Services};

pub type ClientEvent = Map<String, Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageDirection {
    Backward,
    Forward,
}

#[derive(Debug, Clone)]
pub struct MessagesPage {
    pub chunk: Vec<ClientEvent>,
    pub start: String,
    /// Absent when there is nothing further in this direction.
    pub end: Option<String>,
    /// With lazy-loaded members: the member events of the chunk's senders.
    pub state: Vec<ClientEvent>,
}

/// What `/messages` asks for.
#[derive(Debug, Clone, Copy)]
pub struct MessagesQuery<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub dir: PageDirection,
    pub limit: Option<usize>,
    pub filter: &'a MessagesFilter,
}

/// The parts of a `RoomEventFilter` that `/messages` applies.
#[derive(Debug, Clone, Default)]
pub struct MessagesFilter {
    pub lazy_load_members: bool,
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
}

impl MessagesFilter {
    fn wants(&self, e: &StoredEvent) -> bool {
        let type_ok = |p: &String| match p.strip_suffix('*') {
            Some(prefix) => e.kind.starts_with(prefix),
            None => *p == e.kind,
        };
        self.types.as_ref().is_none_or(|t| t.iter().any(type_ok))
            && !self.not_types.iter().any(type_ok)
            && self.senders.as_ref().is_none_or(|s| s.contains(&e.sender))
            && !self.not_senders.contains(&e.sender)
    }
}

/// Stream tokens: `s<position>` names the point just after the event at that position. Sync
/// tokens add the ephemeral serial: `s<position>_<ephemeral>`; both kinds work everywhere.
pub fn token(pos: u64) -> String {
    format!("s{pos}")
}

pub fn sync_token(p: super::Positions) -> String {
    format!("s{}_{}", p.stream, p.ephemeral)
}

/// A sync token whose to-device position lags its stream position: the device has more
/// to-device messages queued than one sync hands out.
pub fn sync_token_with_to_device(p: super::Positions, to_device: u64) -> String {
    if to_device >= p.stream { sync_token(p) } else { format!("s{}_{}_{to_device}", p.stream, p.ephemeral) }
}

/// `s<stream>[_<ephemeral>[_<to-device>]]`.
fn sync_token_parts(t: &str) -> Result<(super::Positions, Option<u64>)> {
    let bad = || Error::InvalidParam(format!("`{t}` is not a token of this server"));
    let rest = t.strip_prefix('s').ok_or_else(bad)?;
    let mut parts = rest.splitn(3, '_');
    let stream = parts.next().unwrap_or_default().parse().map_err(|_| bad())?;
    let ephemeral = parts.next().map(str::parse).transpose().map_err(|_| bad())?.unwrap_or(0);
    let to_device = parts.next().map(str::parse).transpose().map_err(|_| bad())?;
    Ok((super::Positions { stream, ephemeral }, to_device))
}

pub fn parse_sync_token(t: &str) -> Result<super::Positions> {
    sync_token_parts(t).map(|(p, _)| p)
}

/// The stream position up to which the device has received its to-device messages.
pub fn parse_to_device_position(t: &str) -> Result<u64> {
    sync_token_parts(t).map(|(p, td)| td.unwrap_or(p.stream).min(p.stream))
}

pub fn parse_token(t: &str) -> Result<u64> {
    parse_sync_token(t).map(|p| p.stream)
}

impl Services {
    pub async fn event(&self, authed: &Authed, room_id: &str, event_id: &str) -> Result<ClientEvent> {
        let room_id = parse_room_id(room_id)?;
        let not_found = || Error::NotFound("event not found".into());
        let until = self.readable_until(room_id.as_str(), &authed.user_id).await.map_err(|_| not_found())?;
        let visibility = self.visibility(room_id.as_str(), &authed.user_id).await?;
        match self.store.event(event_id).await? {
            Some(e)
                if e.room_id == room_id.as_str()
                    && e.stream_pos <= until
                    && visibility.can_see(e.stream_pos) =>
            {
                Ok(Self::client_events(&[e], true)?.remove(0))
            }
            _ => Err(not_found()),
        }
    }

    async fn state_events_visible(&self, authed: &Authed, room_id: &str) -> Result<Vec<StoredEvent>> {
        self.state_events_at(authed, room_id, None).await
    }

    /// The room state at a stream position (now if `None`), no later than the user may see.
    async fn state_events_at(
        &self,
        authed: &Authed,
        room_id: &str,
        at: Option<u64>,
    ) -> Result<Vec<StoredEvent>> {
        let until = self.readable_until(room_id, &authed.user_id).await?;
        let until = at.map_or(until, |a| a.min(until));
        let entries = if until == u64::MAX {
            self.store.current_state(room_id).await?
        } else {
            self.store.state_at(room_id, until).await?
        };
        let ids: Vec<String> = entries.into_iter().map(|e| e.event_id).collect();
        self.store.events_by_id(&ids).await.map_err(Into::into)
    }

    pub async fn room_state(&self, authed: &Authed, room_id: &str) -> Result<Vec<ClientEvent>> {
        let room_id = parse_room_id(room_id)?;
        self.ensure_exists(room_id.as_str()).await?;
        let events = self.state_events_visible(authed, room_id.as_str()).await?;
        Self::client_events(&events, true)
    }

    /// The content of one state entry.
    pub async fn state_event(
        &self,
        authed: &Authed,
        room_id: &str,
        kind: &str,
        state_key: &str,
    ) -> Result<ClientEvent> {
        let room_id = parse_room_id(room_id)?;
        self.ensure_exists(room_id.as_str()).await?;
        let events = self.state_events_visible(authed, room_id.as_str()).await?;
        let found = events.into_iter().find(|e| e.kind == kind && e.state_key.as_deref() == Some(state_key));
        match found {
            Some(e) => Ok(Self::client_events(&[e], true)?.remove(0)),
            None => Err(Error::NotFound("no such state in this room".into())),
        }
    }

    async fn ensure_exists(&self, room_id: &str) -> Result<()> {
        if self.store.room(room_id).await?.is_none() {
            return Err(Error::Forbidden("you are not a member of this room".into()));
        }
        Ok(())
    }

    /// `GET /rooms/{roomId}/messages`.
    pub async fn messages(
        &self,
        authed: &Authed,
        room_id: &str,
        query: MessagesQuery<'_>,
    ) -> Result<MessagesPage> {
        let MessagesQuery { from, to, dir, limit, filter } = query;
        let room_id = parse_room_id(room_id)?;
        self.ensure_exists(room_id.as_str()).await?;
        let until = self.readable_until(room_id.as_str(), &authed.user_id).await?;
        let limit =
            limit.unwrap_or(room_limits::MESSAGES_LIMIT_DEFAULT).clamp(1, room_limits::MESSAGES_LIMIT_MAX);
        let newest = self.stream_position().min(until);
        let from_pos = match from {
            Some(t) => parse_token(t)?,
            None => match dir {
                PageDirection::Backward => newest,
                PageDirection::Forward => 0,
            },
        };
        let to_pos = to.map(parse_token).transpose()?;
        let events = match dir {
            PageDirection::Backward => {
                let from_pos = from_pos.min(newest);
                self.store
                    .room_events(
                        room_id.as_str(),
                        from_pos.saturating_add(1),
                        to_pos,
                        Direction::Backward,
                        limit,
                    )
                    .await?
            }
            PageDirection::Forward => {
                let to = Some(to_pos.map_or(newest, |t| t.min(newest)));
                self.store.room_events(room_id.as_str(), from_pos, to, Direction::Forward, limit).await?
            }
        };
        let mut events = events;
        let end = match (dir, events.last()) {
            (_, None) => None,
            (PageDirection::Backward, Some(last)) => Some(token(last.stream_pos.saturating_sub(1))),
            (PageDirection::Forward, Some(last)) => Some(token(last.stream_pos)),
        };
        // A short page means the end was reached (no further token), as clients expect.
        let end = if events.len() < limit { None } else { end };
        // Filtered after the page is cut, so hidden events shorten a page but never end the
        // pagination early.
        self.visibility(room_id.as_str(), &authed.user_id).await?.retain(&mut events);
        events.retain(|e| filter.wants(e));
        let mut state = Vec::new();
        if filter.lazy_load_members && !events.is_empty() {
            let oldest = events.iter().map(|e| e.stream_pos).min().unwrap_or(0);
            let entries = self.store.state_at(room_id.as_str(), oldest.saturating_sub(1)).await?;
            let ids: Vec<String> = entries
                .into_iter()
                .filter(|s| s.kind == "m.room.member" && events.iter().any(|e| e.sender == s.state_key))
                .map(|s| s.event_id)
                .collect();
            state = Self::client_events(&self.store.events_by_id(&ids).await?, true)?;
        }
        Ok(MessagesPage { chunk: Self::client_events(&events, true)?, start: token(from_pos), end, state })
    }

    /// `GET /rooms/{roomId}/members`: member events, optionally filtered by membership.
    pub async fn members(
        &self,
        authed: &Authed,
        room_id: &str,
        at: Option<&str>,
        membership: Option<&str>,
        not_membership: Option<&str>,
    ) -> Result<Vec<ClientEvent>> {
        let room_id = parse_room_id(room_id)?;
        self.ensure_exists(room_id.as_str()).await?;
        let at = at.map(parse_token).transpose()?;
        let events = self.state_events_at(authed, room_id.as_str(), at).await?;
        let members: Vec<StoredEvent> = events
            .into_iter()
            .filter(|e| e.kind == "m.room.member")
            .filter(|e| {
                let m = serde_json::from_str::<Value>(&e.json)
                    .ok()
                    .and_then(|j| j.get("content")?.get("membership")?.as_str().map(str::to_owned))
                    .unwrap_or_default();
                membership.is_none_or(|want| m == want) && not_membership.is_none_or(|not| m != not)
            })
            .collect();
        Self::client_events(&members, true)
    }

    /// `GET /rooms/{roomId}/joined_members`: user → (display name, avatar URL).
    pub async fn joined_members(
        &self,
        authed: &Authed,
        room_id: &str,
    ) -> Result<BTreeMap<String, (Option<String>, Option<String>)>> {
        let room_id = parse_room_id(room_id)?;
        self.ensure_exists(room_id.as_str()).await?;
        if self.readable_until(room_id.as_str(), &authed.user_id).await? != u64::MAX {
            return Err(Error::Forbidden("you are not in this room".into()));
        }
        let joined = self.members(authed, room_id.as_str(), None, Some("join"), None).await?;
        Ok(joined
            .into_iter()
            .filter_map(|e| {
                let user = e.get("state_key")?.as_str()?.to_owned();
                let c = e.get("content");
                let s = |k: &str| c.and_then(|c| c.get(k)).and_then(Value::as_str).map(str::to_owned);
                Some((user, (s("displayname"), s("avatar_url"))))
            })
            .collect())
    }
}
