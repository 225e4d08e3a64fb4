//! Password change and deactivation, both behind user-interactive auth.
//!
//! - `POST /_matrix/client/v3/account/password` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3accountpassword>
//! - `POST /_matrix/client/v3/account/deactivate` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3accountdeactivate>

use axum::Router;
use axum::extract::State;
use ruma::api::client::account::{ThirdPartyIdRemovalStatus, change_password, deactivate};
use serde::Deserialize;

use super::uia::{AuthJson, uia};
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<change_password::v3::Request, _, _>(router, change_password);
    endpoint::<deactivate::v3::Request, _, _>(router, deactivate)
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct PasswordBody {
    new_password: String,
    #[serde(default = "yes")]
    logout_devices: bool,
    auth: Option<AuthJson>,
}

async fn change_password(
    State(state): State<AppState>,
    Auth(authed): Auth,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<RumaResponse<change_password::v3::Response>, ApiError> {
    state.services.change_password(&authed, &body.new_password, body.logout_devices, uia(body.auth)?).await?;
    Ok(RumaResponse(change_password::v3::Response::new()))
}

#[derive(Debug, Deserialize)]
struct DeactivateBody {
    auth: Option<AuthJson>,
    /// Ward has no identity-server bindings; accepted and ignored.
    #[serde(default, rename = "id_server")]
    _id_server: Option<String>,
    /// Deactivation always erases the profile; accepted for compatibility.
    #[serde(default, rename = "erase")]
    _erase: bool,
}

async fn deactivate(
    State(state): State<AppState>,
    Auth(authed): Auth,
    JsonBody(body): JsonBody<DeactivateBody>,
) -> Result<RumaResponse<deactivate::v3::Response>, ApiError> {
    state.services.deactivate(&authed, uia(body.auth)?).await?;
    Ok(RumaResponse(deactivate::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport)))
}
