//! The conferencing endpoints, merged into Ward's client router (so its CORS, metrics, timeout
//! and panic layers apply):
//!
//! - `GET /rtc` — the signalling WebSocket ([`crate::signal`]).
//! - `GET /rtc/validate` — livekit-client asks this after a failed signalling WebSocket, with
//!   the same query (`access_token=…`), to show the user why. Answers `200 success` for a token
//!   that would be let in, `401` with the reason as plain text otherwise (`403` when the
//!   application's join gate keeps the participant out) — livekit-client shows
//!   the text of a 401 or 403 and nothing of other statuses, so every token problem is a 401.
//! - `POST /twirp/livekit.RoomService/{method}` — LiveKit's room service API ([`crate::twirp`]).
//! - `GET /rtc/v1`, `/rtc/v1/validate` — 404, so that clients fall back from LiveKit's newer
//!   single-connection signalling to `/rtc`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;

use crate::Rtc;
use crate::token::TokenError;

/// The routes, with their state applied, for merging into any router.
pub fn routes<S: Clone + Send + Sync + 'static>(rtc: Arc<Rtc>) -> Router<S> {
    Router::new()
        .route("/rtc", get(crate::signal::rtc))
        .route("/rtc/validate", get(validate))
        .route("/twirp/livekit.RoomService/{method}", axum::routing::post(crate::twirp::room_service))
        // LiveKit's newer single-connection signalling is not implemented: a 404 on both paths
        // makes livekit-client and the Rust/Python SDKs fall back to `/rtc` (livekit-client
        // decides from this validate answer, which therefore needs CORS like everything else).
        .route("/rtc/v1", get(not_here))
        .route("/rtc/v1/validate", get(not_here))
        .with_state(rtc)
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// The access token of a signalling or validate request: the `Authorization: Bearer` header
/// if there is one (as LiveKit's server prefers it), else the `access_token` query parameter
/// (browsers cannot set headers on a WebSocket).
pub fn access_token(uri: &Uri, headers: &HeaderMap) -> Result<String, TokenError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                TokenError::Malformed("the Authorization header must be `Bearer <token>`".into())
            });
    }
    let query = Query::<TokenQuery>::try_from_uri(uri)
        .map_err(|_| TokenError::Malformed("the query string cannot be parsed".into()))?;
    query.0.access_token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)
}

async fn not_here() -> Response {
    (StatusCode::NOT_FOUND, "not found: this server speaks LiveKit signalling at /rtc").into_response()
}

async fn validate(State(rtc): State<Arc<Rtc>>, uri: Uri, headers: HeaderMap) -> Response {
    let verdict = access_token(&uri, &headers).and_then(|t| rtc.verify_token(&t, SystemTime::now()));
    let (status, body) = match verdict {
        Ok(grant) => match rtc.admits(&grant).await {
            Ok(()) => (StatusCode::OK, "success".to_owned()),
            // The token is fine but the application keeps this participant out (a removed
            // guest, an ended meeting); livekit-client shows the text of a 403 too.
            Err(reason) => (StatusCode::FORBIDDEN, reason),
        },
        Err(e) => {
            tracing::debug!(reason = %e, "conferencing token refused");
            (StatusCode::UNAUTHORIZED, e.to_string())
        }
    };
    let mut response = (status, body).into_response();
    // The token is in the URL; no cache along the way should keep the answer.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::token::{ApiKeys, MintRequest, mint};
    use crate::{Rtc, RtcSettings};

    fn rtc() -> Arc<Rtc> {
        Arc::new(Rtc::new(RtcSettings {
            keys: ApiKeys { key: "ward".into(), secret: "s".repeat(32) },
            udp_bind: "127.0.0.1:0".parse().unwrap(),
            tcp_bind: None,
            public_ip: "127.0.0.1".parse().unwrap(),
            max_participants_per_room: 10,
            max_participants: 10,
            max_tracks_per_participant: 8,
            max_bitrate_bps_per_track: 1_000_000,
            empty_room_timeout: Duration::from_secs(60),
            token_max_ttl: Duration::from_secs(3600),
            bandwidth_estimator: ward_sfu::BandwidthEstimator::Ward,
        }))
    }

    async fn get(rtc: &Arc<Rtc>, uri: &str, auth: Option<&str>) -> (StatusCode, String) {
        let mut request = Request::get(uri);
        if let Some(a) = auth {
            request = request.header(header::AUTHORIZATION, a);
        }
        let response = routes::<()>(rtc.clone()).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn validate_answers_like_livekit() {
        let rtc = rtc();
        let request = MintRequest::new("anna", "sprechstunde", Duration::from_secs(600));
        let token = mint(&rtc.settings.keys, &request, SystemTime::now()).unwrap();
        assert_eq!(
            get(&rtc, &format!("/rtc/v1/validate?access_token={token}"), None).await.0,
            StatusCode::NOT_FOUND
        );
        for path in ["/rtc/validate"] {
            let ok = get(&rtc, &format!("{path}?access_token={token}&auto_subscribe=1"), None).await;
            assert_eq!(ok, (StatusCode::OK, "success".into()));
            assert_eq!(get(&rtc, path, Some(&format!("Bearer {token}"))).await.0, StatusCode::OK);
        }
        let (status, body) = get(&rtc, "/rtc/validate", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("no access token"), "{body}");
        let (status, body) = get(&rtc, "/rtc/validate?access_token=", None).await;
        assert_eq!((status, body.contains("no access token")), (StatusCode::UNAUTHORIZED, true));
        let (status, body) = get(&rtc, &format!("/rtc/validate?access_token={token}x"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("signature"), "{body}");
        let (status, body) = get(&rtc, "/rtc/validate", Some(&format!("Basic {token}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("Bearer"), "{body}");
    }
}
