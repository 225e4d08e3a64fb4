//! Ward's HTTP API on axum: the Matrix client-server endpoints, and Ward's own APIs under
//! `/_ward` (admin, meetings).
//!
//! One file per endpoint group under [`client`], each headed by its methods, paths and spec
//! links. Handlers are thin: extract (ruma types where they fit), call one service, answer.
//! Paths come from the ruma endpoint metadata, so every spec'd path version (`r0`, `v3`) is
//! served without listing it by hand. Failures map to Matrix errors in [`error`] only.

mod admin;
pub mod client;
pub mod error;
pub mod extract;
mod meet;
mod web;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get, on};
use http::{Method, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use ruma::api::Metadata;
use ruma::api::path_builder::PathBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use ward_service::Services;

use crate::error::ApiError;

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Published in `/.well-known/matrix/client`.
    pub base_url: String,
    pub max_request_body_bytes: usize,
    pub http_request_timeout_ms: u64,
    pub trust_x_forwarded_for: bool,
    /// Serve the browser app from this directory instead of the embedded copy.
    pub web_dir: Option<std::path::PathBuf>,
}

#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub api: Arc<ApiSettings>,
    /// Conferencing; `None` when `rtc_enabled` is off, and then no `/rtc` route exists.
    pub rtc: Option<Arc<ward_rtc::Rtc>>,
}

/// Adds `handler` for every stable path of the ruma endpoint `R`, with `R`'s method.
pub(crate) fn endpoint<R, H, T>(router: Router<AppState>, handler: H) -> Router<AppState>
where
    R: Metadata,
    H: Handler<T, AppState>,
    T: 'static,
{
    // Every Matrix endpoint uses one of the methods MethodFilter knows.
    let filter = MethodFilter::try_from(R::METHOD).unwrap_or(MethodFilter::GET);
    R::PATH_BUILDER
        .all_paths()
        .filter(|p| !p.contains("/unstable/"))
        .fold(router, |r, path| r.route(path, on(filter, handler.clone())))
}

/// Like [`endpoint`], for an endpoint that exists only under an unstable path (a feature Ward
/// advertises in `/versions`' `unstable_features`, such as simplified sliding sync).
pub(crate) fn unstable_endpoint<R, H, T>(router: Router<AppState>, handler: H) -> Router<AppState>
where
    R: Metadata,
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(R::METHOD).unwrap_or(MethodFilter::GET);
    R::PATH_BUILDER.all_paths().fold(router, |r, path| r.route(path, on(filter, handler.clone())))
}

/// The client API with its layers: CORS, body limits, timeouts, metrics, Matrix errors for
/// unknown paths and methods. Conferencing's HTTP routes are merged in before the layers, so
/// they get the same ones.
pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_millis(state.api.http_request_timeout_ms);
    let mut routes = meet::routes(admin::routes(client::routes(Router::new())));
    if let Some(rtc) = &state.rtc {
        routes = routes.merge(ward_rtc::http::routes(rtc.clone()));
    }
    routes
        .fallback(web::fallback)
        .method_not_allowed_fallback(|| async { ApiError::unrecognized_method() })
        .layer(middleware::from_fn(observe))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        // Outside the timeout layer, so it sees the layer's empty 408.
        .layer(middleware::map_response(matrix_timeout))
        .layer(middleware::map_response(no_store_by_default))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(cors())
        .with_state(state)
}

/// API answers carry messages, profiles and files of people's health care: no browser or proxy
/// may keep them on disk. Only responses that choose their caching (the web app's hashed
/// assets) are left alone.
async fn no_store_by_default(mut response: Response) -> Response {
    if !response.headers().contains_key(header::CACHE_CONTROL) {
        response.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    }
    response
}

/// The timeout layer answers with an empty 408; clients get a Matrix error body instead.
async fn matrix_timeout(response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ruma::api::error::ErrorKind::Unknown,
            "the request took longer than the server allows",
        )
        .into_response();
    }
    response
}

/// A panic is a bug; the safety net logs it and answers 500 M_UNKNOWN instead of dropping the
/// connection. Tests fail on any "panicked" in the server log, so the net never hides one.
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::Service(ward_service::Error::Internal("handler panicked".into())).into_response()
}

/// CORS as the client-server spec requires, so browser clients on other origins work.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::HeaderName::from_static("x-requested-with"),
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
        ])
}

/// Request metrics and a debug log line. Labels use the route template (`/profile/{user_id}`),
/// never the concrete path, so neither user IDs nor tokens reach logs or metrics and the label
/// set stays bounded.
async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16().to_string();
    metrics::counter!("ward_http_requests_total",
        "method" => method.to_string(), "endpoint" => endpoint.clone(), "status" => status.clone())
    .increment(1);
    metrics::histogram!("ward_http_request_duration_seconds",
        "method" => method.to_string(), "endpoint" => endpoint.clone())
    .record(elapsed.as_secs_f64());
    tracing::debug!(%method, %endpoint, %status, elapsed_ms = elapsed.as_millis() as u64, "request");
    response
}

/// The metrics listener: `GET /metrics` in Prometheus text format.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(render_metrics)).with_state(handle)
}

async fn render_metrics(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
}
