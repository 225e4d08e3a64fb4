//! The user directory and presence.
//!
//! - `POST /_matrix/client/v3/user_directory/search` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3user_directorysearch>
//! - `GET|PUT /_matrix/client/v3/presence/{userId}/status` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3presenceuseridstatus>
//!
//! Presence is off unless the operator enables it (`presence_enabled`); while it is off,
//! everyone is "offline" and updates are accepted but not kept.

use axum::Router;
use axum::extract::State;
use ruma::OwnedUserId;
use ruma::api::client::presence::{get_presence, set_presence};
use ruma::api::client::user_directory::search_users;
use ruma::presence::PresenceState;

use super::rooms::internal;
use crate::error::ApiError;
use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<search_users::v3::Request, _, _>(router, search);
    let router = endpoint::<get_presence::v3::Request, _, _>(router, presence);
    endpoint::<set_presence::v3::Request, _, _>(router, put_presence)
}

async fn search(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<search_users::v3::Request>,
) -> Result<RumaResponse<search_users::v3::Response>, ApiError> {
    let limit = usize::try_from(u64::from(req.limit)).unwrap_or(usize::MAX);
    let (found, limited) = state.services.search_users(&authed, &req.search_term, Some(limit)).await?;
    let mut results = Vec::with_capacity(found.len());
    for f in found {
        let mut u = search_users::v3::User::new(OwnedUserId::try_from(f.user_id).map_err(internal)?);
        u.display_name = f.display_name;
        u.avatar_url = f.avatar_url.map(Into::into);
        results.push(u);
    }
    Ok(RumaResponse(search_users::v3::Response::new(results, limited)))
}

async fn presence(
    State(state): State<AppState>,
    Auth(_): Auth,
    Ruma(req): Ruma<get_presence::v3::Request>,
) -> Result<RumaResponse<get_presence::v3::Response>, ApiError> {
    let view = state.services.presence(req.user_id.as_str()).await?;
    let mut resp = get_presence::v3::Response::new(PresenceState::from(view.presence.as_str()));
    resp.status_msg = view.status_msg;
    resp.currently_active = view.currently_active;
    resp.last_active_ago = view.last_active_ago_ms.map(std::time::Duration::from_millis);
    Ok(RumaResponse(resp))
}

async fn put_presence(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_presence::v3::Request>,
) -> Result<RumaResponse<set_presence::v3::Response>, ApiError> {
    state.services.set_presence(
        &authed,
        req.user_id.as_str(),
        req.presence.as_str(),
        req.status_msg.as_deref(),
    )?;
    Ok(RumaResponse(set_presence::v3::Response::new()))
}
