//! Logging in and out, refreshing tokens, and turning an access token into a user.

use ward_core::secret::{hash_token, new_device_id, new_token};
use ward_store::NewSession;

use crate::{Error, Result, Services, limits, now_ms, verify_password};

/// The authenticated user and device behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authed {
    pub user_id: String,
    pub device_id: String,
}

#[derive(Debug, Clone)]
pub struct LoginInput {
    /// Localpart or full user ID.
    pub user: String,
    pub password: String,
    pub device_id: Option<String>,
    pub initial_device_display_name: Option<String>,
    pub refresh_token: bool,
}

/// Fresh credentials for a device.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct LoginOutcome {
    pub user_id: String,
    pub device_id: String,
    pub tokens: Tokens,
}

impl Services {
    /// Mints tokens and the stored form of a session for `device_id`.
    pub(crate) fn mint_session(
        &self,
        device_id: String,
        display_name: Option<String>,
        with_refresh: bool,
        now: u64,
    ) -> (NewSession, Tokens) {
        let access_token = new_token("ward_at");
        let refresh_token = with_refresh.then(|| new_token("ward_rt"));
        let expires_in_ms = with_refresh.then_some(self.settings.access_token_lifetime_ms);
        let session = NewSession {
            device_id,
            device_display_name: display_name,
            access_token_hash: hash_token(&access_token),
            refresh_token_hash: refresh_token.as_deref().map(hash_token),
            access_expires_ms: expires_in_ms.map(|l| now + l),
        };
        (session, Tokens { access_token, refresh_token, expires_in_ms })
    }

    pub(crate) fn check_device_input(device_id: Option<&str>, display_name: Option<&str>) -> Result<()> {
        if let Some(d) = device_id
            && (d.is_empty() || d.len() > limits::DEVICE_ID_MAX_BYTES)
        {
            return Err(Error::InvalidParam(format!(
                "device_id must have 1 to {} bytes",
                limits::DEVICE_ID_MAX_BYTES
            )));
        }
        if let Some(n) = display_name
            && n.chars().count() > limits::DEVICE_DISPLAY_NAME_MAX_CHARS
        {
            return Err(Error::InvalidParam(format!(
                "device display names have at most {} characters",
                limits::DEVICE_DISPLAY_NAME_MAX_CHARS
            )));
        }
        Ok(())
    }

    /// `m.login.password`. Failures are throttled per user and per client address; a
    /// throttled key is refused before the password is even checked.
    pub async fn login(&self, input: LoginInput, client_addr: &str) -> Result<LoginOutcome> {
        let now = now_ms();
        Self::check_device_input(input.device_id.as_deref(), input.initial_device_display_name.as_deref())?;
        if input.password.len() > limits::PASSWORD_MAX_BYTES {
            return Err(Error::Forbidden("invalid username or password".into()));
        }
        let user_id = self.resolve_user(&input.user);
        let user_key = format!("user:{}", user_id.as_deref().unwrap_or(&input.user));
        let addr_key = format!("addr:{client_addr}");
        self.check_throttle(&[&user_key, &addr_key], now)?;

        let account = match &user_id {
            Some(id) => self.store.account(id).await?,
            None => None,
        };
        let hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
        let password_ok = verify_password(&input.password, hash).await?;
        let Some(account) = account.filter(|_| password_ok) else {
            self.record_failure(&[&user_key, &addr_key], now);
            return Err(Error::Forbidden("invalid username or password".into()));
        };
        if account.deactivated {
            return Err(Error::UserDeactivated);
        }

        let device_id = match input.device_id {
            Some(d) => d,
            None => new_device_id(),
        };
        let existing = self.store.device(&account.user_id, &device_id).await?;
        if existing.is_none()
            && self.store.count_devices(&account.user_id).await? >= self.settings.max_devices_per_user
        {
            return Err(Error::Forbidden(format!(
                "this account already has {} devices logged in; log out of one first",
                self.settings.max_devices_per_user
            )));
        }
        let (session, tokens) =
            self.mint_session(device_id.clone(), input.initial_device_display_name, input.refresh_token, now);
        self.store.create_session(&account.user_id, session, now).await?;
        tracing::info!(device = %device_id, "login");
        Ok(LoginOutcome { user_id: account.user_id, device_id, tokens })
    }

    /// `POST /refresh`: a new token pair for the same device.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens> {
        let now = now_ms();
        let access_token = new_token("ward_at");
        let new_refresh = new_token("ward_rt");
        let lifetime = self.settings.access_token_lifetime_ms;
        let refreshed = self
            .store
            .refresh_session(
                &hash_token(refresh_token),
                hash_token(&access_token),
                hash_token(&new_refresh),
                Some(now + lifetime),
            )
            .await?;
        match refreshed {
            Some(_) => {
                Ok(Tokens { access_token, refresh_token: Some(new_refresh), expires_in_ms: Some(lifetime) })
            }
            None => Err(Error::UnknownToken { soft_logout: false, message: "unknown refresh token".into() }),
        }
    }

    /// The user and device an access token belongs to.
    pub async fn authenticate(&self, access_token: &str) -> Result<Authed> {
        let now = now_ms();
        let session = self.store.session_by_access_token(&hash_token(access_token)).await?;
        let Some(session) = session else {
            return Err(Error::UnknownToken { soft_logout: false, message: "unknown access token".into() });
        };
        if session.access_expires_ms.is_some_and(|exp| exp <= now) {
            return Err(Error::UnknownToken {
                soft_logout: true,
                message: "the access token has expired; refresh it".into(),
            });
        }
        self.touch(&session.user_id, &session.device_id, now).await?;
        Ok(Authed { user_id: session.user_id, device_id: session.device_id })
    }

    /// Records device activity, at most once per [`limits::DEVICE_TOUCH_INTERVAL_MS`].
    async fn touch(&self, user_id: &str, device_id: &str, now: u64) -> Result<()> {
        let due = {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            if touched.len() >= limits::DEVICE_TOUCH_MAX_ENTRIES {
                touched.clear();
            }
            let key = (user_id.to_owned(), device_id.to_owned());
            match touched.get(&key) {
                Some(&last) if now.saturating_sub(last) < limits::DEVICE_TOUCH_INTERVAL_MS => false,
                _ => {
                    touched.insert(key, now);
                    true
                }
            }
        };
        if due {
            self.store.touch_device(user_id, device_id, now).await?;
        }
        Ok(())
    }

    /// Ends this device's session; the device goes with it, as the spec requires.
    pub async fn logout(&self, authed: &Authed) -> Result<()> {
        self.store.delete_devices(&authed.user_id, std::slice::from_ref(&authed.device_id)).await?;
        self.wake_from_store().await
    }

    pub async fn logout_all(&self, authed: &Authed) -> Result<()> {
        self.store.delete_all_devices(&authed.user_id).await?;
        self.wake_from_store().await
    }
}
