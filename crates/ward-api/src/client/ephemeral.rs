//! Typing notifications, read receipts, read markers.
//!
//! - `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}` — <https://spec.matrix.org/latest/client-server-api/#put_matrixclientv3roomsroomidtypinguserid>
//! - `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3roomsroomidreceiptreceipttypeeventid>
//! - `POST /_matrix/client/v3/rooms/{roomId}/read_markers` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3roomsroomidread_markers>

use axum::Router;
use axum::extract::State;
use ruma::api::client::read_marker::set_read_marker;
use ruma::api::client::receipt::create_receipt;
use ruma::api::client::typing::create_typing_event::{self, v3::Typing};
use ruma::events::receipt::ReceiptThread;

use crate::error::ApiError;
use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<create_typing_event::v3::Request, _, _>(router, typing);
    let router = endpoint::<create_receipt::v3::Request, _, _>(router, receipt);
    endpoint::<set_read_marker::v3::Request, _, _>(router, read_markers)
}

async fn typing(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<create_typing_event::v3::Request>,
) -> Result<RumaResponse<create_typing_event::v3::Response>, ApiError> {
    let (typing, timeout) = match req.state {
        Typing::Yes(info) => (true, Some(u64::try_from(info.timeout.as_millis()).unwrap_or(u64::MAX))),
        _ => (false, None),
    };
    state.services.set_typing(&authed, req.room_id.as_str(), req.user_id.as_str(), typing, timeout).await?;
    Ok(RumaResponse(create_typing_event::v3::Response::new()))
}

async fn receipt(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<create_receipt::v3::Request>,
) -> Result<RumaResponse<create_receipt::v3::Response>, ApiError> {
    let thread = match &req.thread {
        ReceiptThread::Unthreaded => None,
        ReceiptThread::Main => Some("main".to_owned()),
        ReceiptThread::Thread(id) => Some(id.to_string()),
        other => Some(other.as_str().unwrap_or_default().to_owned()),
    };
    state
        .services
        .send_receipt(
            &authed,
            req.room_id.as_str(),
            req.receipt_type.as_ref(),
            req.event_id.as_str(),
            thread.as_deref(),
        )
        .await?;
    Ok(RumaResponse(create_receipt::v3::Response::new()))
}

async fn read_markers(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<set_read_marker::v3::Request>,
) -> Result<RumaResponse<set_read_marker::v3::Response>, ApiError> {
    state
        .services
        .set_read_markers(
            &authed,
            req.room_id.as_str(),
            req.fully_read.as_ref().map(|e| e.as_str()),
            req.read_receipt.as_ref().map(|e| e.as_str()),
            req.private_read_receipt.as_ref().map(|e| e.as_str()),
        )
        .await?;
    Ok(RumaResponse(set_read_marker::v3::Response::new()))
}
