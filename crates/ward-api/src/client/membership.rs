//! Membership.
//!
//! - `POST /_matrix/client/v3/rooms/{roomId}/invite` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3roomsroomidinvite>
//! - `POST /_matrix/client/v3/rooms/{roomId}/join`, `/join/{roomIdOrAlias}` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3joinroomidoralias>
//! - `POST /_matrix/client/v3/rooms/{roomId}/leave` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3roomsroomidleave>
//! - `POST /_matrix/client/v3/rooms/{roomId}/kick`, `/ban`, `/unban` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3roomsroomidkick>
//! - `GET /_matrix/client/v3/joined_rooms` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3joined_rooms>

use axum::Router;
use axum::extract::State;
use ruma::api::client::knock::knock_room;
use ruma::api::client::membership::{
    ban_user, invite_user, join_room_by_id, join_room_by_id_or_alias, joined_rooms, kick_user, leave_room,
    unban_user,
};

use super::rooms::room_id;
use crate::error::ApiError;
use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<invite_user::v3::Request, _, _>(router, invite);
    let router = endpoint::<join_room_by_id::v3::Request, _, _>(router, join);
    let router = endpoint::<join_room_by_id_or_alias::v3::Request, _, _>(router, join_by_id_or_alias);
    let router = endpoint::<leave_room::v3::Request, _, _>(router, leave);
    let router = endpoint::<kick_user::v3::Request, _, _>(router, kick);
    let router = endpoint::<ban_user::v3::Request, _, _>(router, ban);
    let router = endpoint::<unban_user::v3::Request, _, _>(router, unban);
    let router = endpoint::<knock_room::v3::Request, _, _>(router, knock);
    endpoint::<joined_rooms::v3::Request, _, _>(router, joined)
}

async fn knock(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<knock_room::v3::Request>,
) -> Result<RumaResponse<knock_room::v3::Response>, ApiError> {
    let id = state.services.knock(&authed, req.room_id_or_alias.as_str(), req.reason.as_deref()).await?;
    Ok(RumaResponse(knock_room::v3::Response::new(room_id(&id)?)))
}

async fn invite(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<invite_user::v3::Request>,
) -> Result<RumaResponse<invite_user::v3::Response>, ApiError> {
    match req.recipient {
        invite_user::v3::InvitationRecipient::UserId(r) => {
            state
                .services
                .invite(&authed, req.room_id.as_str(), r.user_id.as_str(), r.reason.as_deref())
                .await?;
            Ok(RumaResponse(invite_user::v3::Response::new()))
        }
        _ => Err(ApiError::invalid_param("third-party invites are not supported")),
    }
}

async fn join(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<join_room_by_id::v3::Request>,
) -> Result<RumaResponse<join_room_by_id::v3::Response>, ApiError> {
    let id = state.services.join(&authed, req.room_id.as_str(), req.reason.as_deref()).await?;
    Ok(RumaResponse(join_room_by_id::v3::Response::new(room_id(&id)?)))
}

async fn join_by_id_or_alias(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<join_room_by_id_or_alias::v3::Request>,
) -> Result<RumaResponse<join_room_by_id_or_alias::v3::Response>, ApiError> {
    let target = req.room_id_or_alias.as_str();
    let id = state.services.join(&authed, target, req.reason.as_deref()).await?;
    Ok(RumaResponse(join_room_by_id_or_alias::v3::Response::new(room_id(&id)?)))
}

async fn leave(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<leave_room::v3::Request>,
) -> Result<RumaResponse<leave_room::v3::Response>, ApiError> {
    state.services.leave(&authed, req.room_id.as_str(), req.reason.as_deref()).await?;
    Ok(RumaResponse(leave_room::v3::Response::new()))
}

async fn kick(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<kick_user::v3::Request>,
) -> Result<RumaResponse<kick_user::v3::Response>, ApiError> {
    state.services.kick(&authed, req.room_id.as_str(), req.user_id.as_str(), req.reason.as_deref()).await?;
    Ok(RumaResponse(kick_user::v3::Response::new()))
}

async fn ban(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<ban_user::v3::Request>,
) -> Result<RumaResponse<ban_user::v3::Response>, ApiError> {
    state.services.ban(&authed, req.room_id.as_str(), req.user_id.as_str(), req.reason.as_deref()).await?;
    Ok(RumaResponse(ban_user::v3::Response::new()))
}

async fn unban(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<unban_user::v3::Request>,
) -> Result<RumaResponse<unban_user::v3::Response>, ApiError> {
    state.services.unban(&authed, req.room_id.as_str(), req.user_id.as_str(), req.reason.as_deref()).await?;
    Ok(RumaResponse(unban_user::v3::Response::new()))
}

async fn joined(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(_): Ruma<joined_rooms::v3::Request>,
) -> Result<RumaResponse<joined_rooms::v3::Response>, ApiError> {
    let rooms = state.services.joined_rooms(&authed).await?;
    let rooms = rooms.iter().map(|r| room_id(r)).collect::<Result<Vec<_>, _>>()?;
    Ok(RumaResponse(joined_rooms::v3::Response::new(rooms)))
}
