//! Per-user data: account data, tags, filters, push rules.
//!
//! - `GET|PUT /_matrix/client/v3/user/{userId}/account_data/{type}` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3useruseridaccount_datatype>
//! - `GET|PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3useruseridroomsroomidaccount_datatype>
//! - `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags`, `PUT|DELETE …/tags/{tag}` — <https://spec.matrix.org/latest/client-server-api/#client-behaviour-15>
//! - `POST /_matrix/client/v3/user/{userId}/filter`, `GET …/filter/{filterId}` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3useruseridfilter>
//! - `GET /_matrix/client/v3/pushrules/`, `/pushrules/global/` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3pushrules>

use axum::Router;
use axum::extract::State;
use ruma::api::client::config::{
    get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data,
};
use ruma::api::client::filter::{FilterDefinition, create_filter, get_filter};
use ruma::api::client::push::{get_pushrules_all, get_pushrules_global_scope};
use ruma::api::client::tag::{create_tag, delete_tag, get_tags};
use ruma::serde::Raw;
use serde_json::Value;

use super::rooms::internal;
use crate::error::ApiError;
use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<set_global_account_data::v3::Request, _, _>(router, set_global);
    let router = endpoint::<get_global_account_data::v3::Request, _, _>(router, get_global);
    let router = endpoint::<set_room_account_data::v3::Request, _, _>(router, set_room);
    let router = endpoint::<get_room_account_data::v3::Request, _, _>(router, get_room);
    let router = endpoint::<get_tags::v3::Request, _, _>(router, tags);
    let router = endpoint::<create_tag::v3::Request, _, _>(router, put_tag);
    let router = endpoint::<delete_tag::v3::Request, _, _>(router, remove_tag);
    let router = endpoint::<create_filter::v3::Request, _, _>(router, new_filter);
    let router = endpoint::<get_filter::v3::Request, _, _>(router, filter);
    let router = endpoint::<get_pushrules_all::v3::Request, _, _>(router, push_rules);
    endpoint::<get_pushrules_global_scope::v3::Request, _, _>(router, push_rules_global)
}

fn json<T>(raw: &Raw<T>) -> Result<Value, ApiError> {
    serde_json::from_str(raw.json().get()).map_err(|e| ApiError::from_json(&e))
}

fn to_raw<T>(v: &Value) -> Result<Raw<T>, ApiError> {
    serde_json::value::to_raw_value(v).map(Raw::from_json).map_err(internal)
}

async fn set_global(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_global_account_data::v3::Request>,
) -> Result<RumaResponse<set_global_account_data::v3::Response>, ApiError> {
    let content = json(&req.data)?;
    state
        .services
        .set_account_data(&authed, req.user_id.as_str(), None, &req.event_type.to_string(), &content)
        .await?;
    Ok(RumaResponse(set_global_account_data::v3::Response::new()))
}

async fn get_global(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_global_account_data::v3::Request>,
) -> Result<RumaResponse<get_global_account_data::v3::Response>, ApiError> {
    let v =
        state.services.account_data(&authed, req.user_id.as_str(), None, &req.event_type.to_string()).await?;
    Ok(RumaResponse(get_global_account_data::v3::Response::new(to_raw(&v)?)))
}

async fn set_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_room_account_data::v3::Request>,
) -> Result<RumaResponse<set_room_account_data::v3::Response>, ApiError> {
    let content = json(&req.data)?;
    state
        .services
        .set_account_data(
            &authed,
            req.user_id.as_str(),
            Some(req.room_id.as_str()),
            &req.event_type.to_string(),
            &content,
        )
        .await?;
    Ok(RumaResponse(set_room_account_data::v3::Response::new()))
}

async fn get_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_room_account_data::v3::Request>,
) -> Result<RumaResponse<get_room_account_data::v3::Response>, ApiError> {
    let v = state
        .services
        .account_data(&authed, req.user_id.as_str(), Some(req.room_id.as_str()), &req.event_type.to_string())
        .await?;
    Ok(RumaResponse(get_room_account_data::v3::Response::new(to_raw(&v)?)))
}

async fn tags(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_tags::v3::Request>,
) -> Result<RumaResponse<get_tags::v3::Response>, ApiError> {
    let tags = state.services.tags(&authed, req.user_id.as_str(), req.room_id.as_str()).await?;
    let tags = serde_json::from_value(Value::Object(tags)).map_err(internal)?;
    Ok(RumaResponse(get_tags::v3::Response::new(tags)))
}

async fn put_tag(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<create_tag::v3::Request>,
) -> Result<RumaResponse<create_tag::v3::Response>, ApiError> {
    let info = serde_json::to_value(&req.tag_info).map_err(internal)?;
    state.services.set_tag(&authed, req.user_id.as_str(), req.room_id.as_str(), &req.tag, Some(info)).await?;
    Ok(RumaResponse(create_tag::v3::Response::new()))
}

async fn remove_tag(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<delete_tag::v3::Request>,
) -> Result<RumaResponse<delete_tag::v3::Response>, ApiError> {
    state.services.set_tag(&authed, req.user_id.as_str(), req.room_id.as_str(), &req.tag, None).await?;
    Ok(RumaResponse(delete_tag::v3::Response::new()))
}

async fn new_filter(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<create_filter::v3::Request>,
) -> Result<RumaResponse<create_filter::v3::Response>, ApiError> {
    let v = serde_json::to_value(&req.filter).map_err(internal)?;
    let id = state.services.create_filter(&authed, req.user_id.as_str(), &v).await?;
    Ok(RumaResponse(create_filter::v3::Response::new(id)))
}

async fn filter(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_filter::v3::Request>,
) -> Result<RumaResponse<get_filter::v3::Response>, ApiError> {
    let v = state.services.filter(&authed, req.user_id.as_str(), &req.filter_id).await?;
    let def: FilterDefinition = serde_json::from_value(v).map_err(internal)?;
    Ok(RumaResponse(get_filter::v3::Response::new(def)))
}

async fn rules(state: &AppState, authed: &ward_service::Authed) -> Result<ruma::push::Ruleset, ApiError> {
    let v = state.services.push_rules(authed).await?;
    serde_json::from_value(v.get("global").cloned().unwrap_or_default()).map_err(internal)
}

async fn push_rules(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(_): Ruma<get_pushrules_all::v3::Request>,
) -> Result<RumaResponse<get_pushrules_all::v3::Response>, ApiError> {
    Ok(RumaResponse(get_pushrules_all::v3::Response::new(rules(&state, &authed).await?)))
}

async fn push_rules_global(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(_): Ruma<get_pushrules_global_scope::v3::Request>,
) -> Result<RumaResponse<get_pushrules_global_scope::v3::Response>, ApiError> {
    Ok(RumaResponse(get_pushrules_global_scope::v3::Response::new(rules(&state, &authed).await?)))
}
