//! What a logged-in user does to their own account: devices, password, deactivation, profile.

use ward_core::uia::Stage;
use ward_store::{Device, DeviceRetention};

use crate::{Authed, Error, Result, Services, UiaAuth, hash_password, limits};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
}

fn password_flows() -> Vec<Vec<Stage>> {
    vec![vec![Stage::Password]]
}

impl Services {
    pub async fn devices(&self, authed: &Authed) -> Result<Vec<Device>> {
        Ok(self.store.devices(&authed.user_id).await?)
    }

    pub async fn device(&self, authed: &Authed, device_id: &str) -> Result<Device> {
        self.store
            .device(&authed.user_id, device_id)
            .await?
            .ok_or_else(|| Error::NotFound("no such device".into()))
    }

    pub async fn rename_device(&self, authed: &Authed, device_id: &str, name: Option<&str>) -> Result<()> {
        Self::check_device_input(None, name)?;
        if self.store.set_device_display_name(&authed.user_id, device_id, name).await? {
            // Others see device names in /keys/query, so their copy of the list is stale.
            let pos = self.store.mark_device_list_changed(&authed.user_id).await?;
            self.notifier.advance_stream(pos);
            Ok(())
        } else {
            Err(Error::NotFound("no such device".into()))
        }
    }

    /// `DELETE /devices/{id}` and `POST /delete_devices`, behind `m.login.password`.
    pub async fn delete_devices(
        &self,
        authed: &Authed,
        device_ids: &[String],
        auth: Option<UiaAuth>,
    ) -> Result<()> {
        if device_ids.len() > limits::DELETE_DEVICES_MAX {
            return Err(Error::InvalidParam(format!(
                "at most {} devices can be deleted at once",
                limits::DELETE_DEVICES_MAX
            )));
        }
        let session = self.run_uia("delete_devices", Some(&authed.user_id), &password_flows(), auth).await?;
        self.store.delete_devices(&authed.user_id, device_ids).await?;
        self.wake_from_store().await?;
        self.store.delete_uia_session(&session.id).await?;
        Ok(())
    }

    /// `POST /account/password`. Unless `logout_devices` is false, every other device is logged
    /// out (and deleted), as the spec requires.
    pub async fn change_password(
        &self,
        authed: &Authed,
        new_password: &str,
        logout_devices: bool,
        auth: Option<UiaAuth>,
    ) -> Result<()> {
        self.check_new_password(new_password)?;
        let session = self.run_uia("change_password", Some(&authed.user_id), &password_flows(), auth).await?;
        let hash = hash_password(new_password).await?;
        let retention = if logout_devices {
            DeviceRetention::KeepOnly(authed.device_id.clone())
        } else {
            DeviceRetention::KeepAll
        };
        self.store.set_password_hash(&authed.user_id, &hash, retention).await?;
        self.wake_from_store().await?;
        self.store.delete_uia_session(&session.id).await?;
        tracing::info!("password changed");
        Ok(())
    }

    /// `POST /account/deactivate`: the account can never log in again and its name stays taken.
    pub async fn deactivate(&self, authed: &Authed, auth: Option<UiaAuth>) -> Result<()> {
        self.run_uia("deactivate", Some(&authed.user_id), &password_flows(), auth).await?;
        // Deactivation deletes the account's UIA sessions, this one included.
        self.store.deactivate_account(&authed.user_id).await?;
        self.wake_from_store().await?;
        tracing::info!("account deactivated");
        Ok(())
    }

    /// A local user's public profile. Deactivated and unknown users have none.
    pub async fn profile(&self, user_id: &str) -> Result<Profile> {
        match self.store.account(user_id).await? {
            Some(a) if !a.deactivated => {
                Ok(Profile { display_name: a.display_name, avatar_url: a.avatar_url })
            }
            _ => Err(Error::NotFound("profile not found".into())),
        }
    }

    fn check_own_profile(&self, authed: &Authed, user_id: &str) -> Result<()> {
        if authed.user_id != user_id {
            return Err(Error::Forbidden("you can only change your own profile".into()));
        }
        Ok(())
    }

    pub async fn set_display_name(&self, authed: &Authed, user_id: &str, name: Option<&str>) -> Result<()> {
        self.check_own_profile(authed, user_id)?;
        let name = name.filter(|n| !n.is_empty());
        if let Some(n) = name
            && n.chars().count() > limits::DISPLAY_NAME_MAX_CHARS
        {
            return Err(Error::InvalidParam(format!(
                "display names have at most {} characters",
                limits::DISPLAY_NAME_MAX_CHARS
            )));
        }
        self.store.set_display_name(user_id, name).await?;
        self.propagate_profile(authed).await;
        Ok(())
    }

    pub async fn set_avatar_url(&self, authed: &Authed, user_id: &str, url: Option<&str>) -> Result<()> {
        self.check_own_profile(authed, user_id)?;
        let url = url.filter(|u| !u.is_empty());
        if let Some(u) = url {
            if u.len() > limits::AVATAR_URL_MAX_BYTES {
                return Err(Error::InvalidParam(format!(
                    "avatar URLs have at most {} bytes",
                    limits::AVATAR_URL_MAX_BYTES
                )));
            }
            if !is_mxc_uri(u) {
                return Err(Error::InvalidParam("avatar_url must be an mxc:// URI".into()));
            }
        }
        self.store.set_avatar_url(user_id, url).await?;
        self.propagate_profile(authed).await;
        Ok(())
    }

    /// A profile change shows in every room the user is in, as a new member event (what other
    /// members' clients display). A room that refuses the event is logged and skipped.
    async fn propagate_profile(&self, authed: &Authed) {
        let Ok(profile) = self.profile(&authed.user_id).await else { return };
        let Ok(memberships) = self.store.memberships_of_user(&authed.user_id).await else { return };
        let Ok(sender) = crate::rooms::parse_user_id(&authed.user_id) else { return };
        for m in memberships.into_iter().filter(|m| m.membership == "join") {
            let mut content = serde_json::json!({"membership": "join"});
            if let Some(n) = &profile.display_name {
                content["displayname"] = serde_json::json!(n);
            }
            if let Some(a) = &profile.avatar_url {
                content["avatar_url"] = serde_json::json!(a);
            }
            let Ok(room_id) = crate::rooms::parse_room_id(&m.room_id) else { continue };
            let draft = ward_rooms::EventDraft {
                kind: ruma::events::TimelineEventType::RoomMember,
                state_key: Some(authed.user_id.clone()),
                content,
                redacts: None,
            };
            if let Err(e) = self.append(&room_id, &sender, draft, None).await {
                tracing::warn!(error = %e, "could not update a member event after a profile change");
            }
        }
    }
}

/// `mxc://<server-name>/<media-id>` with a non-empty media ID of URL-safe characters.
fn is_mxc_uri(u: &str) -> bool {
    let Some(rest) = u.strip_prefix("mxc://") else {
        return false;
    };
    let Some((server, media)) = rest.split_once('/') else {
        return false;
    };
    !server.is_empty()
        && !media.is_empty()
        && media.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
