//! Event context, relations, timestamp lookup, forgetting rooms.
//!
//! - `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3roomsroomidcontexteventid>
//! - `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1roomsroomidrelationseventid>
//! - `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1roomsroomidtimestamp_to_event>
//! - `POST /_matrix/client/v3/rooms/{roomId}/forget` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3roomsroomidforget>

use axum::Router;
use axum::extract::State;
use ruma::api::Direction;
use ruma::api::client::context::get_context;
use ruma::api::client::membership::forget_room;
use ruma::api::client::relations::{
    get_relating_events, get_relating_events_with_rel_type, get_relating_events_with_rel_type_and_event_type,
};
use ruma::api::client::room::get_event_by_timestamp;
use ruma::{MilliSecondsSinceUnixEpoch, OwnedEventId, UInt};
use ward_service::rooms::RelationsPage;

use super::rooms::{internal, raw, raws};
use crate::error::ApiError;
use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<get_context::v3::Request, _, _>(router, context);
    let router = endpoint::<get_relating_events::v1::Request, _, _>(router, relations);
    let router = endpoint::<get_relating_events_with_rel_type::v1::Request, _, _>(router, relations_of_type);
    let router = endpoint::<get_relating_events_with_rel_type_and_event_type::v1::Request, _, _>(
        router,
        relations_of_kind,
    );
    let router = endpoint::<get_event_by_timestamp::v1::Request, _, _>(router, by_timestamp);
    endpoint::<forget_room::v3::Request, _, _>(router, forget)
}

fn limit(l: Option<UInt>) -> Option<usize> {
    l.map(|l| usize::try_from(u64::from(l)).unwrap_or(usize::MAX))
}

async fn context(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_context::v3::Request>,
) -> Result<RumaResponse<get_context::v3::Response>, ApiError> {
    let c = state
        .services
        .context(&authed, req.room_id.as_str(), req.event_id.as_str(), limit(Some(req.limit)))
        .await?;
    let mut resp = get_context::v3::Response::new();
    resp.event = Some(raw(&c.event)?);
    resp.events_before = raws(&c.events_before)?;
    resp.events_after = raws(&c.events_after)?;
    resp.state = raws(&c.state)?;
    resp.start = Some(c.start);
    resp.end = Some(c.end);
    Ok(RumaResponse(resp))
}

fn only_backward(dir: Direction) -> Result<(), ApiError> {
    match dir {
        Direction::Backward => Ok(()),
        _ => Err(ApiError::invalid_param("relations are listed newest first (dir=b) only")),
    }
}

async fn relations(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_relating_events::v1::Request>,
) -> Result<RumaResponse<get_relating_events::v1::Response>, ApiError> {
    only_backward(req.dir)?;
    let page = state
        .services
        .relations(
            &authed,
            req.room_id.as_str(),
            req.event_id.as_str(),
            None,
            None,
            req.from.as_deref(),
            limit(req.limit),
        )
        .await?;
    let RelationsPage { chunk, next_batch } = page;
    let mut resp = get_relating_events::v1::Response::new(raws(&chunk)?);
    resp.next_batch = next_batch;
    Ok(RumaResponse(resp))
}

async fn relations_of_type(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_relating_events_with_rel_type::v1::Request>,
) -> Result<RumaResponse<get_relating_events_with_rel_type::v1::Response>, ApiError> {
    only_backward(req.dir)?;
    let rel = req.rel_type.to_string();
    let page = state
        .services
        .relations(
            &authed,
            req.room_id.as_str(),
            req.event_id.as_str(),
            Some(&rel),
            None,
            req.from.as_deref(),
            limit(req.limit),
        )
        .await?;
    let mut resp = get_relating_events_with_rel_type::v1::Response::new(raws(&page.chunk)?);
    resp.next_batch = page.next_batch;
    Ok(RumaResponse(resp))
}

async fn relations_of_kind(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_relating_events_with_rel_type_and_event_type::v1::Request>,
) -> Result<RumaResponse<get_relating_events_with_rel_type_and_event_type::v1::Response>, ApiError> {
    only_backward(req.dir)?;
    let (rel, kind) = (req.rel_type.to_string(), req.event_type.to_string());
    let page = state
        .services
        .relations(
            &authed,
            req.room_id.as_str(),
            req.event_id.as_str(),
            Some(&rel),
            Some(&kind),
            req.from.as_deref(),
            limit(req.limit),
        )
        .await?;
    let mut resp = get_relating_events_with_rel_type_and_event_type::v1::Response::new(raws(&page.chunk)?);
    resp.next_batch = page.next_batch;
    Ok(RumaResponse(resp))
}

async fn by_timestamp(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_event_by_timestamp::v1::Request>,
) -> Result<RumaResponse<get_event_by_timestamp::v1::Response>, ApiError> {
    let forward = matches!(req.dir, Direction::Forward);
    let (id, ts) = state
        .services
        .timestamp_to_event(&authed, req.room_id.as_str(), u64::from(req.ts.0), forward)
        .await?;
    let id = OwnedEventId::try_from(id).map_err(internal)?;
    let ts = MilliSecondsSinceUnixEpoch(UInt::new(ts).unwrap_or_default());
    Ok(RumaResponse(get_event_by_timestamp::v1::Response::new(id, ts)))
}

async fn forget(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<forget_room::v3::Request>,
) -> Result<RumaResponse<forget_room::v3::Response>, ApiError> {
    state.services.forget(&authed, req.room_id.as_str()).await?;
    Ok(RumaResponse(forget_room::v3::Response::new()))
}
