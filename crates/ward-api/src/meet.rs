//! Ward's meetings API: meetings with a lobby, moderator controls and video consultations
//! (issue 8), for the browser app's meeting pages. Paths under `/_ward/meet/v1`; bodies and
//! answers are JSON; errors are Matrix errors (`errcode`, `error`). Matrix auth (an access
//! token) where it says so; guests authenticate their knock with its secret
//! (`Authorization: Bearer <knock_secret>`). Every answer is `Cache-Control: no-store`.
//!
//! Meetings (Matrix auth):
//! - `POST /meetings` `{kind?: "meeting"|"consultation", title?, origin_room?, members_enter?}`
//!   → `{meeting_id}`
//! - `GET /meetings` → `{meetings: [{meeting_id, kind, title, origin_room, created_ms, locked, pin_required}]}`
//!   (the caller's open meetings)
//! - `POST /meetings/{id}/join` → `{token, ws_url_path: "/rtc", identity, room, role}` (moderators;
//!   in a consultation while a patient is admitted, only the session's holders — the moderator
//!   who admitted the patient and the colleague it was handed over to — others get 403
//!   `M_FORBIDDEN` "a consultation is in progress; …". The SFU's join gate applies the same rule.
//!   While such a session runs, admit, lock, PIN, remove, mute and end below are the holders'
//!   alone too: 403 `M_FORBIDDEN` for other moderators.)
//!
//! Public (no auth):
//! - `GET /meetings/{id}` → `{kind, title, locked, pin_required, ended: false}` (404 unknown or ended)
//! - `POST /meetings/{id}/knock` `{display_name, pin?}` → `{meeting_id, knock_id, knock_secret}`
//! - `GET /meetings/{id}/knock/{knock_id}?timeout_ms=` (knock secret) →
//!   `{status, token?, ws_url_path?, identity?, room?, role?}`; long-polls while `waiting`
//! - `DELETE /meetings/{id}/knock/{knock_id}` (knock secret) → `{}`
//! - `GET /patient-links/{link_token}` → `{meeting_id, title, expires_ms, slot_start_ms, slot_end_ms}`
//! - `POST /patient-links/{link_token}/knock` `{display_name}` → `{meeting_id, knock_id, knock_secret}`
//!
//! Moderators (Matrix auth):
//! - `GET /meetings/{id}/lobby?since=&timeout_ms=` → `{waiting: [entry], admitted: [entry], since}`,
//!   entry `{knock_id, display_name, identity, patient, link_ref, since_ms}` (`link_ref`: the
//!   patient link's reference, null for guests); with `since` from the last
//!   answer, waits until the lobby changes
//! - `POST /meetings/{id}/lobby/{knock_id}/admit`, `…/reject` → `{}`
//! - `PUT /meetings/{id}/lock` `{locked}`, `PUT /meetings/{id}/pin` `{pin: "…" | null}` → `{}`
//! - `POST /meetings/{id}/participants/{identity}/remove` → `{}`
//! - `POST /meetings/{id}/participants/{identity}/mute` `{track_sid}` → `{}`
//! - `POST /meetings/{id}/end` → `{}`
//! - `POST /meetings/{id}/patient-links` `{expires_in_ms, slot_start_ms?, slot_end_ms?}` →
//!   `{link_token, link_ref, expires_ms}` (consultations)
//! - `POST /meetings/{id}/handover` `{user_id}` → `{}` (consultations): a holder of the running
//!   session lets a colleague (who may moderate the room) enter it. 400 `M_INVALID_PARAM` for a
//!   bad `user_id`, oneself, or a team meeting; 403 `M_FORBIDDEN` if the caller does not hold
//!   the session or the colleague may not moderate; 404 unknown or ended meeting; 409 when no
//!   session is running.

use axum::Json;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use ward_service::{KnockStatus, LobbyEntry, MeetingToken};

use crate::AppState;
use crate::client::PathParams;
use crate::error::ApiError;
use crate::extract::{Auth, ClientAddr, read_body};

/// Largest body of a meetings request: they are a few short fields, and several endpoints are
/// open to anyone.
pub const MEET_BODY_MAX_BYTES: usize = 4096;

/// Where LiveKit clients find the signalling WebSocket: the SDKs take the server's origin
/// (`wss://host`) and add this path themselves.
const WS_URL_PATH: &str = "/rtc";

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    const P: &str = "/_ward/meet/v1";
    router
        .route(&format!("{P}/meetings"), get(my_meetings).post(create))
        .route(&format!("{P}/meetings/{{id}}"), get(public_info))
        .route(&format!("{P}/meetings/{{id}}/join"), post(join))
        .route(&format!("{P}/meetings/{{id}}/knock"), post(knock))
        .route(&format!("{P}/meetings/{{id}}/knock/{{knock_id}}"), get(poll_knock).delete(leave_knock))
        .route(&format!("{P}/meetings/{{id}}/lobby"), get(lobby))
        .route(&format!("{P}/meetings/{{id}}/lobby/{{knock_id}}/admit"), post(admit))
        .route(&format!("{P}/meetings/{{id}}/lobby/{{knock_id}}/reject"), post(reject))
        .route(&format!("{P}/meetings/{{id}}/lock"), put(lock))
        .route(&format!("{P}/meetings/{{id}}/pin"), put(pin))
        .route(&format!("{P}/meetings/{{id}}/participants/{{identity}}/remove"), post(remove))
        .route(&format!("{P}/meetings/{{id}}/participants/{{identity}}/mute"), post(mute))
        .route(&format!("{P}/meetings/{{id}}/end"), post(end))
        .route(&format!("{P}/meetings/{{id}}/patient-links"), post(patient_link))
        .route(&format!("{P}/meetings/{{id}}/handover"), post(handover))
        .route(&format!("{P}/patient-links/{{token}}"), get(patient_link_info))
        .route(&format!("{P}/patient-links/{{token}}/knock"), post(patient_knock))
}

/// A JSON object body of at most [`MEET_BODY_MAX_BYTES`]; an empty body counts as `{}`.
pub(crate) struct MeetBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for MeetBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req.into_body(), MEET_BODY_MAX_BYTES).await?;
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::from_json(&e))?;
        if !value.is_object() {
            return Err(ApiError::not_json("the body must be a JSON object"));
        }
        serde_json::from_value(value).map(MeetBody).map_err(|e| ApiError::from_json(&e))
    }
}

/// A guest's knock secret: `Authorization: Bearer <knock_secret>`.
pub(crate) struct KnockSecret(pub String);

impl FromRequestParts<AppState> for KnockSecret {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, secret)| secret.trim().to_owned())
            .filter(|s| !s.is_empty())
            .map(KnockSecret)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ruma::api::error::ErrorKind::MissingToken,
                    "the knock secret is required (Authorization: Bearer <knock_secret>)",
                )
            })
    }
}

/// `timeout_ms` and `since` from the query string.
#[derive(Default)]
struct PollQuery {
    timeout_ms: Option<u64>,
    since: Option<String>,
}

impl FromRequestParts<AppState> for PollQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        let mut q = PollQuery::default();
        for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
            match &*k {
                "timeout_ms" => {
                    q.timeout_ms = Some(v.parse().map_err(|_| {
                        ApiError::invalid_param("timeout_ms must be a non-negative whole number")
                    })?)
                }
                "since" => q.since = Some(v.into_owned()),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// Answers must not be kept by caches: they carry tokens and secrets.
fn no_store(value: Value) -> Response {
    let mut response = Json(value).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn param(params: &[String], i: usize) -> &str {
    params.get(i).map(String::as_str).unwrap_or_default()
}

fn token_json(t: &MeetingToken) -> Value {
    json!({
        "token": t.token,
        "ws_url_path": WS_URL_PATH,
        "identity": t.identity,
        "room": t.room,
        "role": t.role,
    })
}

type Answer = Result<Response, ApiError>;

#[derive(Debug, Default, Deserialize)]
struct CreateBody {
    kind: Option<String>,
    title: Option<String>,
    origin_room: Option<String>,
    members_enter: Option<bool>,
}

async fn create(
    State(state): State<AppState>,
    Auth(authed): Auth,
    MeetBody(body): MeetBody<CreateBody>,
) -> Answer {
    let input = ward_service::CreateMeeting {
        kind: body.kind,
        title: body.title,
        origin_room: body.origin_room,
        members_enter: body.members_enter,
    };
    let meeting_id = state.services.create_meeting(&authed, input).await?;
    Ok(no_store(json!({ "meeting_id": meeting_id })))
}

async fn my_meetings(State(state): State<AppState>, Auth(authed): Auth) -> Answer {
    let meetings = state.services.my_meetings(&authed).await?;
    let list: Vec<Value> = meetings
        .iter()
        .map(|m| {
            json!({
                "meeting_id": m.meeting_id,
                "kind": m.kind.as_str(),
                "title": m.title,
                "origin_room": m.origin_room,
                "created_ms": m.created_ms,
                "locked": m.locked,
                "pin_required": m.pin_hash.is_some(),
            })
        })
        .collect();
    Ok(no_store(json!({ "meetings": list })))
}

async fn public_info(State(state): State<AppState>, PathParams(p): PathParams) -> Answer {
    let m = state.services.meeting_public(param(&p, 0)).await?;
    Ok(no_store(json!({
        "kind": m.kind.as_str(),
        "title": m.title,
        "locked": m.locked,
        "pin_required": m.pin_required,
        "ended": false,
    })))
}

async fn join(State(state): State<AppState>, Auth(authed): Auth, PathParams(p): PathParams) -> Answer {
    let token = state.services.join_meeting(&authed, param(&p, 0)).await?;
    Ok(no_store(token_json(&token)))
}

#[derive(Debug, Deserialize)]
struct KnockBody {
    display_name: String,
    pin: Option<String>,
}

fn knock_json(k: &ward_service::KnockCreated) -> Value {
    json!({ "meeting_id": k.meeting_id, "knock_id": k.knock_id, "knock_secret": k.knock_secret })
}

async fn knock(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    PathParams(p): PathParams,
    MeetBody(body): MeetBody<KnockBody>,
) -> Answer {
    let created =
        state.services.knock_meeting(param(&p, 0), &body.display_name, body.pin.as_deref(), &addr).await?;
    Ok(no_store(knock_json(&created)))
}

async fn poll_knock(
    State(state): State<AppState>,
    PathParams(p): PathParams,
    KnockSecret(secret): KnockSecret,
    query: PollQuery,
) -> Answer {
    let knock = state.services.poll_knock(param(&p, 0), param(&p, 1), &secret, query.timeout_ms).await?;
    let mut answer = match &knock.token {
        Some(t) => token_json(t),
        None => json!({}),
    };
    answer["status"] = json!(knock.status.as_str());
    Ok(no_store(answer))
}

async fn leave_knock(
    State(state): State<AppState>,
    PathParams(p): PathParams,
    KnockSecret(secret): KnockSecret,
) -> Answer {
    state.services.leave_knock(param(&p, 0), param(&p, 1), &secret).await?;
    Ok(no_store(json!({})))
}

fn entry_json(e: &LobbyEntry) -> Value {
    json!({
        "knock_id": e.knock_id,
        "display_name": e.display_name,
        "identity": e.identity,
        "patient": e.patient,
        "link_ref": e.link_ref,
        "since_ms": e.since_ms,
    })
}

async fn lobby(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(p): PathParams,
    query: PollQuery,
) -> Answer {
    let lobby = state.services.lobby(&authed, param(&p, 0), query.since.as_deref(), query.timeout_ms).await?;
    let of = |status: KnockStatus| -> Vec<Value> {
        lobby.entries.iter().filter(|e| e.status == status).map(entry_json).collect()
    };
    Ok(no_store(json!({
        "waiting": of(KnockStatus::Waiting),
        "admitted": of(KnockStatus::Admitted),
        "since": lobby.since,
    })))
}

async fn admit(State(state): State<AppState>, Auth(authed): Auth, PathParams(p): PathParams) -> Answer {
    state.services.admit_knock(&authed, param(&p, 0), param(&p, 1)).await?;
    Ok(no_store(json!({})))
}

async fn reject(State(state): State<AppState>, Auth(authed): Auth, PathParams(p): PathParams) -> Answer {
    state.services.reject_knock(&authed, param(&p, 0), param(&p, 1)).await?;
    Ok(no_store(json!({})))
}

#[derive(Debug, Deserialize)]
struct LockBody {
    locked: bool,
}

async fn lock(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(p): PathParams,
    MeetBody(body): MeetBody<LockBody>,
) -> Answer {
    state.services.set_meeting_locked(&authed, param(&p, 0), body.locked).await?;
    Ok(no_store(json!({})))
}

async fn pin(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(p): PathParams,
    MeetBody(body): MeetBody<serde_json::Map<String, Value>>,
) -> Answer {
    // `null` clears the PIN; a missing field is a mistake, not a request to clear it.
    let pin = match body.get("pin") {
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ruma::api::error::ErrorKind::MissingParam,
                "missing field `pin`",
            ));
        }
        Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ruma::api::error::ErrorKind::BadJson,
                "`pin` must be a string or null",
            ));
        }
    };
    state.services.set_meeting_pin(&authed, param(&p, 0), pin).await?;
    Ok(no_store(json!({})))
}

async fn remove(State(state): State<AppState>, Auth(authed): Auth, PathParams(p): PathParams) -> Answer {
    state.services.remove_meeting_participant(&authed, param(&p, 0), param(&p, 1)).await?;
    Ok(no_store(json!({})))
}

#[derive(Debug, Deserialize)]
struct MuteBody {
    track_sid: String,
}

async fn mute(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(p): PathParams,
    MeetBody(body): MeetBody<MuteBody>,
) -> Answer {
    state.services.mute_meeting_participant(&authed, param(&p, 0), param(&p, 1), &body.track_sid).await?;
    Ok(no_store(json!({})))
}

async fn end(State(state): State<AppState>, Auth(authed): Auth, PathParams(p): PathParams) -> Answer {
    state.services.end_meeting(&authed, param(&p, 0)).await?;
    Ok(no_store(json!({})))
}

#[derive(Debug, Deserialize)]
struct PatientLinkBody {
    expires_in_ms: u64,
    slot_start_ms: Option<u64>,
    slot_end_ms: Option<u64>,
}

async fn patient_link(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(p): PathParams,
    MeetBody(body): MeetBody<PatientLinkBody>,
) -> Answer {
    let link = state
        .services
        .create_patient_link(&authed, param(&p, 0), body.expires_in_ms, body.slot_start_ms, body.slot_end_ms)
        .await?;
    Ok(no_store(
        json!({ "link_token": link.link_token, "link_ref": link.link_ref, "expires_ms": link.expires_ms }),
    ))
}

async fn patient_link_info(State(state): State<AppState>, PathParams(p): PathParams) -> Answer {
    let info = state.services.patient_link_info(param(&p, 0)).await?;
    Ok(no_store(json!({
        "meeting_id": info.meeting_id,
        "title": info.title,
        "expires_ms": info.expires_ms,
        "slot_start_ms": info.slot_start_ms,
        "slot_end_ms": info.slot_end_ms,
    })))
}

#[derive(Debug, Deserialize)]
struct PatientKnockBody {
    display_name: String,
}

async fn patient_knock(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    PathParams(p): PathParams,
    MeetBody(body): MeetBody<PatientKnockBody>,
) -> Answer {
    let created = state.services.knock_patient_link(param(&p, 0), &body.display_name, &addr).await?;
    Ok(no_store(knock_json(&created)))
}

#[derive(Debug, Deserialize)]
struct HandoverBody {
    user_id: String,
}

async fn handover(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(p): PathParams,
    MeetBody(body): MeetBody<HandoverBody>,
) -> Answer {
    state.services.hand_over_consultation(&authed, param(&p, 0), &body.user_id).await?;
    Ok(no_store(json!({})))
}
