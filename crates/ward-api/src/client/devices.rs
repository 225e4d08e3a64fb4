//! Device management.
//!
//! - `GET /_matrix/client/v3/devices` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3devices>
//! - `GET|PUT|DELETE /_matrix/client/v3/devices/{deviceId}` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3devicesdeviceid>
//! - `POST /_matrix/client/v3/delete_devices` — <https://spec.matrix.org/latest/client-server-api/#post_matrixclientv3delete_devices>
//!
//! Ward keeps no client IP addresses, so `last_seen_ip` is never reported.

use axum::Router;
use axum::extract::State;
use ruma::api::client::device::{
    self, delete_device, delete_devices, get_device, get_devices, update_device,
};
use ruma::{MilliSecondsSinceUnixEpoch, UInt};
use serde::Deserialize;

use super::PathParams;
use super::uia::{AuthJson, uia};
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, Ruma, RumaResponse};
use crate::{AppState, endpoint};

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<get_devices::v3::Request, _, _>(router, list);
    let router = endpoint::<get_device::v3::Request, _, _>(router, get);
    let router = endpoint::<update_device::v3::Request, _, _>(router, update);
    let router = endpoint::<delete_device::v3::Request, _, _>(router, delete_one);
    endpoint::<delete_devices::v3::Request, _, _>(router, delete_many)
}

fn to_ruma(d: ward_service::Device) -> device::Device {
    let mut out = device::Device::new(d.device_id.into());
    out.display_name = d.display_name;
    out.last_seen_ts = d.last_seen_ms.and_then(UInt::new).map(MilliSecondsSinceUnixEpoch);
    out
}

async fn list(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(_): Ruma<get_devices::v3::Request>,
) -> Result<RumaResponse<get_devices::v3::Response>, ApiError> {
    let devices = state.services.devices(&authed).await?;
    Ok(RumaResponse(get_devices::v3::Response::new(devices.into_iter().map(to_ruma).collect())))
}

async fn get(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<get_device::v3::Request>,
) -> Result<RumaResponse<get_device::v3::Response>, ApiError> {
    let device = state.services.device(&authed, req.device_id.as_str()).await?;
    Ok(RumaResponse(get_device::v3::Response::new(to_ruma(device))))
}

async fn update(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<update_device::v3::Request>,
) -> Result<RumaResponse<update_device::v3::Response>, ApiError> {
    match req.display_name {
        Some(name) => state.services.rename_device(&authed, req.device_id.as_str(), Some(&name)).await?,
        // Absent display_name leaves the name as it is, but the device must still exist.
        None => {
            state.services.device(&authed, req.device_id.as_str()).await?;
        }
    }
    Ok(RumaResponse(update_device::v3::Response::new()))
}

#[derive(Debug, Deserialize)]
struct DeleteOneBody {
    auth: Option<AuthJson>,
}

async fn delete_one(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(params): PathParams,
    JsonBody(body): JsonBody<DeleteOneBody>,
) -> Result<RumaResponse<delete_device::v3::Response>, ApiError> {
    let device_id = params.into_iter().next().unwrap_or_default();
    // Spec: an unknown device is 404 before any authentication is asked for.
    state.services.device(&authed, &device_id).await?;
    state.services.delete_devices(&authed, &[device_id], uia(body.auth)?).await?;
    Ok(RumaResponse(delete_device::v3::Response::new()))
}

#[derive(Debug, Deserialize)]
struct DeleteManyBody {
    devices: Vec<String>,
    auth: Option<AuthJson>,
}

async fn delete_many(
    State(state): State<AppState>,
    Auth(authed): Auth,
    JsonBody(body): JsonBody<DeleteManyBody>,
) -> Result<RumaResponse<delete_devices::v3::Response>, ApiError> {
    state.services.delete_devices(&authed, &body.devices, uia(body.auth)?).await?;
    Ok(RumaResponse(delete_devices::v3::Response::new()))
}
