//! The signalling side of the core without media: joins, limits, permissions, pings, resumes
//! and departures, as a LiveKit client sees them in its `SignalResponse`s.

mod sim;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sim::{ROOM, grant};
use ward_sfu::protocol as lk;
use ward_sfu::{JoinError, JoinOptions, Output, ParticipantId, Sfu, SfuConfig};

use lk::signal_request::Message as Req;
use lk::signal_response::Message as Resp;

struct Harness {
    sfu: Sfu,
    now: Instant,
}

impl Harness {
    fn new(adjust: impl FnOnce(&mut SfuConfig)) -> Self {
        let addr: SocketAddr = "127.0.0.1:7882".parse().unwrap();
        let mut cfg = SfuConfig::new(addr, addr);
        adjust(&mut cfg);
        let now = Instant::now();
        Self { sfu: Sfu::new(cfg, now, 1_800_000_000_000), now }
    }

    fn join(&mut self, g: ward_sfu::Grant) -> Result<ParticipantId, JoinError> {
        self.sfu.join(self.now, g, JoinOptions::default())
    }

    fn signal(&mut self, id: ParticipantId, message: Req) {
        self.sfu.handle_signal(self.now, id, lk::SignalRequest { message: Some(message) });
    }

    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        loop {
            let next = self.sfu.poll_timeout().min(until).max(self.now);
            self.now = next;
            self.sfu.handle_timeout(self.now);
            if self.now >= until {
                break;
            }
        }
    }

    /// Everything the core wants to do, by participant.
    fn drain(&mut self) -> Vec<(ParticipantId, Option<Resp>)> {
        let mut out = Vec::new();
        while let Some(o) = self.sfu.poll_output() {
            match o {
                Output::Signal { to, message } => out.push((to, message.message)),
                Output::Close { to } => out.push((to, None)),
                Output::Transmit { .. } => {}
            }
        }
        out
    }
}

fn signals_to(out: &[(ParticipantId, Option<Resp>)], id: ParticipantId) -> Vec<&Resp> {
    out.iter().filter(|(to, _)| *to == id).filter_map(|(_, m)| m.as_ref()).collect()
}

fn closed(out: &[(ParticipantId, Option<Resp>)], id: ParticipantId) -> bool {
    out.iter().any(|(to, m)| *to == id && m.is_none())
}

fn updates(signals: &[&Resp]) -> Vec<lk::ParticipantInfo> {
    signals
        .iter()
        .filter_map(|m| match m {
            Resp::Update(u) => Some(u.participants.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn join_response_comes_first_and_the_subscriber_offer_a_moment_later() {
    let mut h = Harness::new(|_| {});
    let anna = h.join(grant("anna")).unwrap();
    let out = h.drain();
    let to_anna = signals_to(&out, anna);
    let Resp::Join(join) = to_anna[0] else { panic!("first message must be the join response: {to_anna:?}") };
    let me = join.participant.as_ref().unwrap();
    assert!(me.sid.starts_with("PA_") && join.room.as_ref().unwrap().sid.starts_with("RM_"));
    assert!(me.permission.is_some(), "livekit-client refuses to publish without permissions");
    assert!(join.ping_interval > 0 && join.ping_timeout > 0 && join.subscriber_primary);
    assert!(join.server_info.as_ref().unwrap().version.as_str() >= "1.8.0");
    assert!(!to_anna.iter().any(|m| matches!(m, Resp::Offer(_))), "offer must wait for the client to set up");

    h.advance(Duration::from_millis(200));
    let out = h.drain();
    let offer = signals_to(&out, anna)
        .into_iter()
        .find_map(|m| match m {
            Resp::Offer(o) => Some(o.clone()),
            _ => None,
        })
        .expect("a subscriber offer");
    assert_eq!(offer.r#type, "offer");
    assert!(offer.sdp.contains("m=application"), "the SFU's data channels ride on the subscriber offer");
    assert!(offer.sdp.contains("127.0.0.1 7882 typ host"), "{}", offer.sdp);

    // The second participant learns of the first, and the first of the second.
    let ben = h.join(grant("ben")).unwrap();
    let out = h.drain();
    let Resp::Join(join) = signals_to(&out, ben)[0] else { panic!() };
    assert_eq!(join.other_participants.iter().map(|p| p.identity.as_str()).collect::<Vec<_>>(), ["anna"]);
    assert_eq!(updates(&signals_to(&out, anna))[0].identity, "ben");
}

#[test]
fn pings_are_answered_in_both_forms() {
    let mut h = Harness::new(|_| {});
    let anna = h.join(grant("anna")).unwrap();
    h.drain();
    h.signal(anna, Req::Ping(1234));
    h.signal(anna, Req::PingReq(lk::Ping { timestamp: 5678, rtt: 10 }));
    let out = h.drain();
    let to_anna = signals_to(&out, anna);
    assert!(matches!(to_anna[0], Resp::Pong(1234)));
    let Resp::PongResp(p) = to_anna[1] else { panic!("{to_anna:?}") };
    assert_eq!(p.last_ping_timestamp, 5678);
    assert!(p.timestamp >= 1_800_000_000_000);
}

#[test]
fn limits_refuse_joins_with_a_reason() {
    let mut h = Harness::new(|c| {
        c.max_participants_per_room = 2;
        c.max_participants = 3;
    });
    h.join(grant("a")).unwrap();
    h.join(grant("b")).unwrap();
    assert_eq!(h.join(grant("c")), Err(JoinError::RoomFull(2)));
    let mut other_room = grant("c");
    other_room.room = "other".into();
    h.join(other_room.clone()).unwrap();
    other_room.identity = "d".into();
    assert_eq!(h.join(other_room), Err(JoinError::ServerFull(3)));
    let mut no_room = grant("e");
    no_room.room.clear();
    assert_eq!(h.join(no_room), Err(JoinError::NoRoom));
}

#[test]
fn the_same_identity_joining_again_replaces_the_old_connection() {
    let mut h = Harness::new(|_| {});
    let first = h.join(grant("anna")).unwrap();
    h.drain();
    let second = h.join(grant("anna")).unwrap();
    let out = h.drain();
    let to_first = signals_to(&out, first);
    assert!(
        to_first.iter().any(
            |m| matches!(m, Resp::Leave(l) if l.reason == lk::DisconnectReason::DuplicateIdentity as i32)
        )
    );
    assert!(closed(&out, first));
    assert!(matches!(signals_to(&out, second)[0], Resp::Join(_)));
}

#[test]
fn publishing_needs_the_grant_and_stays_within_limits() {
    let mut h = Harness::new(|c| c.max_tracks_per_participant = 1);
    let mut viewer = grant("viewer");
    viewer.can_publish = false;
    let viewer = h.join(viewer).unwrap();
    let mut mic_only = grant("mic");
    mic_only.can_publish_sources = vec!["microphone".into()];
    let mic_only = h.join(mic_only).unwrap();
    let host = h.join(grant("host")).unwrap();
    h.drain();
    let add = |cid: &str, source: lk::TrackSource| {
        Req::AddTrack(lk::AddTrackRequest {
            cid: cid.into(),
            r#type: lk::TrackType::Video as i32,
            source: source as i32,
            ..Default::default()
        })
    };
    let refusal = |h: &mut Harness, id| {
        let out = h.drain();
        signals_to(&out, id).into_iter().find_map(|m| match m {
            Resp::RequestResponse(r) => Some((r.reason, r.message.clone())),
            Resp::TrackPublished(_) => Some((-1, "published".into())),
            _ => None,
        })
    };
    h.signal(viewer, add("v1", lk::TrackSource::Camera));
    let (reason, message) = refusal(&mut h, viewer).unwrap();
    assert_eq!(reason, lk::request_response::Reason::NotAllowed as i32);
    assert!(message.contains("does not allow publishing"), "{message}");

    h.signal(mic_only, add("m1", lk::TrackSource::Camera));
    let (reason, message) = refusal(&mut h, mic_only).unwrap();
    assert_eq!(reason, lk::request_response::Reason::NotAllowed as i32);
    assert!(message.contains("camera"), "{message}");

    h.signal(host, add("h1", lk::TrackSource::Camera));
    let (reason, _) = refusal(&mut h, host).unwrap();
    assert_eq!(reason, -1, "first track is published");
    h.signal(host, add("h2", lk::TrackSource::ScreenShare));
    let (reason, message) = refusal(&mut h, host).unwrap();
    assert_eq!(reason, lk::request_response::Reason::LimitExceeded as i32, "{message}");
}

#[test]
fn metadata_updates_are_answered_and_need_the_grant() {
    let mut h = Harness::new(|_| {});
    let mut locked = grant("locked");
    locked.can_update_own_metadata = false;
    let locked = h.join(locked).unwrap();
    let anna = h.join(grant("anna")).unwrap();
    h.drain();
    let update = |request_id| {
        Req::UpdateMetadata(lk::UpdateParticipantMetadata {
            name: "Dr. Anna".into(),
            request_id,
            ..Default::default()
        })
    };
    h.signal(locked, update(7));
    let out = h.drain();
    let Resp::RequestResponse(r) = signals_to(&out, locked)[0] else { panic!() };
    assert_eq!((r.request_id, r.reason), (7, lk::request_response::Reason::NotAllowed as i32));

    h.signal(anna, update(8));
    let out = h.drain();
    let to_anna = signals_to(&out, anna);
    assert!(matches!(to_anna[0], Resp::RequestResponse(r) if r.request_id == 8 && r.reason == 0));
    assert_eq!(updates(&to_anna)[0].name, "Dr. Anna");
    assert_eq!(updates(&signals_to(&out, locked))[0].name, "Dr. Anna");
}

#[test]
fn a_dropped_signal_connection_can_resume_within_the_window() {
    let mut h = Harness::new(|c| c.reconnect_window_ms = 10_000);
    let anna = h.join(grant("anna")).unwrap();
    let ben = h.join(grant("ben")).unwrap();
    h.advance(Duration::from_millis(300));
    let sid = h.sfu.participant_sid(anna).unwrap().to_owned();
    let out = h.drain();
    let first_offer = signals_to(&out, anna)
        .into_iter()
        .find_map(|m| match m {
            Resp::Offer(o) => Some(o.clone()),
            _ => None,
        })
        .expect("a subscriber offer");

    h.sfu.signal_closed(h.now, anna);
    h.advance(Duration::from_secs(5));
    let out = h.drain();
    assert!(updates(&signals_to(&out, ben)).is_empty(), "a short drop is not a departure");

    // A resume of someone else's sid, or an unknown one, is refused.
    assert!(matches!(h.sfu.resume(h.now, &grant("ben"), &sid), Err(JoinError::NothingToResume(_))));
    assert!(matches!(h.sfu.resume(h.now, &grant("anna"), "PA_unknown"), Err(JoinError::NothingToResume(_))));
    let resumed = h.sfu.resume(h.now, &grant("anna"), &sid).unwrap();
    assert_eq!(resumed, anna);
    let out = h.drain();
    let to_anna = signals_to(&out, anna);
    assert!(matches!(to_anna[0], Resp::Reconnect(_)), "first message on a resume");
    // Anna never answered her subscriber offer (it may have been lost with the connection):
    // it comes again, unchanged, or negotiation would wait for her forever.
    let again: Vec<_> = to_anna
        .iter()
        .filter_map(|m| match m {
            Resp::Offer(o) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(again.len(), 1, "{to_anna:?}");
    assert_eq!((again[0].id, again[0].sdp.as_str()), (first_offer.id, first_offer.sdp.as_str()));

    // A drop that lasts beyond the window is a departure, announced to the others.
    h.sfu.signal_closed(h.now, anna);
    h.advance(Duration::from_secs(11));
    let out = h.drain();
    let gone = updates(&signals_to(&out, ben));
    assert_eq!(gone[0].identity, "anna");
    assert_eq!(gone[0].state, lk::participant_info::State::Disconnected as i32);
    assert!(closed(&out, anna));
    assert_eq!(h.sfu.stats().participants, 1);
}

#[test]
fn leaving_is_announced_and_empty_rooms_close_after_their_timeout() {
    let mut h = Harness::new(|c| c.empty_room_timeout_ms = 60_000);
    let anna = h.join(grant("anna")).unwrap();
    let ben = h.join(grant("ben")).unwrap();
    h.drain();
    h.signal(anna, Req::Leave(lk::LeaveRequest::default()));
    let out = h.drain();
    assert!(closed(&out, anna));
    assert_eq!(updates(&signals_to(&out, ben))[0].state, lk::participant_info::State::Disconnected as i32);
    h.signal(ben, Req::Leave(lk::LeaveRequest::default()));
    h.advance(Duration::from_secs(30));
    assert_eq!(h.sfu.stats().rooms, 1, "an empty room waits for its timeout");
    h.advance(Duration::from_secs(31));
    assert_eq!(h.sfu.stats().rooms, 0);
    let _ = ROOM;
}

#[test]
fn garbage_signals_are_counted_not_fatal() {
    let mut h = Harness::new(|_| {});
    let anna = h.join(grant("anna")).unwrap();
    h.drain();
    h.sfu.handle_signal_bytes(h.now, anna, &[0xff, 0xff, 0xff, 0x01]);
    h.signal(
        anna,
        Req::Offer(lk::SessionDescription {
            r#type: "offer".into(),
            sdp: "not sdp".into(),
            ..Default::default()
        }),
    );
    h.signal(
        anna,
        Req::Answer(lk::SessionDescription {
            r#type: "answer".into(),
            sdp: "v=0".into(),
            ..Default::default()
        }),
    );
    assert!(h.sfu.stats().bad_signals >= 2);
    // Still answers.
    h.signal(anna, Req::Ping(1));
    let out = h.drain();
    assert!(signals_to(&out, anna).iter().any(|m| matches!(m, Resp::Pong(1))));
}

#[test]
fn the_subscriber_offer_carries_the_ice_tcp_candidate() {
    let mut h = Harness::new(|c| {
        c.tcp_local_addr = Some("127.0.0.1:7881".parse().unwrap());
        c.tcp_public_addr = Some("127.0.0.1:7881".parse().unwrap());
    });
    let anna = h.join(grant("anna")).unwrap();
    h.advance(Duration::from_millis(200));
    let out = h.drain();
    let offer = signals_to(&out, anna)
        .into_iter()
        .find_map(|m| match m {
            Resp::Offer(o) => Some(o.sdp.clone()),
            _ => None,
        })
        .unwrap();
    assert!(offer.contains("127.0.0.1 7882 typ host"), "{offer}");
    assert!(offer.contains("127.0.0.1 7881 typ host tcptype passive"), "{offer}");
}

#[test]
fn a_flood_of_requests_is_cut_at_the_burst() {
    let mut h = Harness::new(|_| {});
    let anna = h.join(grant("anna")).unwrap();
    h.drain();
    for i in 0..600 {
        h.signal(anna, Req::Ping(i));
    }
    let out = h.drain();
    let pongs = signals_to(&out, anna).iter().filter(|m| matches!(m, Resp::Pong(_))).count();
    assert_eq!(pongs, 500, "the burst is 500 requests");
    assert!(h.sfu.stats().bad_signals >= 100);
    // The budget refills with time.
    h.advance(Duration::from_secs(1));
    h.drain();
    h.signal(anna, Req::Ping(1));
    assert!(signals_to(&h.drain(), anna).iter().any(|m| matches!(m, Resp::Pong(1))));
}

#[test]
fn a_silent_participant_is_taken_for_gone() {
    let mut h = Harness::new(|c| c.reconnect_window_ms = 10_000);
    let anna = h.join(grant("anna")).unwrap();
    let ben = h.join(grant("ben")).unwrap();
    h.drain();
    // Ben pings like a client; Anna's connection went half-open and says nothing.
    for _ in 0..12 {
        h.advance(Duration::from_secs(5));
        h.signal(ben, Req::Ping(0));
    }
    let out = h.drain();
    let gone = updates(&signals_to(&out, ben));
    assert!(
        gone.iter()
            .any(|p| p.identity == "anna" && p.state == lk::participant_info::State::Disconnected as i32)
    );
    assert!(closed(&out, anna));
    assert!(!closed(&out, ben), "the pinging participant stays");
}

#[test]
fn tracks_are_announced_with_their_mime_type_before_any_media() {
    // livekit-client sets up end-to-end decryption of a subscribed track only when its TrackInfo
    // names the MIME type, so it must be known before the first packet arrives.
    let mut h = Harness::new(|_| {});
    let host = h.join(grant("host")).unwrap();
    h.drain();
    let published = |h: &mut Harness, req: lk::AddTrackRequest| {
        h.signal(host, Req::AddTrack(req));
        let out = h.drain();
        signals_to(&out, host)
            .into_iter()
            .find_map(|m| match m {
                Resp::TrackPublished(p) => p.track.clone(),
                _ => None,
            })
            .expect("published")
    };
    let camera = published(
        &mut h,
        lk::AddTrackRequest {
            cid: "cam".into(),
            r#type: lk::TrackType::Video as i32,
            source: lk::TrackSource::Camera as i32,
            simulcast_codecs: vec![lk::SimulcastCodec {
                codec: "vp8".into(),
                cid: "cam".into(),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(camera.mime_type, "video/VP8");
    // livekit-client in Safari reads the type of its own track from the codec list.
    assert_eq!(
        camera.codecs.iter().map(|c| (c.mime_type.as_str(), c.cid.as_str())).collect::<Vec<_>>(),
        [("video/VP8", "cam")]
    );
    let mic = published(
        &mut h,
        lk::AddTrackRequest {
            cid: "mic".into(),
            r#type: lk::TrackType::Audio as i32,
            source: lk::TrackSource::Microphone as i32,
            ..Default::default()
        },
    );
    assert_eq!(mic.mime_type, "audio/opus");
    assert_eq!(mic.codecs[0].mime_type, "audio/opus");
    // A client that does not name its video codec: the first packet tells (forwarding tests).
    let unnamed = published(
        &mut h,
        lk::AddTrackRequest {
            cid: "screen".into(),
            r#type: lk::TrackType::Video as i32,
            source: lk::TrackSource::ScreenShare as i32,
            ..Default::default()
        },
    );
    assert_eq!(unnamed.mime_type, "");
    assert!(unnamed.codecs.is_empty());
}
