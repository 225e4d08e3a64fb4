//! Registration.
//!
//! - `POST /_matrix/client/v3/register` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3register>
//! - `GET /_matrix/client/v3/register/available` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3registeravailable>
//! - `GET /_matrix/client/v1/register/m.login.registration_token/validity` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1registermloginregistration_tokenvalidity>
//!
//! `POST /register` reads its body itself (see `uia.rs` for why), the others use ruma types.

use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use ruma::api::client::account::{check_registration_token_validity, get_username_availability, register};
use serde::Deserialize;
use ward_service::RegisterInput;

use super::uia::{AuthJson, uia};
use super::user_id;
use crate::error::ApiError;
use crate::extract::{JsonBody, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<register::v3::Request, _, _>(router, register);
    let router = endpoint::<get_username_availability::v3::Request, _, _>(router, available);
    endpoint::<check_registration_token_validity::v1::Request, _, _>(router, token_validity)
}

#[derive(Debug, Deserialize)]
struct RegisterBody {
    username: Option<String>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    inhibit_login: bool,
    #[serde(default)]
    refresh_token: bool,
    auth: Option<AuthJson>,
}

async fn register(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<RumaResponse<register::v3::Response>, ApiError> {
    let guest = match query.as_deref().unwrap_or("").split('&').find_map(|kv| kv.strip_prefix("kind=")) {
        None | Some("user") => false,
        Some("guest") => true,
        Some(other) => {
            return Err(ApiError::invalid_param(format!("unknown registration kind `{other}`")));
        }
    };
    let outcome = state
        .services
        .register(RegisterInput {
            username: body.username,
            password: body.password,
            device_id: body.device_id,
            initial_device_display_name: body.initial_device_display_name,
            inhibit_login: body.inhibit_login,
            refresh_token: body.refresh_token,
            guest,
            auth: uia(body.auth)?,
        })
        .await?;
    let mut resp = register::v3::Response::new(user_id(&outcome.user_id)?);
    if let Some((device_id, tokens)) = outcome.login {
        resp.device_id = Some(device_id.into());
        resp.access_token = Some(tokens.access_token);
        resp.refresh_token = tokens.refresh_token;
        resp.expires_in = tokens.expires_in_ms.map(Duration::from_millis);
    }
    Ok(RumaResponse(resp))
}

async fn available(
    State(state): State<AppState>,
    Ruma(req): Ruma<get_username_availability::v3::Request>,
) -> Result<RumaResponse<get_username_availability::v3::Response>, ApiError> {
    state.services.username_available(&req.username).await?;
    Ok(RumaResponse(get_username_availability::v3::Response::new(true)))
}

async fn token_validity(
    State(state): State<AppState>,
    Ruma(req): Ruma<check_registration_token_validity::v1::Request>,
) -> Result<RumaResponse<check_registration_token_validity::v1::Response>, ApiError> {
    let valid = state.services.registration_token_valid(&req.token).await?;
    Ok(RumaResponse(check_registration_token_validity::v1::Response::new(valid)))
}
