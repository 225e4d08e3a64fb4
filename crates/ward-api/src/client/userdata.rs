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
use ruma::api::client::push::{
    delete_pushrule, get_notifications, get_pushers, get_pushrule, get_pushrule_actions,
    get_pushrule_enabled, get_pushrules_all, get_pushrules_global_scope, set_pushrule, set_pushrule_actions,
    set_pushrule_enabled,
};
use ruma::api::client::tag::{create_tag, delete_tag, get_tags};
use ruma::push::InsertPushRuleError;
use serde_json::Value;
use ward_service::Error as ServiceError;

use super::rooms::internal;
use super::{raw_json, to_raw};
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
    let router = endpoint::<get_pushrules_global_scope::v3::Request, _, _>(router, push_rules_global);
    let router = endpoint::<get_pushrule::v3::Request, _, _>(router, get_rule);
    let router = endpoint::<set_pushrule::v3::Request, _, _>(router, set_rule);
    let router = endpoint::<delete_pushrule::v3::Request, _, _>(router, delete_rule);
    let router = endpoint::<get_pushrule_enabled::v3::Request, _, _>(router, get_enabled);
    let router = endpoint::<set_pushrule_enabled::v3::Request, _, _>(router, set_enabled);
    let router = endpoint::<get_pushrule_actions::v3::Request, _, _>(router, get_actions);
    let router = endpoint::<set_pushrule_actions::v3::Request, _, _>(router, set_actions);
    let router = endpoint::<get_pushers::v3::Request, _, _>(router, pushers);
    let router = router.route("/_matrix/client/v3/pushers/set", axum::routing::post(set_pusher));
    let router = router.route("/_matrix/client/r0/pushers/set", axum::routing::post(set_pusher));
    endpoint::<get_notifications::v3::Request, _, _>(router, notifications)
}

fn rule_not_found() -> ApiError {
    ApiError::Service(ServiceError::NotFound("no such push rule".into()))
}

async fn set_global(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_global_account_data::v3::Request>,
) -> Result<RumaResponse<set_global_account_data::v3::Response>, ApiError> {
    let content = raw_json(&req.data)?;
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
    let content = raw_json(&req.data)?;
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

async fn get_rule(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_pushrule::v3::Request>,
) -> Result<RumaResponse<get_pushrule::v3::Response>, ApiError> {
    let set = rules(&state, &authed).await?;
    let rule = set.get(req.kind.clone(), &req.rule_id).ok_or_else(rule_not_found)?;
    Ok(RumaResponse(get_pushrule::v3::Response::new(rule.into())))
}

async fn set_rule(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_pushrule::v3::Request>,
) -> Result<RumaResponse<set_pushrule::v3::Response>, ApiError> {
    state
        .services
        .edit_push_rules(&authed, |set| {
            set.insert(req.rule, req.after.as_deref(), req.before.as_deref()).map_err(|e| match e {
                InsertPushRuleError::UnknownRuleId => ServiceError::NotFound(e.to_string()),
                e => ServiceError::InvalidParam(e.to_string()),
            })
        })
        .await?;
    Ok(RumaResponse(set_pushrule::v3::Response::new()))
}

async fn delete_rule(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<delete_pushrule::v3::Request>,
) -> Result<RumaResponse<delete_pushrule::v3::Response>, ApiError> {
    state
        .services
        .edit_push_rules(&authed, |set| {
            set.remove(req.kind, &req.rule_id).map_err(|e| match e {
                ruma::push::RemovePushRuleError::NotFound => ServiceError::NotFound(e.to_string()),
                e => ServiceError::Forbidden(e.to_string()),
            })
        })
        .await?;
    Ok(RumaResponse(delete_pushrule::v3::Response::new()))
}

async fn get_enabled(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<get_pushrule_enabled::v3::Response>, ApiError> {
    let set = rules(&state, &authed).await?;
    let rule = set.get(req.kind.clone(), &req.rule_id).ok_or_else(rule_not_found)?;
    Ok(RumaResponse(get_pushrule_enabled::v3::Response::new(rule.enabled())))
}

async fn set_enabled(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<set_pushrule_enabled::v3::Response>, ApiError> {
    state
        .services
        .edit_push_rules(&authed, |set| {
            set.set_enabled(req.kind, &req.rule_id, req.enabled)
                .map_err(|e| ServiceError::NotFound(e.to_string()))
        })
        .await?;
    Ok(RumaResponse(set_pushrule_enabled::v3::Response::new()))
}

async fn get_actions(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<get_pushrule_actions::v3::Response>, ApiError> {
    let set = rules(&state, &authed).await?;
    let rule = set.get(req.kind.clone(), &req.rule_id).ok_or_else(rule_not_found)?;
    Ok(RumaResponse(get_pushrule_actions::v3::Response::new(rule.actions().to_vec())))
}

async fn set_actions(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<set_pushrule_actions::v3::Response>, ApiError> {
    state
        .services
        .edit_push_rules(&authed, |set| {
            set.set_actions(req.kind, &req.rule_id, req.actions)
                .map_err(|e| ServiceError::NotFound(e.to_string()))
        })
        .await?;
    Ok(RumaResponse(set_pushrule_actions::v3::Response::new()))
}

async fn pushers(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(_): Ruma<get_pushers::v3::Request>,
) -> Result<RumaResponse<get_pushers::v3::Response>, ApiError> {
    let list = state.services.pushers(&authed).await?;
    let list = list.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect();
    Ok(RumaResponse(get_pushers::v3::Response::new(list)))
}

/// `POST /pushers/set` reads its body itself: the pusher is stored as the client sent it.
async fn set_pusher(
    State(state): State<AppState>,
    Auth(authed): Auth,
    crate::extract::JsonBody(body): crate::extract::JsonBody<serde_json::Map<String, Value>>,
) -> Result<axum::Json<Value>, ApiError> {
    state.services.set_pusher(&authed, body).await?;
    Ok(axum::Json(serde_json::json!({})))
}

async fn notifications(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_notifications::v3::Request>,
) -> Result<RumaResponse<get_notifications::v3::Response>, ApiError> {
    let limit = req.limit.map(|l| usize::try_from(u64::from(l)).unwrap_or(usize::MAX));
    let only_highlight = req.only.as_deref() == Some("highlight");
    let (found, next) =
        state.services.notifications(&authed, req.from.as_deref(), limit, only_highlight).await?;
    let mut list = Vec::with_capacity(found.len());
    for n in found {
        let v = serde_json::json!({
            "actions": n.actions,
            "event": n.event,
            "read": n.read,
            "room_id": n.room_id,
            "ts": n.ts,
        });
        list.push(serde_json::from_value(v).map_err(internal)?);
    }
    let mut resp = get_notifications::v3::Response::new(list);
    resp.next_token = next;
    Ok(RumaResponse(resp))
}
