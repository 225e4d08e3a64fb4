//! Request extractors: ruma request types, our own JSON bodies, the access token and the
//! client address. Every failure becomes an [`ApiError`] with the right errcode.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use ruma::api::{IncomingRequest, IncomingRequestExt, OutgoingResponse, OutgoingResponseExt};
use serde::de::DeserializeOwned;
use ward_service::Authed;

use crate::AppState;
use crate::error::{ApiError, render};

pub(crate) async fn read_body(body: Body, limit_bytes: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit_bytes).await.map_err(|e| {
        // `to_bytes` reports a length-limit hit as an error wrapping `LengthLimitError`.
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(err) = source {
            if err.is::<http_body_util::LengthLimitError>() {
                return ApiError::too_large(limit_bytes);
            }
            source = err.source();
        }
        ApiError::not_json(format!("could not read the request body: {e}"))
    })
}

/// A ruma request type, parsed from path, query, headers and body.
pub struct Ruma<T>(pub T);

impl<T: IncomingRequest + Send> FromRequest<AppState> for Ruma<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        parse_ruma(req, state).await.map(|(parsed, _)| Ruma(parsed))
    }
}

/// A ruma request type and, beside it, its body as JSON (`Null` when it is not JSON), for
/// fields clients send that the ruma type does not carry.
pub struct RumaWithJson<T>(pub T, pub serde_json::Value);

impl<T: IncomingRequest + Send> FromRequest<AppState> for RumaWithJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parsed, body) = parse_ruma(req, state).await?;
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        Ok(RumaWithJson(parsed, json))
    }
}

/// Parses a ruma request type; also returns the body it was parsed from.
async fn parse_ruma<T: IncomingRequest>(req: Request, state: &AppState) -> Result<(T, Bytes), ApiError> {
    let (mut parts, body) = req.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, state)
        .await
        .map_err(|e| ApiError::invalid_param(format!("invalid path parameter: {e}")))?;
    let args: Vec<String> = params.iter().map(|(_, v)| v.to_owned()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut body = read_body(body, state.api.max_request_body_bytes).await?;
    // Some clients (matrix-nio's join, for one) send no body where every field is optional;
    // Synapse accepts that, and so do we. Every endpoint here takes a JSON body.
    if body.is_empty() && parts.method != http::Method::GET {
        body = Bytes::from_static(b"{}");
    }
    let request = http::Request::from_parts(parts, &body[..]);
    let parsed = T::try_from_http_request(request, &args).map_err(ApiError::from_ruma)?;
    Ok((parsed, body))
}

/// A JSON object body in a shape of our own, for endpoints whose ruma type is stricter than
/// the clients in the field (the `auth` object of user-interactive auth). An empty body counts
/// as `{}`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req.into_body(), state.api.max_request_body_bytes).await?;
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| ApiError::from_json(&e))?;
        if !value.is_object() {
            return Err(ApiError::not_json("the body must be a JSON object"));
        }
        serde_json::from_value(value).map(JsonBody).map_err(|e| ApiError::from_json(&e))
    }
}

/// A ruma response, serialised per its endpoint definition.
pub struct RumaResponse<T>(pub T);

impl<T: OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        render(self.0.try_into_http_response::<Vec<u8>>())
    }
}

/// The access token of a request: `Authorization: Bearer …`, or the deprecated
/// `access_token` query parameter.
fn access_token(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned());
    }
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "access_token").then(|| v.to_owned())
    })
}

/// The authenticated caller. Rejects with `M_MISSING_TOKEN` / `M_UNKNOWN_TOKEN`.
pub struct Auth(pub Authed);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = access_token(parts).filter(|t| !t.is_empty()).ok_or_else(ApiError::missing_token)?;
        let authed = state.services.authenticate(&token).await?;
        Ok(Auth(authed))
    }
}

/// The client's address, for throttling only (never stored). Behind a trusted reverse proxy,
/// the first address in `X-Forwarded-For`.
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if state.api.trust_x_forwarded_for
            && let Some(first) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        {
            return Ok(ClientAddr(first.to_owned()));
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
        Ok(ClientAddr(peer.unwrap_or_else(|| "unknown".into())))
    }
}
