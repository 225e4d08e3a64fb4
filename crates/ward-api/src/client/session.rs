//! Logging in and out.
//!
//! - `GET|POST /_matrix/client/v3/login` — <https://spec.matrix.org/latest/client-server-api/#login>
//! - `POST /_matrix/client/v3/refresh` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3refresh>
//! - `POST /_matrix/client/v3/logout`, `/logout/all` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3logout>
//! - `GET /_matrix/client/v3/account/whoami` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3accountwhoami>

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use http::StatusCode;
use ruma::api::client::account::whoami;
use ruma::api::client::session::{get_login_types, login, logout, logout_all, refresh_token};
use ruma::api::error::ErrorKind;
use serde::Deserialize;
use ward_service::LoginInput;

use super::uia::{Identifier, missing};
use super::user_id;
use crate::error::ApiError;
use crate::extract::{Auth, ClientAddr, JsonBody, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<get_login_types::v3::Request, _, _>(router, login_types);
    let router = endpoint::<login::v3::Request, _, _>(router, login);
    let router = endpoint::<refresh_token::v3::Request, _, _>(router, refresh);
    let router = endpoint::<logout::v3::Request, _, _>(router, logout);
    let router = endpoint::<logout_all::v3::Request, _, _>(router, logout_all);
    endpoint::<whoami::v3::Request, _, _>(router, whoami)
}

async fn login_types(
    Ruma(_): Ruma<get_login_types::v3::Request>,
) -> RumaResponse<get_login_types::v3::Response> {
    RumaResponse(get_login_types::v3::Response::new(vec![get_login_types::v3::LoginType::Password(
        Default::default(),
    )]))
}

/// The `POST /login` body. Read with our own type because ruma's `LoginInfo` panics on a body
/// without `type` (ruma-client-api 0.25.2, `session/login.rs`), and bytes from the network
/// must never panic.
#[derive(Debug, Deserialize)]
struct LoginBody {
    #[serde(rename = "type")]
    kind: String,
    identifier: Option<Identifier>,
    /// Legacy (pre-r0.4) way to name the user.
    user: Option<String>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    refresh_token: bool,
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<RumaResponse<login::v3::Response>, ApiError> {
    if body.kind != "m.login.password" {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::Unknown,
            format!("login type `{}` is not supported; use m.login.password", body.kind),
        ));
    }
    let user = match (body.identifier, body.user) {
        (Some(Identifier { kind, user: Some(user) }), _) if kind == "m.id.user" => user,
        (Some(Identifier { kind, .. }), _) if kind != "m.id.user" => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::Unknown,
                format!("identifier type `{kind}` is not supported; use m.id.user"),
            ));
        }
        (None, Some(user)) => user,
        _ => return Err(missing("identifier.user")),
    };
    let password = body.password.ok_or_else(|| missing("password"))?;
    let outcome = state
        .services
        .login(
            LoginInput {
                user,
                password,
                device_id: body.device_id,
                initial_device_display_name: body.initial_device_display_name,
                refresh_token: body.refresh_token,
            },
            &addr,
        )
        .await?;
    let mut resp = login::v3::Response::new(
        user_id(&outcome.user_id)?,
        outcome.tokens.access_token,
        outcome.device_id.into(),
    );
    resp.refresh_token = outcome.tokens.refresh_token;
    resp.expires_in = outcome.tokens.expires_in_ms.map(Duration::from_millis);
    resp.well_known =
        Some(login::v3::DiscoveryInfo::new(login::v3::HomeserverInfo::new(state.api.base_url.clone())));
    Ok(RumaResponse(resp))
}

async fn refresh(
    State(state): State<AppState>,
    Ruma(req): Ruma<refresh_token::v3::Request>,
) -> Result<RumaResponse<refresh_token::v3::Response>, ApiError> {
    let tokens = state.services.refresh(&req.refresh_token).await?;
    let mut resp = refresh_token::v3::Response::new(tokens.access_token);
    resp.refresh_token = tokens.refresh_token;
    resp.expires_in_ms = tokens.expires_in_ms.map(Duration::from_millis);
    Ok(RumaResponse(resp))
}

async fn logout(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(_): Ruma<logout::v3::Request>,
) -> Result<RumaResponse<logout::v3::Response>, ApiError> {
    state.services.logout(&authed).await?;
    Ok(RumaResponse(logout::v3::Response::new()))
}

async fn logout_all(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(_): Ruma<logout_all::v3::Request>,
) -> Result<RumaResponse<logout_all::v3::Response>, ApiError> {
    state.services.logout_all(&authed).await?;
    Ok(RumaResponse(logout_all::v3::Response::new()))
}

async fn whoami(
    Auth(authed): Auth,
    Ruma(_): Ruma<whoami::v3::Request>,
) -> Result<RumaResponse<whoami::v3::Response>, ApiError> {
    let mut resp = whoami::v3::Response::new(user_id(&authed.user_id)?, false);
    resp.device_id = Some(authed.device_id.into());
    Ok(RumaResponse(resp))
}
