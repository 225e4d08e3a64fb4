//! The browser app at `/`, and the Matrix error for unknown API paths.
//!
//! Everything outside the API prefixes is the app: embedded files (`ward-web`), or, with the
//! `web_dir` setting, files from that directory (for developing the app). Every app response
//! carries a strict Content-Security-Policy; hashed assets are cached for good, `index.html`
//! is revalidated.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};

use crate::AppState;
use crate::error::ApiError;

/// Path prefixes that belong to the API, never to the app.
const API_PREFIXES: &[&str] = &["/_matrix", "/_ward", "/_synapse", "/.well-known"];

/// Largest file served from `web_dir`.
const WEB_DIR_FILE_MAX_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    if API_PREFIXES.iter().any(|p| path == *p || path.starts_with(&format!("{p}/"))) {
        return ApiError::unrecognized_path().into_response();
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")]).into_response();
    }
    let (bytes, content_type, immutable): (Vec<u8>, &'static str, bool) = match &state.api.web_dir {
        Some(dir) => {
            let Some(rel) = ward_web::safe_relative_path(path) else { return not_found() };
            let file = dir.join(rel);
            match tokio::fs::metadata(&file).await {
                Ok(m) if m.is_file() && m.len() <= WEB_DIR_FILE_MAX_BYTES => {}
                _ => return not_found(),
            }
            match tokio::fs::read(&file).await {
                Ok(b) => (b, ward_web::content_type(rel), rel.starts_with("assets/")),
                Err(_) => return not_found(),
            }
        }
        None => match ward_web::embedded(path) {
            Some(a) => (a.bytes.to_vec(), a.content_type, a.immutable),
            None if (path == "/" || path == "/index.html") && !ward_web::has_app() => {
                (ward_web::PLACEHOLDER_HTML.as_bytes().to_vec(), "text/html; charset=utf-8", false)
            }
            None => return not_found(),
        },
    };
    let cache = if immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    secure(headers);
    response
}

fn secure(headers: &mut http::HeaderMap) {
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(ward_web::CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        http::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        http::HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(self), microphone=(self), display-capture=(self), geolocation=()"),
    );
}

fn not_found() -> Response {
    let mut response = (StatusCode::NOT_FOUND, "not found\n").into_response();
    secure(response.headers_mut());
    response
}
