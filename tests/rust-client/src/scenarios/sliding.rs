//! What Element X runs: matrix-sdk-ui's `SyncService` (simplified sliding sync, MSC4186) with
//! its `RoomListService`, for two users and a device that logs in later, with a restart of the
//! server in the middle.
//!
//! Checked: the room list is sorted by activity and reorders when a message arrives in another
//! room; an invite shows in the invitee's list; a room's timeline paginates back to its start;
//! encrypted messages flow both ways with every key travelling through the sliding sync
//! `to_device` and `e2ee` extensions (no `/v3/sync` is ever made); a device that logs in
//! later gets the room key for new messages; after the server restarts (the test harness does
//! it when this program prints `RESTART_SERVER` and waits for a line on stdin) the clients
//! carry on and no message is lost.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::events::InitialStateEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::member::MembershipState;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId, RoomId};
use matrix_sdk::stream::StreamExt;
use matrix_sdk::{Room, RoomState};
use matrix_sdk_ui::Timeline;
use matrix_sdk_ui::eyeball_im::Vector;
use matrix_sdk_ui::room_list_service::filters::new_filter_non_left;
use matrix_sdk_ui::sync_service::{State, SyncService};
use matrix_sdk_ui::timeline::TimelineBuilder;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::Context;
use crate::session::{Session, ms_since, wait_until, within};

/// Rooms per page of the room list, as Element X asks for.
const ROOM_LIST_PAGE_SIZE: usize = 50;
/// Messages sent before the timeline is opened, more than the room subscription's timeline
/// limit (20), so the timeline must paginate back for them.
const HISTORY_MESSAGES: usize = 25;
/// Messages sent while one side does not sync and the server restarts.
const MESSAGES_ACROSS_RESTART: usize = 3;

/// A device running the sync services Element X runs, with its room list as the SDK sorts it.
struct Device {
    session: Session,
    sync: Arc<SyncService>,
    order: Arc<Mutex<Vec<OwnedRoomId>>>,
    _room_list: JoinHandle<()>,
}

impl Device {
    async fn start(homeserver: &str, user: &crate::session::User, name: &str) -> anyhow::Result<Device> {
        let session = Session::login(homeserver, user, name).await?;
        let sync = Arc::new(
            within("building the sync service", async {
                Ok(SyncService::builder(session.client.clone()).build().await?)
            })
            .await?,
        );
        sync.start().await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let (rooms, out) = (sync.room_list_service(), order.clone());
        let room_list = tokio::spawn(async move {
            let list = match rooms.all_rooms().await {
                Ok(l) => l,
                Err(e) => return tracing::error!("no room list: {e}"),
            };
            let (stream, controller) = list.entries_with_dynamic_adapters(ROOM_LIST_PAGE_SIZE);
            controller.set_filter(Box::new(new_filter_non_left()));
            let mut stream = pin!(stream);
            let mut items = Vector::new();
            while let Some(diffs) = stream.next().await {
                for diff in diffs {
                    diff.apply(&mut items);
                }
                let ids = items.iter().map(|r| r.room_id().to_owned()).collect();
                *out.lock().unwrap_or_else(|p| p.into_inner()) = ids;
            }
        });
        let device = Device { session, sync, order, _room_list: room_list };
        device.running().await?;
        Ok(device)
    }

    fn order(&self) -> Vec<OwnedRoomId> {
        self.order.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn running(&self) -> anyhow::Result<()> {
        let state = self.sync.state();
        wait_until(&format!("{}'s sync service running", self.session.user.name), || async {
            match state.get() {
                State::Running => Ok(Some(())),
                State::Error(e) => bail!("the sync service failed: {e}"),
                _ => Ok(None),
            }
        })
        .await
    }

    /// (Re)starts the sync service after an error or a stop.
    async fn restart_sync(&self) -> anyhow::Result<()> {
        self.sync.start().await;
        self.running().await
    }

    async fn room(&self, room_id: &RoomId) -> anyhow::Result<Room> {
        self.session.room(room_id).await
    }

    async fn wait_for_top(&self, room_id: &RoomId, what: &str) -> anyhow::Result<()> {
        wait_until(what, || async {
            Ok((self.order().first().map(|r| r.as_ref()) == Some(room_id)).then_some(()))
        })
        .await
    }
}

/// Message bodies in a timeline, oldest first (undecryptable ones as `None`).
async fn bodies(timeline: &Timeline) -> Vec<Option<String>> {
    timeline
        .items()
        .await
        .iter()
        .filter_map(|item| item.as_event().cloned())
        .filter_map(|ev| {
            let content = ev.content();
            if let Some(m) = content.as_message() {
                Some(Some(m.body().to_owned()))
            } else if content.is_unable_to_decrypt() {
                Some(None)
            } else {
                None
            }
        })
        .collect()
}

/// Waits until the timeline shows `body` decrypted.
async fn expect_body(timeline: &Timeline, body: &str, who: &str) -> anyhow::Result<()> {
    wait_until(&format!("{body:?} decrypted in {who}'s timeline"), || async {
        Ok(bodies(timeline).await.iter().any(|b| b.as_deref() == Some(body)).then_some(()))
    })
    .await
}

async fn timeline_of(room: &Room) -> anyhow::Result<Timeline> {
    within("opening a timeline", async { Ok(TimelineBuilder::new(room).build().await?) }).await
}

async fn create_room(
    device: &Device,
    name: &str,
    invite: Option<&OwnedUserId>,
    encrypted: bool,
) -> anyhow::Result<Room> {
    let mut request = create_room::v3::Request::new();
    request.name = Some(name.to_owned());
    request.invite = invite.into_iter().cloned().collect();
    if encrypted {
        request.initial_state = vec![
            InitialStateEvent::with_empty_state_key(RoomEncryptionEventContent::with_recommended_defaults())
                .to_raw_any(),
        ];
    }
    within(&format!("creating {name}"), async { Ok(device.session.client.create_room(request).await?) }).await
}

async fn send(room: &Room, body: &str) -> anyhow::Result<()> {
    within(&format!("sending {body:?}"), async {
        room.send(RoomMessageEventContent::text_plain(body)).await?;
        Ok(())
    })
    .await
}

/// Asks the harness to restart the server and waits until it says it is back.
fn restart_server() -> anyhow::Result<()> {
    println!("RESTART_SERVER");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("waiting for the harness after RESTART_SERVER")?;
    ensure!(line.trim() == "RESTARTED", "the harness answered {line:?} instead of RESTARTED");
    Ok(())
}

pub async fn run(ctx: Context) -> anyhow::Result<Value> {
    let mut timings = BTreeMap::new();
    let t = Instant::now();
    let a = Device::start(&ctx.homeserver, &ctx.users[0], "ward-testclient sliding A").await?;
    let b = Device::start(&ctx.homeserver, &ctx.users[1], "ward-testclient sliding B").await?;
    let user_a = a.session.client.user_id().context("A has no user ID")?.to_owned();
    let user_b = b.session.client.user_id().context("B has no user ID")?.to_owned();
    timings.insert("login_and_first_sliding_sync_ms", ms_since(t));

    // Three rooms; the list sorts them by their latest message.
    let t = Instant::now();
    let archive = create_room(&a, "Archiv", None, false).await?;
    let team = create_room(&a, "Team", Some(&user_b), true).await?;
    let lab = create_room(&a, "Labor", Some(&user_b), true).await?;
    send(&archive, "alte Notiz").await?;
    send(&team, "Teambesprechung um 12").await?;
    send(&lab, "Laborwerte folgen").await?;
    let expected = vec![lab.room_id().to_owned(), team.room_id().to_owned(), archive.room_id().to_owned()];
    wait_until("A's room list sorted by activity", || async { Ok((a.order() == expected).then_some(())) })
        .await
        .with_context(|| format!("A's list: {:?}", a.order()))?;
    timings.insert("room_list_sorted_ms", ms_since(t));

    // B sees both invites in its list and joins.
    let t = Instant::now();
    for room in [&team, &lab] {
        let id = room.room_id().to_owned();
        wait_until("the invite in B's room list", || async { Ok(b.order().contains(&id).then_some(())) })
            .await?;
        let invited = b.room(&id).await?;
        ensure!(invited.state() == RoomState::Invited, "B's room {id} is {:?}, not invited", invited.state());
        within("B joining", async { Ok(invited.join().await?) }).await?;
    }
    for room in [&team, &lab] {
        wait_until("B's join in A's sync", || async {
            let member = room.get_member_no_sync(&user_b).await?;
            Ok(member.filter(|m| *m.membership() == MembershipState::Join).map(|_| ()))
        })
        .await?;
    }
    timings.insert("invites_ms", ms_since(t));

    // History to paginate through, encrypted, before B opens the timeline.
    let t = Instant::now();
    for i in 1..=HISTORY_MESSAGES {
        send(&lab, &format!("Befund {i}")).await?;
    }
    let b_lab = b.room(lab.room_id()).await?;
    b.sync.room_list_service().subscribe_to_rooms(&[lab.room_id()]).await;
    let b_lab_timeline = timeline_of(&b_lab).await?;
    expect_body(&b_lab_timeline, &format!("Befund {HISTORY_MESSAGES}"), "B").await?;
    within("B paginating back to the start", async {
        while !b_lab_timeline.paginate_backwards(20).await? {}
        Ok(())
    })
    .await?;
    let got = bodies(&b_lab_timeline).await;
    for i in 1..=HISTORY_MESSAGES {
        let want = format!("Befund {i}");
        ensure!(
            got.iter().any(|b| b.as_deref() == Some(&want)),
            "{want:?} missing after paginating: {got:?}"
        );
    }
    ensure!(got.iter().all(Option::is_some), "undecryptable messages in B's timeline: {got:?}");
    timings.insert("encrypted_history_paginated_ms", ms_since(t));

    // A message in another room moves it to the top of A's list; A decrypts B's message.
    let t = Instant::now();
    let b_team = b.room(team.room_id()).await?;
    let a_team_timeline = timeline_of(&team).await?;
    send(&b_team, "Rückruf bei Frau Schmidt").await?;
    a.wait_for_top(team.room_id(), "Team at the top of A's list after B's message").await?;
    expect_body(&a_team_timeline, "Rückruf bei Frau Schmidt", "A").await?;
    timings.insert("b_to_a_and_list_update_ms", ms_since(t));

    // A device B logs in later gets the keys for what A sends from then on.
    let t = Instant::now();
    let b2 = Device::start(&ctx.homeserver, &ctx.users[1], "ward-testclient sliding B2").await?;
    let b2_lab = b2.room(lab.room_id()).await?;
    let b2_lab_timeline = timeline_of(&b2_lab).await?;
    // A learns of B2 through the e2ee extension's device list changes before sending.
    wait_until("A knowing B's second device", || async {
        let devices = a.session.client.encryption().get_user_devices(&user_b).await?;
        Ok(devices.get(b2.session.client.device_id().context("no device ID")?).map(|_| ()))
    })
    .await?;
    send(&lab, "für alle Geräte").await?;
    expect_body(&b2_lab_timeline, "für alle Geräte", "B2").await?;
    expect_body(&b_lab_timeline, "für alle Geräte", "B").await?;
    timings.insert("later_device_ms", ms_since(t));

    // The server restarts while B is away and A has sent more; nothing is lost.
    let t = Instant::now();
    within("stopping B's sync", async {
        b.sync.stop().await;
        Ok(())
    })
    .await?;
    let across: Vec<String> =
        (1..=MESSAGES_ACROSS_RESTART).map(|i| format!("über den Neustart {i}")).collect();
    for body in &across {
        send(&lab, body).await?;
    }
    restart_server()?;
    timings.insert("server_restart_ms", ms_since(t));
    let t = Instant::now();
    a.restart_sync().await?;
    b.restart_sync().await?;
    b2.restart_sync().await?;
    for body in &across {
        if let Err(e) = expect_body(&b_lab_timeline, body, "B").await {
            bail!(
                "{body:?} lost across the restart ({e:#}); B's timeline: {:?}",
                bodies(&b_lab_timeline).await
            );
        }
    }
    send(&lab, "nach dem Neustart").await?;
    expect_body(&b_lab_timeline, "nach dem Neustart", "B").await?;
    expect_body(&b2_lab_timeline, "nach dem Neustart", "B2").await?;
    send(&b_team, "Antwort nach dem Neustart").await?;
    expect_body(&a_team_timeline, "Antwort nach dem Neustart", "A").await?;
    a.wait_for_top(team.room_id(), "Team at the top of A's list after the restart").await?;
    timings.insert("after_restart_ms", ms_since(t));

    Ok(json!({
        "device_a": a.session.device_id(),
        "device_b": b.session.device_id(),
        "device_b2": b2.session.device_id(),
        "room_order_a": a.order().iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "user_a": user_a.to_string(),
        "timings": timings,
    }))
}
