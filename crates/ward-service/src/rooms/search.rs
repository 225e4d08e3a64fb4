//! `POST /search`: full-text search over the room events a user may see.
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#server-side-search>. What is
//! searchable is decided when an event is stored ([`searchable_text`]): the body of an
//! `m.room.message`, the name of `m.room.name`, the topic of `m.room.topic`. The store indexes it
//! in the same transaction that appends the event, unless the room is encrypted; switching
//! encryption on drops the room's index, so encrypted rooms are never searched and ciphertext is
//! never treated as text. A search covers the rooms the user is in, and those they left up to
//! their departure; each hit is then checked against history visibility, like every read path.
//! Pages are cut before that check, so hidden events shorten a page but never end the paging.

use std::collections::{BTreeMap, HashMap};

use ruma::events::TimelineEventType;
use serde_json::Value;
use ward_rooms::Pdu;
use ward_store::{Direction, SearchOrder, SearchQuery};

use super::visibility::Visibility;
use super::{ClientEvent, token};
use crate::{Authed, Error, Result, Services};

/// Limits on one search.
pub mod search_limits {
    /// Results per page unless the filter asks for fewer.
    pub const RESULTS_DEFAULT: usize = 10;
    pub const RESULTS_MAX: usize = 100;
    pub const SEARCH_TERM_MAX_BYTES: usize = 1000;
    /// Words of the search term that are used; further words are refused.
    pub const SEARCH_WORDS_MAX: usize = 32;
    /// Events before and after each result with `event_context`.
    pub const CONTEXT_EVENTS_MAX: usize = 20;
    pub const CONTEXT_EVENTS_DEFAULT: usize = 5;
}

/// The text of an event that search covers, or `None`.
pub(crate) fn searchable_text(pdu: &Pdu, content: &Value) -> Option<String> {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned);
    let state = pdu.state_key.as_deref() == Some("");
    match &pdu.kind {
        TimelineEventType::RoomMessage if pdu.state_key.is_none() => s(content.get("body")),
        TimelineEventType::RoomName if state => s(content.get("name")),
        TimelineEventType::RoomTopic if state => s(content.get("topic")).or_else(|| {
            // The `m.topic` text/plain representation (spec v1.15), when there is no `topic`.
            content.get("m.topic")?.get("m.text")?.as_array()?.iter().find_map(|r| {
                let plain = r.get("mimetype").and_then(Value::as_str).is_none_or(|m| m == "text/plain");
                if plain { s(r.get("body")) } else { None }
            })
        }),
        _ => None,
    }
}

/// The search keys of the spec and the event types they live in.
const KEYS: [(&str, &str); 3] =
    [("content.body", "m.room.message"), ("content.name", "m.room.name"), ("content.topic", "m.room.topic")];

/// The parts of a `RoomEventFilter` that search applies.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub rooms: Option<Vec<String>>,
    pub not_rooms: Vec<String>,
    pub senders: Option<Vec<String>>,
    pub not_senders: Vec<String>,
    pub types: Option<Vec<String>>,
    pub not_types: Vec<String>,
    pub limit: Option<usize>,
}

/// What a client asks `/search` for (the `room_events` category).
#[derive(Debug, Clone, Default)]
pub struct SearchInput {
    pub search_term: String,
    /// `None`: all keys.
    pub keys: Option<Vec<String>>,
    pub filter: SearchFilter,
    /// `true` for `order_by: recent`, else by rank.
    pub order_recent: bool,
    /// `(before_limit, after_limit, include_profile)` when `event_context` is given.
    pub event_context: Option<(usize, usize, bool)>,
    pub include_state: bool,
    pub next_batch: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SearchContext {
    pub events_before: Vec<ClientEvent>,
    pub events_after: Vec<ClientEvent>,
    pub start: String,
    pub end: String,
    /// User ID → (display name, avatar URL), from their member events in the room.
    pub profile_info: BTreeMap<String, (Option<String>, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct SearchResult {
    pub rank: f64,
    pub event: ClientEvent,
    pub context: Option<SearchContext>,
}

#[derive(Debug, Clone, Default)]
pub struct SearchOutput {
    pub results: Vec<SearchResult>,
    pub count: u64,
    pub highlights: Vec<String>,
    pub next_batch: Option<String>,
    /// With `include_state`: the current state of each room with results.
    pub state: BTreeMap<String, Vec<ClientEvent>>,
}

/// The words of a search term: runs of letters and digits.
fn words(term: &str) -> Vec<String> {
    term.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Paging tokens: `r<skip>` for rank order, `t<position>` for recent order.
fn parse_batch(t: &str, recent: bool) -> Result<SearchOrder> {
    let bad = || Error::InvalidParam(format!("`{t}` is not a search token of this server"));
    match (t.split_at_checked(1), recent) {
        (Some(("r", n)), false) => Ok(SearchOrder::Rank { skip: n.parse().map_err(|_| bad())? }),
        (Some(("t", n)), true) => Ok(SearchOrder::Recent { before: Some(n.parse().map_err(|_| bad())?) }),
        _ => Err(bad()),
    }
}

impl Services {
    pub async fn search(&self, authed: &Authed, input: SearchInput) -> Result<SearchOutput> {
        use search_limits as L;
        if input.search_term.len() > L::SEARCH_TERM_MAX_BYTES {
            return Err(Error::InvalidParam(format!(
                "search terms have at most {} bytes",
                L::SEARCH_TERM_MAX_BYTES
            )));
        }
        let terms = words(&input.search_term);
        if terms.len() > L::SEARCH_WORDS_MAX {
            return Err(Error::InvalidParam(format!(
                "search terms have at most {} words",
                L::SEARCH_WORDS_MAX
            )));
        }
        let mut kinds = Vec::new();
        for key in input.keys.as_deref().unwrap_or(&[
            "content.body".into(),
            "content.name".into(),
            "content.topic".into(),
        ]) {
            let Some((_, kind)) = KEYS.iter().find(|(k, _)| k == key) else {
                return Err(Error::InvalidParam(format!(
                    "`{key}` is not a search key (content.body, content.name, content.topic)"
                )));
            };
            kinds.push((*kind).to_owned());
        }
        let f = &input.filter;
        let type_ok = |kind: &String| {
            let matches = |p: &String| match p.strip_suffix('*') {
                Some(prefix) => kind.starts_with(prefix),
                None => p == kind,
            };
            f.types.as_ref().is_none_or(|t| t.iter().any(matches)) && !f.not_types.iter().any(matches)
        };
        kinds.retain(type_ok);
        let order = match &input.next_batch {
            Some(t) => parse_batch(t, input.order_recent)?,
            None if input.order_recent => SearchOrder::Recent { before: None },
            None => SearchOrder::Rank { skip: 0 },
        };
        let limit = f.limit.unwrap_or(L::RESULTS_DEFAULT).clamp(1, L::RESULTS_MAX);

        // Rooms the user is in, and those they left, up to the departure.
        let mut rooms = Vec::new();
        for m in self.store.memberships_of_user(&authed.user_id).await? {
            let until = match m.membership.as_str() {
                "join" => u64::MAX,
                "leave" | "ban" if !m.forgotten => m.stream_pos,
                _ => continue,
            };
            let wanted =
                f.rooms.as_ref().is_none_or(|r| r.contains(&m.room_id)) && !f.not_rooms.contains(&m.room_id);
            if wanted {
                rooms.push((m.room_id, until));
            }
        }
        if terms.is_empty() || kinds.is_empty() || rooms.is_empty() {
            return Ok(SearchOutput::default());
        }
        let query = SearchQuery {
            terms: terms.clone(),
            rooms: rooms.clone(),
            kinds,
            senders: f.senders.clone(),
            not_senders: f.not_senders.clone(),
            order,
            limit,
        };
        let (hits, count) = self.store.search_events(query).await?;
        let next_batch = match order {
            SearchOrder::Rank { skip } if skip + (hits.len() as u64) < count => {
                Some(format!("r{}", skip + hits.len() as u64))
            }
            SearchOrder::Recent { .. } if hits.len() == limit => {
                hits.last().map(|h| format!("t{}", h.event.stream_pos))
            }
            _ => None,
        };
        let bounds: HashMap<String, u64> = rooms.into_iter().collect();
        let mut visibility: HashMap<String, Visibility> = HashMap::new();
        let mut results = Vec::with_capacity(hits.len());
        for hit in hits {
            let room = hit.event.room_id.clone();
            if !visibility.contains_key(&room) {
                visibility.insert(room.clone(), self.visibility(&room, &authed.user_id).await?);
            }
            let vis = &visibility[&room];
            if !vis.can_see(hit.event.stream_pos) {
                continue;
            }
            let context = match input.event_context {
                Some((before, after, profiles)) => {
                    let until = bounds.get(&room).copied().unwrap_or(0);
                    Some(self.search_context(&hit.event, vis, until, before, after, profiles).await?)
                }
                None => None,
            };
            let event = Self::client_events(std::slice::from_ref(&hit.event), true)?.remove(0);
            results.push(SearchResult { rank: hit.rank, event, context });
        }
        let mut state = BTreeMap::new();
        if input.include_state {
            for r in &results {
                let Some(room) = r.event.get("room_id").and_then(Value::as_str) else { continue };
                if !state.contains_key(room) {
                    let until = bounds.get(room).copied().unwrap_or(0);
                    let entries = if until == u64::MAX {
                        self.store.current_state(room).await?
                    } else {
                        self.store.state_at(room, until).await?
                    };
                    let ids: Vec<String> = entries.into_iter().map(|e| e.event_id).collect();
                    let events = self.store.events_by_id(&ids).await?;
                    state.insert(room.to_owned(), Self::client_events(&events, true)?);
                }
            }
        }
        Ok(SearchOutput { results, count, highlights: terms, next_batch, state })
    }

    async fn search_context(
        &self,
        event: &ward_store::StoredEvent,
        visibility: &Visibility,
        until: u64,
        before: usize,
        after: usize,
        profiles: bool,
    ) -> Result<SearchContext> {
        use search_limits::CONTEXT_EVENTS_MAX;
        let room = event.room_id.as_str();
        let (before, after) = (before.min(CONTEXT_EVENTS_MAX), after.min(CONTEXT_EVENTS_MAX));
        let mut events_before = if before == 0 {
            vec![]
        } else {
            self.store.room_events(room, event.stream_pos, None, Direction::Backward, before).await?
        };
        let newest = self.stream_position().min(until);
        let mut events_after = if after == 0 {
            vec![]
        } else {
            self.store.room_events(room, event.stream_pos, Some(newest), Direction::Forward, after).await?
        };
        let start = events_before.last().map_or(event.stream_pos, |e| e.stream_pos).saturating_sub(1);
        let end = events_after.last().map_or(event.stream_pos, |e| e.stream_pos);
        visibility.retain(&mut events_before);
        visibility.retain(&mut events_after);
        let mut profile_info = BTreeMap::new();
        if profiles {
            let senders =
                std::iter::once(event).chain(&events_before).chain(&events_after).map(|e| &e.sender);
            for sender in senders {
                if profile_info.contains_key(sender) {
                    continue;
                }
                let member = self.store.current_state_event(room, "m.room.member", sender).await?;
                let content = member
                    .and_then(|m| serde_json::from_str::<Value>(&m.json).ok())
                    .and_then(|j| j.get("content").cloned())
                    .unwrap_or_default();
                let s = |k: &str| content.get(k).and_then(Value::as_str).map(str::to_owned);
                profile_info.insert(sender.clone(), (s("displayname"), s("avatar_url")));
            }
        }
        Ok(SearchContext {
            events_before: Self::client_events(&events_before, true)?,
            events_after: Self::client_events(&events_after, true)?,
            start: token(start),
            end: token(end),
            profile_info,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_are_letters_and_digits() {
        assert_eq!(super::words("Befund: Frau Müller, 3. OG!"), ["befund", "frau", "müller", "3", "og"]);
        assert!(super::words(" \"*() ").is_empty());
    }

    #[test]
    fn batch_tokens_belong_to_their_order() {
        assert!(super::parse_batch("r10", false).is_ok());
        assert!(super::parse_batch("t10", true).is_ok());
        assert!(super::parse_batch("t10", false).is_err());
        assert!(super::parse_batch("r", false).is_err());
        assert!(super::parse_batch("", false).is_err());
        assert!(super::parse_batch("ü", false).is_err());
    }
}
