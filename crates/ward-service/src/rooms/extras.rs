//! Event context, relations, timestamp lookup, forgetting rooms.

use ward_store::Direction;

use super::read::{ClientEvent, parse_token, token};
use super::{parse_room_id, room_limits};
use crate::{Authed, Error, Result, Services};

#[derive(Debug, Clone, Default)]
pub struct Context {
    pub event: ClientEvent,
    pub events_before: Vec<ClientEvent>,
    pub events_after: Vec<ClientEvent>,
    pub state: Vec<ClientEvent>,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Default)]
pub struct RelationsPage {
    pub chunk: Vec<ClientEvent>,
    pub next_batch: Option<String>,
}

impl Services {
    /// `GET /rooms/{roomId}/context/{eventId}`: the event, `limit` events around it (split
    /// before and after), and the room state at the end of that window.
    pub async fn context(
        &self,
        authed: &Authed,
        room_id: &str,
        event_id: &str,
        limit: Option<usize>,
    ) -> Result<Context> {
        let room_id = parse_room_id(room_id)?;
        let not_found = || Error::NotFound("event not found".into());
        let until = self.readable_until(room_id.as_str(), &authed.user_id).await.map_err(|_| not_found())?;
        let visibility = self.visibility(room_id.as_str(), &authed.user_id).await?;
        let event = match self.store.event(event_id).await? {
            Some(e)
                if e.room_id == room_id.as_str()
                    && e.stream_pos <= until
                    && visibility.can_see(e.stream_pos) =>
            {
                e
            }
            _ => return Err(not_found()),
        };
        let limit = limit.unwrap_or(room_limits::MESSAGES_LIMIT_DEFAULT).min(room_limits::MESSAGES_LIMIT_MAX);
        let before_n = limit / 2;
        let after_n = limit - before_n;
        let newest = self.stream_position().min(until);
        let before = if before_n == 0 {
            vec![]
        } else {
            self.store
                .room_events(room_id.as_str(), event.stream_pos, None, Direction::Backward, before_n)
                .await?
        };
        let after = if after_n == 0 {
            vec![]
        } else {
            self.store
                .room_events(room_id.as_str(), event.stream_pos, Some(newest), Direction::Forward, after_n)
                .await?
        };
        let start = before.last().map_or(event.stream_pos, |e| e.stream_pos).saturating_sub(1);
        let end = after.last().map_or(event.stream_pos, |e| e.stream_pos);
        let (mut before, mut after) = (before, after);
        visibility.retain(&mut before);
        visibility.retain(&mut after);
        let entries = self.store.state_at(room_id.as_str(), end).await?;
        let ids: Vec<String> = entries.into_iter().map(|e| e.event_id).collect();
        let state = self.store.events_by_id(&ids).await?;
        Ok(Context {
            event: Self::client_events(std::slice::from_ref(&event), true)?.remove(0),
            events_before: Self::client_events(&before, true)?,
            events_after: Self::client_events(&after, true)?,
            state: Self::client_events(&state, true)?,
            start: token(start),
            end: token(end),
        })
    }

    /// `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`, newest first.
    // One parameter per part of the endpoint's path and query.
    #[allow(clippy::too_many_arguments)]
    pub async fn relations(
        &self,
        authed: &Authed,
        room_id: &str,
        event_id: &str,
        rel_type: Option<&str>,
        kind: Option<&str>,
        from: Option<&str>,
        limit: Option<usize>,
    ) -> Result<RelationsPage> {
        let room_id = parse_room_id(room_id)?;
        let not_found = || Error::NotFound("event not found".into());
        let until = self.readable_until(room_id.as_str(), &authed.user_id).await.map_err(|_| not_found())?;
        match self.store.event(event_id).await? {
            Some(e) if e.room_id == room_id.as_str() && e.stream_pos <= until => {}
            _ => return Err(not_found()),
        }
        let limit =
            limit.unwrap_or(room_limits::MESSAGES_LIMIT_DEFAULT).clamp(1, room_limits::MESSAGES_LIMIT_MAX);
        let from = match from {
            Some(t) => parse_token(t)?.saturating_add(1),
            None => until.min(self.stream_position()).saturating_add(1),
        };
        let events = self.store.relations(event_id, rel_type, kind, from, limit).await?;
        let mut events: Vec<_> = events.into_iter().filter(|e| e.room_id == room_id.as_str()).collect();
        let full_page = events.len() == limit;
        let last = events.last().map(|e| e.stream_pos);
        self.visibility(room_id.as_str(), &authed.user_id).await?.retain(&mut events);
        let next_batch = full_page.then(|| last.map(|p| token(p.saturating_sub(1)))).flatten();
        Ok(RelationsPage { chunk: Self::client_events(&events, true)?, next_batch })
    }

    /// `GET /rooms/{roomId}/timestamp_to_event`: the event closest to `ts_ms` in `direction`.
    pub async fn timestamp_to_event(
        &self,
        authed: &Authed,
        room_id: &str,
        ts_ms: u64,
        forward: bool,
    ) -> Result<(String, u64)> {
        let room_id = parse_room_id(room_id)?;
        let until = self.readable_until(room_id.as_str(), &authed.user_id).await?;
        let direction = if forward { Direction::Forward } else { Direction::Backward };
        let found = self.store.event_near_time(room_id.as_str(), ts_ms, direction).await?;
        let visibility = self.visibility(room_id.as_str(), &authed.user_id).await?;
        match found {
            Some((id, ts))
                if self
                    .store
                    .event(&id)
                    .await?
                    .is_some_and(|e| e.stream_pos <= until && visibility.can_see(e.stream_pos)) =>
            {
                Ok((id, ts))
            }
            _ => Err(Error::NotFound("no event in that direction".into())),
        }
    }

    /// `POST /rooms/{roomId}/forget`: a room one has left no longer shows in sync.
    pub async fn forget(&self, authed: &Authed, room_id: &str) -> Result<()> {
        let room_id = parse_room_id(room_id)?;
        match self.store.membership(room_id.as_str(), &authed.user_id).await? {
            Some(m) if m.membership == "join" => {
                Err(Error::Unknown("leave the room before forgetting it".into()))
            }
            Some(_) => {
                self.store.forget_room(room_id.as_str(), &authed.user_id).await?;
                Ok(())
            }
            None => Err(Error::NotFound("you were never in this room".into())),
        }
    }
}
