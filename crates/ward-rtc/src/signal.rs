//! `GET /rtc`: LiveKit's signalling WebSocket.
//!
//! The token comes as `Authorization: Bearer …` (LiveKit's Rust and Python SDKs) or as the
//! `access_token` query parameter (livekit-client). It is checked and the participant joined
//! before the upgrade, so a refused client gets an HTTP status it can show; after that every
//! binary frame is one protobuf `SignalRequest` in and one `SignalResponse` out.
//!
//! `/rtc/v1` (LiveKit's newer single-connection signalling) answers 404 on purpose: both SDKs
//! then fall back to `/rtc`, the two-connection protocol the SFU implements.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use prost::Message as _;
use ward_sfu::protocol as lk;
use ward_sfu::{Grant, JoinError, JoinOptions, MAX_SIGNAL_BYTES};

use crate::runtime::{Outgoing, SfuHandle};

/// Checks an access token; the error text is shown to the client.
pub type VerifyToken = Arc<dyn Fn(&str) -> Result<Grant, String> + Send + Sync>;

#[derive(Clone)]
pub struct SignalState {
    pub sfu: SfuHandle,
    pub verify: VerifyToken,
}

/// The signalling routes, to be merged into Ward's HTTP router.
pub fn routes<S: Clone + Send + Sync + 'static>(state: SignalState) -> Router<S> {
    Router::new()
        .route("/rtc", get(rtc))
        .route("/rtc/v1", get(not_here))
        .route("/rtc/v1/validate", get(not_here))
        .with_state(state)
}

async fn not_here() -> Response {
    (StatusCode::NOT_FOUND, "not found: this server speaks LiveKit signalling at /rtc").into_response()
}

/// The token from the `Authorization` header or the query.
pub fn token_of<'a>(headers: &'a HeaderMap, query: &'a HashMap<String, String>) -> Option<&'a str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .or_else(|| query.get("access_token").map(String::as_str))
        .filter(|t| !t.is_empty())
}

fn flag(query: &HashMap<String, String>, name: &str, default: bool) -> bool {
    match query.get(name).map(String::as_str) {
        Some("1" | "true") => true,
        Some("0" | "false") => false,
        _ => default,
    }
}

async fn rtc(
    State(state): State<SignalState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(token) = token_of(&headers, &query) else {
        return (StatusCode::UNAUTHORIZED, "no access token").into_response();
    };
    let grant = match (state.verify)(token) {
        Ok(g) => g,
        Err(message) => return (StatusCode::UNAUTHORIZED, message).into_response(),
    };
    let options = JoinOptions {
        auto_subscribe: flag(&query, "auto_subscribe", true),
        adaptive_stream: flag(&query, "adaptive_stream", false),
        protocol: query.get("protocol").and_then(|p| p.parse().ok()).unwrap_or(0),
    };
    let resume_sid = flag(&query, "reconnect", false).then(|| query.get("sid").cloned().unwrap_or_default());
    let joined = match &resume_sid {
        Some(sid) => state.sfu.resume(grant, sid.clone()).await,
        None => state.sfu.join(grant, options).await,
    };
    let session = match joined {
        Err(_) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "the media server is not available").into_response();
        }
        Ok(Ok(session)) => session,
        Ok(Err(JoinError::NothingToResume(_))) => {
            // Tell the client to start over with a full join rather than fail.
            return ws.on_upgrade(refuse_resume).into_response();
        }
        Ok(Err(e @ (JoinError::RoomFull(_) | JoinError::ServerFull(_)))) => {
            return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
        }
        Ok(Err(e)) => return (StatusCode::FORBIDDEN, e.to_string()).into_response(),
    };
    let sfu = state.sfu.clone();
    ws.max_message_size(MAX_SIGNAL_BYTES)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "signalling upgrade failed"))
        .on_upgrade(move |socket| run(socket, sfu, session))
        .into_response()
}

async fn refuse_resume(mut socket: WebSocket) {
    let leave = lk::SignalResponse {
        message: Some(lk::signal_response::Message::Leave(lk::LeaveRequest {
            can_reconnect: true,
            reason: lk::DisconnectReason::StateMismatch as i32,
            action: lk::leave_request::Action::Reconnect as i32,
            regions: None,
        })),
    };
    let _ = socket.send(Message::Binary(leave.encode_to_vec().into())).await;
    let _ =
        socket.send(Message::Close(Some(CloseFrame { code: close_code::NORMAL, reason: "".into() }))).await;
}

async fn run(mut socket: WebSocket, sfu: SfuHandle, mut session: crate::runtime::Session) {
    let id = session.id;
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    if sfu.signal(id, bytes.to_vec()).await.is_err() {
                        break;
                    }
                }
                // JSON text frames are a debugging mode of livekit-client; unused by the SDKs.
                Some(Ok(Message::Text(_))) => tracing::debug!("text signalling frame ignored"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            outgoing = session.outgoing.recv() => match outgoing {
                Some(Outgoing::Signal(bytes)) => {
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: close_code::NORMAL, reason: "".into() }))).await;
                    break;
                }
            },
        }
    }
    sfu.closed(id).await;
}
