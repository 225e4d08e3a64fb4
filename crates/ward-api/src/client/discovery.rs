//! Discovery: what this server is and what it supports.
//!
//! - `GET /.well-known/matrix/client` — <https://spec.matrix.org/latest/client-server-api/#getwell-knownmatrixclient>
//! - `GET /_matrix/client/versions` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientversions>
//! - `GET /_matrix/client/v3/capabilities` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3capabilities>

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use ruma::api::client::discovery::{discover_homeserver, get_capabilities, get_supported_versions};
use ruma::{RoomVersionId, api::client::discovery::get_capabilities::v3::RoomVersionStability};

use crate::error::ApiError;
use crate::extract::{Ruma, RumaResponse};
use crate::{AppState, endpoint};

/// Spec versions advertised to clients. Ward advertises a version once the endpoints it
/// requires exist; rooms and sync land next, so until then clients that need them get
/// M_UNRECOGNIZED. See ARCHITECTURE.md, "Advertised versions".
pub const SUPPORTED_VERSIONS: &[&str] =
    &["v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12"];

pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<discover_homeserver::Request, _, _>(router, well_known);
    let router = endpoint::<get_supported_versions::Request, _, _>(router, versions);
    endpoint::<get_capabilities::v3::Request, _, _>(router, capabilities)
}

async fn well_known(
    State(state): State<AppState>,
    Ruma(_): Ruma<discover_homeserver::Request>,
) -> RumaResponse<discover_homeserver::Response> {
    RumaResponse(discover_homeserver::Response::new(discover_homeserver::HomeserverInfo::new(
        state.api.base_url.clone(),
    )))
}

async fn versions(
    Ruma(_): Ruma<get_supported_versions::Request>,
) -> RumaResponse<get_supported_versions::Response> {
    let mut resp =
        get_supported_versions::Response::new(SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect());
    // Simplified sliding sync (MSC4186, client/sliding_sync.rs); Element X requires it.
    resp.unstable_features.insert("org.matrix.simplified_msc3575".into(), true);
    RumaResponse(resp)
}

async fn capabilities(
    crate::extract::Auth(_): crate::extract::Auth,
    Ruma(_): Ruma<get_capabilities::v3::Request>,
) -> Result<RumaResponse<get_capabilities::v3::Response>, ApiError> {
    let mut caps = get_capabilities::v3::Capabilities::new();
    caps.change_password.enabled = true;
    // Deprecated in Matrix 1.16 for profile_fields, which needs the extended-profile endpoints
    // Ward does not have yet.
    #[allow(deprecated)]
    {
        caps.set_displayname.enabled = true;
        caps.set_avatar_url.enabled = true;
    }
    caps.thirdparty_id_changes.enabled = false;
    caps.get_login_token.enabled = false;
    caps.room_versions = get_capabilities::v3::RoomVersionsCapability::new(
        RoomVersionId::V12,
        BTreeMap::from([
            (RoomVersionId::V10, RoomVersionStability::Stable),
            (RoomVersionId::V11, RoomVersionStability::Stable),
            (RoomVersionId::V12, RoomVersionStability::Stable),
        ]),
    );
    Ok(RumaResponse(get_capabilities::v3::Response::new(caps)))
}
