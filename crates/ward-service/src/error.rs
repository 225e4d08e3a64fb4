//! The service layer's one error type. It says what went wrong in domain terms; the HTTP layer
//! alone decides the Matrix `errcode` and status for each variant.

use ward_core::uia::{Flow, Stage};
use ward_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidParam(String),
    #[error("{0}")]
    MissingParam(String),
    #[error("{0}")]
    BadJson(String),
    /// A request that cannot be carried out in the current state (spec errcode `M_UNKNOWN`).
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    Unrecognized(String),
    #[error("{0}")]
    TooLarge(String),
    /// A request body (an upload) over its limit; HTTP 413, unlike [`Error::TooLarge`].
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Media reserved by `/create` whose bytes have not arrived.
    #[error("{0}")]
    NotYetUploaded(String),
    #[error("{0}")]
    CannotOverwriteMedia(String),
    #[error("this user ID is already taken")]
    UserInUse,
    #[error("{0}")]
    InvalidUsername(String),
    #[error("{0}")]
    Exclusive(String),
    #[error("{0}")]
    WeakPassword(String),
    #[error("guest access is disabled on this server")]
    GuestAccessForbidden,
    #[error("this account has been deactivated")]
    UserDeactivated,
    #[error("too many attempts; try again in {retry_after_ms} ms")]
    LimitExceeded { retry_after_ms: u64 },
    /// A fixed limit is reached (open meetings, a full waiting room); waiting does not help
    /// until something is freed.
    #[error("{0}")]
    LimitReached(String),
    /// The request contradicts the current state (a second patient while one is admitted).
    #[error("{0}")]
    Conflict(String),
    /// A part of the server the request needs is not running (conferencing switched off).
    #[error("{0}")]
    Unavailable(String),
    #[error("{message}")]
    UnknownToken { soft_logout: bool, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("room version {0} is not supported")]
    UnsupportedRoomVersion(String),
    /// An alias (or createRoom's alias) is taken.
    #[error("{0}")]
    RoomInUse(String),
    #[error("{0}")]
    AliasConflict(String),
    /// createRoom's initial state does not pass the authorisation rules.
    #[error("{0}")]
    InvalidRoomState(String),
    /// A signature on uploaded keys does not verify.
    #[error("{0}")]
    InvalidSignature(String),
    /// A key backup upload named a version that is not the current one.
    #[error("the key backup version is not the current one ({current})")]
    WrongRoomKeysVersion { current: String },
    /// A sliding sync position the server does not know (any more): the client starts the
    /// connection over.
    #[error("{0}")]
    UnknownPos(String),
    #[error("unknown or expired authentication session; start again without a session")]
    UnknownUiaSession,
    /// User-interactive authentication must continue (HTTP 401 with the flows).
    #[error("additional authentication is required")]
    AuthRequired(Box<UiaChallenge>),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a client needs to continue user-interactive authentication.
#[derive(Debug)]
pub struct UiaChallenge {
    pub flows: Vec<Flow>,
    pub completed: Vec<Stage>,
    pub session: String,
    /// Why the last stage attempt failed, if it did.
    pub error: Option<Error>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
