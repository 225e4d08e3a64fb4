//! Reporting content to the server's operator.
//!
//! - `POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3roomsroomidreporteventid>
//! - `POST /_matrix/client/v3/rooms/{roomId}/report` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3roomsroomidreport>

use axum::Router;
use axum::extract::State;
use ruma::api::client::room::{report_content, report_room};
use serde::Deserialize;

use super::PathParams;
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<report_content::v3::Request, _, _>(router, report_event);
    endpoint::<report_room::v3::Request, _, _>(router, report_room)
}

/// Our own body type: the `score` that clients before spec v1.18 send is kept for the operator,
/// and ruma no longer has the field.
#[derive(Deserialize)]
struct ReportBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    score: Option<i64>,
}

async fn report_event(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(params): PathParams,
    JsonBody(body): JsonBody<ReportBody>,
) -> Result<RumaResponse<report_content::v3::Response>, ApiError> {
    let [room, event] = <[String; 2]>::try_from(params).map_err(|_| ApiError::unrecognized_path())?;
    state.services.report_event(&authed, &room, &event, body.reason, body.score).await?;
    Ok(RumaResponse(report_content::v3::Response::new()))
}

async fn report_room(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<report_room::v3::Request>,
) -> Result<RumaResponse<report_room::v3::Response>, ApiError> {
    state.services.report_room(&authed, req.room_id.as_str(), Some(req.reason)).await?;
    Ok(RumaResponse(report_room::v3::Response::new()))
}
