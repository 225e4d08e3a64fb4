//! End-to-end encryption keys and to-device messages.
//!
//! - `POST /_matrix/client/v3/keys/upload` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3keysupload>
//! - `POST /_matrix/client/v3/keys/query` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3keysquery>
//! - `POST /_matrix/client/v3/keys/claim` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3keysclaim>
//! - `GET /_matrix/client/v3/keys/changes` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3keyschanges>
//! - `POST /_matrix/client/v3/keys/device_signing/upload` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3keysdevice_signingupload>
//! - `POST /_matrix/client/v3/keys/signatures/upload` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3keyssignaturesupload>
//! - `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3sendtodeviceeventtypetxnid>

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Json, Router};
use ruma::api::client::keys::{
    claim_keys, get_key_changes, get_keys, upload_keys, upload_signatures, upload_signing_keys,
};
use ruma::api::client::to_device::send_event_to_device;
use serde::Deserialize;
use serde_json::{Value, json};
use ward_service::e2ee::{KeysUploadInput, SigningKeysInput};

use super::uia::{AuthJson, uia};
use super::{raw_json, to_raw};
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<upload_keys::v3::Request, _, _>(router, upload);
    let router = endpoint::<get_keys::v3::Request, _, _>(router, query);
    let router = endpoint::<claim_keys::v3::Request, _, _>(router, claim);
    let router = endpoint::<get_key_changes::v3::Request, _, _>(router, changes);
    let router = endpoint::<upload_signing_keys::v3::Request, _, _>(router, signing_upload);
    let router = endpoint::<upload_signatures::v3::Request, _, _>(router, signatures_upload);
    endpoint::<send_event_to_device::v3::Request, _, _>(router, send_to_device)
}

async fn upload(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<upload_keys::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let input = KeysUploadInput {
        device_keys: req.device_keys.as_ref().map(raw_json).transpose()?,
        one_time_keys: req
            .one_time_keys
            .iter()
            .map(|(id, k)| Ok((id.to_string(), raw_json(k)?)))
            .collect::<Result<_, ApiError>>()?,
        fallback_keys: req
            .fallback_keys
            .iter()
            .map(|(id, k)| Ok((id.to_string(), raw_json(k)?)))
            .collect::<Result<_, ApiError>>()?,
    };
    let counts = state.services.upload_keys(&authed, input).await?;
    Ok(Json(json!({ "one_time_key_counts": counts })))
}

async fn query(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_keys::v3::Request>,
) -> Result<RumaResponse<get_keys::v3::Response>, ApiError> {
    let users = req
        .device_keys
        .into_iter()
        .map(|(u, d)| (u.to_string(), d.into_iter().map(|d| d.to_string()).collect()))
        .collect();
    let out = state.services.query_keys(&authed, users).await?;
    let mut resp = get_keys::v3::Response::new();
    resp.failures = out.failures.into_iter().collect();
    for (user, devices) in out.device_keys {
        let user = super::user_id(&user)?;
        let mut map = BTreeMap::new();
        for (device, keys) in devices {
            map.insert(device.into(), to_raw(&keys)?);
        }
        resp.device_keys.insert(user, map);
    }
    for (target, keys) in [
        (&mut resp.master_keys, out.master_keys),
        (&mut resp.self_signing_keys, out.self_signing_keys),
        (&mut resp.user_signing_keys, out.user_signing_keys),
    ] {
        for (user, key) in keys {
            target.insert(super::user_id(&user)?, to_raw(&key)?);
        }
    }
    Ok(RumaResponse(resp))
}

async fn claim(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<claim_keys::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let wanted = req
        .one_time_keys
        .into_iter()
        .map(|(u, d)| (u.to_string(), d.into_iter().map(|(d, a)| (d.to_string(), a.to_string())).collect()))
        .collect();
    let (keys, failures) = state.services.claim_keys(&authed, wanted).await?;
    Ok(Json(json!({ "one_time_keys": keys, "failures": failures })))
}

async fn changes(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_key_changes::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let out = state.services.key_changes(&authed, &req.from, &req.to).await?;
    Ok(Json(json!({ "changed": out.changed, "left": out.left })))
}

#[derive(Debug, Deserialize)]
struct SigningKeysBody {
    auth: Option<AuthJson>,
    master_key: Option<Value>,
    self_signing_key: Option<Value>,
    user_signing_key: Option<Value>,
}

async fn signing_upload(
    State(state): State<AppState>,
    Auth(authed): Auth,
    JsonBody(body): JsonBody<SigningKeysBody>,
) -> Result<Json<Value>, ApiError> {
    for (name, key) in [
        ("master_key", &body.master_key),
        ("self_signing_key", &body.self_signing_key),
        ("user_signing_key", &body.user_signing_key),
    ] {
        if key.as_ref().is_some_and(|k| !k.is_object()) {
            return Err(ApiError::Service(ward_service::Error::BadJson(format!("{name} must be an object"))));
        }
    }
    let input = SigningKeysInput {
        master_key: body.master_key,
        self_signing_key: body.self_signing_key,
        user_signing_key: body.user_signing_key,
    };
    state.services.upload_signing_keys(&authed, input, uia(body.auth)?).await?;
    Ok(Json(json!({})))
}

async fn signatures_upload(
    State(state): State<AppState>,
    Auth(authed): Auth,
    JsonBody(body): JsonBody<BTreeMap<String, BTreeMap<String, Value>>>,
) -> Result<Json<Value>, ApiError> {
    let failures = state.services.upload_signatures(&authed, body).await?;
    Ok(Json(json!({ "failures": failures })))
}

async fn send_to_device(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<send_event_to_device::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let mut messages: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (user, devices) in &req.messages {
        let entry = messages.entry(user.to_string()).or_default();
        for (device, content) in devices {
            entry.insert(device.to_string(), raw_json(content)?);
        }
    }
    state
        .services
        .send_to_device(&authed, &req.event_type.to_string(), req.txn_id.as_str(), messages)
        .await?;
    Ok(Json(json!({})))
}
