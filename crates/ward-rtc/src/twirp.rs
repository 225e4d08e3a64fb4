//! `POST /twirp/livekit.RoomService/{method}`: LiveKit's room service API, so that operators
//! and applications script rooms with LiveKit's server SDKs (`livekit-api`) as they would
//! against a LiveKit server: list rooms and participants, remove a participant, mute a track,
//! send data, create and delete rooms.
//!
//! Twirp: the request is a protobuf message (`application/protobuf`) or its JSON form
//! (`application/json`); the answer is in the same encoding; errors are JSON
//! `{"code": …, "msg": …}` with Twirp's status for the code. The bearer token needs
//! `roomList` (ListRooms), `roomCreate` (CreateRoom, DeleteRoom) or `roomAdmin` for the room
//! named in the request (everything else), as in LiveKit.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use ward_sfu::ServiceError;
use ward_sfu::protocol as lk;

use crate::Rtc;
use crate::runtime::{ServiceReply, ServiceRequest};
use crate::token::{ServiceGrant, verify_service};

/// Largest request body (a `SendData` payload plus its envelope).
pub const MAX_SERVICE_BODY_BYTES: usize = 128 * 1024;

struct TwirpError {
    code: &'static str,
    status: StatusCode,
    msg: String,
}

impl TwirpError {
    fn new(code: &'static str, status: StatusCode, msg: impl Into<String>) -> Self {
        Self { code, status, msg: msg.into() }
    }
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "msg": self.msg });
        (self.status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

impl From<ServiceError> for TwirpError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NoRoom(_) | ServiceError::NoParticipant(_) | ServiceError::NoTrack(_) => {
                Self::new("not_found", StatusCode::NOT_FOUND, e.to_string())
            }
            ServiceError::Refused(_) => Self::new("permission_denied", StatusCode::FORBIDDEN, e.to_string()),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

fn decode<T: Message + Default + DeserializeOwned>(encoding: Encoding, body: &[u8]) -> Result<T, TwirpError> {
    let bad = |e: String| {
        TwirpError::new("malformed", StatusCode::BAD_REQUEST, format!("the request body cannot be read: {e}"))
    };
    match encoding {
        Encoding::Protobuf => T::decode(body).map_err(|e| bad(e.to_string())),
        // An empty JSON body means an empty message.
        Encoding::Json if body.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        Encoding::Json => serde_json::from_slice(body).map_err(|e| bad(e.to_string())),
    }
}

fn encode<T: Message + Serialize>(encoding: Encoding, message: &T) -> Response {
    let (content_type, body) = match encoding {
        Encoding::Protobuf => ("application/protobuf", message.encode_to_vec()),
        Encoding::Json => ("application/json", serde_json::to_vec(message).unwrap_or_default()),
    };
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn need(allowed: bool, what: &str) -> Result<(), TwirpError> {
    if allowed {
        Ok(())
    } else {
        Err(TwirpError::new(
            "permission_denied",
            StatusCode::FORBIDDEN,
            format!("the token does not grant {what}"),
        ))
    }
}

fn admin_of(grant: &ServiceGrant, room: &str) -> Result<(), TwirpError> {
    need(grant.room_admin && grant.room.as_deref() == Some(room), &format!("roomAdmin for room `{room}`"))
}

pub(crate) async fn room_service(
    State(rtc): State<Arc<Rtc>>,
    Path(method): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&rtc, &method, &uri, &headers, &body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    rtc: &Rtc,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, TwirpError> {
    let encoding = match headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some(t) if t.starts_with("application/protobuf") => Encoding::Protobuf,
        Some(t) if t.starts_with("application/json") => Encoding::Json,
        _ => {
            return Err(TwirpError::new(
                "malformed",
                StatusCode::BAD_REQUEST,
                "Content-Type must be application/protobuf or application/json",
            ));
        }
    };
    if body.len() > MAX_SERVICE_BODY_BYTES {
        return Err(TwirpError::new(
            "malformed",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_SERVICE_BODY_BYTES} bytes"),
        ));
    }
    let unauthenticated =
        |e: crate::TokenError| TwirpError::new("unauthenticated", StatusCode::UNAUTHORIZED, e.to_string());
    let token = crate::http::access_token(uri, headers).map_err(unauthenticated)?;
    let grant = verify_service(&token, &rtc.settings.keys, SystemTime::now()).map_err(unauthenticated)?;
    let Some(sfu) = rtc.sfu() else {
        return Err(TwirpError::new(
            "unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "the media server is not running",
        ));
    };

    let request = match method {
        "ListRooms" => {
            need(grant.room_list, "roomList")?;
            let r: lk::ListRoomsRequest = decode(encoding, body)?;
            ServiceRequest::ListRooms { names: r.names }
        }
        "CreateRoom" => {
            need(grant.room_create, "roomCreate")?;
            let r: lk::CreateRoomRequest = decode(encoding, body)?;
            ServiceRequest::CreateRoom {
                name: r.name,
                empty_timeout_s: r.empty_timeout,
                max_participants: r.max_participants,
                metadata: r.metadata,
            }
        }
        "DeleteRoom" => {
            need(grant.room_create, "roomCreate")?;
            let r: lk::DeleteRoomRequest = decode(encoding, body)?;
            ServiceRequest::DeleteRoom { room: r.room }
        }
        "ListParticipants" => {
            let r: lk::ListParticipantsRequest = decode(encoding, body)?;
            admin_of(&grant, &r.room)?;
            ServiceRequest::ListParticipants { room: r.room }
        }
        "GetParticipant" => {
            let r: lk::RoomParticipantIdentity = decode(encoding, body)?;
            admin_of(&grant, &r.room)?;
            ServiceRequest::GetParticipant { room: r.room, identity: r.identity }
        }
        "RemoveParticipant" => {
            let r: lk::RoomParticipantIdentity = decode(encoding, body)?;
            admin_of(&grant, &r.room)?;
            ServiceRequest::RemoveParticipant { room: r.room, identity: r.identity }
        }
        "MutePublishedTrack" => {
            let r: lk::MuteRoomTrackRequest = decode(encoding, body)?;
            admin_of(&grant, &r.room)?;
            ServiceRequest::MuteTrack {
                room: r.room,
                identity: r.identity,
                track_sid: r.track_sid,
                muted: r.muted,
            }
        }
        "SendData" => {
            let r: lk::SendDataRequest = decode(encoding, body)?;
            admin_of(&grant, &r.room)?;
            let reliable = r.kind != lk::data_packet::Kind::Lossy as i32;
            #[allow(deprecated)] // LiveKit's clients still read the user packet's own fields.
            let packet = lk::DataPacket {
                kind: r.kind,
                destination_identities: r.destination_identities.clone(),
                value: Some(lk::data_packet::Value::User(lk::UserPacket {
                    payload: r.data,
                    topic: r.topic,
                    destination_identities: r.destination_identities,
                    nonce: r.nonce,
                    ..Default::default()
                })),
                ..Default::default()
            };
            ServiceRequest::SendData { room: r.room, reliable, packet: Box::new(packet) }
        }
        other => {
            return Err(TwirpError::new(
                "bad_route",
                StatusCode::NOT_FOUND,
                format!("RoomService.{other} is not available on this server"),
            ));
        }
    };
    let reply = sfu.service(request).await.map_err(|_| {
        TwirpError::new("unavailable", StatusCode::SERVICE_UNAVAILABLE, "the media server is not available")
    })??;
    Ok(match (method, reply) {
        ("ListRooms", ServiceReply::Rooms(rooms)) => encode(encoding, &lk::ListRoomsResponse { rooms }),
        ("ListParticipants", ServiceReply::Participants(participants)) => {
            encode(encoding, &lk::ListParticipantsResponse { participants })
        }
        (_, ServiceReply::Room(room)) => encode(encoding, room.as_ref()),
        (_, ServiceReply::Participant(p)) => encode(encoding, p.as_ref()),
        (_, ServiceReply::Track(track)) => {
            encode(encoding, &lk::MuteRoomTrackResponse { track: Some(*track) })
        }
        ("DeleteRoom", _) => encode(encoding, &lk::DeleteRoomResponse {}),
        ("RemoveParticipant", _) => encode(encoding, &lk::RemoveParticipantResponse {}),
        (_, _) => encode(encoding, &lk::SendDataResponse {}),
    })
}
