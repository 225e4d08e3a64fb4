//! Reporting events and rooms to the server's operator (`ward admin reports list`).
//!
//! Spec: <https://spec.matrix.org/latest/client-server-api/#reporting-content>. An event can be
//! reported only by someone who may see it (otherwise `M_NOT_FOUND`, as for reading it); a room
//! by anyone who has an account, as long as the room exists here. Reports are stored with the
//! reporter, reason, score and time; nothing of the event is copied.

use ward_store::{NewReport, Report};

use super::parse_room_id;
use crate::{Authed, Error, Result, Services, now_ms};

/// Longest reason kept with a report.
pub const REPORT_REASON_MAX_BYTES: usize = 4096;
/// Reports `ward admin reports list` shows at most per call.
pub const REPORTS_LIST_MAX: usize = 1000;

impl Services {
    /// `POST /rooms/{roomId}/report/{eventId}`.
    pub async fn report_event(
        &self,
        authed: &Authed,
        room_id: &str,
        event_id: &str,
        reason: Option<String>,
        score: Option<i64>,
    ) -> Result<()> {
        check_reason(reason.as_deref())?;
        if score.is_some_and(|s| !(-100..=0).contains(&s)) {
            return Err(Error::InvalidParam("score must be between -100 and 0".into()));
        }
        // The same check as reading the event: 404 for anything the reporter cannot see; and
        // only members report (the spec asks for a joined reporter).
        self.event(authed, room_id, event_id).await?;
        if self.readable_until(room_id, &authed.user_id).await? != u64::MAX {
            return Err(Error::NotFound("you are not in this room".into()));
        }
        let report = NewReport {
            room_id: room_id.to_owned(),
            event_id: Some(event_id.to_owned()),
            reporter: authed.user_id.clone(),
            reason,
            score,
            received_ms: now_ms(),
        };
        self.store.add_report(report).await?;
        tracing::info!("an event was reported");
        Ok(())
    }

    /// `POST /rooms/{roomId}/report`.
    pub async fn report_room(&self, authed: &Authed, room_id: &str, reason: Option<String>) -> Result<()> {
        check_reason(reason.as_deref())?;
        let room_id = parse_room_id(room_id)?;
        if self.store.room(room_id.as_str()).await?.is_none() {
            return Err(Error::NotFound("no such room".into()));
        }
        let report = NewReport {
            room_id: room_id.to_string(),
            event_id: None,
            reporter: authed.user_id.clone(),
            reason: reason.filter(|r| !r.is_empty()),
            score: None,
            received_ms: now_ms(),
        };
        self.store.add_report(report).await?;
        tracing::info!("a room was reported");
        Ok(())
    }

    /// For the operator: reports newest first, older than `before_id` if given.
    pub async fn admin_reports(&self, before_id: Option<u64>, limit: usize) -> Result<Vec<Report>> {
        Ok(self.store.reports(before_id, limit.clamp(1, REPORTS_LIST_MAX)).await?)
    }
}

fn check_reason(reason: Option<&str>) -> Result<()> {
    if reason.is_some_and(|r| r.len() > REPORT_REASON_MAX_BYTES) {
        return Err(Error::InvalidParam(format!("reasons have at most {REPORT_REASON_MAX_BYTES} bytes")));
    }
    Ok(())
}
