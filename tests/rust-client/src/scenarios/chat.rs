//! Two users exchange encrypted messages both ways: each sender's device queries the other's
//! device keys, claims a one-time key, sends the room key as an encrypted to-device message,
//! and the receiver decrypts the message in its sync.
//!
//! Server paths it proves: /keys/upload, /keys/query, /keys/claim, /sendToDevice, to-device
//! and device-list parts of /sync, invites and joins, encrypted /send.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use matrix_sdk::deserialized_responses::EncryptionInfo;
use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::events::InitialStateEvent;
use matrix_sdk::ruma::events::room::encrypted::OriginalSyncRoomEncryptedEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::member::MembershipState;
use matrix_sdk::ruma::events::room::message::{OriginalSyncRoomMessageEvent, RoomMessageEventContent};
use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId};
use matrix_sdk::{Room, RoomState};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Context;
use crate::session::{Session, ms_since, wait_until, within};

/// A room message as a device's sync delivered it.
#[derive(Debug)]
struct Received {
    room_id: OwnedRoomId,
    sender: OwnedUserId,
    /// `None` if the device could not decrypt it.
    body: Option<String>,
    encrypted: bool,
}

/// Forwards every room message this session's sync delivers, decrypted or not.
fn subscribe(session: &Session) -> mpsc::UnboundedReceiver<Received> {
    let (tx, rx) = mpsc::unbounded_channel();
    let decrypted = tx.clone();
    session.client.add_event_handler(
        move |ev: OriginalSyncRoomMessageEvent, room: Room, info: Option<EncryptionInfo>| {
            let tx = decrypted.clone();
            async move {
                let _ = tx.send(Received {
                    room_id: room.room_id().to_owned(),
                    sender: ev.sender,
                    body: Some(ev.content.body().to_owned()),
                    encrypted: info.is_some(),
                });
            }
        },
    );
    // The SDK hands handlers the raw m.room.encrypted event only when it could not decrypt it.
    session.client.add_event_handler(move |ev: OriginalSyncRoomEncryptedEvent, room: Room| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(Received {
                room_id: room.room_id().to_owned(),
                sender: ev.sender,
                body: None,
                encrypted: true,
            });
        }
    });
    rx
}

/// Waits for `body` from `sender` in `room_id`, failing on an undecryptable message there.
async fn expect_message(
    rx: &mut mpsc::UnboundedReceiver<Received>,
    room_id: &OwnedRoomId,
    sender: &OwnedUserId,
    body: &str,
) -> anyhow::Result<()> {
    within(&format!("{body:?} arriving decrypted"), async {
        while let Some(m) = rx.recv().await {
            if m.room_id != *room_id || m.sender != *sender {
                continue;
            }
            match m.body {
                None => bail!("a message from {sender} arrived but could not be decrypted"),
                Some(b) if b == body => {
                    ensure!(m.encrypted, "{body:?} arrived unencrypted in an encrypted room");
                    return Ok(());
                }
                Some(_) => continue,
            }
        }
        bail!("the sync loop stopped")
    })
    .await
}

pub async fn run(ctx: Context) -> anyhow::Result<Value> {
    let mut timings = BTreeMap::new();

    let t = Instant::now();
    let mut a = Session::login(&ctx.homeserver, &ctx.users[0], "ward-testclient chat A").await?;
    let mut b = Session::login(&ctx.homeserver, &ctx.users[1], "ward-testclient chat B").await?;
    // A first sync each uploads the device keys and one-time keys the other side will need.
    a.sync_once().await?;
    b.sync_once().await?;
    let mut inbox_a = subscribe(&a);
    let mut inbox_b = subscribe(&b);
    a.start_sync();
    b.start_sync();
    let user_a = a.client.user_id().context("A has no user ID")?.to_owned();
    let user_b = b.client.user_id().context("B has no user ID")?.to_owned();
    timings.insert("login_ms", ms_since(t));

    let t = Instant::now();
    let mut request = create_room::v3::Request::new();
    request.name = Some("Rust SDK Chat".to_owned());
    request.invite = vec![user_b.clone()];
    request.initial_state = vec![
        InitialStateEvent::with_empty_state_key(RoomEncryptionEventContent::with_recommended_defaults())
            .to_raw_any(),
    ];
    let room_a =
        within("creating an encrypted room", async { Ok(a.client.create_room(request).await?) }).await?;
    let room_id = room_a.room_id().to_owned();
    let invited = b.room(&room_id).await?;
    wait_until("B's invite", || async { Ok((invited.state() == RoomState::Invited).then_some(())) }).await?;
    within("B joining", async { Ok(invited.join().await?) }).await?;
    wait_until("B's join in A's sync", || async {
        let member = room_a.get_member_no_sync(&user_b).await?;
        Ok(member.filter(|m| *m.membership() == MembershipState::Join).map(|_| ()))
    })
    .await?;
    timings.insert("room_ms", ms_since(t));

    let t = Instant::now();
    let hello = "Guten Morgen, Praxis Dr. Weber";
    within("A sending", async { Ok(room_a.send(RoomMessageEventContent::text_plain(hello)).await?) }).await?;
    expect_message(&mut inbox_b, &room_id, &user_a, hello).await?;
    timings.insert("a_to_b_ms", ms_since(t));

    let t = Instant::now();
    let reply = "Guten Morgen, die Laborwerte sind da";
    let room_b = b.room(&room_id).await?;
    within("B sending", async { Ok(room_b.send(RoomMessageEventContent::text_plain(reply)).await?) }).await?;
    expect_message(&mut inbox_a, &room_id, &user_b, reply).await?;
    timings.insert("b_to_a_ms", ms_since(t));

    Ok(json!({
        "device_a": a.device_id(),
        "device_b": b.device_id(),
        "timings": timings,
    }))
}
