//! The conformance suite every storage backend must pass.
//!
//! Each case is a function taking a fresh, empty store. A backend runs them all with
//! [`store_conformance_tests!`](crate::store_conformance_tests) in its own tests:
//!
//! ```ignore
//! async fn fresh() -> (tempfile::TempDir, std::sync::Arc<dyn ward_store::Store>) { … }
//! ward_store::store_conformance_tests!(fresh);
//! ```

use crate::*;

/// Generates one `#[tokio::test]` per conformance case. `$fresh` is an async fn returning
/// `(guard, Arc<dyn Store>)`; the guard (a temporary directory, a database) lives for the test.
#[macro_export]
macro_rules! store_conformance_tests {
    ($fresh:path) => {
        $crate::store_conformance_tests!(@cases $fresh;
            register_and_read_account,
            duplicate_user_id_conflicts_without_partial_writes,
            registration_token_is_consumed_atomically,
            expired_registration_token_is_refused,
            sessions_and_devices,
            login_with_existing_device_replaces_its_tokens,
            refresh_keeps_old_pair_until_new_pair_is_used,
            password_change_device_retention,
            deactivation_removes_everything,
            profile_fields,
            registration_token_admin,
            uia_sessions,
            device_activity,
            rooms_append_and_read,
            state_at_any_position,
            room_pagination,
            transaction_ids_are_idempotent_and_atomic,
            memberships_by_user_and_room,
            redaction_replaces_json,
            transaction_ids_go_with_their_device,
            account_data_in_the_stream,
            filters_per_user,
            receipts_only_move_forward,
            aliases_and_directory,
            forgetting_relations_and_time,
            pushers_per_user,
            state_history_in_order,
            concurrent_writes_fail_alone,
            device_keys_one_time_keys_and_claims,
            cross_signing_keys_and_signatures,
            to_device_queue,
            key_backup_versions_and_keys,
            room_peers_and_member_changes,
            search_finds_words_in_allowed_rooms,
            search_never_covers_encrypted_rooms,
            reports_newest_first,
            media_uploads_and_quota,
            media_reservations,
            media_thumbnails,
            meetings_and_their_settings,
            knocks_through_the_lobby,
            patient_links_are_single_use,
            consultation_sessions_have_holders,
            meetings_are_purged_after_retention,
            sliding_connections_are_versioned,
            sliding_connections_keep_timeline_limits,
            stale_sliding_connections_are_purged,
            sliding_sync_room_facts,
        );
    };
    (@cases $fresh:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (_guard, store) = $fresh().await;
                $crate::conformance::$case(&*store).await;
            }
        )*
    };
}

const NOW: u64 = 1_700_000_000_000;

fn h(n: u8) -> TokenHash {
    [n; 32]
}

fn new_account(user_id: &str) -> NewAccount {
    NewAccount {
        user_id: user_id.to_owned(),
        password_hash: Some("$argon2id$fake".to_owned()),
        is_admin: false,
        display_name: Some("Alice".to_owned()),
        created_ms: NOW,
    }
}

fn session(device_id: &str, access: u8, refresh: Option<u8>) -> NewSession {
    NewSession {
        device_id: device_id.to_owned(),
        device_display_name: Some(format!("{device_id} phone")),
        access_token_hash: h(access),
        refresh_token_hash: refresh.map(h),
        access_expires_ms: None,
    }
}

fn registration(user_id: &str, token: Option<&str>, sess: Option<NewSession>) -> Registration {
    Registration {
        account: new_account(user_id),
        registration_token: token.map(str::to_owned),
        session: sess,
    }
}

fn reg_token(token: &str, uses: Option<u32>, expires_ms: Option<u64>) -> RegistrationToken {
    RegistrationToken {
        token: token.to_owned(),
        uses_allowed: uses,
        completed: 0,
        expires_ms,
        created_ms: NOW,
    }
}

pub async fn register_and_read_account(store: &dyn Store) {
    assert_eq!(store.count_accounts().await.unwrap(), 0);
    assert!(store.account("@alice:x").await.unwrap().is_none());
    store.register(registration("@alice:x", None, Some(session("D1", 1, None))), NOW).await.unwrap();
    let acc = store.account("@alice:x").await.unwrap().expect("account exists");
    assert_eq!(acc.user_id, "@alice:x");
    assert_eq!(acc.password_hash.as_deref(), Some("$argon2id$fake"));
    assert!(!acc.is_admin && !acc.deactivated);
    assert_eq!(acc.created_ms, NOW);
    assert_eq!(acc.display_name.as_deref(), Some("Alice"));
    assert_eq!(store.count_accounts().await.unwrap(), 1);
    let s = store.session_by_access_token(&h(1)).await.unwrap().expect("session");
    assert_eq!((s.user_id.as_str(), s.device_id.as_str()), ("@alice:x", "D1"));
    assert!(store.set_admin("@alice:x", true).await.unwrap());
    assert!(store.account("@alice:x").await.unwrap().unwrap().is_admin);
    assert!(!store.set_admin("@nobody:x", true).await.unwrap());
}

pub async fn duplicate_user_id_conflicts_without_partial_writes(store: &dyn Store) {
    store.create_registration_token(reg_token("tok", Some(5), None)).await.unwrap();
    store.register(registration("@alice:x", None, None), NOW).await.unwrap();
    let err = store
        .register(registration("@alice:x", Some("tok"), Some(session("D9", 9, None))), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Nothing of the failed registration is left: no session, no token use.
    assert!(store.session_by_access_token(&h(9)).await.unwrap().is_none());
    assert!(store.devices("@alice:x").await.unwrap().is_empty());
    assert_eq!(store.registration_token("tok").await.unwrap().unwrap().completed, 0);
}

pub async fn registration_token_is_consumed_atomically(store: &dyn Store) {
    store.create_registration_token(reg_token("once", Some(1), None)).await.unwrap();
    store.register(registration("@a:x", Some("once"), None), NOW).await.unwrap();
    let t = store.registration_token("once").await.unwrap().unwrap();
    assert_eq!(t.completed, 1);
    assert!(!t.is_valid(NOW));
    let err = store
        .register(registration("@b:x", Some("once"), Some(session("D", 2, None))), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RegistrationTokenInvalid), "{err:?}");
    assert!(store.account("@b:x").await.unwrap().is_none());
    assert!(store.session_by_access_token(&h(2)).await.unwrap().is_none());
    let err = store.register(registration("@c:x", Some("unknown"), None), NOW).await.unwrap_err();
    assert!(matches!(err, StoreError::RegistrationTokenInvalid), "{err:?}");
    // Unlimited tokens count uses but never run out.
    store.create_registration_token(reg_token("many", None, None)).await.unwrap();
    for i in 0..3 {
        store.register(registration(&format!("@m{i}:x"), Some("many"), None), NOW).await.unwrap();
    }
    assert_eq!(store.registration_token("many").await.unwrap().unwrap().completed, 3);
}

pub async fn expired_registration_token_is_refused(store: &dyn Store) {
    store.create_registration_token(reg_token("old", None, Some(NOW - 1))).await.unwrap();
    let err = store.register(registration("@a:x", Some("old"), None), NOW).await.unwrap_err();
    assert!(matches!(err, StoreError::RegistrationTokenInvalid), "{err:?}");
    assert!(store.account("@a:x").await.unwrap().is_none());
}

pub async fn sessions_and_devices(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("D1", 1, None))), NOW).await.unwrap();
    store.create_session("@a:x", session("D2", 2, None), NOW).await.unwrap();
    store.create_session("@a:x", session("D3", 3, None), NOW).await.unwrap();
    assert_eq!(store.count_devices("@a:x").await.unwrap(), 3);
    let mut ids: Vec<_> = store.devices("@a:x").await.unwrap().into_iter().map(|d| d.device_id).collect();
    ids.sort();
    assert_eq!(ids, ["D1", "D2", "D3"]);
    let d2 = store.device("@a:x", "D2").await.unwrap().unwrap();
    assert_eq!(d2.display_name.as_deref(), Some("D2 phone"));
    assert!(store.device("@b:x", "D2").await.unwrap().is_none(), "devices belong to one user");

    assert!(store.set_device_display_name("@a:x", "D2", Some("Praxis PC")).await.unwrap());
    assert_eq!(store.device("@a:x", "D2").await.unwrap().unwrap().display_name.as_deref(), Some("Praxis PC"));
    assert!(store.set_device_display_name("@a:x", "D2", None).await.unwrap());
    assert_eq!(store.device("@a:x", "D2").await.unwrap().unwrap().display_name, None);
    assert!(!store.set_device_display_name("@a:x", "NOPE", Some("x")).await.unwrap());

    let gone = store.delete_devices("@a:x", &["D2".into(), "NOPE".into()]).await.unwrap();
    assert_eq!(gone, 1);
    assert!(store.session_by_access_token(&h(2)).await.unwrap().is_none());
    assert!(store.session_by_access_token(&h(1)).await.unwrap().is_some());
    assert_eq!(store.delete_all_devices("@a:x").await.unwrap(), 2);
    assert!(store.session_by_access_token(&h(1)).await.unwrap().is_none());
    assert!(store.session_by_access_token(&h(3)).await.unwrap().is_none());
    assert!(store.devices("@a:x").await.unwrap().is_empty());
}

pub async fn login_with_existing_device_replaces_its_tokens(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("D1", 1, Some(11)))), NOW).await.unwrap();
    store.create_session("@a:x", session("D1", 2, None), NOW).await.unwrap();
    assert!(store.session_by_access_token(&h(1)).await.unwrap().is_none());
    assert!(store.refresh_session(&h(11), h(3), h(13), None).await.unwrap().is_none());
    assert_eq!(store.session_by_access_token(&h(2)).await.unwrap().unwrap().device_id, "D1");
    assert_eq!(store.count_devices("@a:x").await.unwrap(), 1);
}

pub async fn refresh_keeps_old_pair_until_new_pair_is_used(store: &dyn Store) {
    let mut first = session("D1", 1, Some(11));
    first.access_expires_ms = Some(NOW + 1000);
    store.register(registration("@a:x", None, Some(first)), NOW).await.unwrap();
    assert_eq!(
        store.session_by_access_token(&h(1)).await.unwrap().unwrap().access_expires_ms,
        Some(NOW + 1000)
    );
    let s = store.refresh_session(&h(11), h(2), h(12), Some(NOW + 5000)).await.unwrap().unwrap();
    assert_eq!((s.user_id.as_str(), s.device_id.as_str()), ("@a:x", "D1"));
    assert_eq!(s.access_expires_ms, Some(NOW + 5000));
    // The response may have been lost: the old pair still works…
    assert!(store.session_by_access_token(&h(1)).await.unwrap().is_some());
    // …until the new access token is used.
    assert!(store.session_by_access_token(&h(2)).await.unwrap().is_some());
    assert!(store.session_by_access_token(&h(1)).await.unwrap().is_none());
    assert!(store.refresh_session(&h(11), h(3), h(13), None).await.unwrap().is_none());
    // The new refresh token works, and using it also retires its predecessor.
    store.refresh_session(&h(12), h(4), h(14), None).await.unwrap().unwrap();
    store.refresh_session(&h(14), h(5), h(15), None).await.unwrap().unwrap();
    assert!(store.session_by_access_token(&h(2)).await.unwrap().is_none());
    assert!(store.session_by_access_token(&h(5)).await.unwrap().is_some());
    assert!(store.session_by_access_token(&h(4)).await.unwrap().is_none());
    assert_eq!(store.count_devices("@a:x").await.unwrap(), 1);
}

pub async fn password_change_device_retention(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("D1", 1, None))), NOW).await.unwrap();
    store.create_session("@a:x", session("D2", 2, None), NOW).await.unwrap();
    store.create_session("@a:x", session("D3", 3, None), NOW).await.unwrap();

    assert!(store.set_password_hash("@a:x", "h1", DeviceRetention::KeepAll).await.unwrap());
    assert_eq!(store.count_devices("@a:x").await.unwrap(), 3);
    assert_eq!(store.account("@a:x").await.unwrap().unwrap().password_hash.as_deref(), Some("h1"));

    assert!(store.set_password_hash("@a:x", "h2", DeviceRetention::KeepOnly("D2".into())).await.unwrap());
    let ids: Vec<_> = store.devices("@a:x").await.unwrap().into_iter().map(|d| d.device_id).collect();
    assert_eq!(ids, ["D2"]);
    assert!(store.session_by_access_token(&h(1)).await.unwrap().is_none());
    assert!(store.session_by_access_token(&h(2)).await.unwrap().is_some());

    assert!(store.set_password_hash("@a:x", "h3", DeviceRetention::RemoveAll).await.unwrap());
    assert_eq!(store.count_devices("@a:x").await.unwrap(), 0);
    assert!(!store.set_password_hash("@b:x", "h", DeviceRetention::KeepAll).await.unwrap());
}

pub async fn deactivation_removes_everything(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("D1", 1, Some(11)))), NOW).await.unwrap();
    store.set_avatar_url("@a:x", Some("mxc://x/abc")).await.unwrap();
    store
        .create_uia_session(UiaSession {
            id: "S".into(),
            purpose: "deactivate".into(),
            user_id: Some("@a:x".into()),
            completed: vec![],
            registration_token: None,
            created_ms: NOW,
        })
        .await
        .unwrap();
    assert!(store.deactivate_account("@a:x").await.unwrap());
    let acc = store.account("@a:x").await.unwrap().unwrap();
    assert!(acc.deactivated);
    assert_eq!((acc.display_name, acc.avatar_url, acc.password_hash), (None, None, None));
    assert!(store.devices("@a:x").await.unwrap().is_empty());
    assert!(store.session_by_access_token(&h(1)).await.unwrap().is_none());
    assert!(store.refresh_session(&h(11), h(2), h(12), None).await.unwrap().is_none());
    assert!(store.uia_session("S").await.unwrap().is_none());
    // The name stays taken.
    let err = store.register(registration("@a:x", None, None), NOW).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert!(!store.deactivate_account("@nobody:x").await.unwrap());
}

pub async fn profile_fields(store: &dyn Store) {
    store.register(registration("@a:x", None, None), NOW).await.unwrap();
    assert!(store.set_display_name("@a:x", Some("Dr. Müller 🩺")).await.unwrap());
    assert!(store.set_avatar_url("@a:x", Some("mxc://x/y")).await.unwrap());
    let acc = store.account("@a:x").await.unwrap().unwrap();
    assert_eq!(acc.display_name.as_deref(), Some("Dr. Müller 🩺"));
    assert_eq!(acc.avatar_url.as_deref(), Some("mxc://x/y"));
    assert!(store.set_display_name("@a:x", None).await.unwrap());
    assert_eq!(store.account("@a:x").await.unwrap().unwrap().display_name, None);
    assert!(!store.set_display_name("@b:x", Some("x")).await.unwrap());
    assert!(!store.set_avatar_url("@b:x", Some("x")).await.unwrap());
}

pub async fn registration_token_admin(store: &dyn Store) {
    assert!(store.registration_tokens().await.unwrap().is_empty());
    let mut t1 = reg_token("t1", Some(3), Some(NOW + 10));
    store.create_registration_token(t1.clone()).await.unwrap();
    let mut t2 = reg_token("t2", None, None);
    t2.created_ms = NOW + 1;
    store.create_registration_token(t2.clone()).await.unwrap();
    t1.created_ms = NOW + 2;
    let err = store.create_registration_token(t1.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    t1.created_ms = NOW;
    assert_eq!(store.registration_tokens().await.unwrap(), vec![t1.clone(), t2]);
    assert_eq!(store.registration_token("t1").await.unwrap(), Some(t1));
    assert!(store.delete_registration_token("t1").await.unwrap());
    assert!(!store.delete_registration_token("t1").await.unwrap());
    assert!(store.registration_token("t1").await.unwrap().is_none());
    assert_eq!(store.registration_tokens().await.unwrap().len(), 1);
}

pub async fn uia_sessions(store: &dyn Store) {
    let s = UiaSession {
        id: "S1".into(),
        purpose: "register".into(),
        user_id: None,
        completed: vec![],
        registration_token: None,
        created_ms: NOW,
    };
    store.create_uia_session(s.clone()).await.unwrap();
    let s2 = UiaSession { id: "S2".into(), user_id: Some("@a:x".into()), created_ms: NOW + 100, ..s.clone() };
    store.create_uia_session(s2.clone()).await.unwrap();
    assert_eq!(store.uia_session("S1").await.unwrap(), Some(s.clone()));
    let done = vec!["m.login.dummy".to_owned(), "m.login.password".to_owned()];
    let progressed = UiaSession { completed: done, registration_token: Some("tok".into()), ..s.clone() };
    assert!(store.update_uia_session(&progressed).await.unwrap());
    assert_eq!(store.uia_session("S1").await.unwrap(), Some(progressed.clone()));
    assert!(!store.update_uia_session(&UiaSession { id: "nope".into(), ..progressed }).await.unwrap());
    assert_eq!(store.delete_uia_sessions_before(NOW + 50).await.unwrap(), 1);
    assert!(store.uia_session("S1").await.unwrap().is_none());
    assert_eq!(store.uia_session("S2").await.unwrap(), Some(s2));
    store.delete_uia_session("S2").await.unwrap();
    store.delete_uia_session("S2").await.unwrap();
    assert!(store.uia_session("S2").await.unwrap().is_none());
}

pub async fn device_activity(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("D1", 1, None))), NOW).await.unwrap();
    assert_eq!(store.device("@a:x", "D1").await.unwrap().unwrap().last_seen_ms, Some(NOW));
    store.touch_device("@a:x", "D1", NOW + 60_000).await.unwrap();
    assert_eq!(store.device("@a:x", "D1").await.unwrap().unwrap().last_seen_ms, Some(NOW + 60_000));
    // Touching an unknown device is not an error (it may have just been deleted).
    store.touch_device("@a:x", "GONE", NOW).await.unwrap();
}

// ---- rooms ----

fn new_room(room_id: &str) -> NewRoom {
    NewRoom {
        room_id: room_id.into(),
        room_version: "12".into(),
        creator: "@a:x".into(),
        created_ms: NOW,
        alias: None,
        published: false,
    }
}

fn ev(id: &str, kind: &str, state_key: Option<&str>, membership: Option<&str>) -> NewEvent {
    NewEvent {
        event_id: id.into(),
        kind: kind.into(),
        state_key: state_key.map(str::to_owned),
        sender: "@a:x".into(),
        depth: 1,
        origin_server_ts: NOW,
        json: format!("{{\"id\":\"{id}\"}}"),
        membership: membership.map(str::to_owned),
        relates_to: None,
        txn: None,
        search_text: None,
    }
}

fn state_map(entries: &[StateEntry]) -> std::collections::BTreeMap<(String, String), String> {
    entries.iter().map(|e| ((e.kind.clone(), e.state_key.clone()), e.event_id.clone())).collect()
}

async fn seed_room(store: &dyn Store, room_id: &str) -> Vec<u64> {
    let events = vec![
        ev(&format!("$create{room_id}"), "m.room.create", Some(""), None),
        ev(&format!("$join{room_id}"), "m.room.member", Some("@a:x"), Some("join")),
        ev(&format!("$pl{room_id}"), "m.room.power_levels", Some(""), None),
    ];
    store.create_room(new_room(room_id), events).await.unwrap()
}

pub async fn rooms_append_and_read(store: &dyn Store) {
    assert_eq!(store.max_stream_pos().await.unwrap(), 0);
    assert!(store.room("!r:x").await.unwrap().is_none());
    let pos = seed_room(store, "!r:x").await;
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "positions increase: {pos:?}");
    let room = store.room("!r:x").await.unwrap().unwrap();
    assert_eq!((room.room_version.as_str(), room.creator.as_str()), ("12", "@a:x"));
    assert!(matches!(store.create_room(new_room("!r:x"), vec![]).await, Err(StoreError::Conflict(_))));
    // A failed creation leaves nothing behind.
    let bad = vec![
        ev("$c2", "m.room.create", Some(""), None),
        ev("$create!r:x", "m.room.member", Some("@b:x"), Some("join")),
    ];
    assert!(store.create_room(new_room("!r2:x"), bad).await.is_err());
    assert!(store.room("!r2:x").await.unwrap().is_none());
    assert!(store.event("$c2").await.unwrap().is_none());

    let msg = store.append_events("!r:x", vec![ev("$m1", "m.room.message", None, None)]).await.unwrap();
    assert!(msg[0] > pos[2]);
    assert_eq!(store.max_stream_pos().await.unwrap(), msg[0]);
    assert_eq!(store.room_tip("!r:x").await.unwrap(), Some(("$m1".to_owned(), 1)));
    let stored = store.event("$m1").await.unwrap().unwrap();
    assert_eq!(
        (stored.room_id.as_str(), stored.kind.as_str(), stored.stream_pos),
        ("!r:x", "m.room.message", msg[0])
    );
    assert_eq!(stored.json, "{\"id\":\"$m1\"}");
    assert_eq!(stored.state_key, None);
    assert!(store.event("$nope").await.unwrap().is_none());

    let state = state_map(&store.current_state("!r:x").await.unwrap());
    assert_eq!(state.len(), 3);
    assert_eq!(state[&("m.room.member".to_owned(), "@a:x".to_owned())], "$join!r:x");
    let pl = store.current_state_event("!r:x", "m.room.power_levels", "").await.unwrap().unwrap();
    assert_eq!(pl.event_id, "$pl!r:x");
    assert!(store.current_state_event("!r:x", "m.room.name", "").await.unwrap().is_none());
    let found = store.events_by_id(&["$m1".into(), "$nope".into(), "$pl!r:x".into()]).await.unwrap();
    assert_eq!(found.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["$m1", "$pl!r:x"]);

    // Appending to an unknown room fails and writes nothing.
    assert!(store.append_events("!unknown:x", vec![ev("$x", "m.room.message", None, None)]).await.is_err());
    assert!(store.event("$x").await.unwrap().is_none());
}

pub async fn state_at_any_position(store: &dyn Store) {
    let seeded = seed_room(store, "!r:x").await;
    // Enough state changes to cross several snapshot boundaries, interleaved with messages.
    let mut name_at = vec![];
    for i in 0..130 {
        let p = store
            .append_events("!r:x", vec![ev(&format!("$name{i}"), "m.room.name", Some(""), None)])
            .await
            .unwrap()[0];
        let m = store
            .append_events("!r:x", vec![ev(&format!("$msg{i}"), "m.room.message", None, None)])
            .await
            .unwrap()[0];
        name_at.push((p, m, format!("$name{i}")));
    }
    assert!(store.state_at("!r:x", seeded[0] - 1).await.unwrap().is_empty(), "nothing before the room");
    let first = state_map(&store.state_at("!r:x", seeded[0]).await.unwrap());
    assert_eq!(first.len(), 1, "just the create event after it");
    for (p, m, name) in name_at.iter().step_by(7).chain(name_at.last()) {
        for at in [*p, *m] {
            let s = state_map(&store.state_at("!r:x", at).await.unwrap());
            assert_eq!(s.len(), 4, "create, member, power levels, name");
            assert_eq!(&s[&("m.room.name".to_owned(), String::new())], name);
            assert_eq!(s[&("m.room.member".to_owned(), "@a:x".to_owned())], "$join!r:x");
        }
    }
    let current = state_map(&store.current_state("!r:x").await.unwrap());
    let last = state_map(&store.state_at("!r:x", u64::MAX / 2).await.unwrap());
    assert_eq!(current, last);
}

pub async fn room_pagination(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    seed_room(store, "!other:x").await;
    let mut pos = vec![];
    for i in 0..10 {
        pos.push(
            store
                .append_events("!r:x", vec![ev(&format!("$m{i}"), "m.room.message", None, None)])
                .await
                .unwrap()[0],
        );
        store
            .append_events("!other:x", vec![ev(&format!("$o{i}"), "m.room.message", None, None)])
            .await
            .unwrap();
    }
    let ids = |v: Vec<StoredEvent>| v.into_iter().map(|e| e.event_id).collect::<Vec<_>>();
    let back = ids(store.room_events("!r:x", u64::MAX / 2, None, Direction::Backward, 3).await.unwrap());
    assert_eq!(back, ["$m9", "$m8", "$m7"]);
    let back = ids(store.room_events("!r:x", pos[7], None, Direction::Backward, 3).await.unwrap());
    assert_eq!(back, ["$m6", "$m5", "$m4"]);
    let fwd = ids(store.room_events("!r:x", pos[4], None, Direction::Forward, 3).await.unwrap());
    assert_eq!(fwd, ["$m5", "$m6", "$m7"]);
    let fwd = ids(store.room_events("!r:x", pos[4], Some(pos[6]), Direction::Forward, 10).await.unwrap());
    assert_eq!(fwd, ["$m5", "$m6"]);
    let back = ids(store.room_events("!r:x", pos[6], Some(pos[3]), Direction::Backward, 10).await.unwrap());
    assert_eq!(back, ["$m5", "$m4"]);
    let all = store.room_events("!r:x", 0, None, Direction::Forward, 100).await.unwrap();
    assert_eq!(all.len(), 13);
    assert!(all.iter().all(|e| e.room_id == "!r:x"));
}

pub async fn transaction_ids_are_idempotent_and_atomic(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    let key = TxnKey { user_id: "@a:x".into(), device_id: "D".into(), txn_id: "t1".into() };
    assert!(store.txn_event(&key).await.unwrap().is_none());
    let mut first = ev("$t1", "m.room.message", None, None);
    first.txn = Some(key.clone());
    store.append_events("!r:x", vec![first.clone()]).await.unwrap();
    assert_eq!(store.txn_event(&key).await.unwrap().as_deref(), Some("$t1"));
    // The same transaction again fails as a whole: the other event of the batch is not kept.
    let mut again = ev("$t1b", "m.room.message", None, None);
    again.txn = Some(key.clone());
    let r = store.append_events("!r:x", vec![ev("$side", "m.room.topic", Some(""), None), again]).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert!(store.event("$side").await.unwrap().is_none());
    assert!(store.current_state_event("!r:x", "m.room.topic", "").await.unwrap().is_none());
    // Other devices and users have their own transaction namespaces.
    let other = TxnKey { device_id: "E".into(), ..key.clone() };
    assert!(store.txn_event(&other).await.unwrap().is_none());
    // A duplicate event ID is a conflict too.
    let r = store.append_events("!r:x", vec![ev("$t1", "m.room.message", None, None)]).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
}

pub async fn memberships_by_user_and_room(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    seed_room(store, "!s:x").await;
    store
        .append_events("!r:x", vec![ev("$binv", "m.room.member", Some("@b:x"), Some("invite"))])
        .await
        .unwrap();
    let m = store.membership("!r:x", "@b:x").await.unwrap().unwrap();
    assert_eq!((m.membership.as_str(), m.event_id.as_str()), ("invite", "$binv"));
    let p = store
        .append_events("!r:x", vec![ev("$bjoin", "m.room.member", Some("@b:x"), Some("join"))])
        .await
        .unwrap();
    let m = store.membership("!r:x", "@b:x").await.unwrap().unwrap();
    assert_eq!((m.membership.as_str(), m.stream_pos), ("join", p[0]));
    store.append_events("!s:x", vec![ev("$bban", "m.room.member", Some("@b:x"), Some("ban"))]).await.unwrap();
    let mine = store.memberships_of_user("@b:x").await.unwrap();
    let mine: Vec<_> = mine.iter().map(|m| (m.room_id.as_str(), m.membership.as_str())).collect();
    assert_eq!(mine, [("!r:x", "join"), ("!s:x", "ban")]);
    let members = store.room_members("!r:x").await.unwrap();
    let members: Vec<_> = members.iter().map(|m| (m.user_id.as_str(), m.membership.as_str())).collect();
    assert_eq!(members, [("@a:x", "join"), ("@b:x", "join")]);
    assert!(store.membership("!r:x", "@nobody:x").await.unwrap().is_none());
}

pub async fn redaction_replaces_json(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    store.append_events("!r:x", vec![ev("$m", "m.room.message", None, None)]).await.unwrap();
    assert!(store.redact_event("$m", "{\"redacted\":true}", "$red").await.unwrap());
    let e = store.event("$m").await.unwrap().unwrap();
    assert_eq!((e.json.as_str(), e.redacted_by.as_deref()), ("{\"redacted\":true}", Some("$red")));
    assert!(!store.redact_event("$nope", "{}", "$red").await.unwrap());
}

pub async fn transaction_ids_go_with_their_device(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("D", 1, None))), NOW).await.unwrap();
    seed_room(store, "!r:x").await;
    let key = TxnKey { user_id: "@a:x".into(), device_id: "D".into(), txn_id: "t".into() };
    let mut e = ev("$t", "m.room.message", None, None);
    e.txn = Some(key.clone());
    store.append_events("!r:x", vec![e]).await.unwrap();
    store.delete_devices("@a:x", &["D".into()]).await.unwrap();
    assert!(store.txn_event(&key).await.unwrap().is_none());
    assert!(store.event("$t").await.unwrap().is_some(), "the event itself stays");
}

// ---- user data ----

pub async fn account_data_in_the_stream(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    let start = store.max_stream_pos().await.unwrap();
    assert!(store.account_data("@a:x", None, "m.direct").await.unwrap().is_none());
    let p1 = store.set_account_data("@a:x", None, "m.direct", "{\"a\":1}").await.unwrap();
    assert!(p1 > start, "account data shares the stream with events");
    assert_eq!(store.max_stream_pos().await.unwrap(), p1);
    let p2 = store.set_account_data("@a:x", Some("!r:x"), "m.tag", "{\"tags\":{}}").await.unwrap();
    let p3 = store.set_account_data("@a:x", None, "m.direct", "{\"a\":2}").await.unwrap();
    store.set_account_data("@b:x", None, "m.direct", "{}").await.unwrap();
    assert!(p1 < p2 && p2 < p3);
    assert_eq!(store.account_data("@a:x", None, "m.direct").await.unwrap().as_deref(), Some("{\"a\":2}"));
    assert_eq!(
        store.account_data("@a:x", Some("!r:x"), "m.tag").await.unwrap().as_deref(),
        Some("{\"tags\":{}}")
    );
    assert!(store.account_data("@a:x", None, "m.tag").await.unwrap().is_none(), "room data is not global");
    let all = store.account_data_changes("@a:x", 0, u64::MAX / 2).await.unwrap();
    let kinds: Vec<_> = all.iter().map(|e| (e.room_id.as_deref(), e.kind.as_str(), e.stream_pos)).collect();
    assert_eq!(kinds, [(Some("!r:x"), "m.tag", p2), (None, "m.direct", p3)]);
    let since = store.account_data_changes("@a:x", p2, p3).await.unwrap();
    assert_eq!(since.len(), 1);
    assert!(store.account_data_changes("@a:x", p3, u64::MAX / 2).await.unwrap().is_empty());
}

pub async fn filters_per_user(store: &dyn Store) {
    let f0 = store.create_filter("@a:x", "{\"room\":{}}").await.unwrap();
    let f1 = store.create_filter("@a:x", "{}").await.unwrap();
    assert_ne!(f0, f1);
    assert_eq!(store.filter("@a:x", &f0).await.unwrap().as_deref(), Some("{\"room\":{}}"));
    assert!(store.filter("@b:x", &f0).await.unwrap().is_none(), "filters are per user");
    assert!(store.filter("@a:x", "nonsense").await.unwrap().is_none());
    assert!(store.filter("@a:x", "999").await.unwrap().is_none());
}

pub async fn receipts_only_move_forward(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    seed_room(store, "!s:x").await;
    store.append_events("!r:x", vec![ev("$m1", "m.room.message", None, None)]).await.unwrap();
    let m2 = store.append_events("!r:x", vec![ev("$m2", "m.room.message", None, None)]).await.unwrap()[0];
    store.append_events("!s:x", vec![ev("$s1", "m.room.message", None, None)]).await.unwrap();
    let receipt = |event: &str, kind: &str| Receipt {
        room_id: "!r:x".into(),
        user_id: "@b:x".into(),
        receipt_type: kind.into(),
        thread_id: String::new(),
        event_id: event.into(),
        ts: NOW,
        stream_pos: 0,
    };
    assert_eq!(store.read_up_to("!r:x", "@b:x", "main").await.unwrap(), None);
    let before = store.max_stream_pos().await.unwrap();
    let p1 = store.set_receipt(receipt("$m2", "m.read")).await.unwrap().expect("stored");
    assert!(p1 > before);
    assert_eq!(store.read_up_to("!r:x", "@b:x", "main").await.unwrap(), Some(m2));
    // Backwards, or to an event of another room: ignored.
    assert_eq!(store.set_receipt(receipt("$m1", "m.read")).await.unwrap(), None);
    assert_eq!(store.set_receipt(receipt("$s1", "m.read")).await.unwrap(), None);
    assert_eq!(store.set_receipt(receipt("$nope", "m.read")).await.unwrap(), None);
    // A private receipt is its own series.
    let p2 = store.set_receipt(receipt("$m1", "m.read.private")).await.unwrap().expect("stored");
    assert_eq!(store.read_up_to("!r:x", "@b:x", "main").await.unwrap(), Some(m2));
    let changed = store.receipts_changed("!r:x", 0, p2).await.unwrap();
    let got: Vec<_> =
        changed.iter().map(|r| (r.receipt_type.as_str(), r.event_id.as_str(), r.stream_pos)).collect();
    assert_eq!(got, [("m.read", "$m2", p1), ("m.read.private", "$m1", p2)]);
    assert_eq!(store.receipts_changed("!r:x", p1, p2).await.unwrap().len(), 1);
    assert!(store.receipts_changed("!s:x", 0, p2).await.unwrap().is_empty());
    // A thread's receipt counts for that thread only.
    let mut threaded = receipt("$m1", "m.read");
    threaded.thread_id = "$root".into();
    store.set_receipt(threaded).await.unwrap().expect("stored");
    assert_eq!(store.read_up_to("!r:x", "@b:x", "$root").await.unwrap(), Some(m2), "unthreaded m2 is later");
    assert_eq!(store.read_up_to("!r:x", "@c:x", "$root").await.unwrap(), None);
}

pub async fn aliases_and_directory(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    seed_room(store, "!s:x").await;
    assert!(store.alias("#a:x").await.unwrap().is_none());
    store.create_alias("#a:x", "!r:x", "@a:x", NOW).await.unwrap();
    store.create_alias("#b:x", "!r:x", "@b:x", NOW).await.unwrap();
    assert!(matches!(store.create_alias("#a:x", "!s:x", "@a:x", NOW).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.alias("#a:x").await.unwrap(), Some(("!r:x".to_owned(), "@a:x".to_owned())));
    assert_eq!(store.room_aliases("!r:x").await.unwrap(), ["#a:x", "#b:x"]);
    assert!(store.delete_alias("#a:x").await.unwrap());
    assert!(!store.delete_alias("#a:x").await.unwrap());
    assert_eq!(store.room_aliases("!r:x").await.unwrap(), ["#b:x"]);

    assert!(!store.is_published("!r:x").await.unwrap());
    store.set_published("!s:x", true, NOW).await.unwrap();
    store.set_published("!r:x", true, NOW + 1).await.unwrap();
    store.set_published("!r:x", true, NOW + 2).await.unwrap();
    assert!(store.is_published("!r:x").await.unwrap());
    assert_eq!(store.count_published_rooms().await.unwrap(), 2);
    assert_eq!(store.published_rooms(0, 10).await.unwrap(), ["!s:x", "!r:x"]);
    assert_eq!(store.published_rooms(1, 10).await.unwrap(), ["!r:x"]);
    assert_eq!(store.published_rooms(0, 1).await.unwrap(), ["!s:x"]);
    store.set_published("!s:x", false, NOW).await.unwrap();
    assert_eq!(store.published_rooms(0, 10).await.unwrap(), ["!r:x"]);

    // A room created with an alias and published gets both in its creating transaction…
    let mut room = new_room("!t:x");
    room.alias = Some("#t:x".into());
    room.published = true;
    store.create_room(room, vec![ev("$ct", "m.room.create", Some(""), None)]).await.unwrap();
    assert_eq!(store.alias("#t:x").await.unwrap().map(|a| a.0).as_deref(), Some("!t:x"));
    assert!(store.is_published("!t:x").await.unwrap());
    // …and a taken alias fails the whole creation.
    let mut clash = new_room("!u:x");
    clash.alias = Some("#t:x".into());
    let r = store.create_room(clash, vec![ev("$cu", "m.room.create", Some(""), None)]).await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert!(store.room("!u:x").await.unwrap().is_none());
}

pub async fn forgetting_relations_and_time(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    assert!(!store.forget_room("!r:x", "@a:x").await.unwrap(), "a joined room cannot be forgotten");
    store
        .append_events("!r:x", vec![ev("$bleave", "m.room.member", Some("@b:x"), Some("leave"))])
        .await
        .unwrap();
    assert!(store.forget_room("!r:x", "@b:x").await.unwrap());
    assert!(store.membership("!r:x", "@b:x").await.unwrap().unwrap().forgotten);
    store
        .append_events("!r:x", vec![ev("$binv", "m.room.member", Some("@b:x"), Some("invite"))])
        .await
        .unwrap();
    assert!(
        !store.membership("!r:x", "@b:x").await.unwrap().unwrap().forgotten,
        "a new membership un-forgets"
    );

    let mut root = ev("$root", "m.room.message", None, None);
    root.origin_server_ts = NOW + 1000;
    store.append_events("!r:x", vec![root]).await.unwrap();
    for (i, (rel, kind)) in
        [("m.annotation", "m.reaction"), ("m.thread", "m.room.message"), ("m.annotation", "m.reaction")]
            .into_iter()
            .enumerate()
    {
        let mut e = ev(&format!("$rel{i}"), kind, None, None);
        e.relates_to = Some(("$root".into(), rel.into()));
        e.origin_server_ts = NOW + 2000 + i as u64;
        store.append_events("!r:x", vec![e]).await.unwrap();
    }
    let ids = |v: Vec<StoredEvent>| v.into_iter().map(|e| e.event_id).collect::<Vec<_>>();
    let all = ids(store.relations("$root", None, None, u64::MAX / 2, 10).await.unwrap());
    assert_eq!(all, ["$rel2", "$rel1", "$rel0"]);
    let ann = ids(store
        .relations("$root", Some("m.annotation"), Some("m.reaction"), u64::MAX / 2, 10)
        .await
        .unwrap());
    assert_eq!(ann, ["$rel2", "$rel0"]);
    let threads = ids(store.relations("$root", Some("m.thread"), None, u64::MAX / 2, 10).await.unwrap());
    assert_eq!(threads, ["$rel1"]);
    assert_eq!(ids(store.relations("$root", None, None, u64::MAX / 2, 1).await.unwrap()), ["$rel2"]);

    let near = store.event_near_time("!r:x", NOW + 1500, Direction::Forward).await.unwrap();
    assert_eq!(near, Some(("$rel0".to_owned(), NOW + 2000)));
    let near = store.event_near_time("!r:x", NOW + 1500, Direction::Backward).await.unwrap();
    assert_eq!(near, Some(("$root".to_owned(), NOW + 1000)));
    assert!(store.event_near_time("!r:x", NOW + 99_999, Direction::Forward).await.unwrap().is_none());
}

pub async fn pushers_per_user(store: &dyn Store) {
    assert!(store.pushers("@a:x").await.unwrap().is_empty());
    store.set_pusher("@a:x", "app", "key1", "{\"v\":1}").await.unwrap();
    store.set_pusher("@a:x", "app", "key1", "{\"v\":2}").await.unwrap();
    store.set_pusher("@a:x", "app", "key2", "{}").await.unwrap();
    store.set_pusher("@b:x", "app", "key1", "{}").await.unwrap();
    assert_eq!(store.pushers("@a:x").await.unwrap(), ["{\"v\":2}", "{}"]);
    store.delete_pusher_elsewhere("@a:x", "app", "key1").await.unwrap();
    assert!(store.pushers("@b:x").await.unwrap().is_empty());
    assert!(store.delete_pusher("@a:x", "app", "key2").await.unwrap());
    assert!(!store.delete_pusher("@a:x", "app", "key2").await.unwrap());
    assert_eq!(store.pushers("@a:x").await.unwrap().len(), 1);
}

pub async fn state_history_in_order(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    store
        .append_events("!r:x", vec![ev("$b1", "m.room.member", Some("@b:x"), Some("invite"))])
        .await
        .unwrap();
    store.append_events("!r:x", vec![ev("$v1", "m.room.history_visibility", Some(""), None)]).await.unwrap();
    store.append_events("!r:x", vec![ev("$b2", "m.room.member", Some("@b:x"), Some("join"))]).await.unwrap();
    store.append_events("!r:x", vec![ev("$m", "m.room.message", None, None)]).await.unwrap();
    store.append_events("!r:x", vec![ev("$b3", "m.room.member", Some("@b:x"), Some("leave"))]).await.unwrap();
    let ids = |v: Vec<StoredEvent>| v.into_iter().map(|e| e.event_id).collect::<Vec<_>>();
    let b = ids(store.state_history("!r:x", "m.room.member", Some("@b:x"), 100).await.unwrap());
    assert_eq!(b, ["$b1", "$b2", "$b3"]);
    let all = ids(store.state_history("!r:x", "m.room.member", None, 100).await.unwrap());
    assert_eq!(all, ["$join!r:x", "$b1", "$b2", "$b3"]);
    assert_eq!(
        ids(store.state_history("!r:x", "m.room.history_visibility", Some(""), 100).await.unwrap()),
        ["$v1"]
    );
    assert_eq!(
        ids(store.state_history("!r:x", "m.room.member", Some("@b:x"), 2).await.unwrap()),
        ["$b1", "$b2"]
    );
}

fn content(sha: char, size_bytes: u64) -> MediaContent {
    MediaContent {
        sha256: sha.to_string().repeat(64),
        size_bytes,
        content_type: Some("image/png".to_owned()),
        file_name: Some("Befund Müller.png".to_owned()),
        uploaded_ms: NOW,
    }
}

pub async fn media_uploads_and_quota(store: &dyn Store) {
    assert!(store.media("m1").await.unwrap().is_none());
    assert_eq!(store.media_usage_bytes("@a:x").await.unwrap(), 0);
    assert_eq!(
        store.create_media("m1", "@a:x", content('a', 600), Some(1000)).await.unwrap(),
        MediaWrite::Done
    );
    let m = store.media("m1").await.unwrap().unwrap();
    assert_eq!(
        m,
        Media {
            media_id: "m1".into(),
            uploader: "@a:x".into(),
            created_ms: NOW,
            content: Some(content('a', 600)),
            unused_expires_ms: None
        }
    );
    // Without a content type or file name.
    let bare = MediaContent { content_type: None, file_name: None, ..content('b', 1) };
    assert_eq!(store.create_media("m0", "@b:x", bare.clone(), None).await.unwrap(), MediaWrite::Done);
    assert_eq!(store.media("m0").await.unwrap().unwrap().content, Some(bare));
    // The same bytes again count again: the quota is about what the user uploaded.
    assert_eq!(
        store.create_media("m2", "@a:x", content('a', 600), Some(1000)).await.unwrap(),
        MediaWrite::QuotaExceeded
    );
    assert!(store.media("m2").await.unwrap().is_none(), "a refused upload leaves no record");
    assert_eq!(
        store.create_media("m2", "@a:x", content('a', 400), Some(1000)).await.unwrap(),
        MediaWrite::Done
    );
    assert_eq!(store.media_usage_bytes("@a:x").await.unwrap(), 1000);
    assert_eq!(store.create_media("m3", "@a:x", content('c', 1), None).await.unwrap(), MediaWrite::Done);
    assert!(matches!(
        store.create_media("m3", "@a:x", content('c', 1), None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.media_usage_bytes("@a:x").await.unwrap(), 1001);
    assert_eq!(store.media_usage_bytes("@b:x").await.unwrap(), 1);
}

pub async fn media_reservations(store: &dyn Store) {
    let later = NOW + 1000;
    assert_eq!(store.reserve_media("r1", "@a:x", NOW, later, 2).await.unwrap(), MediaWrite::Done);
    let m = store.media("r1").await.unwrap().unwrap();
    assert_eq!((m.content, m.unused_expires_ms, m.created_ms), (None, Some(later), NOW));
    assert_eq!(store.reserve_media("r2", "@a:x", NOW, later, 2).await.unwrap(), MediaWrite::Done);
    assert_eq!(store.reserve_media("r3", "@a:x", NOW, later, 2).await.unwrap(), MediaWrite::TooManyPending);
    assert!(store.media("r3").await.unwrap().is_none());
    // Someone else has their own allowance.
    assert_eq!(store.reserve_media("r4", "@b:x", NOW, later, 2).await.unwrap(), MediaWrite::Done);

    assert_eq!(
        store.fill_media("r1", "@b:x", content('a', 5), NOW, None).await.unwrap(),
        MediaWrite::NotYours
    );
    assert_eq!(
        store.fill_media("nope", "@a:x", content('a', 5), NOW, None).await.unwrap(),
        MediaWrite::NotFound
    );
    assert_eq!(
        store.fill_media("r1", "@a:x", content('a', 5), NOW, Some(4)).await.unwrap(),
        MediaWrite::QuotaExceeded
    );
    assert_eq!(store.media("r1").await.unwrap().unwrap().content, None);
    assert_eq!(
        store.fill_media("r1", "@a:x", content('a', 5), NOW + 1, None).await.unwrap(),
        MediaWrite::Done
    );
    let m = store.media("r1").await.unwrap().unwrap();
    assert_eq!(m.content, Some(content('a', 5)));
    assert_eq!(
        store.fill_media("r1", "@a:x", content('b', 5), NOW, None).await.unwrap(),
        MediaWrite::AlreadyUploaded
    );
    assert_eq!(store.media("r1").await.unwrap().unwrap().content, Some(content('a', 5)));
    assert_eq!(store.media_usage_bytes("@a:x").await.unwrap(), 5);
    // A filled reservation no longer counts as pending.
    assert_eq!(store.reserve_media("r5", "@a:x", NOW, later, 2).await.unwrap(), MediaWrite::Done);

    // Lapsed reservations cannot be filled and do not count.
    assert_eq!(
        store.fill_media("r2", "@a:x", content('a', 5), later, None).await.unwrap(),
        MediaWrite::NotFound
    );
    assert_eq!(store.reserve_media("r6", "@a:x", later, later + 1000, 2).await.unwrap(), MediaWrite::Done);
    assert_eq!(store.reserve_media("r7", "@a:x", later, later + 1000, 2).await.unwrap(), MediaWrite::Done);
    assert!(store.media("r2").await.unwrap().is_none(), "a lapsed reservation is forgotten");
    assert!(store.media("r1").await.unwrap().is_some(), "uploaded media stays");
    assert!(matches!(store.reserve_media("r1", "@a:x", later, later, 9).await, Err(StoreError::Conflict(_))));
}

pub async fn media_thumbnails(store: &dyn Store) {
    store.create_media("m", "@a:x", content('a', 100), None).await.unwrap();
    let thumb = |w: u32, method: &str| MediaThumbnail {
        width: w,
        height: w,
        method: method.to_owned(),
        sha256: "f".repeat(64),
        content_type: "image/png".to_owned(),
        size_bytes: 10,
    };
    assert!(store.media_thumbnail("m", 32, 32, "crop").await.unwrap().is_none());
    assert!(store.add_media_thumbnail("m", thumb(32, "crop"), 2).await.unwrap());
    assert!(!store.add_media_thumbnail("m", thumb(32, "crop"), 2).await.unwrap(), "stored already");
    assert_eq!(store.media_thumbnail("m", 32, 32, "crop").await.unwrap(), Some(thumb(32, "crop")));
    assert!(store.media_thumbnail("m", 32, 32, "scale").await.unwrap().is_none());
    assert!(store.add_media_thumbnail("m", thumb(32, "scale"), 2).await.unwrap());
    assert!(
        !store.add_media_thumbnail("m", thumb(96, "crop"), 2).await.unwrap(),
        "the media has its maximum"
    );
    assert!(store.media_thumbnail("m", 96, 96, "crop").await.unwrap().is_none());
}

/// Many writes at once (a backend may commit them together): each succeeds or fails on its own.
pub async fn concurrent_writes_fail_alone(store: &dyn Store) {
    let attempts = (0..60).map(|i| {
        // Every third user ID repeats an earlier one: exactly one of each pair may win.
        let n = if i % 3 == 2 { i - 1 } else { i };
        store.register(
            registration(&format!("@c{n}:x"), None, Some(session(&format!("D{i}"), 100 + i as u8, None))),
            NOW,
        )
    });
    let results = futures_join_all(attempts).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| matches!(r, Err(StoreError::Conflict(_)))).count();
    assert_eq!((ok, conflicts), (40, 20), "{results:?}");
    assert_eq!(store.count_accounts().await.unwrap(), 40);
    // The losers left nothing behind: exactly one device per account.
    for i in (0..60).filter(|i| i % 3 != 2) {
        assert_eq!(store.count_devices(&format!("@c{i}:x")).await.unwrap(), 1);
    }
}

// ---- search and reports ----

fn text_ev(id: &str, kind: &str, text: &str) -> NewEvent {
    let state_key = (kind != "m.room.message").then_some("");
    NewEvent { search_text: Some(text.into()), ..ev(id, kind, state_key, None) }
}

fn query(terms: &[&str], rooms: &[(&str, u64)]) -> SearchQuery {
    SearchQuery {
        terms: terms.iter().map(|t| t.to_string()).collect(),
        rooms: rooms.iter().map(|(r, p)| (r.to_string(), *p)).collect(),
        kinds: vec!["m.room.message".into(), "m.room.name".into(), "m.room.topic".into()],
        senders: None,
        not_senders: vec![],
        order: SearchOrder::Rank { skip: 0 },
        limit: 10,
    }
}

async fn found(store: &dyn Store, q: SearchQuery) -> Vec<String> {
    store.search_events(q).await.unwrap().0.into_iter().map(|h| h.event.event_id).collect()
}

pub async fn search_finds_words_in_allowed_rooms(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    let pos = store
        .append_events(
            "!r:x",
            vec![
                text_ev("$m1", "m.room.message", "Befund für Frau Müller liegt vor"),
                text_ev("$m2", "m.room.message", "Termin morgen um acht"),
                text_ev("$n1", "m.room.name", "Praxis Team"),
                ev("$m3", "m.room.message", None, None),
            ],
        )
        .await
        .unwrap();
    let all = [("!r:x", u64::MAX)];
    // Case and diacritics are folded; words match as prefixes; every word must occur.
    assert_eq!(found(store, query(&["MULLER"], &all)).await, ["$m1"]);
    assert_eq!(found(store, query(&["term"], &all)).await, ["$m2"]);
    assert_eq!(found(store, query(&["befund", "müller"], &all)).await, ["$m1"]);
    assert!(found(store, query(&["befund", "termin"], &all)).await.is_empty());
    assert_eq!(found(store, query(&["praxis"], &all)).await, ["$n1"]);
    assert!(found(store, query(&[], &all)).await.is_empty());
    // Words are words, never query syntax.
    for odd in ["\"", "AND", "*", "(", "NEAR(a b)", "a:b", "-x", "^"] {
        assert!(found(store, query(&[odd], &all)).await.is_empty(), "{odd}");
    }
    // Only the rooms asked for, each up to its position.
    assert!(found(store, query(&["termin"], &[("!r:x", pos[1] - 1)])).await.is_empty());
    assert_eq!(found(store, query(&["termin"], &[("!r:x", pos[1])])).await, ["$m2"]);
    assert!(found(store, query(&["termin"], &[("!other:x", u64::MAX)])).await.is_empty());
    // Event types and senders.
    let names = SearchQuery { kinds: vec!["m.room.message".into()], ..query(&["praxis"], &all) };
    assert!(found(store, names).await.is_empty());
    let not_a = SearchQuery { not_senders: vec!["@a:x".into()], ..query(&["termin"], &all) };
    assert!(found(store, not_a).await.is_empty());
    let only_a = SearchQuery { senders: Some(vec!["@a:x".into()]), ..query(&["termin"], &all) };
    assert_eq!(found(store, only_a).await, ["$m2"]);

    // Pages: newest first by position, or by rank with a skip; the count covers all matches.
    let notes: Vec<NewEvent> =
        (0..5).map(|i| text_ev(&format!("$note{i}"), "m.room.message", &format!("note {i}"))).collect();
    let p = store.append_events("!r:x", notes).await.unwrap();
    let recent =
        SearchQuery { order: SearchOrder::Recent { before: None }, limit: 2, ..query(&["note"], &all) };
    let (hits, count) = store.search_events(recent.clone()).await.unwrap();
    assert_eq!(count, 5);
    assert_eq!(hits.iter().map(|h| h.event.event_id.as_str()).collect::<Vec<_>>(), ["$note4", "$note3"]);
    let next = SearchQuery { order: SearchOrder::Recent { before: Some(p[3]) }, ..recent };
    assert_eq!(found(store, next).await, ["$note2", "$note1"]);
    let ranked = SearchQuery { order: SearchOrder::Rank { skip: 4 }, ..query(&["note"], &all) };
    assert_eq!(found(store, ranked).await.len(), 1);

    // A redacted event is no longer found.
    store.redact_event("$m1", "{}", "$r1").await.unwrap();
    assert!(found(store, query(&["muller"], &all)).await.is_empty());
}

pub async fn search_never_covers_encrypted_rooms(store: &dyn Store) {
    seed_room(store, "!e:x").await;
    let all = [("!e:x", u64::MAX)];
    store.append_events("!e:x", vec![text_ev("$before", "m.room.message", "vorher klartext")]).await.unwrap();
    assert_eq!(found(store, query(&["klartext"], &all)).await, ["$before"]);
    // Switching encryption on drops what was indexed, and nothing later is indexed.
    store.append_events("!e:x", vec![ev("$enc", "m.room.encryption", Some(""), None)]).await.unwrap();
    assert!(found(store, query(&["klartext"], &all)).await.is_empty());
    store.append_events("!e:x", vec![text_ev("$after", "m.room.message", "nachher klartext")]).await.unwrap();
    assert!(found(store, query(&["klartext"], &all)).await.is_empty());
    // Another room's encryption does not touch this one.
    seed_room(store, "!p:x").await;
    store.append_events("!p:x", vec![text_ev("$plain", "m.room.message", "klartext")]).await.unwrap();
    assert_eq!(found(store, query(&["klartext"], &[("!p:x", u64::MAX)])).await, ["$plain"]);
}

pub async fn reports_newest_first(store: &dyn Store) {
    assert!(store.reports(None, 10).await.unwrap().is_empty());
    let report = |event: Option<&str>, reason: Option<&str>| NewReport {
        room_id: "!r:x".into(),
        event_id: event.map(str::to_owned),
        reporter: "@a:x".into(),
        reason: reason.map(str::to_owned),
        score: event.map(|_| -100),
        received_ms: NOW,
    };
    let first = store.add_report(report(Some("$e1"), Some("spam"))).await.unwrap();
    let second = store.add_report(report(None, None)).await.unwrap();
    assert!(second > first);
    let all = store.reports(None, 10).await.unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [second, first]);
    assert_eq!(all[1].report, report(Some("$e1"), Some("spam")));
    assert_eq!(all[0].report, report(None, None));
    let older = store.reports(Some(second), 10).await.unwrap();
    assert_eq!(older.iter().map(|r| r.id).collect::<Vec<_>>(), [first]);
    assert_eq!(store.reports(None, 1).await.unwrap().len(), 1);
}

/// Polls all futures concurrently on the current task (no extra dependency).
async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future completed")).collect()
}

// ---- end-to-end encryption ----

fn keys_of(device: &str) -> KeyUpload {
    KeyUpload {
        device_keys: Some(format!("{{\"device_id\":\"{device}\"}}")),
        one_time_keys: vec![
            ("signed_curve25519:AAAAAQ".into(), "{\"key\":\"one\"}".into()),
            ("signed_curve25519:AAAAAg".into(), "{\"key\":\"two\"}".into()),
        ],
        fallback_keys: vec![("signed_curve25519:AAAAAw".into(), "{\"key\":\"fallback\"}".into())],
    }
}

pub async fn device_keys_one_time_keys_and_claims(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("D", 1, None))), NOW).await.unwrap();
    let before = store.max_stream_pos().await.unwrap();
    let (counts, changed) = store.upload_keys("@a:x", "D", keys_of("D")).await.unwrap();
    assert_eq!(counts.one_time_keys.get("signed_curve25519"), Some(&2));
    assert_eq!(counts.unused_fallback_algorithms, ["signed_curve25519"]);
    let changed = changed.expect("new device keys change the device list");
    assert!(changed > before);
    assert_eq!(store.device_list_changes(before, changed).await.unwrap(), ["@a:x"]);
    // Same device keys again: kept, no new change.
    let (_, again) = store.upload_keys("@a:x", "D", keys_of("D")).await.unwrap();
    assert_eq!(again, None);
    let keys = store.device_keys(&["@a:x".into(), "@nobody:x".into()]).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].device_id.as_str(), keys[0].display_name.as_deref()), ("D", Some("D phone")));
    // A one-time key ID reused with other content fails the whole upload.
    let bad = KeyUpload {
        device_keys: None,
        one_time_keys: vec![
            ("signed_curve25519:AAAABA".into(), "{\"key\":\"new\"}".into()),
            ("signed_curve25519:AAAAAQ".into(), "{\"key\":\"other\"}".into()),
        ],
        fallback_keys: vec![],
    };
    assert!(matches!(store.upload_keys("@a:x", "D", bad).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.key_counts("@a:x", "D").await.unwrap().one_time_keys.get("signed_curve25519"), Some(&2));
    // Claims hand out each one-time key once, then the fallback key (again and again).
    let req = vec![("@a:x".to_string(), "D".to_string(), "signed_curve25519".to_string())];
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2 {
        let got = store.claim_keys(&req).await.unwrap();
        assert_eq!(got.len(), 1);
        assert!(seen.insert(got[0].2.clone()), "one-time key handed out twice: {}", got[0].2);
    }
    let counts = store.key_counts("@a:x", "D").await.unwrap();
    assert_eq!(counts.one_time_keys.get("signed_curve25519"), None);
    assert_eq!(counts.unused_fallback_algorithms, ["signed_curve25519"]);
    for _ in 0..2 {
        let got = store.claim_keys(&req).await.unwrap();
        assert_eq!(got[0].2, "signed_curve25519:AAAAAw");
        assert_eq!(got[0].3, "{\"key\":\"fallback\"}");
    }
    assert!(store.key_counts("@a:x", "D").await.unwrap().unused_fallback_algorithms.is_empty());
    // Unknown devices and algorithms are left out.
    let none = store
        .claim_keys(&[
            ("@a:x".into(), "NOPE".into(), "signed_curve25519".into()),
            ("@a:x".into(), "D".into(), "x".into()),
        ])
        .await
        .unwrap();
    assert!(none.is_empty());
    // A new fallback key is unused again.
    let fb = KeyUpload {
        fallback_keys: vec![("signed_curve25519:AAAABQ".into(), "{\"key\":\"fb2\"}".into())],
        ..Default::default()
    };
    let (counts, _) = store.upload_keys("@a:x", "D", fb).await.unwrap();
    assert_eq!(counts.unused_fallback_algorithms, ["signed_curve25519"]);
    // Deleting the device deletes its keys and changes the device list.
    let before = store.max_stream_pos().await.unwrap();
    store.delete_devices("@a:x", &["D".into()]).await.unwrap();
    let after = store.max_stream_pos().await.unwrap();
    assert!(after > before);
    assert_eq!(store.device_list_changes(before, after).await.unwrap(), ["@a:x"]);
    assert!(store.device_keys(&["@a:x".into()]).await.unwrap().is_empty());
    assert_eq!(store.key_counts("@a:x", "D").await.unwrap(), KeyCounts::default());
}

pub async fn cross_signing_keys_and_signatures(store: &dyn Store) {
    let p1 = store
        .set_cross_signing_keys(
            "@a:x",
            &[
                (CrossSigningKind::Master, "{\"m\":1}".into()),
                (CrossSigningKind::SelfSigning, "{\"s\":1}".into()),
            ],
        )
        .await
        .unwrap();
    store.set_cross_signing_keys("@a:x", &[(CrossSigningKind::Master, "{\"m\":2}".into())]).await.unwrap();
    let keys = store.cross_signing_keys(&["@a:x".into(), "@b:x".into()]).await.unwrap();
    assert_eq!(
        keys,
        [
            ("@a:x".to_string(), CrossSigningKind::Master, "{\"m\":2}".to_string()),
            ("@a:x".to_string(), CrossSigningKind::SelfSigning, "{\"s\":1}".to_string()),
        ]
    );
    let sig = |target: &str, signer: &str, s: &str| KeySignature {
        target_user_id: target.into(),
        target_key_id: "D".into(),
        signer_user_id: signer.into(),
        signer_key_id: "ed25519:pub".into(),
        signature: s.into(),
    };
    let p2 =
        store.add_key_signatures(&[sig("@a:x", "@a:x", "one"), sig("@b:x", "@a:x", "two")]).await.unwrap();
    assert!(p2 > p1);
    assert_eq!(store.device_list_changes(p1, p2).await.unwrap(), ["@a:x", "@b:x"]);
    // The same signer and key replace the earlier signature.
    let p3 = store.add_key_signatures(&[sig("@a:x", "@a:x", "three")]).await.unwrap();
    assert_eq!(store.key_signatures(&["@a:x".into()]).await.unwrap(), [sig("@a:x", "@a:x", "three")]);
    // Only a user's latest change counts: a later change moves the user out of earlier ranges.
    assert_eq!(store.device_list_changes(p1, p2).await.unwrap(), ["@b:x"]);
    assert_eq!(store.device_list_changes(p2, p3).await.unwrap(), ["@a:x"]);
    assert_eq!(store.mark_device_list_changed("@c:x").await.unwrap(), store.max_stream_pos().await.unwrap());
}

pub async fn to_device_queue(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("A1", 1, None))), NOW).await.unwrap();
    store.register(registration("@b:x", None, Some(session("B1", 2, None))), NOW).await.unwrap();
    store.create_session("@b:x", session("B2", 3, None), NOW).await.unwrap();
    let to = |user: &str, device: &str, n: u32| ToDeviceRecipient {
        user_id: user.into(),
        device_id: device.into(),
        content: format!("{{\"n\":{n}}}"),
    };
    let out = store
        .send_to_device(("@a:x", "A1"), "t1", "m.test", vec![to("@b:x", "*", 1), to("@b:x", "NOPE", 2)], 2)
        .await
        .unwrap();
    let ToDeviceOutcome::Queued { stream_pos: p1, dropped: 0 } = out else { panic!("{out:?}") };
    assert_eq!(
        store.send_to_device(("@a:x", "A1"), "t1", "m.test", vec![to("@b:x", "*", 1)], 2).await.unwrap(),
        ToDeviceOutcome::Duplicate
    );
    let out =
        store.send_to_device(("@a:x", "A1"), "t2", "m.test", vec![to("@b:x", "B1", 3)], 2).await.unwrap();
    let ToDeviceOutcome::Queued { stream_pos: p2, dropped: 0 } = out else { panic!("{out:?}") };
    // B1's queue is full now (two messages).
    let out =
        store.send_to_device(("@a:x", "A1"), "t3", "m.test", vec![to("@b:x", "*", 4)], 2).await.unwrap();
    let ToDeviceOutcome::Queued { stream_pos: p3, dropped: 1 } = out else { panic!("{out:?}") };
    let (msgs, acked) = store.to_device_messages("@b:x", "B1", 0, p3, 10).await.unwrap();
    assert!(!acked);
    let got: Vec<_> = msgs.iter().map(|m| (m.stream_pos, m.content.as_str())).collect();
    assert_eq!(got, [(p1, "{\"n\":1}"), (p2, "{\"n\":3}")]);
    assert_eq!((msgs[0].sender.as_str(), msgs[0].kind.as_str()), ("@a:x", "m.test"));
    let (msgs, _) = store.to_device_messages("@b:x", "B1", 0, p3, 1).await.unwrap();
    assert_eq!(msgs.len(), 1, "the limit holds");
    let (msgs, acked) = store.to_device_messages("@b:x", "B1", p1, p3, 10).await.unwrap();
    assert!(acked, "p1 is still queued");
    assert_eq!(msgs.len(), 1);
    store.ack_to_device("@b:x", "B1", p1).await.unwrap();
    let (msgs, acked) = store.to_device_messages("@b:x", "B1", p1, p3, 10).await.unwrap();
    assert!(!acked);
    assert_eq!(msgs.len(), 1);
    let (msgs, _) = store.to_device_messages("@b:x", "B2", 0, p3, 10).await.unwrap();
    assert_eq!(msgs.len(), 2);
    // A deleted device's queue goes with it.
    store.delete_devices("@b:x", &["B2".into()]).await.unwrap();
    assert!(store.to_device_messages("@b:x", "B2", 0, u64::MAX >> 2, 10).await.unwrap().0.is_empty());
}

pub async fn key_backup_versions_and_keys(store: &dyn Store) {
    assert!(store.backup_version("@a:x", None).await.unwrap().is_none());
    let v1 =
        store.create_backup_version("@a:x", "m.megolm_backup.v1.curve25519-aes-sha2", "{}").await.unwrap();
    let key = |session: &str, index: u64, fwd: u64, verified: bool, data: &str| BackupKey {
        room_id: "!r:x".into(),
        session_id: session.into(),
        first_message_index: index,
        forwarded_count: fwd,
        is_verified: verified,
        session_data: data.into(),
    };
    let v = store.put_backup_keys("@a:x", v1, vec![key("s1", 5, 0, false, "a")]).await.unwrap().unwrap();
    assert_eq!((v.count, v.etag), (1, 1));
    // Worse keys are ignored (and leave the etag alone); better ones replace.
    let v = store.put_backup_keys("@a:x", v1, vec![key("s1", 6, 0, false, "worse")]).await.unwrap().unwrap();
    assert_eq!(v.etag, 1);
    let v = store
        .put_backup_keys("@a:x", v1, vec![key("s1", 7, 3, true, "verified"), key("s2", 0, 0, false, "b")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((v.count, v.etag), (2, 2));
    let all = store.backup_keys("@a:x", v1, BackupScope::All).await.unwrap();
    assert_eq!(all.iter().map(|k| k.session_data.as_str()).collect::<Vec<_>>(), ["verified", "b"]);
    let one = store.backup_keys("@a:x", v1, BackupScope::Session("!r:x".into(), "s2".into())).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(store.backup_keys("@a:x", v1, BackupScope::Room("!other:x".into())).await.unwrap(), []);
    // A newer version becomes current; the old one no longer takes keys.
    let v2 = store
        .create_backup_version("@a:x", "m.megolm_backup.v1.curve25519-aes-sha2", "{\"x\":1}")
        .await
        .unwrap();
    assert!(v2 > v1);
    assert_eq!(store.backup_version("@a:x", None).await.unwrap().unwrap().version, v2);
    assert!(store.put_backup_keys("@a:x", v1, vec![key("s3", 0, 0, false, "c")]).await.unwrap().is_none());
    assert!(store.update_backup_version("@a:x", v1, "{\"y\":2}").await.unwrap());
    assert_eq!(store.backup_version("@a:x", Some(v1)).await.unwrap().unwrap().auth_data, "{\"y\":2}");
    let v = store.delete_backup_keys("@a:x", v1, BackupScope::Room("!r:x".into())).await.unwrap().unwrap();
    assert_eq!((v.count, v.etag), (0, 3));
    assert!(store.delete_backup_version("@a:x", v1).await.unwrap());
    assert!(!store.delete_backup_version("@a:x", v1).await.unwrap());
    assert!(store.backup_version("@a:x", Some(v1)).await.unwrap().is_none());
    assert!(store.delete_backup_keys("@a:x", v1, BackupScope::All).await.unwrap().is_none());
    // Version numbers are never reused.
    assert!(store.delete_backup_version("@a:x", v2).await.unwrap());
    let v3 =
        store.create_backup_version("@a:x", "m.megolm_backup.v1.curve25519-aes-sha2", "{}").await.unwrap();
    assert!(v3 > v2);
    assert!(store.backup_version("@b:x", None).await.unwrap().is_none(), "backups are per user");
}

pub async fn room_peers_and_member_changes(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    seed_room(store, "!s:x").await;
    let member = |id: &str, user: &str, membership: &str| {
        let mut e = ev(id, "m.room.member", Some(user), Some(membership));
        e.json = format!("{{\"content\":{{\"membership\":\"{membership}\"}}}}");
        e
    };
    let p = store.append_events("!r:x", vec![member("$b", "@b:x", "invite")]).await.unwrap();
    store
        .append_events("!s:x", vec![member("$c", "@c:x", "join"), member("$cl", "@c:x", "leave")])
        .await
        .unwrap();
    store.append_events("!s:x", vec![member("$d", "@d:x", "ban")]).await.unwrap();
    assert_eq!(store.room_peers("@a:x").await.unwrap(), ["@a:x", "@b:x"]);
    assert_eq!(store.room_peers("@b:x").await.unwrap(), ["@a:x", "@b:x"]);
    assert!(store.room_peers("@c:x").await.unwrap().is_empty());
    let until = store.max_stream_pos().await.unwrap();
    let changes = store.member_changes("!s:x", p[0], until).await.unwrap();
    let changes: Vec<_> = changes.iter().map(|c| (c.user_id.as_str(), c.membership.as_str())).collect();
    assert_eq!(changes, [("@c:x", "join"), ("@c:x", "leave"), ("@d:x", "ban")]);
    assert!(store.member_changes("!r:x", p[0], until).await.unwrap().is_empty());
}

// ---- meetings ----

fn new_meeting(id: &str, kind: MeetingKind, creator: &str) -> NewMeeting {
    NewMeeting {
        meeting_id: id.to_owned(),
        kind,
        title: Some("Teambesprechung".to_owned()),
        creator: creator.to_owned(),
        origin_room: Some("!team:x".to_owned()),
        members_enter: true,
        created_ms: NOW,
    }
}

fn new_knock(id: &str, meeting: &str, link: Option<u8>, at: u64) -> NewKnock {
    NewKnock {
        knock_id: id.to_owned(),
        meeting_id: meeting.to_owned(),
        secret_hash: h(7),
        display_name: format!("Gast {id}"),
        identity: format!("guest-{id}"),
        link_hash: link.map(h),
        created_ms: at,
    }
}

fn patient_link(n: u8, meeting: &str, expires_ms: u64) -> PatientLink {
    PatientLink {
        link_hash: h(n),
        meeting_id: meeting.to_owned(),
        created_ms: NOW,
        expires_ms,
        slot_start_ms: Some(NOW + 10),
        slot_end_ms: Some(NOW + 20),
        knock_id: None,
        spent: false,
    }
}

async fn status_of(store: &dyn Store, knock: &str) -> KnockStatus {
    store.knock(knock).await.unwrap().expect("knock exists").status
}

pub async fn meetings_and_their_settings(store: &dyn Store) {
    assert!(store.meeting("m1").await.unwrap().is_none());
    assert_eq!(
        store.create_meeting(new_meeting("m1", MeetingKind::Meeting, "@a:x"), 2).await.unwrap(),
        MeetingWrite::Done
    );
    let bare = NewMeeting {
        title: None,
        origin_room: None,
        members_enter: false,
        ..new_meeting("m2", MeetingKind::Consultation, "@a:x")
    };
    assert_eq!(store.create_meeting(bare, 2).await.unwrap(), MeetingWrite::Done);
    assert_eq!(
        store.create_meeting(new_meeting("m3", MeetingKind::Meeting, "@a:x"), 2).await.unwrap(),
        MeetingWrite::TooMany
    );
    assert!(store.meeting("m3").await.unwrap().is_none(), "a refused meeting leaves no record");
    assert!(matches!(
        store.create_meeting(new_meeting("m1", MeetingKind::Meeting, "@b:x"), 2).await,
        Err(StoreError::Conflict(_))
    ));

    let m = store.meeting("m1").await.unwrap().unwrap();
    assert_eq!(
        m,
        Meeting {
            meeting_id: "m1".into(),
            kind: MeetingKind::Meeting,
            title: Some("Teambesprechung".into()),
            creator: "@a:x".into(),
            origin_room: Some("!team:x".into()),
            members_enter: true,
            created_ms: NOW,
            last_used_ms: NOW,
            ended_ms: None,
            locked: false,
            pin_hash: None,
        }
    );
    let m2 = store.meeting("m2").await.unwrap().unwrap();
    assert_eq!(
        (m2.kind, m2.title, m2.origin_room, m2.members_enter),
        (MeetingKind::Consultation, None, None, false)
    );
    let ids = |ms: Vec<Meeting>| ms.into_iter().map(|m| m.meeting_id).collect::<Vec<_>>();
    assert_eq!(ids(store.open_meetings_of("@a:x").await.unwrap()).len(), 2);

    assert!(store.set_meeting_locked("m1", true, NOW + 1).await.unwrap());
    assert!(store.set_meeting_pin("m1", Some("$argon2id$pin"), NOW + 2).await.unwrap());
    let m = store.meeting("m1").await.unwrap().unwrap();
    assert_eq!((m.locked, m.pin_hash.as_deref(), m.last_used_ms), (true, Some("$argon2id$pin"), NOW + 2));
    assert!(store.set_meeting_pin("m1", None, NOW + 3).await.unwrap());
    assert!(store.touch_meeting("m1", NOW + 4).await.unwrap());
    let m = store.meeting("m1").await.unwrap().unwrap();
    assert_eq!((m.pin_hash, m.last_used_ms), (None, NOW + 4));
    assert!(!store.set_meeting_locked("nope", true, NOW).await.unwrap());

    assert!(store.end_meeting("m1", NOW + 5).await.unwrap());
    assert!(!store.end_meeting("m1", NOW + 6).await.unwrap(), "ends once");
    assert_eq!(store.meeting("m1").await.unwrap().unwrap().ended_ms, Some(NOW + 5));
    assert!(
        !store.set_meeting_locked("m1", false, NOW + 7).await.unwrap(),
        "an ended meeting stays as it was"
    );
    assert!(!store.touch_meeting("m1", NOW + 7).await.unwrap());
    assert_eq!(ids(store.open_meetings_of("@a:x").await.unwrap()), ["m2"]);
    // An ended meeting no longer counts against the creator's limit.
    assert_eq!(
        store.create_meeting(new_meeting("m3", MeetingKind::Meeting, "@a:x"), 2).await.unwrap(),
        MeetingWrite::Done
    );
}

pub async fn knocks_through_the_lobby(store: &dyn Store) {
    store.create_meeting(new_meeting("m", MeetingKind::Meeting, "@a:x"), 10).await.unwrap();
    assert_eq!(store.create_knock(new_knock("k1", "m", None, NOW + 1), 2).await.unwrap(), MeetingWrite::Done);
    assert_eq!(store.create_knock(new_knock("k2", "m", None, NOW + 2), 2).await.unwrap(), MeetingWrite::Done);
    assert_eq!(
        store.create_knock(new_knock("k3", "m", None, NOW + 3), 2).await.unwrap(),
        MeetingWrite::TooMany
    );
    assert!(store.knock("k3").await.unwrap().is_none());
    assert_eq!(
        store.create_knock(new_knock("k9", "nope", None, NOW), 2).await.unwrap(),
        MeetingWrite::MeetingGone
    );
    let k1 = store.knock("k1").await.unwrap().unwrap();
    assert_eq!(
        k1,
        Knock {
            knock_id: "k1".into(),
            meeting_id: "m".into(),
            secret_hash: h(7),
            display_name: "Gast k1".into(),
            identity: "guest-k1".into(),
            link_hash: None,
            status: KnockStatus::Waiting,
            created_ms: NOW + 1,
            updated_ms: NOW + 1,
            admitted_by: None,
            handed_to: None,
        }
    );
    assert_eq!(store.meeting("m").await.unwrap().unwrap().last_used_ms, NOW + 2, "a knock is a use");

    // Admission, and the states a change may start from.
    let admitted =
        store.update_knock("k1", &[KnockStatus::Waiting], KnockStatus::Admitted, false, None, NOW + 5).await;
    let KnockUpdate::Done(k) = admitted.unwrap() else { panic!("admitted") };
    assert_eq!((k.status, k.updated_ms), (KnockStatus::Admitted, NOW + 5));
    assert_eq!(
        store
            .update_knock("k1", &[KnockStatus::Waiting], KnockStatus::Rejected, false, None, NOW)
            .await
            .unwrap(),
        KnockUpdate::WrongState(KnockStatus::Admitted)
    );
    assert_eq!(
        store
            .update_knock("nope", &[KnockStatus::Waiting], KnockStatus::Rejected, false, None, NOW)
            .await
            .unwrap(),
        KnockUpdate::NotFound
    );
    // Exclusive admission: one admitted knock at a time.
    assert_eq!(
        store
            .update_knock("k2", &[KnockStatus::Waiting], KnockStatus::Admitted, true, None, NOW)
            .await
            .unwrap(),
        KnockUpdate::Busy
    );
    assert_eq!(status_of(store, "k2").await, KnockStatus::Waiting);
    let knocks = |v: Vec<Knock>| v.into_iter().map(|k| (k.knock_id, k.status)).collect::<Vec<_>>();
    assert_eq!(
        knocks(store.open_knocks("m").await.unwrap()),
        [("k1".to_owned(), KnockStatus::Admitted), ("k2".to_owned(), KnockStatus::Waiting)]
    );
    assert_eq!(store.knock_by_identity("m", "guest-k2").await.unwrap().unwrap().knock_id, "k2");
    assert!(store.knock_by_identity("m", "guest-zz").await.unwrap().is_none());
    assert!(store.knock_by_identity("other", "guest-k2").await.unwrap().is_none());

    // Locked: no new knocks; the waiting one stays.
    store.set_meeting_locked("m", true, NOW).await.unwrap();
    assert_eq!(
        store.create_knock(new_knock("k4", "m", None, NOW + 6), 9).await.unwrap(),
        MeetingWrite::Locked
    );
    store.set_meeting_locked("m", false, NOW).await.unwrap();
    assert_eq!(store.create_knock(new_knock("k4", "m", None, NOW + 6), 9).await.unwrap(), MeetingWrite::Done);
    assert!(matches!(
        store.create_knock(new_knock("k4", "m", None, NOW + 6), 9).await,
        Err(StoreError::Conflict(_))
    ));
    store.update_knock("k4", &[KnockStatus::Waiting], KnockStatus::Left, false, None, NOW + 7).await.unwrap();

    // Counts over all meetings, and the list of open ones, for operators.
    store.create_meeting(new_meeting("m2", MeetingKind::Meeting, "@b:x"), 10).await.unwrap();
    assert_eq!(
        store.meeting_counts().await.unwrap(),
        MeetingCounts { open_meetings: 2, waiting_knocks: 1, admitted_knocks: 1 }
    );
    let ids = |v: Vec<Meeting>| v.into_iter().map(|m| m.meeting_id).collect::<Vec<_>>();
    assert_eq!(ids(store.open_meetings(10).await.unwrap()).len(), 2);
    assert_eq!(ids(store.open_meetings(1).await.unwrap()).len(), 1);
    assert!(store.end_meeting("m2", NOW + 8).await.unwrap());
    assert_eq!(ids(store.open_meetings(10).await.unwrap()), ["m"]);

    // Ending closes every open knock and refuses new ones.
    assert!(store.end_meeting("m", NOW + 8).await.unwrap());
    assert_eq!(store.meeting_counts().await.unwrap(), MeetingCounts::default());
    assert_eq!(status_of(store, "k1").await, KnockStatus::Ended);
    assert_eq!(status_of(store, "k2").await, KnockStatus::Ended);
    assert_eq!(status_of(store, "k4").await, KnockStatus::Left, "a closed knock keeps its state");
    assert!(store.open_knocks("m").await.unwrap().is_empty());
    assert_eq!(
        store.create_knock(new_knock("k5", "m", None, NOW + 9), 9).await.unwrap(),
        MeetingWrite::MeetingGone
    );
}

pub async fn patient_links_are_single_use(store: &dyn Store) {
    store.create_meeting(new_meeting("c", MeetingKind::Consultation, "@doc:x"), 10).await.unwrap();
    store.create_meeting(new_meeting("other", MeetingKind::Consultation, "@doc:x"), 10).await.unwrap();
    let expires = NOW + 1000;
    assert_eq!(
        store.create_patient_link(patient_link(1, "c", expires), 2).await.unwrap(),
        MeetingWrite::Done
    );
    assert_eq!(
        store.create_patient_link(patient_link(2, "c", expires), 2).await.unwrap(),
        MeetingWrite::Done
    );
    assert_eq!(
        store.create_patient_link(patient_link(3, "c", expires), 2).await.unwrap(),
        MeetingWrite::TooMany
    );
    assert!(matches!(
        store.create_patient_link(patient_link(1, "other", expires), 9).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.create_patient_link(patient_link(4, "nope", expires), 9).await.unwrap(),
        MeetingWrite::MeetingGone
    );
    assert_eq!(store.patient_link(&h(1)).await.unwrap(), Some(patient_link(1, "c", expires)));
    assert!(store.patient_link(&h(3)).await.unwrap().is_none());

    // A link works for its own meeting only.
    assert_eq!(
        store.create_knock(new_knock("x", "other", Some(1), NOW + 1), 9).await.unwrap(),
        MeetingWrite::LinkUnknown
    );
    assert_eq!(
        store.create_knock(new_knock("x", "c", Some(99), NOW + 1), 9).await.unwrap(),
        MeetingWrite::LinkUnknown
    );
    // The first knock binds the link; a second one is refused while the first waits.
    assert_eq!(
        store.create_knock(new_knock("p1", "c", Some(1), NOW + 1), 9).await.unwrap(),
        MeetingWrite::Done
    );
    assert_eq!(store.patient_link(&h(1)).await.unwrap().unwrap().knock_id.as_deref(), Some("p1"));
    assert_eq!(store.knock("p1").await.unwrap().unwrap().link_hash, Some(h(1)));
    assert_eq!(
        store.create_knock(new_knock("p2", "c", Some(1), NOW + 2), 9).await.unwrap(),
        MeetingWrite::LinkBusy
    );
    assert!(store.knock("p2").await.unwrap().is_none());
    // Leaving the lobby before admission frees the link (the patient reloads the page).
    store.update_knock("p1", &[KnockStatus::Waiting], KnockStatus::Left, false, None, NOW + 3).await.unwrap();
    assert!(!store.patient_link(&h(1)).await.unwrap().unwrap().spent);
    assert_eq!(
        store.create_knock(new_knock("p2", "c", Some(1), NOW + 4), 9).await.unwrap(),
        MeetingWrite::Done
    );
    // So does expiring there (the patient's browser stopped asking).
    store
        .update_knock("p2", &[KnockStatus::Waiting], KnockStatus::Expired, false, None, NOW + 4)
        .await
        .unwrap();
    assert_eq!(status_of(store, "p2").await, KnockStatus::Expired);
    assert!(!store.patient_link(&h(1)).await.unwrap().unwrap().spent);
    assert!(store.open_knocks("c").await.unwrap().is_empty(), "an expired knock is not in the lobby");
    assert_eq!(
        store.create_knock(new_knock("p2b", "c", Some(1), NOW + 4), 9).await.unwrap(),
        MeetingWrite::Done
    );
    // Admission uses it up: after the session nobody gets in with it.
    store
        .update_knock("p2b", &[KnockStatus::Waiting], KnockStatus::Admitted, true, None, NOW + 5)
        .await
        .unwrap();
    assert!(store.patient_link(&h(1)).await.unwrap().unwrap().spent);
    assert_eq!(
        store.create_knock(new_knock("p3", "c", Some(1), NOW + 6), 9).await.unwrap(),
        MeetingWrite::LinkSpent
    );
    // A rejected patient's link is used up too.
    assert_eq!(
        store.create_knock(new_knock("q1", "c", Some(2), NOW + 6), 9).await.unwrap(),
        MeetingWrite::Done
    );
    store
        .update_knock("q1", &[KnockStatus::Waiting], KnockStatus::Rejected, false, None, NOW + 7)
        .await
        .unwrap();
    assert!(store.patient_link(&h(2)).await.unwrap().unwrap().spent);
    // Spent links no longer count as open; an expired link refuses knocks.
    assert_eq!(
        store.create_patient_link(patient_link(5, "c", NOW + 10), 2).await.unwrap(),
        MeetingWrite::Done
    );
    assert_eq!(
        store.create_knock(new_knock("e1", "c", Some(5), NOW + 10), 9).await.unwrap(),
        MeetingWrite::LinkSpent
    );
    // Ending the meeting spends every link.
    assert_eq!(
        store.create_patient_link(patient_link(6, "c", expires), 2).await.unwrap(),
        MeetingWrite::Done
    );
    store.end_meeting("c", NOW + 11).await.unwrap();
    assert!(store.patient_link(&h(6)).await.unwrap().unwrap().spent);
}

pub async fn consultation_sessions_have_holders(store: &dyn Store) {
    store.create_meeting(new_meeting("c", MeetingKind::Consultation, "@doc:x"), 10).await.unwrap();
    store.create_knock(new_knock("p1", "c", None, NOW + 1), 9).await.unwrap();
    // Not admitted yet: nobody holds it, and it cannot be handed over.
    assert_eq!(
        store.hand_over_knock("p1", "@doc:x", "@col:x", NOW + 2).await.unwrap(),
        KnockUpdate::WrongState(KnockStatus::Waiting)
    );
    assert_eq!(
        store.hand_over_knock("nope", "@doc:x", "@col:x", NOW + 2).await.unwrap(),
        KnockUpdate::NotFound
    );
    // The moderator who admits holds the session.
    let admitted = store
        .update_knock("p1", &[KnockStatus::Waiting], KnockStatus::Admitted, true, Some("@doc:x"), NOW + 3)
        .await
        .unwrap();
    let KnockUpdate::Done(k) = admitted else { panic!("admitted") };
    assert_eq!((k.admitted_by.as_deref(), k.handed_to.as_deref()), (Some("@doc:x"), None));
    let k = store.knock("p1").await.unwrap().unwrap();
    assert!(k.held_by("@doc:x") && !k.held_by("@col:x"));
    // Only a holder hands it over; the colleague then holds it too.
    assert_eq!(
        store.hand_over_knock("p1", "@col:x", "@col:x", NOW + 4).await.unwrap(),
        KnockUpdate::NotHolder
    );
    let KnockUpdate::Done(k) = store.hand_over_knock("p1", "@doc:x", "@col:x", NOW + 5).await.unwrap() else {
        panic!("handed over")
    };
    assert_eq!((k.handed_to.as_deref(), k.updated_ms), (Some("@col:x"), NOW + 5));
    let k = store.knock("p1").await.unwrap().unwrap();
    assert!(k.held_by("@doc:x") && k.held_by("@col:x") && !k.held_by("@third:x"));
    assert_eq!(k.status, KnockStatus::Admitted, "a hand-over leaves the session running");
    assert_eq!(store.open_knocks("c").await.unwrap()[0].handed_to.as_deref(), Some("@col:x"));
    // The colleague may hand it on: the latest colleague replaces the earlier one.
    store.hand_over_knock("p1", "@col:x", "@third:x", NOW + 6).await.unwrap();
    let k = store.knock_by_identity("c", "guest-p1").await.unwrap().unwrap();
    assert!(k.held_by("@doc:x") && k.held_by("@third:x") && !k.held_by("@col:x"));
    // Once the session is over it cannot be handed over, and the record stays as it was.
    store
        .update_knock("p1", &[KnockStatus::Admitted], KnockStatus::Left, false, None, NOW + 7)
        .await
        .unwrap();
    assert_eq!(
        store.hand_over_knock("p1", "@doc:x", "@col:x", NOW + 8).await.unwrap(),
        KnockUpdate::WrongState(KnockStatus::Left)
    );
    let k = store.knock("p1").await.unwrap().unwrap();
    assert_eq!((k.admitted_by.as_deref(), k.handed_to.as_deref()), (Some("@doc:x"), Some("@third:x")));
}

pub async fn meetings_are_purged_after_retention(store: &dyn Store) {
    let day = 86_400_000;
    store.create_meeting(new_meeting("old", MeetingKind::Meeting, "@a:x"), 10).await.unwrap();
    store.create_meeting(new_meeting("stale", MeetingKind::Meeting, "@a:x"), 10).await.unwrap();
    store.create_meeting(new_meeting("live", MeetingKind::Consultation, "@a:x"), 10).await.unwrap();
    store.create_knock(new_knock("k-old", "old", None, NOW + 1), 9).await.unwrap();
    store.create_knock(new_knock("k-live-old", "live", None, NOW + 1), 9).await.unwrap();
    store.create_patient_link(patient_link(1, "live", NOW + day), 9).await.unwrap();
    store.end_meeting("old", NOW + day).await.unwrap();
    // "live" is used later; its early knock and link are older than the cutoff all the same.
    store.touch_meeting("live", NOW + 50 * day).await.unwrap();
    let later_link = PatientLink { created_ms: NOW + 50 * day, ..patient_link(2, "live", NOW + 60 * day) };
    store.create_patient_link(later_link, 9).await.unwrap();
    store.create_knock(new_knock("k-live-new", "live", None, NOW + 50 * day), 9).await.unwrap();

    assert_eq!(store.purge_meetings(NOW + day).await.unwrap(), 1, "only the never-used one is older");
    assert!(store.meeting("stale").await.unwrap().is_none());
    assert_eq!(store.purge_meetings(NOW + 10 * day).await.unwrap(), 1);
    assert!(store.meeting("old").await.unwrap().is_none());
    assert!(store.knock("k-old").await.unwrap().is_none(), "knocks go with their meeting");
    assert!(store.meeting("live").await.unwrap().is_some());
    assert!(store.knock("k-live-old").await.unwrap().is_none(), "old knocks of live meetings go too");
    assert!(store.patient_link(&h(1)).await.unwrap().is_none());
    assert!(store.knock("k-live-new").await.unwrap().is_some());
    assert!(store.patient_link(&h(2)).await.unwrap().is_some());
    assert_eq!(store.purge_meetings(NOW + 10 * day).await.unwrap(), 0);
}

pub async fn sliding_connections_are_versioned(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("A1", 1, None))), NOW).await.unwrap();
    store.create_session("@a:x", session("A2", 2, None), NOW).await.unwrap();
    let sent = |room: &str, membership: &str| SentRoom {
        room_id: room.into(),
        membership: membership.into(),
        config: "c".into(),
        timeline_limit: Some(20),
    };
    assert_eq!(store.sliding_connection("@a:x", "A1", "c1", 1).await.unwrap(), None);
    let v1 = store
        .put_sliding_connection("@a:x", "A1", "c1", None, vec![sent("!r:x", "join")], 1, NOW, 2)
        .await
        .unwrap();
    assert_eq!(v1, 1);
    let v2 = store
        .put_sliding_connection(
            "@a:x",
            "A1",
            "c1",
            Some(v1),
            vec![sent("!r:x", "join"), sent("!s:x", "invite")],
            1,
            NOW,
            2,
        )
        .await
        .unwrap();
    assert_eq!(v2, 2);
    let mut rooms = store.sliding_connection("@a:x", "A1", "c1", v2).await.unwrap().unwrap();
    rooms.sort_by(|a, b| a.room_id.cmp(&b.room_id));
    assert_eq!(rooms, [sent("!r:x", "join"), sent("!s:x", "invite")]);
    assert_eq!(
        store.sliding_connection("@a:x", "A1", "c1", v1).await.unwrap().unwrap(),
        [sent("!r:x", "join")]
    );
    // Continuing from v2 drops v1; the versions never repeat.
    let v3 = store.put_sliding_connection("@a:x", "A1", "c1", Some(v2), vec![], 1, NOW, 2).await.unwrap();
    assert_eq!(v3, 3);
    assert_eq!(store.sliding_connection("@a:x", "A1", "c1", v1).await.unwrap(), None);
    assert_eq!(store.sliding_connection("@a:x", "A1", "c1", v2).await.unwrap().map(|r| r.len()), Some(2));
    assert_eq!(store.sliding_connection("@a:x", "A1", "c1", v3).await.unwrap(), Some(vec![]));
    // Other devices and connections are separate.
    assert_eq!(store.sliding_connection("@a:x", "A2", "c1", v3).await.unwrap(), None);
    assert_eq!(store.sliding_connection("@a:x", "A1", "c2", v3).await.unwrap(), None);
    // At most two connections per device here: the least recently written goes.
    store.put_sliding_connection("@a:x", "A1", "c2", None, vec![], 1, NOW + 1, 2).await.unwrap();
    store.put_sliding_connection("@a:x", "A1", "c3", None, vec![], 1, NOW + 2, 2).await.unwrap();
    assert_eq!(store.sliding_connection("@a:x", "A1", "c1", v3).await.unwrap(), None);
    assert!(store.sliding_connection("@a:x", "A1", "c2", 1).await.unwrap().is_some());
    assert!(store.sliding_connection("@a:x", "A1", "c3", 1).await.unwrap().is_some());
    store.delete_sliding_connection("@a:x", "A1", "c2").await.unwrap();
    assert_eq!(store.sliding_connection("@a:x", "A1", "c2", 1).await.unwrap(), None);
    // A deleted device takes its connections along.
    store
        .put_sliding_connection("@a:x", "A2", "c1", None, vec![sent("!r:x", "join")], 1, NOW, 2)
        .await
        .unwrap();
    store.delete_devices("@a:x", &["A2".to_owned()]).await.unwrap();
    assert_eq!(store.sliding_connection("@a:x", "A2", "c1", 1).await.unwrap(), None);
    // A connection without versions starts at the caller's `first_version` (a reused ID does
    // not take up the numbers of the connection it replaces).
    let a = store.put_sliding_connection("@a:x", "A1", "c9", None, vec![], 1_000, NOW + 3, 16).await.unwrap();
    assert_eq!(a, 1_000);
    let b = store.put_sliding_connection("@a:x", "A1", "c9", Some(a), vec![], 77, NOW + 4, 16).await.unwrap();
    assert_eq!(b, 1_001, "first_version only counts for a connection without versions");
    store.delete_sliding_connection("@a:x", "A1", "c9").await.unwrap();
    let c = store.put_sliding_connection("@a:x", "A1", "c9", None, vec![], 5_000, NOW + 5, 16).await.unwrap();
    assert_eq!(c, 5_000);
    assert_eq!(store.sliding_connection("@a:x", "A1", "c9", a).await.unwrap(), None);
}

pub async fn stale_sliding_connections_are_purged(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("A1", 1, None))), NOW).await.unwrap();
    let sent = SentRoom {
        room_id: "!r:x".into(),
        membership: "join".into(),
        config: "c".into(),
        timeline_limit: None,
    };
    // c1: two versions, the newest written at NOW + 10; c2: written at NOW only.
    let v1 =
        store.put_sliding_connection("@a:x", "A1", "c1", None, vec![sent.clone()], 1, NOW, 16).await.unwrap();
    let v2 = store
        .put_sliding_connection("@a:x", "A1", "c1", Some(v1), vec![sent], 1, NOW + 10, 16)
        .await
        .unwrap();
    store.put_sliding_connection("@a:x", "A1", "c2", None, vec![], 1, NOW, 16).await.unwrap();
    assert_eq!(store.purge_sliding_connections(NOW).await.unwrap(), 0, "nothing older than NOW");
    // c1's older version is as old as c2, but c1 was written since: it stays whole.
    assert_eq!(store.purge_sliding_connections(NOW + 5).await.unwrap(), 1);
    assert_eq!(store.sliding_connection("@a:x", "A1", "c2", 1).await.unwrap(), None);
    assert!(store.sliding_connection("@a:x", "A1", "c1", v1).await.unwrap().is_some());
    assert_eq!(store.sliding_connection("@a:x", "A1", "c1", v2).await.unwrap().map(|r| r.len()), Some(1));
    assert_eq!(store.purge_sliding_connections(NOW + 11).await.unwrap(), 1);
    assert_eq!(store.sliding_connection("@a:x", "A1", "c1", v1).await.unwrap(), None);
    assert_eq!(store.sliding_connection("@a:x", "A1", "c1", v2).await.unwrap(), None);
}

/// A sent room's timeline limit is kept as given, also when unknown (`None`) and when it is 0.
pub async fn sliding_connections_keep_timeline_limits(store: &dyn Store) {
    store.register(registration("@a:x", None, Some(session("A1", 1, None))), NOW).await.unwrap();
    let sent = |room: &str, limit: Option<u64>| SentRoom {
        room_id: room.into(),
        membership: "join".into(),
        config: "c".into(),
        timeline_limit: limit,
    };
    let rooms = vec![sent("!a:x", Some(0)), sent("!b:x", Some(100)), sent("!c:x", None)];
    let v = store.put_sliding_connection("@a:x", "A1", "c1", None, rooms.clone(), 1, NOW, 2).await.unwrap();
    let mut got = store.sliding_connection("@a:x", "A1", "c1", v).await.unwrap().unwrap();
    got.sort_by(|a, b| a.room_id.cmp(&b.room_id));
    assert_eq!(got, rooms);
}

pub async fn sliding_sync_room_facts(store: &dyn Store) {
    seed_room(store, "!r:x").await;
    seed_room(store, "!s:x").await;
    let m1 = store.append_events("!r:x", vec![ev("$m1", "m.room.message", None, None)]).await.unwrap()[0];
    store.append_events("!r:x", vec![ev("$t1", "m.room.topic", Some(""), None)]).await.unwrap();
    store.append_events("!s:x", vec![ev("$e1", "m.room.encryption", Some(""), None)]).await.unwrap();
    let rooms = vec!["!r:x".to_owned(), "!s:x".to_owned(), "!none:x".to_owned()];
    let got = store.newest_event_positions(&rooms, &["m.room.message", "m.room.encrypted"]).await.unwrap();
    assert_eq!(got, [("!r:x".to_owned(), m1)]);
    assert!(store.newest_event_positions(&rooms, &[]).await.unwrap().is_empty());
    assert_eq!(store.rooms_with_state(&rooms, "m.room.encryption").await.unwrap(), ["!s:x"]);
    assert_eq!(store.rooms_with_state(&rooms, "m.room.topic").await.unwrap(), ["!r:x"]);
}
