//! Server-side key backup.
//!
//! - `POST /_matrix/client/v3/room_keys/version`, `GET /_matrix/client/v3/room_keys/version` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3room_keysversion>
//! - `GET|PUT|DELETE /_matrix/client/v3/room_keys/version/{version}` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3room_keysversionversion>
//! - `GET|PUT|DELETE /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3room_keyskeys>

use std::collections::BTreeMap;

use axum::extract::State;
use axum::{Json, Router};
use ruma::api::client::backup::KeyBackupData;
use ruma::api::client::backup::{
    add_backup_keys, add_backup_keys_for_room, add_backup_keys_for_session, create_backup_version,
    delete_backup_keys, delete_backup_keys_for_room, delete_backup_keys_for_session, delete_backup_version,
    get_backup_info, get_backup_keys, get_backup_keys_for_room, get_backup_keys_for_session,
    get_latest_backup_info, update_backup_version,
};
use ruma::serde::Raw;
use serde_json::{Value, json};
use ward_service::backup::BackupKeyInput;
use ward_service::{BackupKey, BackupScope, BackupVersion, Error};

use super::raw_json;
use crate::error::ApiError;
use crate::extract::{Auth, Ruma};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<create_backup_version::v3::Request, _, _>(router, create_version);
    let router = endpoint::<get_latest_backup_info::v3::Request, _, _>(router, latest_version);
    let router = endpoint::<get_backup_info::v3::Request, _, _>(router, get_version);
    let router = endpoint::<update_backup_version::v3::Request, _, _>(router, update_version);
    let router = endpoint::<delete_backup_version::v3::Request, _, _>(router, delete_version);
    let router = endpoint::<add_backup_keys::v3::Request, _, _>(router, put_all);
    let router = endpoint::<add_backup_keys_for_room::v3::Request, _, _>(router, put_room);
    let router = endpoint::<add_backup_keys_for_session::v3::Request, _, _>(router, put_session);
    let router = endpoint::<get_backup_keys::v3::Request, _, _>(router, get_all);
    let router = endpoint::<get_backup_keys_for_room::v3::Request, _, _>(router, get_room);
    let router = endpoint::<get_backup_keys_for_session::v3::Request, _, _>(router, get_session);
    let router = endpoint::<delete_backup_keys::v3::Request, _, _>(router, delete_all);
    let router = endpoint::<delete_backup_keys_for_room::v3::Request, _, _>(router, delete_room);
    endpoint::<delete_backup_keys_for_session::v3::Request, _, _>(router, delete_session)
}

fn bad_json(message: String) -> ApiError {
    ApiError::Service(Error::BadJson(message))
}

/// `{algorithm, auth_data[, version]}` from a request body.
fn algorithm_body<T>(raw: &Raw<T>) -> Result<(String, Value, Option<String>), ApiError> {
    let v = raw_json(raw)?;
    let algorithm = v
        .get("algorithm")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_json("`algorithm` must be a string".into()))?
        .to_owned();
    let auth_data = v.get("auth_data").cloned().ok_or_else(|| bad_json("`auth_data` is missing".into()))?;
    let version = v.get("version").and_then(Value::as_str).map(str::to_owned);
    Ok((algorithm, auth_data, version))
}

fn version_json(v: &BackupVersion) -> Value {
    let auth_data: Value = serde_json::from_str(&v.auth_data).unwrap_or_default();
    json!({
        "algorithm": v.algorithm,
        "auth_data": auth_data,
        "count": v.count,
        "etag": v.etag.to_string(),
        "version": v.version.to_string(),
    })
}

fn key_input(room_id: &str, session_id: &str, raw: &Raw<KeyBackupData>) -> Result<BackupKeyInput, ApiError> {
    let v = raw_json(raw)?;
    let uint = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_json(format!("`{k}` must be a non-negative integer")))
    };
    Ok(BackupKeyInput {
        room_id: room_id.to_owned(),
        session_id: session_id.to_owned(),
        first_message_index: uint("first_message_index")?,
        forwarded_count: uint("forwarded_count")?,
        is_verified: v
            .get("is_verified")
            .and_then(Value::as_bool)
            .ok_or_else(|| bad_json("`is_verified` must be a boolean".into()))?,
        session_data: v
            .get("session_data")
            .cloned()
            .ok_or_else(|| bad_json("`session_data` is missing".into()))?,
    })
}

fn key_json(k: &BackupKey) -> Value {
    let data: Value = serde_json::from_str(&k.session_data).unwrap_or_default();
    json!({
        "first_message_index": k.first_message_index,
        "forwarded_count": k.forwarded_count,
        "is_verified": k.is_verified,
        "session_data": data,
    })
}

fn counted((count, etag): (u64, String)) -> Json<Value> {
    Json(json!({ "count": count, "etag": etag }))
}

async fn create_version(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<create_backup_version::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let (algorithm, auth_data, _) = algorithm_body(&req.algorithm)?;
    let version = state.services.create_backup_version(&authed, &algorithm, &auth_data).await?;
    Ok(Json(json!({ "version": version })))
}

async fn latest_version(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(_): Ruma<get_latest_backup_info::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let v = state.services.backup_version(&authed, None).await?;
    Ok(Json(version_json(&v)))
}

async fn get_version(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_backup_info::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let v = state.services.backup_version(&authed, Some(&req.version)).await?;
    Ok(Json(version_json(&v)))
}

async fn update_version(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<update_backup_version::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let (algorithm, auth_data, body_version) = algorithm_body(&req.algorithm)?;
    state
        .services
        .update_backup_version(&authed, &req.version, body_version.as_deref(), &algorithm, &auth_data)
        .await?;
    Ok(Json(json!({})))
}

async fn delete_version(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<delete_backup_version::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    state.services.delete_backup_version(&authed, &req.version).await?;
    Ok(Json(json!({})))
}

async fn put_all(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<add_backup_keys::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let mut keys = Vec::new();
    for (room, backup) in &req.rooms {
        for (session, data) in &backup.sessions {
            keys.push(key_input(room.as_str(), session, data)?);
        }
    }
    Ok(counted(state.services.put_backup_keys(&authed, &req.version, keys).await?))
}

async fn put_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<add_backup_keys_for_room::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let keys = req
        .sessions
        .iter()
        .map(|(session, data)| key_input(req.room_id.as_str(), session, data))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(counted(state.services.put_backup_keys(&authed, &req.version, keys).await?))
}

async fn put_session(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<add_backup_keys_for_session::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let key = key_input(req.room_id.as_str(), &req.session_id, &req.session_data)?;
    Ok(counted(state.services.put_backup_keys(&authed, &req.version, vec![key]).await?))
}

fn rooms_json(rooms: BTreeMap<String, BTreeMap<String, BackupKey>>) -> Value {
    let rooms: serde_json::Map<String, Value> = rooms
        .into_iter()
        .map(|(room, sessions)| {
            let sessions: serde_json::Map<String, Value> =
                sessions.iter().map(|(id, k)| (id.clone(), key_json(k))).collect();
            (room, json!({ "sessions": sessions }))
        })
        .collect();
    json!({ "rooms": rooms })
}

async fn get_all(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_backup_keys::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let rooms = state.services.backup_keys(&authed, &req.version, BackupScope::All).await?;
    Ok(Json(rooms_json(rooms)))
}

async fn get_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_backup_keys_for_room::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let room = req.room_id.to_string();
    let mut rooms =
        state.services.backup_keys(&authed, &req.version, BackupScope::Room(room.clone())).await?;
    let sessions: serde_json::Map<String, Value> =
        rooms.remove(&room).unwrap_or_default().iter().map(|(id, k)| (id.clone(), key_json(k))).collect();
    Ok(Json(json!({ "sessions": sessions })))
}

async fn get_session(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_backup_keys_for_session::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let room = req.room_id.to_string();
    let scope = BackupScope::Session(room.clone(), req.session_id.clone());
    let rooms = state.services.backup_keys(&authed, &req.version, scope).await?;
    let key = rooms
        .get(&room)
        .and_then(|s| s.get(&req.session_id))
        .ok_or_else(|| ApiError::Service(Error::NotFound("no backup of this session".into())))?;
    Ok(Json(key_json(key)))
}

async fn delete_all(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<delete_backup_keys::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    Ok(counted(state.services.delete_backup_keys(&authed, &req.version, BackupScope::All).await?))
}

async fn delete_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<delete_backup_keys_for_room::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let scope = BackupScope::Room(req.room_id.to_string());
    Ok(counted(state.services.delete_backup_keys(&authed, &req.version, scope).await?))
}

async fn delete_session(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<delete_backup_keys_for_session::v3::Request>,
) -> Result<Json<Value>, ApiError> {
    let scope = BackupScope::Session(req.room_id.to_string(), req.session_id.clone());
    Ok(counted(state.services.delete_backup_keys(&authed, &req.version, scope).await?))
}
