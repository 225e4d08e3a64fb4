//! Operator tasks behind `ward admin …`. They work on the same store while the server runs.

use ward_core::secret::random_string;
use ward_store::{DeviceRetention, NewAccount, Registration, RegistrationToken, StoreError};

use crate::{Error, Result, Services, hash_password, limits, now_ms};

#[derive(Debug, Clone, Default)]
pub struct NewRegistrationToken {
    /// `None`: generate one.
    pub token: Option<String>,
    pub uses_allowed: Option<u32>,
    pub expires_ms: Option<u64>,
}

/// A password for `ward admin` to hand out: 20 characters from an alphabet without look-alikes
/// (about 116 bits).
pub fn generate_password() -> String {
    random_string(20, b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
}

impl Services {
    /// Refuses users without the admin flag (set by `ward admin create-user --admin`).
    pub async fn require_admin(&self, authed: &crate::Authed) -> Result<()> {
        match self.store.account(&authed.user_id).await? {
            Some(a) if a.is_admin && !a.deactivated => Ok(()),
            _ => Err(Error::Forbidden("only server administrators may do this".into())),
        }
    }

    pub async fn count_accounts(&self) -> Result<u64> {
        Ok(self.store.count_accounts().await?)
    }

    /// Creates an account. Reserved names are allowed here: the operator decides.
    pub async fn admin_create_user(&self, username: &str, password: &str, is_admin: bool) -> Result<String> {
        let localpart = self.check_new_username(username, false).await?;
        self.check_new_password(password)?;
        let hash = hash_password(password).await?;
        let user_id = self.user_id(&localpart);
        let now = now_ms();
        let registration = Registration {
            account: NewAccount {
                user_id: user_id.clone(),
                password_hash: Some(hash),
                is_admin,
                display_name: Some(localpart),
                created_ms: now,
            },
            registration_token: None,
            session: None,
        };
        match self.store.register(registration, now).await {
            Ok(()) => Ok(user_id),
            Err(StoreError::Conflict(_)) => Err(Error::UserInUse),
            Err(e) => Err(e.into()),
        }
    }

    fn existing_user_id(&self, user: &str) -> Result<String> {
        self.resolve_user(user)
            .ok_or_else(|| Error::NotFound(format!("`{user}` is not a user of this server")))
    }

    /// Sets a new password and logs the user out everywhere.
    pub async fn admin_reset_password(&self, user: &str, password: &str) -> Result<String> {
        let user_id = self.existing_user_id(user)?;
        self.check_new_password(password)?;
        match self.store.account(&user_id).await? {
            Some(a) if a.deactivated => return Err(Error::UserDeactivated),
            Some(_) => {}
            None => return Err(Error::NotFound(format!("no account {user_id}"))),
        }
        let hash = hash_password(password).await?;
        self.store.set_password_hash(&user_id, &hash, DeviceRetention::RemoveAll).await?;
        Ok(user_id)
    }

    pub async fn admin_deactivate(&self, user: &str) -> Result<String> {
        let user_id = self.existing_user_id(user)?;
        if self.store.deactivate_account(&user_id).await? {
            Ok(user_id)
        } else {
            Err(Error::NotFound(format!("no account {user_id}")))
        }
    }

    pub async fn admin_create_registration_token(
        &self,
        new: NewRegistrationToken,
    ) -> Result<RegistrationToken> {
        let token = match new.token {
            Some(t) => {
                let ok = !t.is_empty()
                    && t.len() <= limits::REGISTRATION_TOKEN_MAX_BYTES
                    && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
                if !ok {
                    return Err(Error::InvalidParam(format!(
                        "a registration token has 1 to {} characters from A-Z a-z 0-9 . _ ~ -",
                        limits::REGISTRATION_TOKEN_MAX_BYTES
                    )));
                }
                t
            }
            None => random_string(16, b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"),
        };
        if new.uses_allowed == Some(0) {
            return Err(Error::InvalidParam("uses must be at least 1".into()));
        }
        let record = RegistrationToken {
            token,
            uses_allowed: new.uses_allowed,
            completed: 0,
            expires_ms: new.expires_ms,
            created_ms: now_ms(),
        };
        match self.store.create_registration_token(record.clone()).await {
            Ok(()) => Ok(record),
            Err(StoreError::Conflict(_)) => {
                Err(Error::InvalidParam("that registration token exists already".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn admin_registration_tokens(&self) -> Result<Vec<RegistrationToken>> {
        Ok(self.store.registration_tokens().await?)
    }

    pub async fn admin_revoke_registration_token(&self, token: &str) -> Result<()> {
        if self.store.delete_registration_token(token).await? {
            Ok(())
        } else {
            Err(Error::NotFound("no such registration token".into()))
        }
    }
}
