//! The `auth` object of user-interactive auth, read leniently.
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#user-interactive-authentication-api>.
//! ruma's `AuthData` rejects an `auth` object without `type`, but matrix-nio opens token
//! registration with exactly that (`{"initial_device_display_name": …}`) and Synapse treats it
//! as "no stage yet"; so do we.

use serde::Deserialize;
use ward_service::{UiaAuth, UiaStageInput};

use crate::error::ApiError;

#[derive(Debug, Deserialize)]
pub(crate) struct AuthJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    session: Option<String>,
    password: Option<String>,
    identifier: Option<Identifier>,
    /// Legacy (pre-r0.4) way to name the user.
    user: Option<String>,
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Identifier {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) user: Option<String>,
}

impl AuthJson {
    pub(crate) fn into_uia(self) -> Result<UiaAuth, ApiError> {
        let stage = match self.kind.as_deref() {
            None => None,
            Some("m.login.dummy") => Some(UiaStageInput::Dummy),
            Some("m.login.registration_token") => Some(UiaStageInput::RegistrationToken {
                token: self.token.ok_or_else(|| missing("auth.token"))?,
            }),
            Some("m.login.password") => {
                let user = match self.identifier {
                    Some(Identifier { kind, user }) if kind == "m.id.user" => user,
                    Some(Identifier { kind, .. }) => {
                        return Err(ApiError::invalid_param(format!(
                            "identifier type `{kind}` is not supported"
                        )));
                    }
                    None => self.user,
                };
                Some(UiaStageInput::Password {
                    user,
                    password: self.password.ok_or_else(|| missing("auth.password"))?,
                })
            }
            Some(other) => Some(UiaStageInput::Unsupported(other.to_owned())),
        };
        Ok(UiaAuth { session: self.session, stage })
    }
}

pub(crate) fn missing(field: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::BAD_REQUEST,
        ruma::api::error::ErrorKind::MissingParam,
        format!("missing field `{field}`"),
    )
}

pub(crate) fn uia(auth: Option<AuthJson>) -> Result<Option<UiaAuth>, ApiError> {
    auth.map(AuthJson::into_uia).transpose()
}
