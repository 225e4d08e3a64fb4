//! Server-side search over room events.
//!
//! - `POST /_matrix/client/v3/search` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3search>
//!
//! The body is read with our own serde types and the answer written as JSON here, for two
//! reasons: ruma cannot tell an absent `event_context` (no context wanted) from the default
//! one, and its response leaves out an empty `results` list, which clients read unguarded.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use ruma::api::client::search::search_events;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use ward_service::rooms::{SearchFilter, SearchInput, SearchOutput, search_limits};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    endpoint::<search_events::v3::Request, _, _>(router, search)
}

#[derive(Deserialize)]
struct SearchBody {
    search_categories: Categories,
}

#[derive(Deserialize)]
struct Categories {
    #[serde(default)]
    room_events: Option<RoomEvents>,
}

#[derive(Deserialize)]
struct RoomEvents {
    search_term: String,
    #[serde(default)]
    keys: Option<Vec<String>>,
    #[serde(default)]
    filter: Option<Filter>,
    #[serde(default)]
    order_by: Option<String>,
    #[serde(default)]
    event_context: Option<EventContext>,
    #[serde(default)]
    include_state: Option<bool>,
    #[serde(default)]
    groupings: Option<Groupings>,
}

#[derive(Deserialize, Default)]
struct Filter {
    #[serde(default)]
    rooms: Option<Vec<String>>,
    #[serde(default)]
    not_rooms: Vec<String>,
    #[serde(default)]
    senders: Option<Vec<String>>,
    #[serde(default)]
    not_senders: Vec<String>,
    #[serde(default)]
    types: Option<Vec<String>>,
    #[serde(default)]
    not_types: Vec<String>,
    #[serde(default)]
    limit: Option<u64>,
}

#[derive(Deserialize)]
struct EventContext {
    #[serde(default)]
    before_limit: Option<u64>,
    #[serde(default)]
    after_limit: Option<u64>,
    #[serde(default)]
    include_profile: bool,
}

#[derive(Deserialize)]
struct Groupings {
    #[serde(default)]
    group_by: Vec<Grouping>,
}

#[derive(Deserialize)]
struct Grouping {
    #[serde(default)]
    key: Option<String>,
}

#[derive(Deserialize)]
struct SearchParams {
    next_batch: Option<String>,
}

fn size(n: Option<u64>, default: usize) -> usize {
    n.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

async fn search(
    State(state): State<AppState>,
    Auth(authed): Auth,
    params: Result<Query<SearchParams>, QueryRejection>,
    JsonBody(body): JsonBody<SearchBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid_param(e.body_text()))?;
    let Some(criteria) = body.search_categories.room_events else {
        return Ok(axum::Json(json!({"search_categories": {}})));
    };
    let order_recent = match criteria.order_by.as_deref() {
        None | Some("rank") => false,
        Some("recent") => true,
        Some(other) => return Err(ApiError::invalid_param(format!("unknown order_by `{other}`"))),
    };
    let f = criteria.filter.unwrap_or_default();
    let input = SearchInput {
        search_term: criteria.search_term,
        keys: criteria.keys,
        filter: SearchFilter {
            rooms: f.rooms,
            not_rooms: f.not_rooms,
            senders: f.senders,
            not_senders: f.not_senders,
            types: f.types,
            not_types: f.not_types,
            limit: f.limit.map(|l| size(Some(l), search_limits::RESULTS_DEFAULT)),
        },
        order_recent,
        event_context: criteria.event_context.map(|c| {
            let default = search_limits::CONTEXT_EVENTS_DEFAULT;
            (size(c.before_limit, default), size(c.after_limit, default), c.include_profile)
        }),
        include_state: criteria.include_state.unwrap_or(false),
        next_batch: params.next_batch,
    };
    let out = state.services.search(&authed, input).await?;
    let group_keys: Vec<String> = criteria
        .groupings
        .map(|g| g.group_by.into_iter().filter_map(|g| g.key).collect())
        .unwrap_or_default();
    Ok(axum::Json(json!({"search_categories": {"room_events": room_events(out, &group_keys)}})))
}

fn room_events(out: SearchOutput, group_keys: &[String]) -> Value {
    // Groups by room or sender: each lists its results' event IDs, in result order.
    let mut groups = Map::new();
    for key in group_keys.iter().filter(|k| *k == "room_id" || *k == "sender") {
        let mut by: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in &out.results {
            let (Some(id), Some(event_id)) =
                (r.event.get(key.as_str()).and_then(Value::as_str), r.event.get("event_id"))
            else {
                continue;
            };
            by.entry(id.to_owned()).or_default().push(event_id.clone());
        }
        let group: Map<String, Value> = by
            .into_iter()
            .enumerate()
            .map(|(order, (id, results))| (id, json!({"order": order, "results": results})))
            .collect();
        groups.insert(key.clone(), Value::Object(group));
    }
    let results: Vec<Value> = out
        .results
        .into_iter()
        .map(|r| {
            let mut m = json!({"rank": r.rank, "result": r.event});
            if let Some(c) = r.context {
                let profiles: Map<String, Value> = c
                    .profile_info
                    .into_iter()
                    .map(|(user, (name, avatar))| {
                        let mut p = Map::new();
                        if let Some(n) = name {
                            p.insert("displayname".into(), json!(n));
                        }
                        if let Some(a) = avatar {
                            p.insert("avatar_url".into(), json!(a));
                        }
                        (user, Value::Object(p))
                    })
                    .collect();
                m["context"] = json!({
                    "events_before": c.events_before,
                    "events_after": c.events_after,
                    "start": c.start,
                    "end": c.end,
                    "profile_info": profiles,
                });
            }
            m
        })
        .collect();
    let mut body = json!({"results": results, "count": out.count, "highlights": out.highlights});
    if let Some(next) = out.next_batch {
        body["next_batch"] = json!(next);
    }
    if !out.state.is_empty() {
        body["state"] = json!(out.state);
    }
    if !groups.is_empty() {
        body["groups"] = Value::Object(groups);
    }
    body
}
