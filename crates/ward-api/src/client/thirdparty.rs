//! Third-party networks (bridges) and third-party identifiers (email, phone). Ward has neither:
//! no bridges, and accounts are never tied to an email address or phone number (staff accounts
//! are made by the operator; minimal personal data). Lists answer empty, lookups `M_NOT_FOUND`,
//! and attempts to add or bind an identifier a clear 4xx.
//!
//! - `GET /_matrix/client/v3/thirdparty/protocols` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3thirdpartyprotocols>
//! - `GET /_matrix/client/v3/thirdparty/protocol/{protocol}`, `/location/{protocol}`, `/user/{protocol}`, `/location`, `/user` — <https://spec.matrix.org/latest/client-server-api/#third-party-networks>
//! - `GET /_matrix/client/v3/account/3pid` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3account3pid>
//! - `POST /_matrix/client/v3/account/3pid/add`, `/bind`, `/delete`, `/unbind`, `/email/requestToken`, `/msisdn/requestToken` — <https://spec.matrix.org/latest/client-server-api/#adding-account-administrative-contact-information>

use std::collections::BTreeMap;

use axum::Router;
use ruma::api::client::account::{
    add_3pid, bind_3pid, delete_3pid, get_3pids, request_3pid_management_token_via_email,
    request_3pid_management_token_via_msisdn, unbind_3pid,
};
use ruma::api::client::thirdparty::{
    get_location_for_protocol, get_location_for_room_alias, get_protocol, get_protocols,
    get_user_for_protocol, get_user_for_user_id,
};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<get_protocols::v3::Request, _, _>(router, protocols);
    let router = endpoint::<get_protocol::v3::Request, _, _>(router, protocol);
    let router = endpoint::<get_location_for_protocol::v3::Request, _, _>(router, location_for_protocol);
    let router = endpoint::<get_location_for_room_alias::v3::Request, _, _>(router, location_for_alias);
    let router = endpoint::<get_user_for_protocol::v3::Request, _, _>(router, user_for_protocol);
    let router = endpoint::<get_user_for_user_id::v3::Request, _, _>(router, user_for_user_id);
    let router = endpoint::<get_3pids::v3::Request, _, _>(router, threepids);
    let router = endpoint::<add_3pid::v3::Request, _, _>(router, add);
    let router = endpoint::<bind_3pid::v3::Request, _, _>(router, bind);
    let router = endpoint::<delete_3pid::v3::Request, _, _>(router, delete);
    let router = endpoint::<unbind_3pid::v3::Request, _, _>(router, unbind);
    let router = endpoint::<request_3pid_management_token_via_email::v3::Request, _, _>(router, email_token);
    endpoint::<request_3pid_management_token_via_msisdn::v3::Request, _, _>(router, msisdn_token)
}

fn no_bridges() -> ApiError {
    ApiError::not_found("this server has no bridges to third-party networks")
}

async fn protocols(
    Auth(_): Auth,
    Ruma(_): Ruma<get_protocols::v3::Request>,
) -> RumaResponse<get_protocols::v3::Response> {
    RumaResponse(get_protocols::v3::Response::new(BTreeMap::new()))
}

async fn protocol(Auth(_): Auth, Ruma(_): Ruma<get_protocol::v3::Request>) -> ApiError {
    no_bridges()
}

async fn location_for_protocol(
    Auth(_): Auth,
    Ruma(_): Ruma<get_location_for_protocol::v3::Request>,
) -> ApiError {
    no_bridges()
}

async fn location_for_alias(
    Auth(_): Auth,
    Ruma(_): Ruma<get_location_for_room_alias::v3::Request>,
) -> ApiError {
    no_bridges()
}

async fn user_for_protocol(Auth(_): Auth, Ruma(_): Ruma<get_user_for_protocol::v3::Request>) -> ApiError {
    no_bridges()
}

async fn user_for_user_id(Auth(_): Auth, Ruma(_): Ruma<get_user_for_user_id::v3::Request>) -> ApiError {
    no_bridges()
}

/// Always `{"threepids": []}`: ruma leaves an empty list out, and some clients expect the key.
async fn threepids(Auth(_): Auth, Ruma(_): Ruma<get_3pids::v3::Request>) -> axum::Json<Value> {
    axum::Json(json!({"threepids": []}))
}

async fn add(Auth(_): Auth, Ruma(_): Ruma<add_3pid::v3::Request>) -> ApiError {
    ApiError::threepid_denied()
}

async fn bind(Auth(_): Auth, Ruma(_): Ruma<bind_3pid::v3::Request>) -> ApiError {
    ApiError::threepid_denied()
}

async fn delete(Auth(_): Auth, Ruma(_): Ruma<delete_3pid::v3::Request>) -> ApiError {
    ApiError::threepid_not_found()
}

async fn unbind(Auth(_): Auth, Ruma(_): Ruma<unbind_3pid::v3::Request>) -> ApiError {
    ApiError::threepid_not_found()
}

async fn email_token(
    Auth(_): Auth,
    Ruma(_): Ruma<request_3pid_management_token_via_email::v3::Request>,
) -> ApiError {
    ApiError::threepid_medium_not_supported()
}

async fn msisdn_token(
    Auth(_): Auth,
    Ruma(_): Ruma<request_3pid_management_token_via_msisdn::v3::Request>,
) -> ApiError {
    ApiError::threepid_medium_not_supported()
}
