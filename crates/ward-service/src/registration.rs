//! Registration through the client API, gated by the configured mode.

use ward_config::RegistrationMode;
use ward_core::secret::{new_device_id, random_string};
use ward_core::uia::{Flow, Stage};
use ward_core::username;
use ward_store::{NewAccount, Registration, StoreError};

use crate::{Error, Result, Services, Tokens, UiaAuth, hash_password, limits, now_ms};

#[derive(Debug, Clone, Default)]
pub struct RegisterInput {
    pub username: Option<String>,
    pub password: Option<String>,
    pub device_id: Option<String>,
    pub initial_device_display_name: Option<String>,
    pub inhibit_login: bool,
    pub refresh_token: bool,
    pub guest: bool,
    pub auth: Option<UiaAuth>,
}

#[derive(Debug, Clone)]
pub struct RegisterOutcome {
    pub user_id: String,
    /// `None` when the client asked for `inhibit_login`.
    pub login: Option<(String, Tokens)>,
}

impl Services {
    fn registration_flows(&self) -> Result<Vec<Flow>> {
        match self.settings.registration {
            RegistrationMode::Closed => Err(Error::Forbidden(
                "registration is closed on this server; ask your administrator for an account".into(),
            )),
            // The token flow ends in m.login.dummy as Synapse's does; matrix-nio relies on it.
            RegistrationMode::Token => Ok(vec![vec![Stage::RegistrationToken, Stage::Dummy]]),
            RegistrationMode::Open => Ok(vec![vec![Stage::Dummy]]),
        }
    }

    /// Checks that `requested` could be registered now and returns its normalised localpart.
    pub(crate) async fn check_new_username(
        &self,
        requested: &str,
        apply_reservations: bool,
    ) -> Result<String> {
        let localpart = username::normalise_new_localpart(requested, &self.settings.server_name)
            .map_err(|e| Error::InvalidUsername(e.to_string()))?;
        if apply_reservations && username::is_reserved(&localpart, &self.settings.reserved_usernames) {
            return Err(Error::Exclusive(format!("the username `{localpart}` is reserved on this server")));
        }
        if self.store.account(&self.user_id(&localpart)).await?.is_some() {
            return Err(Error::UserInUse);
        }
        Ok(localpart)
    }

    /// `GET /register/available`.
    pub async fn username_available(&self, requested: &str) -> Result<()> {
        self.registration_flows()?;
        self.check_new_username(requested, true).await.map(|_| ())
    }

    /// `GET /register/m.login.registration_token/validity`.
    pub async fn registration_token_valid(&self, token: &str) -> Result<bool> {
        if self.settings.registration != RegistrationMode::Token {
            return Err(Error::Forbidden("this server does not use registration tokens".into()));
        }
        if token.len() > limits::REGISTRATION_TOKEN_MAX_BYTES {
            return Ok(false);
        }
        Ok(self.store.registration_token(token).await?.is_some_and(|t| t.is_valid(now_ms())))
    }

    /// `POST /register`. Username and password are checked before user-interactive auth, so a
    /// client learns about a taken name before it spends a registration token.
    pub async fn register(&self, input: RegisterInput) -> Result<RegisterOutcome> {
        if input.guest {
            return Err(Error::GuestAccessForbidden);
        }
        let flows = self.registration_flows()?;
        let localpart = match &input.username {
            Some(u) => Some(self.check_new_username(u, true).await?),
            None => None,
        };
        if let Some(p) = &input.password {
            self.check_new_password(p)?;
        }
        Self::check_device_input(input.device_id.as_deref(), input.initial_device_display_name.as_deref())?;

        let session = self.run_uia("register", None, &flows, input.auth).await?;

        let Some(password) = input.password else {
            return Err(Error::MissingParam("a password is required to register".into()));
        };
        let localpart = match localpart {
            Some(l) => l,
            None => self.unused_localpart().await?,
        };
        let password_hash = hash_password(&password).await?;
        let now = now_ms();
        let user_id = self.user_id(&localpart);
        let (session_row, login) = if input.inhibit_login {
            (None, None)
        } else {
            let device_id = input.device_id.unwrap_or_else(new_device_id);
            let (row, tokens) = self.mint_session(
                device_id.clone(),
                input.initial_device_display_name,
                input.refresh_token,
                now,
            );
            (Some(row), Some((device_id, tokens)))
        };
        let registration = Registration {
            account: NewAccount {
                user_id: user_id.clone(),
                password_hash: Some(password_hash),
                is_admin: false,
                display_name: Some(localpart),
                created_ms: now,
            },
            registration_token: session.registration_token.clone(),
            session: session_row,
        };
        match self.store.register(registration, now).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(Error::UserInUse),
            Err(StoreError::RegistrationTokenInvalid) => {
                self.store.delete_uia_session(&session.id).await?;
                return Err(Error::Unauthorized("the registration token was used up meanwhile".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.store.delete_uia_session(&session.id).await?;
        tracing::info!("account registered");
        Ok(RegisterOutcome { user_id, login })
    }

    async fn unused_localpart(&self) -> Result<String> {
        for _ in 0..10 {
            let candidate = random_string(12, b"abcdefghijklmnopqrstuvwxyz0123456789");
            if self.store.account(&self.user_id(&candidate)).await?.is_none() {
                return Ok(candidate);
            }
        }
        Err(Error::Internal("could not find a free user ID".into()))
    }
}
