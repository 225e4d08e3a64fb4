//! `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync` — simplified sliding
//! sync, [MSC4186](https://github.com/matrix-org/matrix-spec-proposals/pull/4186) (not in the
//! spec yet; Element X and every client on matrix-rust-sdk's sync services need it).
//!
//! Parsed with ruma's `sync_events::v5` types (lax deserialisation, as clients send
//! `required_state` as `[type, state_key]` pairs); the list filters `spaces`, `tags` and
//! `not_tags`, which ruma 0.17 does not carry, are read from the body's JSON beside it. The
//! service works on its own input type.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use ruma::api::client::sync::sync_events::{UnreadNotificationsCount, v5};
use ruma::{JsOption, OwnedMxcUri, UInt};
use ward_service::sliding::{ExtensionScope, ListFilters, ListRequest, RoomConfig, SlidingInput};

use super::rooms::{internal, raws, room_id};
use super::user_id;
use crate::error::ApiError;
use crate::extract::{Auth, RumaResponse, RumaWithJson};
use crate::{AppState, unstable_endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    unstable_endpoint::<v5::Request, _, _>(router, sliding_sync)
}

fn as_raw<T>(v: &serde_json::Value) -> Result<ruma::serde::Raw<T>, ApiError> {
    serde_json::value::to_raw_value(v).map(ruma::serde::Raw::from_json).map_err(internal)
}

fn uint(n: u64) -> UInt {
    UInt::new(n).unwrap_or(UInt::MAX)
}

fn config(required_state: &[(ruma::events::StateEventType, String)], timeline_limit: UInt) -> RoomConfig {
    RoomConfig {
        required_state: required_state.iter().map(|(t, k)| (t.to_string(), k.clone())).collect(),
        timeline_limit: u64::from(timeline_limit),
    }
}

fn scope(enabled: Option<bool>, lists: &Option<Vec<String>>, rooms: Option<Vec<String>>) -> ExtensionScope {
    ExtensionScope { enabled: enabled.unwrap_or(false), lists: lists.clone(), rooms }
}

fn room_scope(rooms: &Option<Vec<v5::request::ExtensionRoomConfig>>) -> Option<Vec<String>> {
    rooms.as_ref().map(|rooms| {
        rooms
            .iter()
            .filter_map(|r| match r {
                v5::request::ExtensionRoomConfig::AllSubscribed => Some("*".to_owned()),
                v5::request::ExtensionRoomConfig::Room(id) => Some(id.to_string()),
                _ => None,
            })
            .collect()
    })
}

/// `lists.<name>.filters.<field>` of the body: absent is empty, anything but an array of
/// strings is refused.
fn filter_strings(body: &serde_json::Value, list: &str, field: &str) -> Result<Vec<String>, ApiError> {
    let Some(v) =
        body.get("lists").and_then(|l| l.get(list)).and_then(|l| l.get("filters")).and_then(|f| f.get(field))
    else {
        return Ok(Vec::new());
    };
    let bad = || {
        ApiError::Service(ward_service::Error::BadJson(format!(
            "lists.{list}.filters.{field} must be an array of strings"
        )))
    };
    v.as_array().ok_or_else(bad)?.iter().map(|s| s.as_str().map(str::to_owned).ok_or_else(bad)).collect()
}

fn input(req: v5::Request, body: &serde_json::Value) -> Result<SlidingInput, ApiError> {
    let lists = req
        .lists
        .into_iter()
        .map(|(name, list)| {
            let mut filters = list.filters.map_or_else(ListFilters::default, |f| ListFilters {
                is_dm: f.is_dm,
                is_encrypted: f.is_encrypted,
                is_invite: f.is_invite,
                room_types: f.room_types.iter().map(|t| t.as_str().map(str::to_owned)).collect(),
                not_room_types: f.not_room_types.iter().map(|t| t.as_str().map(str::to_owned)).collect(),
                ..Default::default()
            });
            filters.spaces = filter_strings(body, &name, "spaces")?;
            filters.tags = filter_strings(body, &name, "tags")?;
            filters.not_tags = filter_strings(body, &name, "not_tags")?;
            let ranges = list.ranges.iter().map(|(s, e)| (u64::from(*s), u64::from(*e))).collect();
            let config = config(&list.room_details.required_state, list.room_details.timeline_limit);
            Ok((name, ListRequest { ranges, config, filters }))
        })
        .collect::<Result<_, ApiError>>()?;
    let subscriptions = req
        .room_subscriptions
        .into_iter()
        .map(|(id, sub)| (id.to_string(), config(&sub.required_state, sub.timeline_limit)))
        .collect();
    let ext = req.extensions;
    Ok(SlidingInput {
        pos: req.pos,
        conn_id: req.conn_id,
        timeout_ms: req.timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        lists,
        subscriptions,
        to_device: ext.to_device.enabled.unwrap_or(false).then(|| ext.to_device.since.clone()),
        e2ee: ext.e2ee.enabled.unwrap_or(false),
        account_data: scope(
            ext.account_data.enabled,
            &ext.account_data.lists,
            room_scope(&ext.account_data.rooms),
        ),
        receipts: scope(ext.receipts.enabled, &ext.receipts.lists, room_scope(&ext.receipts.rooms)),
        typing: scope(ext.typing.enabled, &ext.typing.lists, room_scope(&ext.typing.rooms)),
    })
}

async fn sliding_sync(
    State(state): State<AppState>,
    Auth(authed): Auth,
    RumaWithJson(req, body): RumaWithJson<v5::Request>,
) -> Result<Response, ApiError> {
    let txn_id = req.txn_id.clone();
    let out = state.services.sliding_sync(&authed, input(req, &body)?).await?;
    let expanded: Vec<String> =
        out.rooms.iter().filter(|(_, r)| r.expanded_timeline).map(|(id, _)| id.clone()).collect();
    let mut resp = v5::Response::new(out.pos);
    resp.txn_id = txn_id;
    for (name, count) in out.lists {
        let mut list = v5::response::List::default();
        list.count = uint(count);
        resp.lists.insert(name, list);
    }
    for (id, room) in out.rooms {
        let mut r = v5::response::Room::new();
        r.name = room.name;
        if let Some(url) = room.avatar {
            r.avatar = JsOption::Some(OwnedMxcUri::from(url));
        }
        r.initial = room.initial.then_some(true);
        r.invite_state = room.invite_state.as_deref().map(raws).transpose()?;
        if let Some((notifications, highlights)) = room.counts {
            let mut unread = UnreadNotificationsCount::new();
            unread.notification_count = Some(uint(notifications));
            unread.highlight_count = Some(uint(highlights));
            r.unread_notifications = unread;
        }
        r.timeline = raws(&room.timeline)?;
        r.required_state = raws(&room.required_state)?;
        r.prev_batch = room.prev_batch;
        r.limited = room.limited;
        r.joined_count = room.joined_count.map(uint);
        r.invited_count = room.invited_count.map(uint);
        r.num_live = room.num_live.map(uint);
        r.bump_stamp = room.bump_stamp.map(uint);
        r.heroes = room
            .heroes
            .map(|heroes| {
                heroes
                    .into_iter()
                    .map(|h| {
                        let mut hero = v5::response::Hero::new(user_id(&h.user_id)?);
                        hero.name = h.name;
                        hero.avatar = h.avatar.map(OwnedMxcUri::from);
                        Ok(hero)
                    })
                    .collect::<Result<Vec<_>, ApiError>>()
            })
            .transpose()?;
        resp.rooms.insert(room_id(&id)?, r);
    }
    if let Some((next_batch, events)) = out.to_device {
        let mut td = v5::response::ToDevice::default();
        td.next_batch = next_batch;
        td.events = raws(&events)?;
        resp.extensions.to_device = Some(td);
    }
    if let Some(e2ee) = out.e2ee {
        let e = &mut resp.extensions.e2ee;
        e.device_lists.changed =
            e2ee.device_lists.changed.iter().map(|u| user_id(u)).collect::<Result<_, _>>()?;
        e.device_lists.left = e2ee.device_lists.left.iter().map(|u| user_id(u)).collect::<Result<_, _>>()?;
        for (algorithm, n) in e2ee.one_time_keys_count {
            e.device_one_time_keys_count.insert(algorithm.into(), uint(n));
        }
        e.device_unused_fallback_key_types =
            Some(e2ee.unused_fallback_key_types.into_iter().map(Into::into).collect());
    }
    resp.extensions.account_data.global = raws(&out.account_data)?;
    for (id, events) in out.room_account_data {
        resp.extensions.account_data.rooms.insert(room_id(&id)?, raws(&events)?);
    }
    let mut receipts = BTreeMap::new();
    for (id, ev) in out.receipts {
        receipts.insert(room_id(&id)?, as_raw(&ev)?);
    }
    resp.extensions.receipts.rooms = receipts;
    let mut typing = BTreeMap::new();
    for (id, ev) in out.typing {
        typing.insert(room_id(&id)?, as_raw(&ev)?);
    }
    resp.extensions.typing.rooms = typing;
    if expanded.is_empty() {
        return Ok(RumaResponse(resp).into_response());
    }
    with_expanded_timelines(resp, &expanded)
}

/// The response with `expanded_timeline` set on the rooms whose timeline grew, which ruma 0.17's
/// `v5::response::Room` cannot carry. Both names go out: `unstable_expanded_timeline` is what
/// Synapse sends on this unstable endpoint and what clients read today (matrix-js-sdk's
/// sliding sync users, mautrix); `expanded_timeline` is the MSC's name. Clients that know
/// neither (matrix-rust-sdk 0.18) see a `limited` timeline, which they handle anyway.
fn with_expanded_timelines(resp: v5::Response, expanded: &[String]) -> Result<Response, ApiError> {
    use ruma::api::OutgoingResponseExt as _;
    let http = resp.try_into_http_response::<Vec<u8>>().map_err(internal)?;
    let mut body: serde_json::Value = serde_json::from_slice(http.body()).map_err(internal)?;
    for id in expanded {
        if let Some(room) = body.get_mut("rooms").and_then(|r| r.get_mut(id)).and_then(|r| r.as_object_mut())
        {
            room.insert("expanded_timeline".into(), true.into());
            room.insert("unstable_expanded_timeline".into(), true.into());
        }
    }
    Ok(axum::Json(body).into_response())
}
