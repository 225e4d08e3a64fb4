//! Room aliases and the room directory.
//!
//! - `PUT|GET|DELETE /_matrix/client/v3/directory/room/{roomAlias}` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3directoryroomroomalias>
//! - `GET /_matrix/client/v3/rooms/{roomId}/aliases` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3roomsroomidaliases>
//! - `GET|PUT /_matrix/client/v3/directory/list/room/{roomId}` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3directorylistroomroomid>
//! - `GET|POST /_matrix/client/v3/publicRooms` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3publicrooms>
//!
//! Ward lists its public rooms to logged-in users only (like Synapse's default): a practice's
//! room list is not for the whole internet.

use axum::Router;
use axum::extract::State;
use ruma::api::client::alias::{create_alias, delete_alias, get_alias};
use ruma::api::client::directory::{
    get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility,
};
use ruma::api::client::room::{Visibility, aliases};
use ruma::directory::{PublicRoomsChunk, PublicRoomsChunkInit};
use ruma::room::JoinRuleKind;
use ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedServerName, UInt};
use ward_service::rooms::PublicRoomsPage;

use super::rooms::{internal, room_id};
use crate::error::ApiError;
use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<create_alias::v3::Request, _, _>(router, put_alias);
    let router = endpoint::<get_alias::v3::Request, _, _>(router, get);
    let router = endpoint::<delete_alias::v3::Request, _, _>(router, delete);
    let router = endpoint::<aliases::v3::Request, _, _>(router, room_aliases);
    let router = endpoint::<get_room_visibility::v3::Request, _, _>(router, visibility);
    let router = endpoint::<set_room_visibility::v3::Request, _, _>(router, set_visibility);
    let router = endpoint::<get_public_rooms::v3::Request, _, _>(router, public_rooms);
    endpoint::<get_public_rooms_filtered::v3::Request, _, _>(router, public_rooms_filtered)
}

async fn put_alias(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<create_alias::v3::Request>,
) -> Result<RumaResponse<create_alias::v3::Response>, ApiError> {
    state.services.create_alias(&authed, req.room_alias.as_str(), req.room_id.as_str()).await?;
    Ok(RumaResponse(create_alias::v3::Response::new()))
}

async fn get(
    State(state): State<AppState>,
    Ruma(req): Ruma<get_alias::v3::Request>,
) -> Result<RumaResponse<get_alias::v3::Response>, ApiError> {
    let (room, servers) = state.services.resolve_alias(req.room_alias.as_str()).await?;
    let servers = servers.into_iter().filter_map(|s| OwnedServerName::try_from(s).ok()).collect();
    Ok(RumaResponse(get_alias::v3::Response::new(room_id(&room)?, servers)))
}

async fn delete(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<delete_alias::v3::Request>,
) -> Result<RumaResponse<delete_alias::v3::Response>, ApiError> {
    state.services.delete_alias(&authed, req.room_alias.as_str()).await?;
    Ok(RumaResponse(delete_alias::v3::Response::new()))
}

async fn room_aliases(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<aliases::v3::Request>,
) -> Result<RumaResponse<aliases::v3::Response>, ApiError> {
    let list = state.services.room_aliases(&authed, req.room_id.as_str()).await?;
    let list = list.into_iter().filter_map(|a| OwnedRoomAliasId::try_from(a).ok()).collect();
    Ok(RumaResponse(aliases::v3::Response::new(list)))
}

async fn visibility(
    State(state): State<AppState>,
    Ruma(req): Ruma<get_room_visibility::v3::Request>,
) -> Result<RumaResponse<get_room_visibility::v3::Response>, ApiError> {
    let published = state.services.is_published(req.room_id.as_str()).await?;
    let v = if published { Visibility::Public } else { Visibility::Private };
    Ok(RumaResponse(get_room_visibility::v3::Response::new(v)))
}

async fn set_visibility(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_room_visibility::v3::Request>,
) -> Result<RumaResponse<set_room_visibility::v3::Response>, ApiError> {
    let public = match req.visibility {
        Visibility::Public => true,
        Visibility::Private => false,
        _ => return Err(ApiError::invalid_param("visibility must be public or private")),
    };
    state.services.set_published(&authed, req.room_id.as_str(), public).await?;
    Ok(RumaResponse(set_room_visibility::v3::Response::new()))
}

/// A directory page in ruma's terms: rooms, next and previous tokens, total.
type Page = (Vec<PublicRoomsChunk>, Option<String>, Option<String>, UInt);

fn chunk(page: PublicRoomsPage) -> Result<Page, ApiError> {
    let mut out = Vec::with_capacity(page.chunk.len());
    for r in page.chunk {
        let mut c: PublicRoomsChunk = PublicRoomsChunkInit {
            num_joined_members: UInt::new(r.num_joined_members).unwrap_or_default(),
            room_id: OwnedRoomId::try_from(r.room_id).map_err(internal)?,
            world_readable: r.world_readable,
            guest_can_join: r.guest_can_join,
        }
        .into();
        c.name = r.name;
        c.topic = r.topic;
        c.canonical_alias = r.canonical_alias.and_then(|a| OwnedRoomAliasId::try_from(a).ok());
        c.avatar_url = r.avatar_url.map(Into::into);
        c.join_rule = r.join_rule.map(|j| JoinRuleKind::from(j.as_str())).unwrap_or(JoinRuleKind::Public);
        c.room_type = r.room_type.map(|t| t.as_str().into());
        out.push(c);
    }
    Ok((out, page.next_batch, page.prev_batch, UInt::new(page.total_room_count_estimate).unwrap_or_default()))
}

fn limit(l: Option<UInt>) -> Option<usize> {
    l.map(|l| usize::try_from(u64::from(l)).unwrap_or(usize::MAX))
}

async fn public_rooms(
    State(state): State<AppState>,
    Auth(_): Auth,
    Ruma(req): Ruma<get_public_rooms::v3::Request>,
) -> Result<RumaResponse<get_public_rooms::v3::Response>, ApiError> {
    let page = state.services.public_rooms(limit(req.limit), req.since.as_deref(), None).await?;
    let (rooms, next, prev, total) = chunk(page)?;
    let mut resp = get_public_rooms::v3::Response::new(rooms);
    resp.next_batch = next;
    resp.prev_batch = prev;
    resp.total_room_count_estimate = Some(total);
    Ok(RumaResponse(resp))
}

async fn public_rooms_filtered(
    State(state): State<AppState>,
    Auth(_): Auth,
    Ruma(req): Ruma<get_public_rooms_filtered::v3::Request>,
) -> Result<RumaResponse<get_public_rooms_filtered::v3::Response>, ApiError> {
    let page = state
        .services
        .public_rooms(limit(req.limit), req.since.as_deref(), req.filter.generic_search_term.as_deref())
        .await?;
    let (rooms, next, prev, total) = chunk(page)?;
    let mut resp = get_public_rooms_filtered::v3::Response::new();
    resp.chunk = rooms;
    resp.next_batch = next;
    resp.prev_batch = prev;
    resp.total_room_count_estimate = Some(total);
    Ok(RumaResponse(resp))
}
