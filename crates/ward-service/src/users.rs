//! Finding people: the user directory and (disabled) presence.
//!
//! Healthcare rule: no global user enumeration. A search only finds users who share a room
//! with the searcher or are in a room of the public directory.

use std::collections::BTreeSet;

use crate::{Authed, Error, Result, Services};

/// Results one search may return.
pub const USER_SEARCH_LIMIT_MAX: usize = 50;
const USER_SEARCH_LIMIT_DEFAULT: usize = 10;
/// Candidate users one search looks at.
const USER_SEARCH_CANDIDATES_MAX: usize = 10_000;
/// Directory rooms whose members are searchable.
const USER_SEARCH_PUBLIC_ROOMS_MAX: usize = 1000;

/// Longest presence status message.
pub const STATUS_MSG_MAX_CHARS: usize = 256;
/// A user counts as "currently active" this long after their last activity.
const CURRENTLY_ACTIVE_MS: u64 = 5 * 60_000;

/// A user's presence as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceView {
    pub presence: String,
    pub status_msg: Option<String>,
    pub last_active_ago_ms: Option<u64>,
    pub currently_active: Option<bool>,
}

impl PresenceView {
    fn offline() -> Self {
        Self {
            presence: "offline".into(),
            status_msg: None,
            last_active_ago_ms: None,
            currently_active: None,
        }
    }
}

impl From<crate::rooms::Presence> for PresenceView {
    fn from(p: crate::rooms::Presence) -> Self {
        let ago = crate::now_ms().saturating_sub(p.last_active_ms);
        Self {
            currently_active: Some(p.state == "online" && ago < CURRENTLY_ACTIVE_MS),
            presence: p.state,
            status_msg: p.status_msg,
            last_active_ago_ms: Some(ago),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FoundUser {
    pub user_id: String,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

impl Services {
    /// `POST /user_directory/search`.
    pub async fn search_users(
        &self,
        authed: &Authed,
        term: &str,
        limit: Option<usize>,
    ) -> Result<(Vec<FoundUser>, bool)> {
        let limit = limit.unwrap_or(USER_SEARCH_LIMIT_DEFAULT).clamp(1, USER_SEARCH_LIMIT_MAX);
        let term = term.trim().to_lowercase();
        let mut rooms: Vec<String> = self
            .store
            .memberships_of_user(&authed.user_id)
            .await?
            .into_iter()
            .filter(|m| m.membership == "join")
            .map(|m| m.room_id)
            .collect();
        rooms.extend(self.store.published_rooms(0, USER_SEARCH_PUBLIC_ROOMS_MAX).await?);
        let mut candidates = BTreeSet::new();
        'rooms: for room in rooms {
            for m in self.store.room_members(&room).await? {
                if m.membership == "join" || m.membership == "invite" {
                    candidates.insert(m.user_id);
                    if candidates.len() >= USER_SEARCH_CANDIDATES_MAX {
                        break 'rooms;
                    }
                }
            }
        }
        let mut found = Vec::new();
        let mut limited = false;
        for user_id in candidates {
            let Some(account) = self.store.account(&user_id).await? else { continue };
            if account.deactivated {
                continue;
            }
            let matches = user_id.to_lowercase().contains(&term)
                || account.display_name.as_deref().is_some_and(|n| n.to_lowercase().contains(&term));
            if !matches {
                continue;
            }
            if found.len() == limit {
                limited = true;
                break;
            }
            found.push(FoundUser {
                user_id,
                display_name: account.display_name,
                avatar_url: account.avatar_url,
            });
        }
        Ok((found, limited))
    }

    /// `GET /presence/{userId}/status`. With presence off (the default) every existing user is
    /// reported offline.
    pub async fn presence(&self, user_id: &str) -> Result<PresenceView> {
        match self.store.account(user_id).await? {
            Some(a) if !a.deactivated => {}
            _ => return Err(Error::NotFound("no such user".into())),
        }
        if !self.settings.presence_enabled {
            return Ok(PresenceView::offline());
        }
        Ok(self.notifier.presence_of(user_id).map(PresenceView::from).unwrap_or_else(PresenceView::offline))
    }

    /// `PUT /presence/{userId}/status`. Accepted and dropped while presence is off.
    pub fn set_presence(
        &self,
        authed: &Authed,
        user_id: &str,
        presence: &str,
        status_msg: Option<&str>,
    ) -> Result<()> {
        if authed.user_id != user_id {
            return Err(Error::Forbidden("you can only set your own presence".into()));
        }
        if !["online", "offline", "unavailable"].contains(&presence) {
            return Err(Error::InvalidParam("presence must be online, offline or unavailable".into()));
        }
        if status_msg.is_some_and(|m| m.chars().count() > STATUS_MSG_MAX_CHARS) {
            return Err(Error::InvalidParam(format!(
                "status messages have at most {STATUS_MSG_MAX_CHARS} characters"
            )));
        }
        if self.settings.presence_enabled {
            self.notifier.set_presence(user_id, presence, Some(status_msg), presence == "online");
        }
        Ok(())
    }
}
