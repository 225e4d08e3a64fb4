//! The meeting service's view of the SFU: `ward-service` defines what it needs
//! ([`Conferencing`]) without depending on `ward-rtc`; this file implements it with the SFU
//! and, the other way round, lets the SFU ask the meeting service who may join a meeting's room
//! ([`ward_rtc::JoinGate`]). It also runs the retention purge (meetings, idle sliding sync connections), and a sweep that refreshes the
//! meeting gauges and closes conference rooms of meetings that ended elsewhere.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use ward_rtc::runtime::{ServiceReply, ServiceRequest};
use ward_rtc::{MintRequest, Rtc};
use ward_service::{ConferenceGrant, Conferencing, ConferencingError, Services};
use ward_sfu::ServiceError;

/// How often ended and old meetings (and idle sliding sync connections) are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// How often the `ward_meet_*` gauges are refreshed and stale meeting rooms closed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Hooks meetings and the SFU together (when conferencing is on) and starts the purge task.
pub fn wire(services: &Arc<Services>, rtc: Option<&Arc<Rtc>>) {
    if let Some(rtc) = rtc {
        services.set_conferencing(Arc::new(SfuConferencing { rtc: rtc.clone() }));
        // Weak: the SFU must not keep the services alive (nor form a cycle with them).
        rtc.set_gate(Arc::new(MeetingGate { services: Arc::downgrade(services) }));
    }
    let sweep = (Arc::downgrade(services), rtc.map(Arc::downgrade));
    tokio::spawn(async move {
        let (services, rtc) = sweep;
        let mut every = tokio::time::interval(SWEEP_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(services) = services.upgrade() else { return };
            if let Err(e) = services.refresh_meeting_metrics().await {
                tracing::warn!(error = %e, "counting meetings failed");
            }
            if let Some(rtc) = rtc.as_ref().and_then(Weak::upgrade) {
                close_stale_rooms(&services, &rtc).await;
            }
        }
    });
    let services = Arc::downgrade(services);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(services) = services.upgrade() else { return };
            match services.purge_meetings().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(meetings = n, "purged old meetings"),
                Err(e) => tracing::error!(error = %e, "purging old meetings failed"),
            }
            // Not meetings, but the same kind of chore: sliding sync connections idle too long.
            match services.purge_sliding_connections().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(connections = n, "purged idle sliding sync connections"),
                Err(e) => tracing::error!(error = %e, "purging idle sliding sync connections failed"),
            }
        }
    });
}

/// Closes conference rooms of meetings that have ended (`ward admin meetings end` runs in
/// another process, and a join refused after it got in may leave an empty room behind).
async fn close_stale_rooms(services: &Services, rtc: &Rtc) {
    let Some(sfu) = rtc.sfu() else { return };
    let Ok(Ok(ServiceReply::Rooms(rooms))) =
        sfu.service(ServiceRequest::ListRooms { names: Vec::new() }).await
    else {
        return;
    };
    for room in rooms {
        if services.stale_meeting_room(&room.name).await.unwrap_or(false) {
            tracing::info!("closing the conference of an ended meeting");
            let _ = sfu.service(ServiceRequest::DeleteRoom { room: room.name }).await;
        }
    }
}

struct SfuConferencing {
    rtc: Arc<Rtc>,
}

impl SfuConferencing {
    async fn service(&self, request: ServiceRequest) -> Result<(), ConferencingError> {
        let unavailable = || ConferencingError::Unavailable("the media server is not available".into());
        let sfu = self.rtc.sfu().ok_or_else(unavailable)?;
        match sfu.service(request).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(
                e @ (ServiceError::NoRoom(_) | ServiceError::NoParticipant(_) | ServiceError::NoTrack(_)),
            )) => Err(ConferencingError::NotFound(e.to_string())),
            Ok(Err(ServiceError::Refused(m))) => Err(ConferencingError::Refused(m)),
            Err(_) => Err(unavailable()),
        }
    }
}

#[async_trait::async_trait]
impl Conferencing for SfuConferencing {
    fn mint_token(&self, grant: &ConferenceGrant) -> Result<String, String> {
        let settings = &self.rtc.settings;
        let ttl = Duration::from_millis(grant.ttl_ms).min(settings.token_max_ttl);
        let mut request = MintRequest::new(grant.identity.clone(), grant.room.clone(), ttl);
        request.name = grant.name.clone();
        request.metadata = grant.metadata.clone();
        request.can_publish = grant.can_publish;
        request.can_subscribe = grant.can_subscribe;
        request.can_publish_data = grant.can_publish_data;
        request.can_update_own_metadata = grant.can_update_own_metadata;
        ward_rtc::mint(&settings.keys, &request, SystemTime::now()).map_err(|e| e.to_string())
    }

    async fn remove_participant(&self, room: &str, identity: &str) -> Result<bool, ConferencingError> {
        let request =
            ServiceRequest::RemoveParticipant { room: room.to_owned(), identity: identity.to_owned() };
        match self.service(request).await {
            Ok(()) => Ok(true),
            Err(ConferencingError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn is_connected(&self, room: &str, identity: &str) -> Result<bool, ConferencingError> {
        let request = ServiceRequest::GetParticipant { room: room.to_owned(), identity: identity.to_owned() };
        match self.service(request).await {
            Ok(()) => Ok(true),
            Err(ConferencingError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn end_room(&self, room: &str) -> Result<(), ConferencingError> {
        match self.service(ServiceRequest::DeleteRoom { room: room.to_owned() }).await {
            Err(ConferencingError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn mute_track(&self, room: &str, identity: &str, track_sid: &str) -> Result<(), ConferencingError> {
        self.service(ServiceRequest::MuteTrack {
            room: room.to_owned(),
            identity: identity.to_owned(),
            track_sid: track_sid.to_owned(),
            muted: true,
        })
        .await
    }
}

struct MeetingGate {
    services: Weak<Services>,
}

impl ward_rtc::JoinGate for MeetingGate {
    fn admits<'a>(
        &'a self,
        room: &'a str,
        identity: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            match self.services.upgrade() {
                Some(services) => services.meeting_admits(room, identity).await,
                None => Err("the server is shutting down".into()),
            }
        })
    }
}
