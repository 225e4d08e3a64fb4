//! Room upgrades.
//!
//! - `POST /_matrix/client/v3/rooms/{roomId}/upgrade` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3roomsroomidupgrade>

use axum::Router;
use axum::extract::State;
use ruma::api::client::room::upgrade_room;

use super::rooms::room_id;
use crate::error::ApiError;
use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    endpoint::<upgrade_room::v3::Request, _, _>(router, upgrade)
}

async fn upgrade(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<upgrade_room::v3::Request>,
) -> Result<RumaResponse<upgrade_room::v3::Response>, ApiError> {
    let extra: Vec<String> = req.additional_creators.iter().map(|u| u.to_string()).collect();
    let new =
        state.services.upgrade_room(&authed, req.room_id.as_str(), req.new_version.as_str(), &extra).await?;
    Ok(RumaResponse(upgrade_room::v3::Response::new(room_id(&new)?)))
}
