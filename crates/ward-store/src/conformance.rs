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
    store
        .register(
            registration("@alice:x", None, Some(session("D1", 1, None))),
            NOW,
        )
        .await
        .unwrap();
    let acc = store
        .account("@alice:x")
        .await
        .unwrap()
        .expect("account exists");
    assert_eq!(acc.user_id, "@alice:x");
    assert_eq!(acc.password_hash.as_deref(), Some("$argon2id$fake"));
    assert!(!acc.is_admin && !acc.deactivated);
    assert_eq!(acc.created_ms, NOW);
    assert_eq!(acc.display_name.as_deref(), Some("Alice"));
    assert_eq!(store.count_accounts().await.unwrap(), 1);
    let s = store
        .session_by_access_token(&h(1))
        .await
        .unwrap()
        .expect("session");
    assert_eq!(
        (s.user_id.as_str(), s.device_id.as_str()),
        ("@alice:x", "D1")
    );
    assert!(store.set_admin("@alice:x", true).await.unwrap());
    assert!(store.account("@alice:x").await.unwrap().unwrap().is_admin);
    assert!(!store.set_admin("@nobody:x", true).await.unwrap());
}

pub async fn duplicate_user_id_conflicts_without_partial_writes(store: &dyn Store) {
    store
        .create_registration_token(reg_token("tok", Some(5), None))
        .await
        .unwrap();
    store
        .register(registration("@alice:x", None, None), NOW)
        .await
        .unwrap();
    let err = store
        .register(
            registration("@alice:x", Some("tok"), Some(session("D9", 9, None))),
            NOW,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Nothing of the failed registration is left: no session, no token use.
    assert!(
        store
            .session_by_access_token(&h(9))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.devices("@alice:x").await.unwrap().is_empty());
    assert_eq!(
        store
            .registration_token("tok")
            .await
            .unwrap()
            .unwrap()
            .completed,
        0
    );
}

pub async fn registration_token_is_consumed_atomically(store: &dyn Store) {
    store
        .create_registration_token(reg_token("once", Some(1), None))
        .await
        .unwrap();
    store
        .register(registration("@a:x", Some("once"), None), NOW)
        .await
        .unwrap();
    let t = store.registration_token("once").await.unwrap().unwrap();
    assert_eq!(t.completed, 1);
    assert!(!t.is_valid(NOW));
    let err = store
        .register(
            registration("@b:x", Some("once"), Some(session("D", 2, None))),
            NOW,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RegistrationTokenInvalid),
        "{err:?}"
    );
    assert!(store.account("@b:x").await.unwrap().is_none());
    assert!(
        store
            .session_by_access_token(&h(2))
            .await
            .unwrap()
            .is_none()
    );
    let err = store
        .register(registration("@c:x", Some("unknown"), None), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RegistrationTokenInvalid),
        "{err:?}"
    );
    // Unlimited tokens count uses but never run out.
    store
        .create_registration_token(reg_token("many", None, None))
        .await
        .unwrap();
    for i in 0..3 {
        store
            .register(registration(&format!("@m{i}:x"), Some("many"), None), NOW)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .registration_token("many")
            .await
            .unwrap()
            .unwrap()
            .completed,
        3
    );
}

pub async fn expired_registration_token_is_refused(store: &dyn Store) {
    store
        .create_registration_token(reg_token("old", None, Some(NOW - 1)))
        .await
        .unwrap();
    let err = store
        .register(registration("@a:x", Some("old"), None), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RegistrationTokenInvalid),
        "{err:?}"
    );
    assert!(store.account("@a:x").await.unwrap().is_none());
}

pub async fn sessions_and_devices(store: &dyn Store) {
    store
        .register(
            registration("@a:x", None, Some(session("D1", 1, None))),
            NOW,
        )
        .await
        .unwrap();
    store
        .create_session("@a:x", session("D2", 2, None), NOW)
        .await
        .unwrap();
    store
        .create_session("@a:x", session("D3", 3, None), NOW)
        .await
        .unwrap();
    assert_eq!(store.count_devices("@a:x").await.unwrap(), 3);
    let mut ids: Vec<_> = store
        .devices("@a:x")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["D1", "D2", "D3"]);
    let d2 = store.device("@a:x", "D2").await.unwrap().unwrap();
    assert_eq!(d2.display_name.as_deref(), Some("D2 phone"));
    assert!(
        store.device("@b:x", "D2").await.unwrap().is_none(),
        "devices belong to one user"
    );

    assert!(
        store
            .set_device_display_name("@a:x", "D2", Some("Praxis PC"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .device("@a:x", "D2")
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("Praxis PC")
    );
    assert!(
        store
            .set_device_display_name("@a:x", "D2", None)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .device("@a:x", "D2")
            .await
            .unwrap()
            .unwrap()
            .display_name,
        None
    );
    assert!(
        !store
            .set_device_display_name("@a:x", "NOPE", Some("x"))
            .await
            .unwrap()
    );

    let gone = store
        .delete_devices("@a:x", &["D2".into(), "NOPE".into()])
        .await
        .unwrap();
    assert_eq!(gone, 1);
    assert!(
        store
            .session_by_access_token(&h(2))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_by_access_token(&h(1))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.delete_all_devices("@a:x").await.unwrap(), 2);
    assert!(
        store
            .session_by_access_token(&h(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_by_access_token(&h(3))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.devices("@a:x").await.unwrap().is_empty());
}

pub async fn login_with_existing_device_replaces_its_tokens(store: &dyn Store) {
    store
        .register(
            registration("@a:x", None, Some(session("D1", 1, Some(11)))),
            NOW,
        )
        .await
        .unwrap();
    store
        .create_session("@a:x", session("D1", 2, None), NOW)
        .await
        .unwrap();
    assert!(
        store
            .session_by_access_token(&h(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .refresh_session(&h(11), h(3), h(13), None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .session_by_access_token(&h(2))
            .await
            .unwrap()
            .unwrap()
            .device_id,
        "D1"
    );
    assert_eq!(store.count_devices("@a:x").await.unwrap(), 1);
}

pub async fn refresh_keeps_old_pair_until_new_pair_is_used(store: &dyn Store) {
    let mut first = session("D1", 1, Some(11));
    first.access_expires_ms = Some(NOW + 1000);
    store
        .register(registration("@a:x", None, Some(first)), NOW)
        .await
        .unwrap();
    assert_eq!(
        store
            .session_by_access_token(&h(1))
            .await
            .unwrap()
            .unwrap()
            .access_expires_ms,
        Some(NOW + 1000)
    );
    let s = store
        .refresh_session(&h(11), h(2), h(12), Some(NOW + 5000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((s.user_id.as_str(), s.device_id.as_str()), ("@a:x", "D1"));
    assert_eq!(s.access_expires_ms, Some(NOW + 5000));
    // The response may have been lost: the old pair still works…
    assert!(
        store
            .session_by_access_token(&h(1))
            .await
            .unwrap()
            .is_some()
    );
    // …until the new access token is used.
    assert!(
        store
            .session_by_access_token(&h(2))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .session_by_access_token(&h(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .refresh_session(&h(11), h(3), h(13), None)
            .await
            .unwrap()
            .is_none()
    );
    // The new refresh token works, and using it also retires its predecessor.
    store
        .refresh_session(&h(12), h(4), h(14), None)
        .await
        .unwrap()
        .unwrap();
    store
        .refresh_session(&h(14), h(5), h(15), None)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .session_by_access_token(&h(2))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_by_access_token(&h(5))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .session_by_access_token(&h(4))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.count_devices("@a:x").await.unwrap(), 1);
}

pub async fn password_change_device_retention(store: &dyn Store) {
    store
        .register(
            registration("@a:x", None, Some(session("D1", 1, None))),
            NOW,
        )
        .await
        .unwrap();
    store
        .create_session("@a:x", session("D2", 2, None), NOW)
        .await
        .unwrap();
    store
        .create_session("@a:x", session("D3", 3, None), NOW)
        .await
        .unwrap();

    assert!(
        store
            .set_password_hash("@a:x", "h1", DeviceRetention::KeepAll)
            .await
            .unwrap()
    );
    assert_eq!(store.count_devices("@a:x").await.unwrap(), 3);
    assert_eq!(
        store
            .account("@a:x")
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("h1")
    );

    assert!(
        store
            .set_password_hash("@a:x", "h2", DeviceRetention::KeepOnly("D2".into()))
            .await
            .unwrap()
    );
    let ids: Vec<_> = store
        .devices("@a:x")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    assert_eq!(ids, ["D2"]);
    assert!(
        store
            .session_by_access_token(&h(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session_by_access_token(&h(2))
            .await
            .unwrap()
            .is_some()
    );

    assert!(
        store
            .set_password_hash("@a:x", "h3", DeviceRetention::RemoveAll)
            .await
            .unwrap()
    );
    assert_eq!(store.count_devices("@a:x").await.unwrap(), 0);
    assert!(
        !store
            .set_password_hash("@b:x", "h", DeviceRetention::KeepAll)
            .await
            .unwrap()
    );
}

pub async fn deactivation_removes_everything(store: &dyn Store) {
    store
        .register(
            registration("@a:x", None, Some(session("D1", 1, Some(11)))),
            NOW,
        )
        .await
        .unwrap();
    store
        .set_avatar_url("@a:x", Some("mxc://x/abc"))
        .await
        .unwrap();
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
    assert_eq!(
        (acc.display_name, acc.avatar_url, acc.password_hash),
        (None, None, None)
    );
    assert!(store.devices("@a:x").await.unwrap().is_empty());
    assert!(
        store
            .session_by_access_token(&h(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .refresh_session(&h(11), h(2), h(12), None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.uia_session("S").await.unwrap().is_none());
    // The name stays taken.
    let err = store
        .register(registration("@a:x", None, None), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert!(!store.deactivate_account("@nobody:x").await.unwrap());
}

pub async fn profile_fields(store: &dyn Store) {
    store
        .register(registration("@a:x", None, None), NOW)
        .await
        .unwrap();
    assert!(
        store
            .set_display_name("@a:x", Some("Dr. Müller 🩺"))
            .await
            .unwrap()
    );
    assert!(
        store
            .set_avatar_url("@a:x", Some("mxc://x/y"))
            .await
            .unwrap()
    );
    let acc = store.account("@a:x").await.unwrap().unwrap();
    assert_eq!(acc.display_name.as_deref(), Some("Dr. Müller 🩺"));
    assert_eq!(acc.avatar_url.as_deref(), Some("mxc://x/y"));
    assert!(store.set_display_name("@a:x", None).await.unwrap());
    assert_eq!(
        store.account("@a:x").await.unwrap().unwrap().display_name,
        None
    );
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
    let err = store
        .create_registration_token(t1.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    t1.created_ms = NOW;
    assert_eq!(
        store.registration_tokens().await.unwrap(),
        vec![t1.clone(), t2]
    );
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
    let s2 = UiaSession {
        id: "S2".into(),
        user_id: Some("@a:x".into()),
        created_ms: NOW + 100,
        ..s.clone()
    };
    store.create_uia_session(s2.clone()).await.unwrap();
    assert_eq!(store.uia_session("S1").await.unwrap(), Some(s.clone()));
    let done = vec!["m.login.dummy".to_owned(), "m.login.password".to_owned()];
    let progressed = UiaSession {
        completed: done,
        registration_token: Some("tok".into()),
        ..s.clone()
    };
    assert!(store.update_uia_session(&progressed).await.unwrap());
    assert_eq!(
        store.uia_session("S1").await.unwrap(),
        Some(progressed.clone())
    );
    assert!(
        !store
            .update_uia_session(&UiaSession {
                id: "nope".into(),
                ..progressed
            })
            .await
            .unwrap()
    );
    assert_eq!(store.delete_uia_sessions_before(NOW + 50).await.unwrap(), 1);
    assert!(store.uia_session("S1").await.unwrap().is_none());
    assert_eq!(store.uia_session("S2").await.unwrap(), Some(s2));
    store.delete_uia_session("S2").await.unwrap();
    store.delete_uia_session("S2").await.unwrap();
    assert!(store.uia_session("S2").await.unwrap().is_none());
}

pub async fn device_activity(store: &dyn Store) {
    store
        .register(
            registration("@a:x", None, Some(session("D1", 1, None))),
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .device("@a:x", "D1")
            .await
            .unwrap()
            .unwrap()
            .last_seen_ms,
        Some(NOW)
    );
    store
        .touch_device("@a:x", "D1", NOW + 60_000)
        .await
        .unwrap();
    assert_eq!(
        store
            .device("@a:x", "D1")
            .await
            .unwrap()
            .unwrap()
            .last_seen_ms,
        Some(NOW + 60_000)
    );
    // Touching an unknown device is not an error (it may have just been deleted).
    store.touch_device("@a:x", "GONE", NOW).await.unwrap();
}
