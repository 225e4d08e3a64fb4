//! Running user-interactive authentication against stored sessions.

use ward_core::secret::random_string;
use ward_core::uia::{self, Flow, Stage};
use ward_store::UiaSession;

use crate::{Error, Result, Services, UiaChallenge, now_ms, verify_password};

/// The `auth` object of a request, as far as Ward understands it.
#[derive(Debug, Clone, Default)]
pub struct UiaAuth {
    pub session: Option<String>,
    pub stage: Option<UiaStageInput>,
}

#[derive(Debug, Clone)]
pub enum UiaStageInput {
    /// `m.login.password`; `user` is the identifier's user (localpart or full ID) if given.
    Password {
        user: Option<String>,
        password: String,
    },
    RegistrationToken {
        token: String,
    },
    Dummy,
    /// A stage type Ward does not offer.
    Unsupported(String),
}

const SESSION_ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

impl Services {
    /// Advances UIA for `purpose` (and the authenticated `user_id`, if any). `Ok` with the
    /// session once a flow is complete (the caller deletes it after committing its operation);
    /// otherwise [`Error::AuthRequired`] with what the client must do next.
    pub(crate) async fn run_uia(
        &self,
        purpose: &str,
        user_id: Option<&str>,
        flows: &[Flow],
        auth: Option<UiaAuth>,
    ) -> Result<UiaSession> {
        let now = now_ms();
        let auth = auth.unwrap_or_default();
        let mut session = match &auth.session {
            Some(id) => match self.store.uia_session(id).await? {
                Some(s)
                    if s.purpose == purpose
                        && s.user_id.as_deref() == user_id
                        && !uia::is_expired(s.created_ms, now, self.settings.uia_session_timeout_ms) =>
                {
                    s
                }
                _ => return Err(Error::UnknownUiaSession),
            },
            None => {
                // Expired sessions are swept whenever a new one starts.
                self.store
                    .delete_uia_sessions_before(now.saturating_sub(self.settings.uia_session_timeout_ms))
                    .await?;
                let s = UiaSession {
                    id: random_string(32, SESSION_ID_ALPHABET),
                    purpose: purpose.to_owned(),
                    user_id: user_id.map(str::to_owned),
                    completed: vec![],
                    registration_token: None,
                    created_ms: now,
                };
                self.store.create_uia_session(s.clone()).await?;
                s
            }
        };
        let mut completed: Vec<Stage> = session.completed.iter().filter_map(|s| Stage::parse(s)).collect();

        let mut stage_error = None;
        if let Some(input) = auth.stage {
            let stage = match &input {
                UiaStageInput::Password { .. } => Stage::Password,
                UiaStageInput::RegistrationToken { .. } => Stage::RegistrationToken,
                UiaStageInput::Dummy => Stage::Dummy,
                UiaStageInput::Unsupported(kind) => {
                    return Err(Error::Unrecognized(format!(
                        "authentication type `{kind}` is not offered by this server"
                    )));
                }
            };
            if !uia::stage_allowed(flows, &completed, stage) {
                stage_error = Some(Error::Forbidden(format!("{stage} is not expected at this point")));
            } else {
                match self.check_stage(user_id, &input, now).await {
                    Ok(()) => {
                        if !completed.contains(&stage) {
                            completed.push(stage);
                        }
                        if let UiaStageInput::RegistrationToken { token } = input {
                            session.registration_token = Some(token);
                        }
                        session.completed = completed.iter().map(|s| s.as_str().to_owned()).collect();
                        self.store.update_uia_session(&session).await?;
                    }
                    Err(e @ Error::LimitExceeded { .. }) => return Err(e),
                    Err(e) => stage_error = Some(e),
                }
            }
        }

        if uia::is_complete(flows, &completed) {
            return Ok(session);
        }
        Err(Error::AuthRequired(Box::new(UiaChallenge {
            flows: flows.to_vec(),
            completed,
            session: session.id,
            error: stage_error,
        })))
    }

    async fn check_stage(&self, user_id: Option<&str>, input: &UiaStageInput, now: u64) -> Result<()> {
        match input {
            UiaStageInput::Dummy => Ok(()),
            UiaStageInput::RegistrationToken { token } => {
                let valid = token.len() <= crate::limits::REGISTRATION_TOKEN_MAX_BYTES
                    && self.store.registration_token(token).await?.is_some_and(|t| t.is_valid(now));
                if valid { Ok(()) } else { Err(Error::Unauthorized("invalid registration token".into())) }
            }
            UiaStageInput::Password { user, password } => {
                let Some(user_id) = user_id else {
                    return Err(Error::Forbidden("password authentication needs a logged-in user".into()));
                };
                if let Some(claimed) = user
                    && self.resolve_user(claimed).as_deref() != Some(user_id)
                {
                    return Err(Error::Forbidden("you can only authenticate as yourself".into()));
                }
                let key = format!("user:{user_id}");
                self.check_throttle(&[&key], now)?;
                let account = self.store.account(user_id).await?;
                let hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
                if verify_password(password, hash).await? {
                    Ok(())
                } else {
                    self.record_failure(&[&key], now);
                    Err(Error::Forbidden("invalid password".into()))
                }
            }
            UiaStageInput::Unsupported(_) => Err(Error::Forbidden("unsupported stage".into())),
        }
    }

    /// The full user ID a login identifier names, if it names a local user.
    pub(crate) fn resolve_user(&self, identifier: &str) -> Option<String> {
        let localpart = match identifier.strip_prefix('@') {
            Some(rest) => {
                let (local, server) = rest.split_once(':')?;
                if server != self.settings.server_name {
                    return None;
                }
                local
            }
            None => identifier,
        };
        if localpart.is_empty() {
            return None;
        }
        Some(self.user_id(&localpart.to_lowercase()))
    }
}
