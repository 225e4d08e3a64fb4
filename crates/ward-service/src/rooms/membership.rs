//! Membership changes: invite, join, leave, kick, ban, unban.
//!
//! The room's authorisation rules decide; this module only builds the member event the
//! client asked for (with the joining user's profile, as Synapse does) and maps "you are not
//! allowed" to `M_FORBIDDEN`.

use ruma::events::TimelineEventType;
use serde_json::{Value, json};
use ward_rooms::EventDraft;

use super::{parse_room_id, parse_user_id};
use crate::{Authed, Error, Result, Services};

/// Reasons are free text shown to the affected user; keep them short.
const REASON_MAX_CHARS: usize = 1000;

fn member_draft(target: &str, content: Value) -> EventDraft {
    EventDraft {
        kind: TimelineEventType::RoomMember,
        state_key: Some(target.to_owned()),
        content,
        redacts: None,
    }
}

fn with_reason(mut content: Value, reason: Option<&str>) -> Result<Value> {
    if let Some(r) = reason {
        if r.chars().count() > REASON_MAX_CHARS {
            return Err(Error::InvalidParam(format!("reasons have at most {REASON_MAX_CHARS} characters")));
        }
        content["reason"] = json!(r);
    }
    Ok(content)
}

impl Services {
    async fn ensure_room(&self, room_id: &str) -> Result<ruma::OwnedRoomId> {
        let id = parse_room_id(room_id)?;
        if self.store.room(id.as_str()).await?.is_none() {
            return Err(Error::NotFound("no such room".into()));
        }
        Ok(id)
    }

    async fn local_target(&self, user_id: &str) -> Result<ruma::OwnedUserId> {
        let user = parse_user_id(user_id)?;
        if user.server_name() != self.server_name()? {
            return Err(Error::Forbidden(
                "users of other servers need federation, which is not enabled".into(),
            ));
        }
        Ok(user)
    }

    pub async fn invite(
        &self,
        authed: &Authed,
        room_id: &str,
        target: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let room_id = self.ensure_room(room_id).await?;
        let target = self.local_target(target).await?;
        if self.store.account(target.as_str()).await?.is_none_or(|a| a.deactivated) {
            return Err(Error::NotFound(format!("no user {target}")));
        }
        if let Some(m) = self.store.membership(room_id.as_str(), target.as_str()).await? {
            match m.membership.as_str() {
                "join" => return Err(Error::Forbidden(format!("{target} is already in the room"))),
                "ban" => return Err(Error::Forbidden(format!("{target} is banned from the room"))),
                "invite" => return Ok(()),
                _ => {}
            }
        }
        let mut content = with_reason(json!({"membership": "invite"}), reason)?;
        if let Ok(p) = self.profile(target.as_str()).await
            && let Some(n) = p.display_name
        {
            content["displayname"] = json!(n);
        }
        let sender = parse_user_id(&authed.user_id)?;
        self.append(&room_id, &sender, member_draft(target.as_str(), content), None).await?;
        Ok(())
    }

    /// Joins by room ID or alias. Joining a room one is already in succeeds without a new
    /// event.
    pub async fn join(
        &self,
        authed: &Authed,
        room_id_or_alias: &str,
        reason: Option<&str>,
    ) -> Result<String> {
        let resolved;
        let room_id = if room_id_or_alias.starts_with('#') {
            resolved = self.resolve_alias(room_id_or_alias).await?.0;
            resolved.as_str()
        } else {
            room_id_or_alias
        };
        let room_id = match self.ensure_room(room_id).await {
            Ok(id) => id,
            // Spec: joining an unknown room is "not allowed", not "not found".
            Err(Error::NotFound(_)) => return Err(Error::NotFound("no such room on this server".into())),
            Err(e) => return Err(e),
        };
        if let Some(m) = self.store.membership(room_id.as_str(), &authed.user_id).await?
            && m.membership == "join"
        {
            return Ok(room_id.to_string());
        }
        let mut content = with_reason(json!({"membership": "join"}), reason)?;
        if let Some(authoriser) = self.restricted_join_authoriser(room_id.as_str(), &authed.user_id).await? {
            content["join_authorised_via_users_server"] = json!(authoriser);
        }
        let profile = self.profile(&authed.user_id).await.unwrap_or_default();
        if let Some(n) = profile.display_name {
            content["displayname"] = json!(n);
        }
        if let Some(a) = profile.avatar_url {
            content["avatar_url"] = json!(a);
        }
        let sender = parse_user_id(&authed.user_id)?;
        self.append(&room_id, &sender, member_draft(sender.as_str(), content), None).await?;
        Ok(room_id.to_string())
    }

    /// `POST /knock/{roomIdOrAlias}`: asks to be let into a room whose join rule is `knock`.
    pub async fn knock(
        &self,
        authed: &Authed,
        room_id_or_alias: &str,
        reason: Option<&str>,
    ) -> Result<String> {
        let room_id = if room_id_or_alias.starts_with('#') {
            self.resolve_alias(room_id_or_alias).await?.0
        } else {
            room_id_or_alias.to_owned()
        };
        let room_id = self.ensure_room(&room_id).await?;
        let mut content = with_reason(json!({"membership": "knock"}), reason)?;
        if let Ok(p) = self.profile(&authed.user_id).await
            && let Some(n) = p.display_name
        {
            content["displayname"] = json!(n);
        }
        let sender = parse_user_id(&authed.user_id)?;
        self.append(&room_id, &sender, member_draft(sender.as_str(), content), None).await?;
        Ok(room_id.to_string())
    }

    /// For a `restricted` (or `knock_restricted`) room that the user may join through one of
    /// its allowed rooms: a joined local member who may invite, to name in
    /// `join_authorised_via_users_server`. `None` when the room is not restricted, the user is
    /// already invited, or no allowed room has them (the auth rules then decide).
    async fn restricted_join_authoriser(&self, room_id: &str, user_id: &str) -> Result<Option<String>> {
        let Some(rules) = self.state_pdu(room_id, &ruma::events::StateEventType::RoomJoinRules, "").await?
        else {
            return Ok(None);
        };
        let content = rules.content_value();
        let rule = content.get("join_rule").and_then(Value::as_str).unwrap_or_default();
        if rule != "restricted" && rule != "knock_restricted" {
            return Ok(None);
        }
        if self.store.membership(room_id, user_id).await?.is_some_and(|m| m.membership == "invite") {
            return Ok(None);
        }
        let allowed: Vec<&str> = content
            .get("allow")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|c| c.get("type").and_then(Value::as_str) == Some("m.room_membership"))
                    .filter_map(|c| c.get("room_id").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let mut member_of_allowed = false;
        for r in allowed {
            if self.store.membership(r, user_id).await?.is_some_and(|m| m.membership == "join") {
                member_of_allowed = true;
                break;
            }
        }
        if !member_of_allowed {
            return Ok(None);
        }
        for m in self.store.room_members(room_id).await? {
            if m.membership != "join" {
                continue;
            }
            let Ok(candidate) = parse_user_id(&m.user_id) else { continue };
            if candidate.server_name() != self.server_name()? {
                continue;
            }
            let (mine, needed) = self.power_of(room_id, &candidate, "invite").await?;
            if mine >= needed {
                return Ok(Some(m.user_id));
            }
        }
        Ok(None)
    }

    /// Sends a member event setting `target`'s membership, on behalf of `authed`.
    async fn send_member(
        &self,
        authed: &Authed,
        room_id: &ruma::RoomId,
        target: &str,
        membership: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let sender = parse_user_id(&authed.user_id)?;
        let content = with_reason(json!({ "membership": membership }), reason)?;
        self.append(room_id, &sender, member_draft(target, content), None).await?;
        Ok(())
    }

    /// Leaves a room, or rejects an invite.
    pub async fn leave(&self, authed: &Authed, room_id: &str, reason: Option<&str>) -> Result<()> {
        let room_id = self.ensure_room(room_id).await?;
        match self.store.membership(room_id.as_str(), &authed.user_id).await? {
            Some(m) if matches!(m.membership.as_str(), "join" | "invite" | "knock") => {}
            // Already gone: nothing to do.
            Some(m) if m.membership == "leave" => return Ok(()),
            _ => return Err(Error::Forbidden("you are not in this room".into())),
        }
        self.send_member(authed, &room_id, &authed.user_id, "leave", reason).await
    }

    pub async fn kick(
        &self,
        authed: &Authed,
        room_id: &str,
        target: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let room_id = self.ensure_room(room_id).await?;
        let target = parse_user_id(target)?;
        match self.store.membership(room_id.as_str(), target.as_str()).await? {
            Some(m) if matches!(m.membership.as_str(), "join" | "invite" | "knock") => {}
            _ => return Err(Error::Forbidden(format!("{target} is not in the room"))),
        }
        self.send_member(authed, &room_id, target.as_str(), "leave", reason).await
    }

    pub async fn ban(
        &self,
        authed: &Authed,
        room_id: &str,
        target: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let room_id = self.ensure_room(room_id).await?;
        let target = parse_user_id(target)?;
        self.send_member(authed, &room_id, target.as_str(), "ban", reason).await
    }

    pub async fn unban(
        &self,
        authed: &Authed,
        room_id: &str,
        target: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let room_id = self.ensure_room(room_id).await?;
        let target = parse_user_id(target)?;
        match self.store.membership(room_id.as_str(), target.as_str()).await? {
            Some(m) if m.membership == "ban" => {}
            _ => return Err(Error::Forbidden(format!("{target} is not banned"))),
        }
        self.send_member(authed, &room_id, target.as_str(), "leave", reason).await
    }

    /// Rooms the user is joined to.
    pub async fn joined_rooms(&self, authed: &Authed) -> Result<Vec<String>> {
        Ok(self
            .store
            .memberships_of_user(&authed.user_id)
            .await?
            .into_iter()
            .filter(|m| m.membership == "join")
            .map(|m| m.room_id)
            .collect())
    }
}
