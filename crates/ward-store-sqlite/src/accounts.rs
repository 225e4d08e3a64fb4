//! Accounts, devices, tokens, registration tokens and UIA sessions.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, Transaction, params};
use ward_core::secret::TokenHash;
use ward_store::{
    Account, AccountStore, Device, DeviceRetention, DeviceStore, NewSession, Registration, RegistrationToken,
    RegistrationTokenStore, Result, Session, StoreError, UiaSession, UiaStore,
};

use crate::{SqliteStore, backend, from_sql, to_sql};

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        user_id: r.get(0)?,
        password_hash: r.get(1)?,
        is_admin: r.get(2)?,
        created_ms: from_sql(r.get(3)?),
        deactivated: r.get(4)?,
        display_name: r.get(5)?,
        avatar_url: r.get(6)?,
    })
}

fn device_from_row(r: &Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        device_id: r.get(0)?,
        display_name: r.get(1)?,
        last_seen_ms: r.get::<_, Option<i64>>(2)?.map(from_sql),
    })
}

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<RegistrationToken> {
    Ok(RegistrationToken {
        token: r.get(0)?,
        uses_allowed: r.get(1)?,
        completed: r.get(2)?,
        expires_ms: r.get::<_, Option<i64>>(3)?.map(from_sql),
        created_ms: from_sql(r.get(4)?),
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// Creates the device if needed and gives it a fresh token pair, revoking any old pair.
fn insert_session(tx: &Transaction<'_>, user_id: &str, s: &NewSession, now_ms: u64) -> Result<()> {
    tx.execute(
        "INSERT INTO devices (user_id, device_id, display_name, created_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (user_id, device_id) DO UPDATE SET
             display_name = coalesce(excluded.display_name, devices.display_name),
             last_seen_ms = excluded.last_seen_ms",
        params![user_id, s.device_id, s.device_display_name, to_sql(now_ms)],
    )
    .map_err(backend)?;
    tx.execute(
        "DELETE FROM access_tokens WHERE user_id = ?1 AND device_id = ?2",
        params![user_id, s.device_id],
    )
    .map_err(backend)?;
    tx.execute(
        "INSERT INTO access_tokens (access_hash, refresh_hash, user_id, device_id, access_expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            s.access_token_hash.as_slice(),
            s.refresh_token_hash.as_ref().map(|h| h.as_slice()),
            user_id,
            s.device_id,
            s.access_expires_ms.map(to_sql)
        ],
    )
    .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict("token".into()) } else { backend(e) })?;
    Ok(())
}

fn delete_devices_where(tx: &Transaction<'_>, sql_filter: &str, p: &[&dyn rusqlite::ToSql]) -> Result<u64> {
    // Tokens go with their device through ON DELETE CASCADE.
    let n = tx.execute(&format!("DELETE FROM devices WHERE {sql_filter}"), p).map_err(backend)?;
    Ok(n as u64)
}

impl SqliteStore {
    /// Sets one column of an account; `false` if there is no such account. `column` is always
    /// a literal from this file, never input.
    async fn update_account(
        &self,
        user_id: &str,
        column: &'static str,
        value: rusqlite::types::Value,
    ) -> Result<bool> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            let sql = format!("UPDATE accounts SET {column} = ?2 WHERE user_id = ?1");
            let n = tx.execute(&sql, params![user_id, value]).map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn register(&self, reg: Registration, now_ms: u64) -> Result<()> {
        self.write(move |tx| {
            if let Some(token) = &reg.registration_token {
                let used = tx
                    .execute(
                        "UPDATE registration_tokens SET completed = completed + 1
                         WHERE token = ?1
                           AND (uses_allowed IS NULL OR completed < uses_allowed)
                           AND (expires_ms IS NULL OR expires_ms > ?2)",
                        params![token, to_sql(now_ms)],
                    )
                    .map_err(backend)?;
                if used == 0 {
                    return Err(StoreError::RegistrationTokenInvalid);
                }
            }
            let a = &reg.account;
            tx.execute(
                "INSERT INTO accounts (user_id, password_hash, is_admin, created_ms, display_name)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![a.user_id, a.password_hash, a.is_admin, to_sql(a.created_ms), a.display_name],
            )
            .map_err(|e| {
                if is_unique_violation(&e) { StoreError::Conflict(a.user_id.clone()) } else { backend(e) }
            })?;
            if let Some(s) = &reg.session {
                insert_session(tx, &a.user_id, s, now_ms)?;
            }
            Ok(())
        })
        .await
    }

    async fn account(&self, user_id: &str) -> Result<Option<Account>> {
        let user_id = user_id.to_owned();
        self.read(move |tx| {
            tx.query_row(
                "SELECT user_id, password_hash, is_admin, created_ms, deactivated, display_name, avatar_url
                 FROM accounts WHERE user_id = ?1",
                [&user_id],
                account_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn count_accounts(&self) -> Result<u64> {
        self.read(|tx| {
            tx.query_row("SELECT count(*) FROM accounts", [], |r| r.get::<_, i64>(0))
                .map(from_sql)
                .map_err(backend)
        })
        .await
    }

    async fn set_password_hash(&self, user_id: &str, hash: &str, devices: DeviceRetention) -> Result<bool> {
        let (user_id, hash) = (user_id.to_owned(), hash.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute("UPDATE accounts SET password_hash = ?2 WHERE user_id = ?1", params![user_id, hash])
                .map_err(backend)?;
            if n == 0 {
                return Ok(false);
            }
            match devices {
                DeviceRetention::KeepAll => {}
                DeviceRetention::KeepOnly(keep) => {
                    delete_devices_where(tx, "user_id = ?1 AND device_id != ?2", &[&user_id, &keep])?;
                }
                DeviceRetention::RemoveAll => {
                    delete_devices_where(tx, "user_id = ?1", &[&user_id])?;
                }
            }
            Ok(true)
        })
        .await
    }

    async fn set_admin(&self, user_id: &str, is_admin: bool) -> Result<bool> {
        self.update_account(user_id, "is_admin", is_admin.into()).await
    }

    async fn deactivate_account(&self, user_id: &str) -> Result<bool> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE accounts SET deactivated = 1, password_hash = NULL, display_name = NULL,
                         avatar_url = NULL
                     WHERE user_id = ?1",
                    [&user_id],
                )
                .map_err(backend)?;
            if n == 0 {
                return Ok(false);
            }
            delete_devices_where(tx, "user_id = ?1", &[&user_id])?;
            tx.execute("DELETE FROM uia_sessions WHERE user_id = ?1", [&user_id]).map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn set_display_name(&self, user_id: &str, display_name: Option<&str>) -> Result<bool> {
        self.update_account(user_id, "display_name", display_name.map(str::to_owned).into()).await
    }

    async fn set_avatar_url(&self, user_id: &str, avatar_url: Option<&str>) -> Result<bool> {
        self.update_account(user_id, "avatar_url", avatar_url.map(str::to_owned).into()).await
    }
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn create_session(&self, user_id: &str, session: NewSession, now_ms: u64) -> Result<()> {
        let user_id = user_id.to_owned();
        self.write(move |tx| insert_session(tx, &user_id, &session, now_ms)).await
    }

    async fn session_by_access_token(&self, hash: &TokenHash) -> Result<Option<Session>> {
        let hash = *hash;
        let found = self
            .read(move |tx| {
                tx.query_row(
                    "SELECT id, user_id, device_id, access_expires_ms, replaces
                     FROM access_tokens WHERE access_hash = ?1",
                    [hash.as_slice()],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            Session {
                                user_id: r.get(1)?,
                                device_id: r.get(2)?,
                                access_expires_ms: r.get::<_, Option<i64>>(3)?.map(from_sql),
                            },
                            r.get::<_, Option<i64>>(4)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        let Some((id, session, replaces)) = found else {
            return Ok(None);
        };
        if let Some(old) = replaces {
            // First use of a refreshed pair: the pair it replaced is retired now.
            self.write(move |tx| {
                tx.execute("DELETE FROM access_tokens WHERE id = ?1", [old]).map_err(backend)?;
                tx.execute("UPDATE access_tokens SET replaces = NULL WHERE id = ?1", [id])
                    .map_err(backend)?;
                Ok(())
            })
            .await?;
        }
        Ok(Some(session))
    }

    async fn refresh_session(
        &self,
        refresh_hash: &TokenHash,
        new_access: TokenHash,
        new_refresh: TokenHash,
        access_expires_ms: Option<u64>,
    ) -> Result<Option<Session>> {
        let refresh_hash = *refresh_hash;
        self.write(move |tx| {
            let row = tx
                .query_row(
                    "SELECT id, user_id, device_id, replaces FROM access_tokens WHERE refresh_hash = ?1",
                    [refresh_hash.as_slice()],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<i64>>(3)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            let Some((id, user_id, device_id, replaces)) = row else { return Ok(None) };
            if let Some(old) = replaces {
                tx.execute("DELETE FROM access_tokens WHERE id = ?1", [old]).map_err(backend)?;
            }
            tx.execute(
                "INSERT INTO access_tokens
                     (access_hash, refresh_hash, user_id, device_id, access_expires_ms, replaces)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    new_access.as_slice(),
                    new_refresh.as_slice(),
                    user_id,
                    device_id,
                    access_expires_ms.map(to_sql),
                    id
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) { StoreError::Conflict("token".into()) } else { backend(e) }
            })?;
            Ok(Some(Session { user_id, device_id, access_expires_ms }))
        })
        .await
    }

    async fn devices(&self, user_id: &str) -> Result<Vec<Device>> {
        let user_id = user_id.to_owned();
        self.read(move |tx| {
            crate::all(
                tx,
                "SELECT device_id, display_name, last_seen_ms FROM devices
                     WHERE user_id = ?1 ORDER BY created_ms, device_id",
                [&user_id],
                device_from_row,
            )
        })
        .await
    }

    async fn device(&self, user_id: &str, device_id: &str) -> Result<Option<Device>> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.read(move |tx| {
            tx.query_row(
                "SELECT device_id, display_name, last_seen_ms FROM devices
                 WHERE user_id = ?1 AND device_id = ?2",
                [&user_id, &device_id],
                device_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn count_devices(&self, user_id: &str) -> Result<u64> {
        let user_id = user_id.to_owned();
        self.read(move |tx| {
            tx.query_row("SELECT count(*) FROM devices WHERE user_id = ?1", [&user_id], |r| {
                r.get::<_, i64>(0)
            })
            .map(from_sql)
            .map_err(backend)
        })
        .await
    }

    async fn set_device_display_name(
        &self,
        user_id: &str,
        device_id: &str,
        name: Option<&str>,
    ) -> Result<bool> {
        let (user_id, device_id, name) = (user_id.to_owned(), device_id.to_owned(), name.map(str::to_owned));
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE devices SET display_name = ?3 WHERE user_id = ?1 AND device_id = ?2",
                    params![user_id, device_id, name],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_devices(&self, user_id: &str, device_ids: &[String]) -> Result<u64> {
        let (user_id, device_ids) = (user_id.to_owned(), device_ids.to_vec());
        self.write(move |tx| {
            let mut total = 0;
            for device_id in &device_ids {
                total += delete_devices_where(tx, "user_id = ?1 AND device_id = ?2", &[&user_id, device_id])?;
            }
            Ok(total)
        })
        .await
    }

    async fn delete_all_devices(&self, user_id: &str) -> Result<u64> {
        let user_id = user_id.to_owned();
        self.write(move |tx| delete_devices_where(tx, "user_id = ?1", &[&user_id])).await
    }

    async fn touch_device(&self, user_id: &str, device_id: &str, now_ms: u64) -> Result<()> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.write(move |tx| {
            tx.execute(
                "UPDATE devices SET last_seen_ms = ?3 WHERE user_id = ?1 AND device_id = ?2",
                params![user_id, device_id, to_sql(now_ms)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl RegistrationTokenStore for SqliteStore {
    async fn create_registration_token(&self, t: RegistrationToken) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO registration_tokens (token, uses_allowed, completed, expires_ms, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.token, t.uses_allowed, t.completed, t.expires_ms.map(to_sql), to_sql(t.created_ms)],
            )
            .map_err(|e| {
                if is_unique_violation(&e) { StoreError::Conflict(t.token.clone()) } else { backend(e) }
            })?;
            Ok(())
        })
        .await
    }

    async fn registration_token(&self, token: &str) -> Result<Option<RegistrationToken>> {
        let token = token.to_owned();
        self.read(move |tx| {
            tx.query_row(
                "SELECT token, uses_allowed, completed, expires_ms, created_ms
                 FROM registration_tokens WHERE token = ?1",
                [&token],
                token_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn registration_tokens(&self) -> Result<Vec<RegistrationToken>> {
        self.read(|tx| {
            crate::all(
                tx,
                "SELECT token, uses_allowed, completed, expires_ms, created_ms
                     FROM registration_tokens ORDER BY created_ms, token",
                [],
                token_from_row,
            )
        })
        .await
    }

    async fn delete_registration_token(&self, token: &str) -> Result<bool> {
        let token = token.to_owned();
        self.write(move |tx| {
            let n =
                tx.execute("DELETE FROM registration_tokens WHERE token = ?1", [&token]).map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }
}

// Stage names never contain a newline, so the completed list is stored newline-separated.
fn join_stages(stages: &[String]) -> String {
    stages.join("\n")
}

fn split_stages(s: &str) -> Vec<String> {
    s.split('\n').filter(|x| !x.is_empty()).map(str::to_owned).collect()
}

#[async_trait]
impl UiaStore for SqliteStore {
    async fn create_uia_session(&self, s: UiaSession) -> Result<()> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO uia_sessions (id, purpose, user_id, completed, registration_token, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    s.id,
                    s.purpose,
                    s.user_id,
                    join_stages(&s.completed),
                    s.registration_token,
                    to_sql(s.created_ms)
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) { StoreError::Conflict(s.id.clone()) } else { backend(e) }
            })?;
            Ok(())
        })
        .await
    }

    async fn uia_session(&self, id: &str) -> Result<Option<UiaSession>> {
        let id = id.to_owned();
        self.read(move |tx| {
            tx.query_row(
                "SELECT id, purpose, user_id, completed, registration_token, created_ms
                 FROM uia_sessions WHERE id = ?1",
                [&id],
                |r| {
                    Ok(UiaSession {
                        id: r.get(0)?,
                        purpose: r.get(1)?,
                        user_id: r.get(2)?,
                        completed: split_stages(&r.get::<_, String>(3)?),
                        registration_token: r.get(4)?,
                        created_ms: from_sql(r.get(5)?),
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn update_uia_session(&self, session: &UiaSession) -> Result<bool> {
        let (id, completed, token) =
            (session.id.clone(), join_stages(&session.completed), session.registration_token.clone());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE uia_sessions SET completed = ?2, registration_token = ?3 WHERE id = ?1",
                    params![id, completed, token],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_uia_session(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute("DELETE FROM uia_sessions WHERE id = ?1", [&id]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_uia_sessions_before(&self, created_before_ms: u64) -> Result<u64> {
        self.write(move |tx| {
            let n = tx
                .execute("DELETE FROM uia_sessions WHERE created_ms < ?1", [to_sql(created_before_ms)])
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }
}
