//! Issue 5, acceptance 3: device A bootstraps cross-signing, enables recovery (secret storage
//! plus a key backup), sends encrypted messages and backs their room keys up; device B, a new
//! login of the same user with empty stores, cannot read them, restores from the backup with
//! the recovery key, and then decrypts the old history.
//!
//! Server paths it proves: /keys/upload, /keys/query, /keys/device_signing/upload (with or
//! without UIA), /keys/signatures/upload, /room_keys/version, /room_keys/keys, account data
//! for secret storage, encrypted /send and /messages.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context as _, ensure};
use matrix_sdk::encryption::recovery::RecoveryState;
use matrix_sdk::ruma::api::client::backup::{get_backup_keys_for_room, get_latest_backup_info};
use matrix_sdk::ruma::api::client::keys::get_keys;
use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::events::InitialStateEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedEventId, OwnedUserId};
use serde_json::{Value, json};

use super::Context;
use crate::history::{Seen, read_back};
use crate::session::{Session, ms_since, wait_until, within};

const MESSAGES: &[&str] = &["Befund liegt vor", "Termin am Dienstag um 9", "Rezept ist fertig 💊"];

pub async fn run(ctx: Context) -> anyhow::Result<Value> {
    let user = &ctx.users[0];
    let mut timings = BTreeMap::new();

    // Device A: keys, cross-signing, recovery.
    let t = Instant::now();
    let mut a = Session::login(&ctx.homeserver, user, "ward-testclient A").await?;
    a.sync_once().await?;
    timings.insert("login_a_ms", ms_since(t));

    let t = Instant::now();
    let cross_signing_auth = a.bootstrap_cross_signing().await?;
    let status = a.client.encryption().cross_signing_status().await.context("no crypto machine on A")?;
    ensure!(status.is_complete(), "A's cross-signing identity is incomplete after bootstrap: {status:?}");
    timings.insert("cross_signing_ms", ms_since(t));

    let t = Instant::now();
    let recovery_key = within("enabling recovery (secret storage and key backup) on A", async {
        Ok(a.client.encryption().recovery().enable().wait_for_backups_to_upload().await?)
    })
    .await?;
    ensure!(
        a.client.encryption().recovery().state() == RecoveryState::Enabled,
        "recovery is {:?} on A after enabling it",
        a.client.encryption().recovery().state()
    );
    timings.insert("enable_recovery_ms", ms_since(t));
    a.start_sync();

    // An encrypted room with a few messages; their room key goes to the backup.
    let t = Instant::now();
    let mut request = create_room::v3::Request::new();
    request.name = Some("Rust SDK Backup".to_owned());
    request.initial_state = vec![
        InitialStateEvent::with_empty_state_key(RoomEncryptionEventContent::with_recommended_defaults())
            .to_raw_any(),
    ];
    let room =
        within("creating an encrypted room", async { Ok(a.client.create_room(request).await?) }).await?;
    let room_id = room.room_id().to_owned();
    let mut sent: Vec<OwnedEventId> = Vec::new();
    for body in MESSAGES {
        let response = within("sending an encrypted message", async {
            Ok(room.send(RoomMessageEventContent::text_plain(*body)).await?)
        })
        .await?;
        ensure!(response.encryption_info.is_some(), "{body:?} was sent unencrypted");
        sent.push(response.response.event_id);
    }
    timings.insert("room_and_send_ms", ms_since(t));

    let t = Instant::now();
    within("backing up the room keys", async {
        Ok(a.client.encryption().backups().wait_for_steady_state().await?)
    })
    .await?;
    let backup = within("reading the backup version", async {
        Ok(a.client.send(get_latest_backup_info::v3::Request::new()).await?)
    })
    .await?;
    let backed_up_sessions = wait_until("the room's key in the server's backup", || async {
        let request = get_backup_keys_for_room::v3::Request::new(backup.version.clone(), room_id.clone());
        let sessions = a.client.send(request).await?.sessions.len();
        Ok((sessions > 0).then_some(sessions))
    })
    .await?;
    timings.insert("backup_ms", ms_since(t));

    // Device B: a new login with empty stores.
    let t = Instant::now();
    let b = Session::login(&ctx.homeserver, user, "ward-testclient B").await?;
    b.sync_once().await?;
    let room_b = b.room(&room_id).await?;
    let before = within("reading history on B before recovery", read_back(&room_b, &sent)).await?;
    ensure!(
        before.iter().all(|s| *s == Seen::Undecryptable),
        "before recovery B should see only undecryptable events, saw {before:?}"
    );
    timings.insert("login_b_ms", ms_since(t));

    let t = Instant::now();
    within("recovering secrets on B with the recovery key", async {
        Ok(b.client.encryption().recovery().recover(&recovery_key).await?)
    })
    .await?;
    let recovery_state = b.client.encryption().recovery().state();
    ensure!(recovery_state == RecoveryState::Enabled, "recovery is {recovery_state:?} on B after recover()");
    let status_b = b.client.encryption().cross_signing_status().await.context("no crypto machine on B")?;
    ensure!(status_b.is_complete(), "B did not get the cross-signing keys from secret storage: {status_b:?}");
    let b_cross_signed =
        b.client.encryption().get_own_device().await?.is_some_and(|d| d.is_cross_signed_by_owner());
    within("downloading the room's keys from the backup on B", async {
        Ok(b.client.encryption().backups().download_room_keys_for_room(&room_id).await?)
    })
    .await?;
    timings.insert("recover_ms", ms_since(t));

    let t = Instant::now();
    let after = within("reading history on B after recovery", read_back(&room_b, &sent)).await?;
    let expected: Vec<Seen> = MESSAGES.iter().map(|m| Seen::Decrypted((*m).to_owned())).collect();
    ensure!(after == expected, "B's history after recovery: {after:?}, expected {expected:?}");
    timings.insert("decrypt_history_ms", ms_since(t));

    // The server holds both devices and the cross-signing identity.
    let user_id: OwnedUserId = a.client.user_id().context("A has no user ID")?.to_owned();
    let mut query = get_keys::v3::Request::new();
    query.device_keys.insert(user_id.clone(), Vec::new());
    let keys = within("querying the user's keys", async { Ok(b.client.send(query).await?) }).await?;
    let devices = keys.device_keys.get(&user_id).map(|d| d.len()).unwrap_or(0);
    ensure!(devices >= 2, "/keys/query lists {devices} devices, expected A and B");
    ensure!(keys.master_keys.contains_key(&user_id), "/keys/query has no master key");
    ensure!(keys.self_signing_keys.contains_key(&user_id), "/keys/query has no self-signing key");

    Ok(json!({
        "device_a": a.device_id(),
        "device_b": b.device_id(),
        "cross_signing_uia": cross_signing_auth.as_str(),
        "backup_version": backup.version,
        "backed_up_sessions": backed_up_sessions,
        "messages": MESSAGES.len(),
        "b_cross_signed_after_recovery": b_cross_signed,
        "devices_in_key_query": devices,
        "timings": timings,
    }))
}
