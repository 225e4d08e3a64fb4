//! Rooms: creating, sending, reading.
//!
//! - `POST /_matrix/client/v3/createRoom` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3createroom>
//! - `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid>
//! - `PUT|GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3roomsroomidstateeventtypestatekey>
//! - `GET /_matrix/client/v3/rooms/{roomId}/state` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3roomsroomidstate>
//! - `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3roomsroomidredacteventidtxnid>
//! - `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3roomsroomideventeventid>
//! - `GET /_matrix/client/v3/rooms/{roomId}/messages` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3roomsroomidmessages>
//! - `GET /_matrix/client/v3/rooms/{roomId}/members`, `/joined_members` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3roomsroomidmembers>

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use ruma::api::Direction;
use ruma::api::client::membership::{get_member_events, joined_members};
use ruma::api::client::message::{get_message_events, send_message_event};
use ruma::api::client::redact::redact_event;
use ruma::api::client::room::{Visibility, create_room, get_room_event};
use ruma::api::client::state::{get_state_event_for_key, get_state_events, send_state_event};
use ruma::serde::Raw;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde_json::{Map, Value};
use ward_service::rooms::{CreateRoomInput, MessagesFilter, MessagesQuery, PageDirection, Preset};

use super::PathParams;
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<create_room::v3::Request, _, _>(router, create);
    let router = endpoint::<send_message_event::v3::Request, _, _>(router, send);
    let router = endpoint::<send_state_event::v3::Request, _, _>(router, put_state);
    let router = endpoint::<get_state_event_for_key::v3::Request, _, _>(router, get_state_entry);
    let router = endpoint::<get_state_events::v3::Request, _, _>(router, get_state);
    let router = endpoint::<redact_event::v3::Request, _, _>(router, redact);
    let router = endpoint::<get_room_event::v3::Request, _, _>(router, get_event);
    let router = endpoint::<get_message_events::v3::Request, _, _>(router, messages);
    let router = endpoint::<get_member_events::v3::Request, _, _>(router, members);
    let mut router = endpoint::<joined_members::v3::Request, _, _>(router, joined);
    // An empty state key leaves `/state/{eventType}/` or `/state/{eventType}`; clients use
    // both, and neither matches the templated path with its final segment.
    for version in ["r0", "v3"] {
        for tail in ["", "/"] {
            let path = format!("/_matrix/client/{version}/rooms/{{room_id}}/state/{{event_type}}{tail}");
            router = router.route(&path, get(get_state_entry_empty).put(put_state_empty));
        }
    }
    router
}

fn two_params(params: Vec<String>) -> Result<(String, String), ApiError> {
    match <[String; 2]>::try_from(params) {
        Ok([room, kind]) => Ok((room, kind)),
        Err(_) => Err(ApiError::unrecognized_path()),
    }
}

async fn get_state_entry_empty(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(params): PathParams,
) -> Result<axum::Json<Value>, ApiError> {
    let (room, kind) = two_params(params)?;
    let event = state.services.state_event(&authed, &room, &kind, "").await?;
    Ok(axum::Json(event.get("content").cloned().unwrap_or_default()))
}

async fn put_state_empty(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(params): PathParams,
    JsonBody(content): JsonBody<Value>,
) -> Result<RumaResponse<send_state_event::v3::Response>, ApiError> {
    let (room, kind) = two_params(params)?;
    let id = state.services.send_state(&authed, &room, &kind, "", content).await?;
    Ok(RumaResponse(send_state_event::v3::Response::new(event_id(&id)?)))
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Service(ward_service::Error::Internal(e.to_string()))
}

/// A client event (a JSON object) as a ruma `Raw`.
pub(crate) fn raw<T>(m: &Map<String, Value>) -> Result<Raw<T>, ApiError> {
    serde_json::value::to_raw_value(m).map(Raw::from_json).map_err(internal)
}

pub(crate) fn raws<T>(events: &[Map<String, Value>]) -> Result<Vec<Raw<T>>, ApiError> {
    events.iter().map(raw).collect()
}

pub(crate) fn room_id(s: &str) -> Result<OwnedRoomId, ApiError> {
    OwnedRoomId::try_from(s).map_err(internal)
}

fn event_id(s: &str) -> Result<OwnedEventId, ApiError> {
    OwnedEventId::try_from(s).map_err(internal)
}

fn object<T>(raw: &Raw<T>) -> Result<Value, ApiError> {
    let v = super::raw_json(raw)?;
    if !v.is_object() {
        return Err(ApiError::new(
            http::StatusCode::BAD_REQUEST,
            ruma::api::error::ErrorKind::BadJson,
            "content must be a JSON object",
        ));
    }
    Ok(v)
}

async fn create(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<create_room::v3::Request>,
) -> Result<RumaResponse<create_room::v3::Response>, ApiError> {
    let preset = req.preset.as_ref().map(|p| match p.as_str() {
        "public_chat" => Ok(Preset::PublicChat),
        "trusted_private_chat" => Ok(Preset::TrustedPrivateChat),
        "private_chat" => Ok(Preset::PrivateChat),
        other => Err(ApiError::invalid_param(format!("unknown preset `{other}`"))),
    });
    let creation_content = match &req.creation_content {
        Some(c) => match object(c)? {
            Value::Object(m) => Some(m),
            _ => None,
        },
        None => None,
    };
    let power_level_content_override = match &req.power_level_content_override {
        Some(c) => match object(c)? {
            Value::Object(m) => Some(m),
            _ => None,
        },
        None => None,
    };
    let mut initial_state = Vec::with_capacity(req.initial_state.len());
    for ev in &req.initial_state {
        let v = super::raw_json(ev)?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid_param("initial_state events need a type"))?;
        let key = v.get("state_key").and_then(Value::as_str).unwrap_or("");
        let content = v
            .get("content")
            .cloned()
            .filter(Value::is_object)
            .ok_or_else(|| ApiError::invalid_param("initial_state events need an object content"))?;
        initial_state.push((kind.to_owned(), key.to_owned(), content));
    }
    let input = CreateRoomInput {
        preset: preset.transpose()?,
        visibility_public: req.visibility == Visibility::Public,
        name: req.name,
        topic: req.topic,
        invite: req.invite.iter().map(|u| u.to_string()).collect(),
        is_direct: req.is_direct,
        room_version: req.room_version.map(|v| v.to_string()),
        creation_content,
        initial_state,
        power_level_content_override,
        room_alias_name: req.room_alias_name,
    };
    let id = state.services.create_room(&authed, input).await?;
    Ok(RumaResponse(create_room::v3::Response::new(room_id(&id)?)))
}

async fn send(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<send_message_event::v3::Request>,
) -> Result<RumaResponse<send_message_event::v3::Response>, ApiError> {
    let content = object(&req.body)?;
    let id = state
        .services
        .send_message(
            &authed,
            req.room_id.as_str(),
            &req.event_type.to_string(),
            req.txn_id.as_str(),
            content,
        )
        .await?;
    Ok(RumaResponse(send_message_event::v3::Response::new(event_id(&id)?)))
}

async fn put_state(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<send_state_event::v3::Request>,
) -> Result<RumaResponse<send_state_event::v3::Response>, ApiError> {
    let content = object(&req.body)?;
    let id = state
        .services
        .send_state(&authed, req.room_id.as_str(), &req.event_type.to_string(), &req.state_key, content)
        .await?;
    Ok(RumaResponse(send_state_event::v3::Response::new(event_id(&id)?)))
}

async fn get_state_entry(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_state_event_for_key::v3::Request>,
) -> Result<RumaResponse<get_state_event_for_key::v3::Response>, ApiError> {
    let event = state
        .services
        .state_event(&authed, req.room_id.as_str(), &req.event_type.to_string(), &req.state_key)
        .await?;
    let body = if req.format == get_state_event_for_key::v3::StateEventFormat::Event {
        Value::Object(event)
    } else {
        event.get("content").cloned().unwrap_or_default()
    };
    let raw = serde_json::value::to_raw_value(&body).map_err(internal)?;
    Ok(RumaResponse(get_state_event_for_key::v3::Response::new(raw)))
}

async fn get_state(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_state_events::v3::Request>,
) -> Result<RumaResponse<get_state_events::v3::Response>, ApiError> {
    let events = state.services.room_state(&authed, req.room_id.as_str()).await?;
    Ok(RumaResponse(get_state_events::v3::Response::new(raws(&events)?)))
}

async fn redact(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<redact_event::v3::Request>,
) -> Result<RumaResponse<redact_event::v3::Response>, ApiError> {
    let id = state
        .services
        .redact(&authed, req.room_id.as_str(), req.event_id.as_str(), req.txn_id.as_str(), req.reason)
        .await?;
    Ok(RumaResponse(redact_event::v3::Response::new(event_id(&id)?)))
}

async fn get_event(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_room_event::v3::Request>,
) -> Result<RumaResponse<get_room_event::v3::Response>, ApiError> {
    let event = state.services.event(&authed, req.room_id.as_str(), req.event_id.as_str()).await?;
    Ok(RumaResponse(get_room_event::v3::Response::new(raw(&event)?)))
}

async fn messages(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_message_events::v3::Request>,
) -> Result<RumaResponse<get_message_events::v3::Response>, ApiError> {
    let dir = match req.dir {
        Direction::Forward => PageDirection::Forward,
        _ => PageDirection::Backward,
    };
    let limit = usize::try_from(u64::from(req.limit)).unwrap_or(usize::MAX);
    let f = &req.filter;
    let filter = MessagesFilter {
        lazy_load_members: matches!(
            f.lazy_load_options,
            ruma::api::client::filter::LazyLoadOptions::Enabled { .. }
        ),
        types: f.types.clone(),
        not_types: f.not_types.clone(),
        senders: f.senders.as_ref().map(|s| s.iter().map(|u| u.to_string()).collect()),
        not_senders: f.not_senders.iter().map(|u| u.to_string()).collect(),
    };
    let page = state
        .services
        .messages(
            &authed,
            req.room_id.as_str(),
            MessagesQuery {
                from: req.from.as_deref(),
                to: req.to.as_deref(),
                dir,
                limit: Some(limit),
                filter: &filter,
            },
        )
        .await?;
    let mut resp = get_message_events::v3::Response::new();
    resp.start = page.start;
    resp.end = page.end;
    resp.chunk = raws(&page.chunk)?;
    resp.state = raws(&page.state)?;
    Ok(RumaResponse(resp))
}

async fn members(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_member_events::v3::Request>,
) -> Result<RumaResponse<get_member_events::v3::Response>, ApiError> {
    let events = state
        .services
        .members(
            &authed,
            req.room_id.as_str(),
            req.at.as_deref(),
            req.membership.as_ref().map(|m| m.as_str()),
            req.not_membership.as_ref().map(|m| m.as_str()),
        )
        .await?;
    Ok(RumaResponse(get_member_events::v3::Response::new(raws(&events)?)))
}

async fn joined(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<joined_members::v3::Request>,
) -> Result<RumaResponse<joined_members::v3::Response>, ApiError> {
    let members = state.services.joined_members(&authed, req.room_id.as_str()).await?;
    let mut joined = std::collections::BTreeMap::new();
    for (user, (display_name, avatar)) in members {
        let user = OwnedUserId::try_from(user).map_err(internal)?;
        let mut m = joined_members::v3::RoomMember::new();
        m.display_name = display_name;
        m.avatar_url = avatar.map(Into::into);
        joined.insert(user, m);
    }
    Ok(RumaResponse(joined_members::v3::Response::new(joined)))
}
