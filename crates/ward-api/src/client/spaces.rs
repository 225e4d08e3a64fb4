//! Spaces: the rooms of a space, depth first.
//!
//! - `GET /_matrix/client/v1/rooms/{roomId}/hierarchy` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1roomsroomidhierarchy>

use axum::Router;
use axum::extract::State;
use ruma::api::client::space::get_hierarchy;
use serde_json::{Map, Value, json};
use ward_service::rooms::{HierarchyQuery, HierarchyRoom};

use crate::error::ApiError;
use crate::extract::{Auth, Ruma};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    endpoint::<get_hierarchy::v1::Request, _, _>(router, hierarchy)
}

fn count(v: Option<ruma::UInt>) -> Option<usize> {
    v.map(|n| usize::try_from(u64::from(n)).unwrap_or(usize::MAX))
}

/// The response is written as JSON here: ruma's chunk type would need every summary field
/// converted to its typed form only to be serialised again.
fn room_json(r: HierarchyRoom) -> Value {
    let s = r.summary;
    let mut m = Map::new();
    m.insert("room_id".into(), json!(s.room_id));
    m.insert("num_joined_members".into(), json!(s.num_joined_members));
    m.insert("world_readable".into(), json!(s.world_readable));
    m.insert("guest_can_join".into(), json!(s.guest_can_join));
    m.insert("join_rule".into(), json!(s.join_rule.unwrap_or_else(|| "invite".into())));
    m.insert("room_version".into(), json!(r.room_version));
    m.insert("children_state".into(), json!(r.children_state));
    let optional = [
        ("name", s.name),
        ("topic", s.topic),
        ("canonical_alias", s.canonical_alias),
        ("avatar_url", s.avatar_url),
        ("room_type", s.room_type),
        ("encryption", r.encryption),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if !r.allowed_room_ids.is_empty() {
        m.insert("allowed_room_ids".into(), json!(r.allowed_room_ids));
    }
    Value::Object(m)
}

async fn hierarchy(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_hierarchy::v1::Request>,
) -> Result<axum::Json<Value>, ApiError> {
    let query = HierarchyQuery {
        from: req.from,
        limit: count(req.limit),
        max_depth: count(req.max_depth),
        suggested_only: req.suggested_only,
    };
    let page = state.services.hierarchy(&authed, req.room_id.as_str(), query).await?;
    let mut body = json!({"rooms": page.rooms.into_iter().map(room_json).collect::<Vec<_>>()});
    if let Some(next) = page.next_batch {
        body["next_batch"] = json!(next);
    }
    Ok(axum::Json(body))
}
