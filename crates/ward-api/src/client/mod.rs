//! The client-server API, one module per endpoint group.

mod account;
mod backup;
mod devices;
mod directory;
mod discovery;
mod ephemeral;
mod extras;
mod keys;
mod media;
mod membership;
mod profile;
mod register;
mod reporting;
mod rooms;
mod search;
mod session;
mod sliding_sync;
mod spaces;
mod sync;
mod thirdparty;
mod uia;
mod upgrade;
mod userdata;
mod users;
mod voip;

use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams};
use http::request::Parts;
use ruma::{OwnedUserId, UserId};

use crate::AppState;
use crate::error::ApiError;

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = discovery::routes(router);
    let router = session::routes(router);
    let router = register::routes(router);
    let router = account::routes(router);
    let router = devices::routes(router);
    let router = rooms::routes(router);
    let router = membership::routes(router);
    let router = sync::routes(router);
    let router = sliding_sync::routes(router);
    let router = ephemeral::routes(router);
    let router = directory::routes(router);
    let router = extras::routes(router);
    let router = users::routes(router);
    let router = userdata::routes(router);
    let router = keys::routes(router);
    let router = backup::routes(router);
    let router = voip::routes(router);
    let router = thirdparty::routes(router);
    let router = spaces::routes(router);
    let router = search::routes(router);
    let router = reporting::routes(router);
    let router = upgrade::routes(router);
    let router = media::routes(router);
    profile::routes(router)
}

/// Path parameters in order, percent-decoded, with a Matrix error if they are not UTF-8.
pub(crate) struct PathParams(pub Vec<String>);

impl FromRequestParts<AppState> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid_param(format!("invalid path parameter: {e}")))?;
        Ok(PathParams(raw.iter().map(|(_, v)| v.to_owned()).collect()))
    }
}

/// A client-supplied JSON value behind a ruma `Raw`; bad JSON is the client's error.
pub(crate) fn raw_json<T>(raw: &ruma::serde::Raw<T>) -> Result<serde_json::Value, ApiError> {
    serde_json::from_str(raw.json().get()).map_err(|e| ApiError::from_json(&e))
}

/// A JSON value as a ruma `Raw`, for a response.
pub(crate) fn to_raw<T>(v: &serde_json::Value) -> Result<ruma::serde::Raw<T>, ApiError> {
    serde_json::value::to_raw_value(v).map(ruma::serde::Raw::from_json).map_err(rooms::internal)
}

/// A user ID the service layer produced; always valid, but checked rather than trusted.
pub(crate) fn user_id(s: &str) -> Result<OwnedUserId, ApiError> {
    UserId::parse(s)
        .map_err(|e| ApiError::Service(ward_service::Error::Internal(format!("bad stored user ID: {e}"))))
}
