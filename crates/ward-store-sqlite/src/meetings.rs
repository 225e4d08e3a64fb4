//! Meetings, their lobby (knocks) and patient links.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};
use ward_core::secret::TokenHash;
use ward_store::{
    Knock, KnockStatus, KnockUpdate, Meeting, MeetingCounts, MeetingKind, MeetingStore, MeetingWrite,
    NewKnock, NewMeeting, PatientLink, Result, StoreError,
};

use crate::{SqliteStore, all, backend, from_sql, to_sql};

const MEETING_COLUMNS: &str = "meeting_id, kind, title, creator, origin_room, members_enter, created_ms, \
     last_used_ms, ended_ms, locked, pin_hash";
const KNOCK_COLUMNS: &str = "knock_id, meeting_id, secret_hash, display_name, identity, link_hash, status, \
     created_ms, updated_ms, admitted_by, handed_to";
const LINK_COLUMNS: &str =
    "link_hash, meeting_id, created_ms, expires_ms, slot_start_ms, slot_end_ms, knock_id, spent";

/// A value this backend wrote itself that does not read back is corruption, reported as such.
fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("stored {what} `{value}` is not valid").into(),
    )
}

fn hash_of(bytes: Vec<u8>) -> rusqlite::Result<TokenHash> {
    TokenHash::try_from(bytes.as_slice()).map_err(|_| corrupt("hash", "of the wrong length"))
}

fn meeting_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Meeting> {
    let kind: String = r.get(1)?;
    Ok(Meeting {
        meeting_id: r.get(0)?,
        kind: MeetingKind::parse(&kind).ok_or_else(|| corrupt("meeting kind", &kind))?,
        title: r.get(2)?,
        creator: r.get(3)?,
        origin_room: r.get(4)?,
        members_enter: r.get(5)?,
        created_ms: from_sql(r.get(6)?),
        last_used_ms: from_sql(r.get(7)?),
        ended_ms: r.get::<_, Option<i64>>(8)?.map(from_sql),
        locked: r.get(9)?,
        pin_hash: r.get(10)?,
    })
}

fn knock_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Knock> {
    let status: String = r.get(6)?;
    Ok(Knock {
        knock_id: r.get(0)?,
        meeting_id: r.get(1)?,
        secret_hash: hash_of(r.get(2)?)?,
        display_name: r.get(3)?,
        identity: r.get(4)?,
        link_hash: r.get::<_, Option<Vec<u8>>>(5)?.map(hash_of).transpose()?,
        status: KnockStatus::parse(&status).ok_or_else(|| corrupt("knock status", &status))?,
        created_ms: from_sql(r.get(7)?),
        updated_ms: from_sql(r.get(8)?),
        admitted_by: r.get(9)?,
        handed_to: r.get(10)?,
    })
}

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PatientLink> {
    Ok(PatientLink {
        link_hash: hash_of(r.get(0)?)?,
        meeting_id: r.get(1)?,
        created_ms: from_sql(r.get(2)?),
        expires_ms: from_sql(r.get(3)?),
        slot_start_ms: r.get::<_, Option<i64>>(4)?.map(from_sql),
        slot_end_ms: r.get::<_, Option<i64>>(5)?.map(from_sql),
        knock_id: r.get(6)?,
        spent: r.get(7)?,
    })
}

fn open_meeting(tx: &Transaction<'_>, meeting_id: &str) -> Result<Option<Meeting>> {
    tx.query_row(
        &format!("SELECT {MEETING_COLUMNS} FROM meetings WHERE meeting_id = ?1 AND ended_ms IS NULL"),
        [meeting_id],
        meeting_row,
    )
    .optional()
    .map_err(backend)
}

fn count(tx: &Transaction<'_>, sql: &str, params: impl rusqlite::Params) -> Result<u64> {
    tx.query_row(sql, params, |r| r.get::<_, i64>(0)).map(from_sql).map_err(backend)
}

fn knock_by_id(tx: &Transaction<'_>, knock_id: &str) -> Result<Option<Knock>> {
    tx.query_row(
        &format!("SELECT {KNOCK_COLUMNS} FROM meeting_knocks WHERE knock_id = ?1"),
        [knock_id],
        knock_row,
    )
    .optional()
    .map_err(backend)
}

/// Updates one column of an open meeting (and its last use).
async fn update_open_meeting(
    store: &SqliteStore,
    meeting_id: &str,
    set: &'static str,
    value: rusqlite::types::Value,
    now_ms: u64,
) -> Result<bool> {
    let meeting_id = meeting_id.to_owned();
    store
        .write(move |tx| {
            let sql = format!(
                "UPDATE meetings SET {set} = ?2, last_used_ms = ?3 WHERE meeting_id = ?1 AND ended_ms IS NULL"
            );
            let changed = tx.execute(&sql, params![meeting_id, value, to_sql(now_ms)]).map_err(backend)?;
            Ok(changed > 0)
        })
        .await
}

#[async_trait]
impl MeetingStore for SqliteStore {
    async fn create_meeting(&self, m: NewMeeting, open_max: u64) -> Result<MeetingWrite> {
        self.write(move |tx| {
            let open = count(
                tx,
                "SELECT count(*) FROM meetings WHERE creator = ?1 AND ended_ms IS NULL",
                [&m.creator],
            )?;
            if open >= open_max {
                return Ok(MeetingWrite::TooMany);
            }
            let inserted = tx
                .execute(
                    "INSERT INTO meetings (meeting_id, kind, title, creator, origin_room, members_enter,
                         created_ms, last_used_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                     ON CONFLICT (meeting_id) DO NOTHING",
                    params![
                        m.meeting_id,
                        m.kind.as_str(),
                        m.title,
                        m.creator,
                        m.origin_room,
                        m.members_enter,
                        to_sql(m.created_ms)
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("meeting {}", m.meeting_id)));
            }
            Ok(MeetingWrite::Done)
        })
        .await
    }

    async fn meeting(&self, meeting_id: &str) -> Result<Option<Meeting>> {
        let meeting_id = meeting_id.to_owned();
        self.read(move |tx| {
            tx.query_row(
                &format!("SELECT {MEETING_COLUMNS} FROM meetings WHERE meeting_id = ?1"),
                [&meeting_id],
                meeting_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn open_meetings_of(&self, creator: &str) -> Result<Vec<Meeting>> {
        let creator = creator.to_owned();
        self.read(move |tx| {
            all(
                tx,
                &format!(
                    "SELECT {MEETING_COLUMNS} FROM meetings WHERE creator = ?1 AND ended_ms IS NULL
                     ORDER BY created_ms DESC, meeting_id"
                ),
                [&creator],
                meeting_row,
            )
        })
        .await
    }

    async fn open_meetings(&self, limit: u64) -> Result<Vec<Meeting>> {
        self.read(move |tx| {
            all(
                tx,
                &format!(
                    "SELECT {MEETING_COLUMNS} FROM meetings WHERE ended_ms IS NULL
                     ORDER BY created_ms DESC, meeting_id LIMIT ?1"
                ),
                [to_sql(limit)],
                meeting_row,
            )
        })
        .await
    }

    async fn meeting_counts(&self) -> Result<MeetingCounts> {
        self.read(|tx| {
            let knocks =
                |status: &str| count(tx, "SELECT count(*) FROM meeting_knocks WHERE status = ?1", [status]);
            Ok(MeetingCounts {
                open_meetings: count(tx, "SELECT count(*) FROM meetings WHERE ended_ms IS NULL", [])?,
                waiting_knocks: knocks(KnockStatus::Waiting.as_str())?,
                admitted_knocks: knocks(KnockStatus::Admitted.as_str())?,
            })
        })
        .await
    }

    async fn set_meeting_locked(&self, meeting_id: &str, locked: bool, now_ms: u64) -> Result<bool> {
        update_open_meeting(self, meeting_id, "locked", i64::from(locked).into(), now_ms).await
    }

    async fn set_meeting_pin(&self, meeting_id: &str, pin_hash: Option<&str>, now_ms: u64) -> Result<bool> {
        let value = pin_hash.map_or(rusqlite::types::Value::Null, |h| h.to_owned().into());
        update_open_meeting(self, meeting_id, "pin_hash", value, now_ms).await
    }

    async fn touch_meeting(&self, meeting_id: &str, now_ms: u64) -> Result<bool> {
        update_open_meeting(self, meeting_id, "last_used_ms", to_sql(now_ms).into(), now_ms).await
    }

    async fn end_meeting(&self, meeting_id: &str, now_ms: u64) -> Result<bool> {
        let meeting_id = meeting_id.to_owned();
        self.write(move |tx| {
            let changed = tx
                .execute(
                    "UPDATE meetings SET ended_ms = ?2, last_used_ms = ?2 WHERE meeting_id = ?1 AND ended_ms IS NULL",
                    params![meeting_id, to_sql(now_ms)],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Ok(false);
            }
            tx.execute(
                "UPDATE meeting_knocks SET status = 'ended', updated_ms = ?2
                 WHERE meeting_id = ?1 AND status IN ('waiting', 'admitted')",
                params![meeting_id, to_sql(now_ms)],
            )
            .map_err(backend)?;
            tx.execute("UPDATE meeting_patient_links SET spent = 1 WHERE meeting_id = ?1", [&meeting_id])
                .map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn create_knock(&self, k: NewKnock, waiting_max: u64) -> Result<MeetingWrite> {
        self.write(move |tx| {
            let Some(meeting) = open_meeting(tx, &k.meeting_id)? else {
                return Ok(MeetingWrite::MeetingGone);
            };
            if meeting.locked {
                return Ok(MeetingWrite::Locked);
            }
            let waiting = count(
                tx,
                "SELECT count(*) FROM meeting_knocks WHERE meeting_id = ?1 AND status = 'waiting'",
                [&k.meeting_id],
            )?;
            if waiting >= waiting_max {
                return Ok(MeetingWrite::TooMany);
            }
            if let Some(link_hash) = &k.link_hash {
                let link = tx
                    .query_row(
                        &format!("SELECT {LINK_COLUMNS} FROM meeting_patient_links WHERE link_hash = ?1"),
                        [link_hash.as_slice()],
                        link_row,
                    )
                    .optional()
                    .map_err(backend)?;
                let Some(link) = link.filter(|l| l.meeting_id == k.meeting_id) else {
                    return Ok(MeetingWrite::LinkUnknown);
                };
                if link.spent || link.expires_ms <= k.created_ms {
                    return Ok(MeetingWrite::LinkSpent);
                }
                if let Some(previous) = &link.knock_id {
                    let status: Option<String> = tx
                        .query_row("SELECT status FROM meeting_knocks WHERE knock_id = ?1", [previous], |r| {
                            r.get(0)
                        })
                        .optional()
                        .map_err(backend)?;
                    if status.as_deref() == Some("waiting") {
                        return Ok(MeetingWrite::LinkBusy);
                    }
                }
                tx.execute(
                    "UPDATE meeting_patient_links SET knock_id = ?2 WHERE link_hash = ?1",
                    params![link_hash.as_slice(), k.knock_id],
                )
                .map_err(backend)?;
            }
            let inserted = tx
                .execute(
                    "INSERT INTO meeting_knocks (knock_id, meeting_id, secret_hash, display_name, identity,
                         link_hash, status, created_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'waiting', ?7, ?7)
                     ON CONFLICT (knock_id) DO NOTHING",
                    params![
                        k.knock_id,
                        k.meeting_id,
                        k.secret_hash.as_slice(),
                        k.display_name,
                        k.identity,
                        k.link_hash.as_ref().map(|h| h.as_slice()),
                        to_sql(k.created_ms)
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("knock {}", k.knock_id)));
            }
            tx.execute(
                "UPDATE meetings SET last_used_ms = ?2 WHERE meeting_id = ?1",
                params![k.meeting_id, to_sql(k.created_ms)],
            )
            .map_err(backend)?;
            Ok(MeetingWrite::Done)
        })
        .await
    }

    async fn knock(&self, knock_id: &str) -> Result<Option<Knock>> {
        let knock_id = knock_id.to_owned();
        self.read(move |tx| knock_by_id(tx, &knock_id)).await
    }

    async fn knock_by_identity(&self, meeting_id: &str, identity: &str) -> Result<Option<Knock>> {
        let (meeting_id, identity) = (meeting_id.to_owned(), identity.to_owned());
        self.read(move |tx| {
            tx.query_row(
                &format!(
                    "SELECT {KNOCK_COLUMNS} FROM meeting_knocks WHERE meeting_id = ?1 AND identity = ?2
                     ORDER BY created_ms DESC, rowid DESC LIMIT 1"
                ),
                params![meeting_id, identity],
                knock_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn open_knocks(&self, meeting_id: &str) -> Result<Vec<Knock>> {
        let meeting_id = meeting_id.to_owned();
        self.read(move |tx| {
            all(
                tx,
                &format!(
                    "SELECT {KNOCK_COLUMNS} FROM meeting_knocks
                     WHERE meeting_id = ?1 AND status IN ('waiting', 'admitted')
                     ORDER BY created_ms, rowid"
                ),
                [&meeting_id],
                knock_row,
            )
        })
        .await
    }

    async fn update_knock(
        &self,
        knock_id: &str,
        from: &[KnockStatus],
        to: KnockStatus,
        exclusive: bool,
        by: Option<&str>,
        now_ms: u64,
    ) -> Result<KnockUpdate> {
        let knock_id = knock_id.to_owned();
        let from = from.to_vec();
        let by = by.map(str::to_owned);
        self.write(move |tx| {
            let Some(mut knock) = knock_by_id(tx, &knock_id)? else {
                return Ok(KnockUpdate::NotFound);
            };
            if !from.contains(&knock.status) {
                return Ok(KnockUpdate::WrongState(knock.status));
            }
            if exclusive && to == KnockStatus::Admitted {
                let others = count(
                    tx,
                    "SELECT count(*) FROM meeting_knocks
                     WHERE meeting_id = ?1 AND status = 'admitted' AND knock_id != ?2",
                    params![knock.meeting_id, knock.knock_id],
                )?;
                if others > 0 {
                    return Ok(KnockUpdate::Busy);
                }
            }
            tx.execute(
                "UPDATE meeting_knocks SET status = ?2, updated_ms = ?3 WHERE knock_id = ?1",
                params![knock_id, to.as_str(), to_sql(now_ms)],
            )
            .map_err(backend)?;
            if to == KnockStatus::Admitted {
                tx.execute(
                    "UPDATE meeting_knocks SET admitted_by = ?2 WHERE knock_id = ?1",
                    params![knock_id, by],
                )
                .map_err(backend)?;
                knock.admitted_by = by;
            }
            // Leaving the lobby before admission (or expiring there) frees the link; everything
            // else uses it up.
            let spends = !(matches!(to, KnockStatus::Left | KnockStatus::Expired)
                && knock.status == KnockStatus::Waiting);
            if spends && let Some(link_hash) = &knock.link_hash {
                tx.execute(
                    "UPDATE meeting_patient_links SET spent = 1 WHERE link_hash = ?1",
                    [link_hash.as_slice()],
                )
                .map_err(backend)?;
            }
            tx.execute(
                "UPDATE meetings SET last_used_ms = ?2 WHERE meeting_id = ?1",
                params![knock.meeting_id, to_sql(now_ms)],
            )
            .map_err(backend)?;
            knock.status = to;
            knock.updated_ms = now_ms;
            Ok(KnockUpdate::Done(Box::new(knock)))
        })
        .await
    }

    async fn hand_over_knock(
        &self,
        knock_id: &str,
        holder: &str,
        to: &str,
        now_ms: u64,
    ) -> Result<KnockUpdate> {
        let (knock_id, holder, to) = (knock_id.to_owned(), holder.to_owned(), to.to_owned());
        self.write(move |tx| {
            let Some(mut knock) = knock_by_id(tx, &knock_id)? else {
                return Ok(KnockUpdate::NotFound);
            };
            if knock.status != KnockStatus::Admitted {
                return Ok(KnockUpdate::WrongState(knock.status));
            }
            if !knock.held_by(&holder) {
                return Ok(KnockUpdate::NotHolder);
            }
            tx.execute(
                "UPDATE meeting_knocks SET handed_to = ?2, updated_ms = ?3 WHERE knock_id = ?1",
                params![knock_id, to, to_sql(now_ms)],
            )
            .map_err(backend)?;
            tx.execute(
                "UPDATE meetings SET last_used_ms = ?2 WHERE meeting_id = ?1",
                params![knock.meeting_id, to_sql(now_ms)],
            )
            .map_err(backend)?;
            knock.handed_to = Some(to);
            knock.updated_ms = now_ms;
            Ok(KnockUpdate::Done(Box::new(knock)))
        })
        .await
    }

    async fn create_patient_link(&self, link: PatientLink, open_max: u64) -> Result<MeetingWrite> {
        self.write(move |tx| {
            if open_meeting(tx, &link.meeting_id)?.is_none() {
                return Ok(MeetingWrite::MeetingGone);
            }
            let open = count(
                tx,
                "SELECT count(*) FROM meeting_patient_links
                 WHERE meeting_id = ?1 AND spent = 0 AND expires_ms > ?2",
                params![link.meeting_id, to_sql(link.created_ms)],
            )?;
            if open >= open_max {
                return Ok(MeetingWrite::TooMany);
            }
            let inserted = tx
                .execute(
                    "INSERT INTO meeting_patient_links (link_hash, meeting_id, created_ms, expires_ms,
                         slot_start_ms, slot_end_ms, knock_id, spent)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (link_hash) DO NOTHING",
                    params![
                        link.link_hash.as_slice(),
                        link.meeting_id,
                        to_sql(link.created_ms),
                        to_sql(link.expires_ms),
                        link.slot_start_ms.map(to_sql),
                        link.slot_end_ms.map(to_sql),
                        link.knock_id,
                        link.spent
                    ],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::Conflict("patient link".into()));
            }
            Ok(MeetingWrite::Done)
        })
        .await
    }

    async fn patient_link(&self, link_hash: &TokenHash) -> Result<Option<PatientLink>> {
        let link_hash = *link_hash;
        self.read(move |tx| {
            tx.query_row(
                &format!("SELECT {LINK_COLUMNS} FROM meeting_patient_links WHERE link_hash = ?1"),
                [link_hash.as_slice()],
                link_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn purge_meetings(&self, before_ms: u64) -> Result<u64> {
        self.write(move |tx| {
            let before = to_sql(before_ms);
            // Knocks and links go with their meeting (ON DELETE CASCADE).
            let meetings = tx
                .execute("DELETE FROM meetings WHERE ended_ms < ?1 OR last_used_ms < ?1", [before])
                .map_err(backend)?;
            tx.execute("DELETE FROM meeting_knocks WHERE created_ms < ?1", [before]).map_err(backend)?;
            tx.execute("DELETE FROM meeting_patient_links WHERE created_ms < ?1", [before])
                .map_err(backend)?;
            Ok(meetings as u64)
        })
        .await
    }
}
