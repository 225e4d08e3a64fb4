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
use ruma::api::client::uiaa::UserIdentifier;
use ruma::api::error::ErrorKind;
use ward_service::LoginInput;

use super::user_id;
use crate::error::ApiError;
use crate::extract::{Auth, ClientAddr, Ruma, RumaResponse};
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
    RumaResponse(get_login_types::v3::Response::new(vec![
        get_login_types::v3::LoginType::Password(Default::default()),
    ]))
}

#[allow(deprecated)] // the legacy top-level `user` field is still sent by older clients
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Ruma(req): Ruma<login::v3::Request>,
) -> Result<RumaResponse<login::v3::Response>, ApiError> {
    let login::v3::LoginInfo::Password(password) = req.login_info else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::Unknown,
            "only m.login.password is supported",
        ));
    };
    let user = match (password.identifier, password.user) {
        (Some(UserIdentifier::Matrix(id)), _) => id.user,
        (None, Some(user)) => user,
        (Some(_), _) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::Unknown,
                "only m.id.user identifiers are supported",
            ));
        }
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorKind::MissingParam,
                "missing identifier",
            ));
        }
    };
    let outcome = state
        .services
        .login(
            LoginInput {
                user,
                password: password.password,
                device_id: req.device_id.map(|d| d.to_string()),
                initial_device_display_name: req.initial_device_display_name,
                refresh_token: req.refresh_token,
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
    resp.well_known = Some(login::v3::DiscoveryInfo::new(
        login::v3::HomeserverInfo::new(state.api.base_url.clone()),
    ));
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
