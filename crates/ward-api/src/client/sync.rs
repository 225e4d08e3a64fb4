//! `GET /_matrix/client/v3/sync` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3sync>

use axum::Router;
use axum::extract::State;
use ruma::api::client::sync::sync_events::{self, v3};
use ruma::{OwnedUserId, UInt};
use ward_service::rooms::{FilterInput, SyncInput, Timeline};

use axum::response::{IntoResponse, Response};
use ruma::api::OutgoingResponseExt;
use serde_json::Value;

use super::rooms::{internal, raws, room_id};
use super::user_id;
use crate::error::ApiError;
use crate::extract::{Auth, Ruma};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    endpoint::<v3::Request, _, _>(router, sync)
}

fn timeline(t: Timeline) -> Result<v3::Timeline, ApiError> {
    let mut out = v3::Timeline::new();
    out.limited = t.limited;
    out.prev_batch = t.prev_batch;
    out.events = raws(&t.events)?;
    Ok(out)
}

fn uint(n: u64) -> UInt {
    UInt::new(n).unwrap_or(UInt::MAX)
}

async fn sync(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<v3::Request>,
) -> Result<SyncResponse, ApiError> {
    let filter = match &req.filter {
        Some(v3::Filter::FilterDefinition(def)) => {
            Some(FilterInput::Inline(serde_json::to_value(def).map_err(internal)?))
        }
        Some(v3::Filter::FilterId(id)) => Some(FilterInput::Id(id.clone())),
        Some(_) | None => None,
    };
    let input = SyncInput {
        since: req.since,
        timeout_ms: req.timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        full_state: req.full_state,
        filter,
        set_presence: Some(req.set_presence.as_str().to_owned()),
        use_state_after: req.use_state_after,
    };
    let state_of = |events: v3::StateEvents| {
        if req.use_state_after { v3::State::After(events) } else { v3::State::Before(events) }
    };
    let out = state.services.sync(&authed, input).await?;
    let mut resp = v3::Response::new(out.next_batch);
    resp.account_data.events = raws(&out.account_data)?;
    resp.presence.events = raws(&out.presence)?;
    resp.to_device.events = raws(&out.to_device)?;
    resp.device_lists.changed =
        out.device_lists.changed.iter().map(|u| user_id(u)).collect::<Result<_, _>>()?;
    resp.device_lists.left = out.device_lists.left.iter().map(|u| user_id(u)).collect::<Result<_, _>>()?;
    for (algorithm, n) in out.one_time_keys_count {
        resp.device_one_time_keys_count.insert(algorithm.into(), uint(n));
    }
    resp.device_unused_fallback_key_types =
        Some(out.unused_fallback_key_types.into_iter().map(Into::into).collect());
    for (id, room) in out.join {
        let mut joined = v3::JoinedRoom::new();
        joined.timeline = timeline(room.timeline)?;
        joined.account_data.events = raws(&room.account_data)?;
        let mut st = v3::StateEvents::new();
        st.events = raws(&room.state)?;
        joined.state = state_of(st);
        if let Some((joined_count, invited_count, heroes)) = room.summary {
            let mut summary = v3::RoomSummary::new();
            summary.joined_member_count = Some(uint(joined_count));
            summary.invited_member_count = Some(uint(invited_count));
            summary.heroes = heroes.into_iter().filter_map(|h| OwnedUserId::try_from(h).ok()).collect();
            joined.summary = summary;
        }
        joined.ephemeral.events = raws(&room.ephemeral)?;
        let mut unread = sync_events::UnreadNotificationsCount::new();
        unread.notification_count = Some(uint(room.notification_count));
        unread.highlight_count = Some(uint(room.highlight_count));
        joined.unread_notifications = unread;
        for (root, (n, h)) in room.thread_counts {
            let Ok(root) = ruma::OwnedEventId::try_from(root) else { continue };
            let mut c = sync_events::UnreadNotificationsCount::new();
            c.notification_count = Some(uint(n));
            c.highlight_count = Some(uint(h));
            joined.unread_thread_notifications.insert(root, c);
        }
        resp.rooms.join.insert(room_id(&id)?, joined);
    }
    for (id, room) in out.invite {
        let mut invited = v3::InvitedRoom::new();
        invited.invite_state.events = raws(&room.invite_state)?;
        resp.rooms.invite.insert(room_id(&id)?, invited);
    }
    for (id, room) in out.knock {
        let mut knocked = v3::KnockedRoom::new();
        knocked.knock_state.events = raws(&room.invite_state)?;
        resp.rooms.knock.insert(room_id(&id)?, knocked);
    }
    for (id, room) in out.leave {
        let mut left = v3::LeftRoom::new();
        left.timeline = timeline(room.timeline)?;
        let mut st = v3::StateEvents::new();
        st.events = raws(&room.state)?;
        left.state = state_of(st);
        resp.rooms.leave.insert(room_id(&id)?, left);
    }
    Ok(SyncResponse(resp))
}

/// ruma leaves out empty lists, which the spec allows, but matrix-nio rejects a room without
/// `state.events` (and Synapse always sends them), so the sync body is completed here.
struct SyncResponse(v3::Response);

fn ensure_events(v: &mut Value, path: &[&str]) {
    let mut cur = v;
    for key in path {
        let Value::Object(m) = cur else { return };
        cur = m.entry(key.to_string()).or_insert_with(|| Value::Object(Default::default()));
    }
    if let Value::Object(m) = cur {
        m.entry("events").or_insert_with(|| Value::Array(vec![]));
    }
}

impl IntoResponse for SyncResponse {
    fn into_response(self) -> Response {
        let http = match self.0.try_into_http_response::<Vec<u8>>() {
            Ok(r) => r,
            Err(e) => return internal(e).into_response(),
        };
        let (parts, body) = http.into_parts();
        let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
            return internal("sync body is not JSON").into_response();
        };
        for top in ["account_data", "presence", "to_device"] {
            ensure_events(&mut v, &[top]);
        }
        for (kind, lists) in [
            ("join", &["timeline", "ephemeral", "account_data"][..]),
            ("leave", &["timeline", "account_data"][..]),
            ("invite", &["invite_state"][..]),
            ("knock", &["knock_state"][..]),
        ] {
            let ids: Vec<String> = v
                .pointer(&format!("/rooms/{kind}"))
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for id in ids {
                let room_path = format!("/rooms/{kind}/{}", id.replace('~', "~0").replace('/', "~1"));
                let has_after = v.pointer(&format!("{room_path}/state_after")).is_some();
                if kind != "invite"
                    && kind != "knock"
                    && !has_after
                    && let Some(room) = v.pointer_mut(&room_path)
                {
                    ensure_events(room, &["state"]);
                }
                for list in lists {
                    if let Some(room) =
                        v.pointer_mut(&format!("/rooms/{kind}/{}", id.replace('~', "~0").replace('/', "~1")))
                    {
                        ensure_events(room, &[list]);
                    }
                }
            }
        }
        match serde_json::to_vec(&v) {
            Ok(bytes) => http::Response::from_parts(parts, axum::body::Body::from(bytes)),
            Err(e) => internal(e).into_response(),
        }
    }
}
