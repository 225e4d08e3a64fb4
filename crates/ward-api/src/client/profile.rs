//! User profiles. Lookups need an access token (no anonymous enumeration of users).
//!
//! - `GET /_matrix/client/v3/profile/{userId}` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3profileuserid>
//! - `GET|PUT /_matrix/client/v3/profile/{userId}/displayname` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3profileuseriddisplayname>
//! - `GET|PUT /_matrix/client/v3/profile/{userId}/avatar_url` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3profileuseridavatar_url>

use axum::Router;
use axum::extract::State;
use ruma::api::client::profile::{
    get_avatar_url, get_display_name, get_profile, set_avatar_url, set_display_name,
};

use crate::error::ApiError;
use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<get_profile::v3::Request, _, _>(router, profile);
    let router = endpoint::<get_display_name::v3::Request, _, _>(router, display_name);
    let router = endpoint::<set_display_name::v3::Request, _, _>(router, set_display_name);
    let router = endpoint::<get_avatar_url::v3::Request, _, _>(router, avatar_url);
    endpoint::<set_avatar_url::v3::Request, _, _>(router, set_avatar_url)
}

async fn profile(
    State(state): State<AppState>,
    Auth(_): Auth,
    Ruma(req): Ruma<get_profile::v3::Request>,
) -> Result<RumaResponse<get_profile::v3::Response>, ApiError> {
    let p = state.services.profile(req.user_id.as_str()).await?;
    let fields = [("displayname", p.display_name), ("avatar_url", p.avatar_url)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), serde_json::Value::String(v))));
    Ok(RumaResponse(get_profile::v3::Response::from_iter(fields)))
}

async fn display_name(
    State(state): State<AppState>,
    Auth(_): Auth,
    Ruma(req): Ruma<get_display_name::v3::Request>,
) -> Result<RumaResponse<get_display_name::v3::Response>, ApiError> {
    let p = state.services.profile(req.user_id.as_str()).await?;
    Ok(RumaResponse(get_display_name::v3::Response::new(p.display_name)))
}

async fn set_display_name(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_display_name::v3::Request>,
) -> Result<RumaResponse<set_display_name::v3::Response>, ApiError> {
    state.services.set_display_name(&authed, req.user_id.as_str(), req.displayname.as_deref()).await?;
    Ok(RumaResponse(set_display_name::v3::Response::new()))
}

async fn avatar_url(
    State(state): State<AppState>,
    Auth(_): Auth,
    Ruma(req): Ruma<get_avatar_url::v3::Request>,
) -> Result<RumaResponse<get_avatar_url::v3::Response>, ApiError> {
    let p = state.services.profile(req.user_id.as_str()).await?;
    let mut resp = get_avatar_url::v3::Response::new(None);
    resp.avatar_url = p.avatar_url.map(Into::into);
    Ok(RumaResponse(resp))
}

async fn set_avatar_url(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_avatar_url::v3::Request>,
) -> Result<RumaResponse<set_avatar_url::v3::Response>, ApiError> {
    let url = req.avatar_url.as_ref().map(|u| u.as_str());
    state.services.set_avatar_url(&authed, req.user_id.as_str(), url).await?;
    Ok(RumaResponse(set_avatar_url::v3::Response::new()))
}
