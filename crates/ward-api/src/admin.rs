//! Ward's own admin API, for server administrators (accounts with the admin flag), used by the
//! browser app. Paths under `/_ward/admin/v1`; errors are Matrix errors.
//!
//! - `GET /_ward/admin/v1/registration_tokens` — all invite (registration) tokens
//! - `POST /_ward/admin/v1/registration_tokens` — a new one: `{"uses_allowed"?, "expiry_time"?, "token"?}`
//! - `DELETE /_ward/admin/v1/registration_tokens/{token}` — revoke one
//!
//! The shapes follow Synapse's admin API for registration tokens, so tools written for it work.

use axum::extract::State;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use ward_service::{NewRegistrationToken, RegistrationToken};

use crate::AppState;
use crate::client::PathParams;
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody};

pub(crate) fn routes(router: axum::Router<AppState>) -> Router<AppState> {
    router
        .route("/_ward/admin/v1/registration_tokens", get(list).post(create))
        .route("/_ward/admin/v1/registration_tokens/{token}", delete(revoke))
}

fn token_json(t: &RegistrationToken) -> Value {
    json!({
        "token": t.token,
        "uses_allowed": t.uses_allowed,
        "pending": 0,
        "completed": t.completed,
        "expiry_time": t.expires_ms,
    })
}

async fn list(State(state): State<AppState>, Auth(authed): Auth) -> Result<Json<Value>, ApiError> {
    state.services.require_admin(&authed).await?;
    let tokens = state.services.admin_registration_tokens().await?;
    Ok(Json(json!({ "registration_tokens": tokens.iter().map(token_json).collect::<Vec<_>>() })))
}

#[derive(Debug, Default, Deserialize)]
struct NewToken {
    token: Option<String>,
    uses_allowed: Option<u32>,
    expiry_time: Option<u64>,
}

async fn create(
    State(state): State<AppState>,
    Auth(authed): Auth,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Json<Value>, ApiError> {
    state.services.require_admin(&authed).await?;
    let new = NewRegistrationToken {
        token: body.token,
        uses_allowed: body.uses_allowed,
        expires_ms: body.expiry_time,
    };
    let token = state.services.admin_create_registration_token(new).await?;
    Ok(Json(token_json(&token)))
}

async fn revoke(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(params): PathParams,
) -> Result<Json<Value>, ApiError> {
    state.services.require_admin(&authed).await?;
    let token = params.first().map(String::as_str).unwrap_or_default();
    state.services.admin_revoke_registration_token(token).await?;
    Ok(Json(json!({})))
}
