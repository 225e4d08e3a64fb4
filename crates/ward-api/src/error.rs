//! The one place where failures become Matrix errors: an `errcode`, an HTTP status and a
//! message. Service errors, malformed requests and routing misses all end up here.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use ruma::api::client::uiaa::{AuthFlow, AuthType, UiaaInfo, UiaaResponse};
use ruma::api::error::{
    ErrorBody, ErrorKind, FromHttpRequestError, LimitExceededErrorData, RetryAfter, StandardErrorBody,
    UnknownTokenErrorData, WrongRoomKeysVersionErrorData,
};
use ruma::api::{OutgoingResponseExt, error::DeserializationError};
use ward_service::{Error as ServiceError, Stage};

#[derive(Debug)]
pub enum ApiError {
    Service(ServiceError),
    /// Problems found before a service was called: bad JSON, a missing token, an unknown path.
    Request {
        status: StatusCode,
        kind: ErrorKind,
        message: String,
    },
}

impl ApiError {
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Request { status, kind, message: message.into() }
    }

    pub fn not_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::NotJson, message)
    }

    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidParam, message)
    }

    pub fn too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::TooLarge,
            format!("the request body is larger than {limit_bytes} bytes"),
        )
    }

    pub fn missing_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorKind::MissingToken, "an access token is required")
    }

    /// A JSON body that did not fit the endpoint's shape.
    pub fn from_json(e: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof => Self::not_json(format!("the body is not valid JSON: {e}")),
            Category::Data if e.to_string().starts_with("missing field") => {
                Self::new(StatusCode::BAD_REQUEST, ErrorKind::MissingParam, e.to_string())
            }
            _ => Self::new(StatusCode::BAD_REQUEST, ErrorKind::BadJson, e.to_string()),
        }
    }

    pub fn from_ruma(e: FromHttpRequestError) -> Self {
        match e {
            FromHttpRequestError::Deserialization(DeserializationError::Json(e)) => Self::from_json(&e),
            FromHttpRequestError::Deserialization(DeserializationError::Utf8(e)) => {
                Self::not_json(format!("the body is not UTF-8: {e}"))
            }
            FromHttpRequestError::MethodMismatch { .. } => Self::unrecognized_method(),
            FromHttpRequestError::Deserialization(DeserializationError::Query(e))
                if e.to_string().starts_with("missing field") =>
            {
                Self::new(StatusCode::BAD_REQUEST, ErrorKind::MissingParam, e.to_string())
            }
            FromHttpRequestError::Deserialization(e) => Self::invalid_param(e.to_string()),
            other => Self::invalid_param(other.to_string()),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, message)
    }

    /// Third-party identifiers (email, phone) are never associated with accounts here.
    pub fn threepid_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorKind::ThreepidDenied,
            "this server does not associate email addresses or phone numbers with accounts",
        )
    }

    pub fn threepid_medium_not_supported() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::ThreepidMediumNotSupported,
            "this server does not associate email addresses or phone numbers with accounts",
        )
    }

    pub fn threepid_not_found() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorKind::ThreepidNotFound,
            "no email address or phone number is associated with this account",
        )
    }

    pub fn unrecognized_path() -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorKind::Unrecognized, "unrecognized request")
    }

    pub fn unrecognized_method() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Unrecognized,
            "method not allowed for this endpoint",
        )
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

/// Status and errcode for each service error.
fn classify(e: &ServiceError) -> (StatusCode, ErrorKind) {
    use ServiceError as E;
    match e {
        E::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorKind::Forbidden),
        E::NotFound(_) => (StatusCode::NOT_FOUND, ErrorKind::NotFound),
        E::InvalidParam(_) => (StatusCode::BAD_REQUEST, ErrorKind::InvalidParam),
        E::MissingParam(_) => (StatusCode::BAD_REQUEST, ErrorKind::MissingParam),
        E::BadJson(_) => (StatusCode::BAD_REQUEST, ErrorKind::BadJson),
        E::Unknown(_) => (StatusCode::BAD_REQUEST, ErrorKind::Unknown),
        E::Unrecognized(_) => (StatusCode::BAD_REQUEST, ErrorKind::Unrecognized),
        E::TooLarge(_) => (StatusCode::BAD_REQUEST, ErrorKind::TooLarge),
        E::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorKind::TooLarge),
        E::NotYetUploaded(_) => (StatusCode::GATEWAY_TIMEOUT, ErrorKind::NotYetUploaded),
        E::CannotOverwriteMedia(_) => (StatusCode::CONFLICT, ErrorKind::CannotOverwriteMedia),
        E::UserInUse => (StatusCode::BAD_REQUEST, ErrorKind::UserInUse),
        E::InvalidUsername(_) => (StatusCode::BAD_REQUEST, ErrorKind::InvalidUsername),
        E::Exclusive(_) => (StatusCode::BAD_REQUEST, ErrorKind::Exclusive),
        E::WeakPassword(_) => (StatusCode::BAD_REQUEST, ErrorKind::WeakPassword),
        E::GuestAccessForbidden => (StatusCode::FORBIDDEN, ErrorKind::GuestAccessForbidden),
        E::UserDeactivated => (StatusCode::FORBIDDEN, ErrorKind::UserDeactivated),
        E::LimitExceeded { retry_after_ms } => {
            let mut data = LimitExceededErrorData::new();
            data.retry_after = Some(RetryAfter::Delay(Duration::from_millis(*retry_after_ms)));
            (StatusCode::TOO_MANY_REQUESTS, ErrorKind::LimitExceeded(data))
        }
        E::LimitReached(_) => {
            (StatusCode::TOO_MANY_REQUESTS, ErrorKind::LimitExceeded(LimitExceededErrorData::new()))
        }
        E::Conflict(_) => (StatusCode::CONFLICT, ErrorKind::Unknown),
        E::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Unknown),
        E::UnknownToken { soft_logout, .. } => {
            let mut data = UnknownTokenErrorData::new();
            data.soft_logout = *soft_logout;
            (StatusCode::UNAUTHORIZED, ErrorKind::UnknownToken(data))
        }
        E::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorKind::Unauthorized),
        E::UnsupportedRoomVersion(_) => (StatusCode::BAD_REQUEST, ErrorKind::UnsupportedRoomVersion),
        E::InvalidRoomState(_) => (StatusCode::BAD_REQUEST, ErrorKind::InvalidRoomState),
        E::RoomInUse(_) => (StatusCode::BAD_REQUEST, ErrorKind::RoomInUse),
        E::AliasConflict(_) => (StatusCode::CONFLICT, ErrorKind::Unknown),
        E::UnknownUiaSession => (StatusCode::BAD_REQUEST, ErrorKind::Unknown),
        E::UnknownPos(_) => (StatusCode::BAD_REQUEST, custom_kind("M_UNKNOWN_POS")),
        E::InvalidSignature(_) => (StatusCode::BAD_REQUEST, custom_kind("M_INVALID_SIGNATURE")),
        E::WrongRoomKeysVersion { current } => (
            StatusCode::FORBIDDEN,
            ErrorKind::WrongRoomKeysVersion(WrongRoomKeysVersionErrorData::new(current.clone())),
        ),
        // Handled separately (a UIA body, not an error body); kept total for safety.
        E::AuthRequired(_) => (StatusCode::UNAUTHORIZED, ErrorKind::Unauthorized),
        E::Store(_) | E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Unknown),
    }
}

/// An errcode the spec names but ruma has no variant for.
fn custom_kind(errcode: &str) -> ErrorKind {
    serde_json::from_value(serde_json::json!({ "errcode": errcode })).unwrap_or(ErrorKind::Unknown)
}

fn stage_auth_type(stage: Stage) -> AuthType {
    match stage {
        Stage::Password => AuthType::Password,
        Stage::RegistrationToken => AuthType::RegistrationToken,
        Stage::Dummy => AuthType::Dummy,
    }
}

fn error_response(status: StatusCode, kind: ErrorKind, message: String) -> Response {
    let error =
        ruma::api::error::Error::new(status, ErrorBody::Standard(StandardErrorBody::new(kind, message)));
    render(error.try_into_http_response::<Vec<u8>>())
}

/// Turns a serialised ruma response into an axum one. Serialisation of our own well-typed
/// values cannot fail short of a bug; if it does, the client gets a plain 500.
pub(crate) fn render<E: std::fmt::Display>(r: Result<http::Response<Vec<u8>>, E>) -> Response {
    match r {
        Ok(resp) => resp.map(axum::body::Body::from),
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Request { status, kind, message } => error_response(status, kind, message),
            ApiError::Service(ServiceError::AuthRequired(challenge)) => {
                let mut info = UiaaInfo::new(
                    challenge
                        .flows
                        .iter()
                        .map(|f| AuthFlow::new(f.iter().copied().map(stage_auth_type).collect()))
                        .collect(),
                );
                info.completed = challenge.completed.iter().copied().map(stage_auth_type).collect();
                info.session = Some(challenge.session.clone());
                info.params = serde_json::value::to_raw_value(&serde_json::json!({})).ok();
                info.auth_error = challenge.error.as_ref().map(|e| {
                    let (_, kind) = classify(e);
                    Box::new(StandardErrorBody::new(kind, e.to_string()))
                });
                render(UiaaResponse::AuthResponse(info).try_into_http_response::<Vec<u8>>())
            }
            ApiError::Service(e) => {
                let (status, kind) = classify(&e);
                let message = if status.is_server_error() {
                    tracing::error!(error = %e, "request failed");
                    "internal server error".to_owned()
                } else {
                    e.to_string()
                };
                error_response(status, kind, message)
            }
        }
    }
}
