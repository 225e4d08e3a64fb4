//! The media repository.
//!
//! - `POST /_matrix/media/v3/upload` — <https://spec.matrix.org/latest/client-server-api/#post_matrixmediav3upload>
//! - `POST /_matrix/media/v1/create` — <https://spec.matrix.org/latest/client-server-api/#post_matrixmediav1create>
//! - `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}` — <https://spec.matrix.org/latest/client-server-api/#put_matrixmediav3uploadservernamemediaid>
//! - `GET /_matrix/client/v1/media/config` (and the deprecated `/_matrix/media/v3/config`) — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1mediaconfig>
//! - `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1mediadownloadservernamemediaid>
//! - `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}` — <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv1mediathumbnailservernamemediaid>
//! - `GET /_matrix/media/v3/download/…`, `/_matrix/media/v3/thumbnail/…` (deprecated, no
//!   authentication): 404 `M_NOT_FOUND` unless `media_legacy_unauthenticated` is on — <https://spec.matrix.org/latest/client-server-api/#get_matrixmediav3downloadservernamemediaid>
//! - `GET /_matrix/client/v1/media/preview_url`, `/_matrix/media/v3/preview_url`: always
//!   404 `M_UNRECOGNIZED`. URL previews would make the server fetch what people talk about;
//!   the German healthcare profile forbids them, and Ward never fetches URLs.
//!
//! Uploads are raw bytes, not JSON: they are streamed to the service chunk by chunk under the
//! upload limit (`max_upload_bytes`), not the JSON body limit. Downloads are streamed from the
//! file and always carry a sandboxing `Content-Security-Policy`, `nosniff`, and an `inline`
//! disposition only for types a browser cannot run script in.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use ruma::api::client::authenticated_media as authed_media;
use ruma::api::client::media;
use ruma::http_headers::{ContentDisposition, ContentDispositionType};
use ruma::{MilliSecondsSinceUnixEpoch, OwnedMxcUri, UInt};
use ward_service::Authed;
use ward_service::media::{MediaFile, UploadRequest};

use super::PathParams;
use crate::error::ApiError;
use crate::extract::{Auth, Ruma, RumaResponse};
use crate::{AppState, endpoint};

// The deprecated endpoints are served on purpose: config and preview like the new ones,
// downloads and thumbnails behind `media_legacy_unauthenticated`.
#[allow(deprecated)]
pub(crate) fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = endpoint::<media::create_content::v3::Request, _, _>(router, upload);
    let router = endpoint::<media::create_content_async::v3::Request, _, _>(router, upload_reserved);
    let router = endpoint::<media::create_mxc_uri::v1::Request, _, _>(router, create);
    let router = endpoint::<authed_media::get_media_config::v1::Request, _, _>(router, config);
    let router = endpoint::<media::get_media_config::v3::Request, _, _>(router, legacy_config);
    let router = endpoint::<authed_media::get_content::v1::Request, _, _>(router, download);
    let router = endpoint::<authed_media::get_content_as_filename::v1::Request, _, _>(router, download_as);
    // matrix-nio asks for `…/download/{serverName}/{mediaId}/` (an empty file name).
    let router = router
        .route("/_matrix/client/v1/media/download/{server_name}/{media_id}/", axum::routing::get(download));
    let router = endpoint::<authed_media::get_content_thumbnail::v1::Request, _, _>(router, thumbnail);
    let router = endpoint::<media::get_content::v3::Request, _, _>(router, legacy_download);
    let router = endpoint::<media::get_content_as_filename::v3::Request, _, _>(router, legacy_download_as);
    let router = endpoint::<media::get_content_thumbnail::v3::Request, _, _>(router, legacy_thumbnail);
    let router = endpoint::<authed_media::get_media_preview::v1::Request, _, _>(router, no_preview);
    endpoint::<media::get_media_preview::v3::Request, _, _>(router, no_preview)
}

/// The policy the spec recommends for media, so that a file opened in a browser can run
/// nothing.
const CONTENT_SECURITY_POLICY: &str = "sandbox; default-src 'none'; script-src 'none'; \
     plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

/// Content types served `inline`: images (not SVG, which can hold script), audio, video and
/// plain text — a subset of the spec's list. Everything else is an `attachment`.
const INLINE_CONTENT_TYPES: &[&str] = &[
    "text/plain",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

fn is_inline(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    INLINE_CONTENT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(essence))
}

fn mxc(uri: String) -> Result<OwnedMxcUri, ApiError> {
    let uri = OwnedMxcUri::from(uri);
    uri.validate()
        .map_err(|e| ApiError::Service(ward_service::Error::Internal(format!("bad mxc URI: {e}"))))?;
    Ok(uri)
}

fn upload_request(
    headers: &HeaderMap,
    query: Option<&str>,
    media_id: Option<String>,
) -> Result<UploadRequest, ApiError> {
    let content_type = match headers.get(header::CONTENT_TYPE) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid_param("the Content-Type header is not printable ASCII"))?
                .to_owned(),
        ),
        None => None,
    };
    let declared_bytes =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let file_name = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "filename")
        .map(|(_, v)| v.into_owned());
    Ok(UploadRequest { media_id, content_type, file_name, declared_bytes })
}

/// Streams the body into an upload and finishes it.
async fn receive(
    state: &AppState,
    authed: &Authed,
    request: UploadRequest,
    body: Body,
) -> Result<String, ApiError> {
    let mut upload = state.services.begin_upload(authed, request).await?;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ruma::api::error::ErrorKind::Unknown,
                format!("could not read the upload: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            upload.write(&data).await?;
        }
    }
    Ok(state.services.finish_upload(upload).await?)
}

async fn upload(
    State(state): State<AppState>,
    Auth(authed): Auth,
    request: Request,
) -> Result<RumaResponse<media::create_content::v3::Response>, ApiError> {
    let (parts, body) = request.into_parts();
    let upload = upload_request(&parts.headers, parts.uri.query(), None)?;
    let uri = receive(&state, &authed, upload, body).await?;
    Ok(RumaResponse(media::create_content::v3::Response::new(mxc(uri)?)))
}

async fn upload_reserved(
    State(state): State<AppState>,
    Auth(authed): Auth,
    PathParams(params): PathParams,
    request: Request,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let [server_name, media_id] = <[String; 2]>::try_from(params)
        .map_err(|_| ApiError::invalid_param("expected a server name and a media ID"))?;
    if server_name != state.services.settings().server_name {
        return Err(ward_service::Error::NotFound("no such media".into()).into());
    }
    let (parts, body) = request.into_parts();
    let upload = upload_request(&parts.headers, parts.uri.query(), Some(media_id))?;
    receive(&state, &authed, upload, body).await?;
    // The answer is `{}`; ruma 0.17's response type for it has no constructor.
    Ok(axum::Json(serde_json::json!({})))
}

async fn create(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(_req): Ruma<media::create_mxc_uri::v1::Request>,
) -> Result<RumaResponse<media::create_mxc_uri::v1::Response>, ApiError> {
    let (uri, expires_ms) = state.services.create_media_id(&authed).await?;
    let mut response = media::create_mxc_uri::v1::Response::new(mxc(uri)?);
    response.unused_expires_at = UInt::new(expires_ms).map(MilliSecondsSinceUnixEpoch);
    Ok(RumaResponse(response))
}

fn upload_size(state: &AppState) -> UInt {
    UInt::new(state.services.max_upload_bytes()).unwrap_or(UInt::MAX)
}

async fn config(
    State(state): State<AppState>,
    Auth(_): Auth,
) -> RumaResponse<authed_media::get_media_config::v1::Response> {
    RumaResponse(authed_media::get_media_config::v1::Response::new(upload_size(&state)))
}

async fn legacy_config(
    State(state): State<AppState>,
    Auth(_): Auth,
) -> RumaResponse<media::get_media_config::v3::Response> {
    RumaResponse(media::get_media_config::v3::Response::new(upload_size(&state)))
}

fn wait_ms(timeout: std::time::Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

async fn download(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<authed_media::get_content::v1::Request>,
) -> Result<Response, ApiError> {
    let file = state
        .services
        .download_media(Some(&authed), req.server_name.as_str(), &req.media_id, wait_ms(req.timeout_ms))
        .await?;
    Ok(serve(file, None))
}

async fn download_as(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<authed_media::get_content_as_filename::v1::Request>,
) -> Result<Response, ApiError> {
    let file = state
        .services
        .download_media(Some(&authed), req.server_name.as_str(), &req.media_id, wait_ms(req.timeout_ms))
        .await?;
    Ok(serve(file, Some(req.filename)))
}

#[allow(deprecated)]
async fn legacy_download(
    State(state): State<AppState>,
    Ruma(req): Ruma<media::get_content::v3::Request>,
) -> Result<Response, ApiError> {
    let file = state
        .services
        .download_media(None, req.server_name.as_str(), &req.media_id, wait_ms(req.timeout_ms))
        .await?;
    Ok(serve(file, None))
}

#[allow(deprecated)]
async fn legacy_download_as(
    State(state): State<AppState>,
    Ruma(req): Ruma<media::get_content_as_filename::v3::Request>,
) -> Result<Response, ApiError> {
    let file = state
        .services
        .download_media(None, req.server_name.as_str(), &req.media_id, wait_ms(req.timeout_ms))
        .await?;
    Ok(serve(file, Some(req.filename)))
}

fn method(m: Option<&ruma::media::Method>) -> Result<Option<ward_service::media::Method>, ApiError> {
    match m.map(|m| m.as_str()) {
        None => Ok(None),
        Some("crop") => Ok(Some(ward_service::media::Method::Crop)),
        Some("scale") => Ok(Some(ward_service::media::Method::Scale)),
        Some(other) => {
            Err(ApiError::invalid_param(format!("unknown thumbnail method {other:?}; use crop or scale")))
        }
    }
}

async fn thumbnail(
    State(state): State<AppState>,
    Auth(authed): Auth,
    Ruma(req): Ruma<authed_media::get_content_thumbnail::v1::Request>,
) -> Result<Response, ApiError> {
    let file = state
        .services
        .media_thumbnail(
            Some(&authed),
            req.server_name.as_str(),
            &req.media_id,
            req.width.into(),
            req.height.into(),
            method(req.method.as_ref())?,
            wait_ms(req.timeout_ms),
        )
        .await?;
    Ok(serve(file, None))
}

#[allow(deprecated)]
async fn legacy_thumbnail(
    State(state): State<AppState>,
    Ruma(req): Ruma<media::get_content_thumbnail::v3::Request>,
) -> Result<Response, ApiError> {
    let file = state
        .services
        .media_thumbnail(
            None,
            req.server_name.as_str(),
            &req.media_id,
            req.width.into(),
            req.height.into(),
            method(req.method.as_ref())?,
            wait_ms(req.timeout_ms),
        )
        .await?;
    Ok(serve(file, None))
}

/// URL previews are switched off for good: the endpoint answers as if it did not exist.
async fn no_preview() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ruma::api::error::ErrorKind::Unrecognized,
        "URL previews are disabled on this server",
    )
}

/// A file as an HTTP response with the safe headers, its body streamed chunk by chunk.
/// `file_name` (from the request path) replaces the stored file name.
fn serve(file: MediaFile, file_name: Option<String>) -> Response {
    let content_type = file
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition_type = match content_type.to_str() {
        Ok(t) if is_inline(t) => ContentDispositionType::Inline,
        _ => ContentDispositionType::Attachment,
    };
    let file_name = file_name.filter(|n| !n.is_empty()).or(file.file_name);
    let disposition = ContentDisposition::new(disposition_type).with_filename(file_name);
    let disposition =
        HeaderValue::from_str(&disposition.to_string()).unwrap_or(HeaderValue::from_static("attachment"));

    let body = futures_util::stream::unfold(file.body, |mut body| async move {
        match body.next_chunk().await {
            Some(Ok(chunk)) => Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk)), body)),
            Some(Err(e)) => {
                // The status is sent already; cutting the body short tells the client.
                tracing::error!(error = %e, "a media download failed midway");
                Some((Err(std::io::Error::other(e.to_string())), body))
            }
            None => None,
        }
    });
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size_bytes));
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    // Files may be medical documents: no shared cache may keep them.
    // Not even the user's own browser keeps files on disk (a shared practice computer); apps
    // that want a cache keep decrypted copies in memory.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_only_for_safe_types() {
        for t in ["image/png", "IMAGE/JPEG", "text/plain; charset=utf-8", "video/mp4", "audio/ogg"] {
            assert!(is_inline(t), "{t}");
        }
        for t in ["image/svg+xml", "text/html", "application/pdf", "application/javascript", "text/xml", ""] {
            assert!(!is_inline(t), "{t}");
        }
    }

    #[test]
    fn file_names_are_encoded() {
        let header = |name: &str| {
            ContentDisposition::new(ContentDispositionType::Attachment)
                .with_filename(Some(name.into()))
                .to_string()
        };
        assert_eq!(header("plan.pdf"), "attachment; filename=plan.pdf");
        assert_eq!(header("Befund Müller.pdf"), "attachment; filename*=utf-8''Befund%20M%C3%BCller.pdf");
        assert_eq!(header("a \"b\".txt"), r#"attachment; filename="a \"b\".txt""#);
    }
}
