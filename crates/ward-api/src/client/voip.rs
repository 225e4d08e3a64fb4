//! TURN credentials for voice and video calls.
//!
//! - `GET /_matrix/client/v3/voip/turnServer` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3voipturnserver>

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use ruma::api::client::voip::get_turn_server_info;

use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    endpoint::<get_turn_server_info::v3::Request, _, _>(router, turn_server)
}

/// Without a configured TURN server the answer is `{}`, as in Synapse: clients then call
/// without relaying (or fall back to their own STUN server).
async fn turn_server(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(_): Ruma<get_turn_server_info::v3::Request>,
) -> Response {
    match state.services.turn_credentials(&authed) {
        Some(c) => RumaResponse(get_turn_server_info::v3::Response::new(
            c.username,
            c.password,
            c.uris,
            Duration::from_secs(c.ttl_s),
        ))
        .into_response(),
        None => axum::Json(serde_json::json!({})).into_response(),
    }
}
