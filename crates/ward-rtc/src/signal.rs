//! `GET /rtc`: LiveKit's signalling WebSocket.
//!
//! The token comes as `Authorization: Bearer …` (LiveKit's Rust and Python SDKs) or as the
//! `access_token` query parameter (livekit-client). It is checked and the participant joined
//! before the upgrade (after the application's join gate, [`crate::JoinGate`], agreed), so a
//! refused client gets an HTTP status (and `/rtc/validate` the reason). The gate is asked
//! again once the participant is in, and a refusal then takes them out again: see
//! [`crate::JoinGate`] for why that closes the race with a removal;
//! after that every binary frame is one protobuf `SignalRequest` in or `SignalResponse` out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri};
use prost::Message as _;
use ward_sfu::protocol as lk;
use ward_sfu::{JoinError, JoinOptions, MAX_SIGNAL_BYTES};

use crate::Rtc;
use crate::runtime::{Outgoing, ServiceRequest, Session, SfuHandle};

/// Each signalling socket's read buffer. tungstenite allocates it per connection and zeroes
/// all of it on every read attempt, which [`run`]'s loop makes for every message it sends
/// too; at the default 128 KiB that was 128 KiB of memory per participant and a 128 KiB memset
/// per outgoing message. Signalling messages are small (an SDP is a few KiB), and larger ones
/// up to [`MAX_SIGNAL_BYTES`] are still read, in several chunks.
pub const SIGNAL_READ_BUFFER_BYTES: usize = 4 * 1024;

fn flag(query: &HashMap<String, String>, name: &str, default: bool) -> bool {
    match query.get(name).map(String::as_str) {
        Some("1" | "true") => true,
        Some("0" | "false") => false,
        _ => default,
    }
}

pub(crate) async fn rtc(
    State(rtc): State<Arc<Rtc>>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let grant = match crate::http::access_token(&uri, &headers)
        .and_then(|t| rtc.verify_token(&t, SystemTime::now()))
    {
        Ok(g) => g,
        Err(e) => return (StatusCode::UNAUTHORIZED, e.to_string()).into_response(),
    };
    if let Err(reason) = rtc.admits(&grant).await {
        return (StatusCode::FORBIDDEN, reason).into_response();
    }
    let Some(sfu) = rtc.sfu() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the media server is not running").into_response();
    };
    let options = JoinOptions {
        auto_subscribe: flag(&query, "auto_subscribe", true),
        adaptive_stream: flag(&query, "adaptive_stream", false),
        protocol: query.get("protocol").and_then(|p| p.parse().ok()).unwrap_or(0),
    };
    let resume_sid = flag(&query, "reconnect", false).then(|| query.get("sid").cloned().unwrap_or_default());
    let (room, identity) = (grant.room.clone(), grant.identity.clone());
    let joined = match &resume_sid {
        Some(sid) => sfu.resume(grant, sid.clone()).await,
        None => sfu.join(grant, options).await,
    };
    let session = match joined {
        Err(_) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "the media server is not available").into_response();
        }
        Ok(Ok(session)) => session,
        // The participant is gone: tell the client to start over with a full join.
        Ok(Err(JoinError::NothingToResume(_))) => return ws.on_upgrade(refuse_resume).into_response(),
        Ok(Err(e @ (JoinError::RoomFull(_) | JoinError::ServerFull(_)))) => {
            return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
        }
        Ok(Err(e)) => return (StatusCode::FORBIDDEN, e.to_string()).into_response(),
    };
    // Asked again now that the participant is in: the application may have closed the door
    // while the join was on its way (a removal, the end of a meeting), after the first answer
    // but before the join, when its own kick found nobody to kick.
    if let Err(reason) = rtc.admits_again(&room, &identity).await {
        let request = ServiceRequest::RemoveParticipant { room, identity };
        if let Ok(Err(e)) = sfu.service(request).await {
            tracing::debug!(error = %e, "a participant refused after joining was gone already");
        }
        return (StatusCode::FORBIDDEN, reason).into_response();
    }
    let sfu = sfu.clone();
    let (id, generation) = (session.id, session.generation);
    let on_failure = sfu.clone();
    ws.max_message_size(MAX_SIGNAL_BYTES)
        .max_frame_size(MAX_SIGNAL_BYTES)
        .read_buffer_size(SIGNAL_READ_BUFFER_BYTES)
        .on_failed_upgrade(move |e| {
            tracing::debug!(error = %e, "signalling upgrade failed");
            tokio::spawn(async move { on_failure.closed(id, generation).await });
        })
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

/// The close frame that tells a client why its connection ends after a read error: a message
/// over [`MAX_SIGNAL_BYTES`] gets 1009 and a broken frame 1002 (RFC 6455, 7.4.1). After any
/// other error (a reset connection) there is no one to tell.
fn refusal(error: axum::Error) -> Option<CloseFrame> {
    let (code, reason) = match error.into_inner().downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => {
            (close_code::SIZE, format!("a signalling message may have at most {MAX_SIGNAL_BYTES} bytes"))
        }
        tungstenite::Error::Protocol(e) => (close_code::PROTOCOL, format!("WebSocket protocol error: {e}")),
        _ => return None,
    };
    Some(CloseFrame { code, reason: reason.into() })
}

async fn run(mut socket: WebSocket, sfu: SfuHandle, mut session: Session) {
    let id = session.id;
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(bytes))) => {
                    if sfu.signal(id, bytes.to_vec()).await.is_err() {
                        break;
                    }
                }
                // JSON text frames are a debugging mode of livekit-client; the SDKs never use it.
                Some(Ok(Message::Text(_))) => tracing::debug!("text signalling frame ignored"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(e)) => {
                    tracing::info!(participant = ?id, error = %e, "signalling connection closed after a read error");
                    if let Some(close) = refusal(e) {
                        let _ = socket.send(Message::Close(Some(close))).await;
                    }
                    break;
                }
                Some(Ok(Message::Close(_))) | None => break,
            },
            outgoing = session.outgoing.recv() => match outgoing {
                Some(Outgoing::Signal(bytes)) => {
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close) | None => {
                    let close = CloseFrame { code: close_code::NORMAL, reason: "".into() };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    break;
                }
            },
        }
    }
    sfu.closed(id, session.generation).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_errors_a_client_can_be_told_about_get_a_close_frame() {
        let too_long =
            tungstenite::error::CapacityError::MessageTooLong { size: 2 << 20, max_size: MAX_SIGNAL_BYTES };
        let close = refusal(axum::Error::new(tungstenite::Error::Capacity(too_long))).expect("a close frame");
        assert_eq!(close.code, close_code::SIZE);
        assert!(close.reason.contains(&MAX_SIGNAL_BYTES.to_string()), "{}", close.reason);
        let masked = tungstenite::error::ProtocolError::UnmaskedFrameFromClient;
        let close = refusal(axum::Error::new(tungstenite::Error::Protocol(masked))).expect("a close frame");
        assert_eq!(close.code, close_code::PROTOCOL);
        assert_eq!(refusal(axum::Error::new(tungstenite::Error::ConnectionClosed)), None);
        assert_eq!(refusal(axum::Error::new(std::io::Error::other("reset"))), None);
    }
}
