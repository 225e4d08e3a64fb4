//! Recovery from packet loss, and robustness against garbage from a participant.

mod sim;

use std::collections::HashSet;
use std::time::Duration;

use sim::{LinkConfig, Sim, TrackSpec, assert_contiguous};
use ward_sfu::protocol as lk;

use lk::signal_request::Message as Req;

/// Seeded 7 % loss on A's uplink and on B's downlink: NACK and RTX (publisher → SFU and
/// SFU → subscriber) recover nearly every video packet for B, and for C behind the lossy
/// uplink only. Audio is not retransmitted, so its losses show that the loss was real.
#[test]
fn nack_and_rtx_recover_seeded_loss() {
    let mut sim = Sim::new(7);
    let a = sim.join("alice");
    let b = sim.join("bob");
    let c = sim.join("carol");
    sim.publish(a, vec![TrackSpec::audio("mic"), TrackSpec::video("cam", 800_000)]);
    sim.connect_all();
    sim.run_for(Duration::from_secs(1));

    let lossy = LinkConfig { loss: 0.07, ..LinkConfig::default() };
    sim.uplink(a, lossy);
    sim.downlink(b, lossy);
    let from = sim.now;
    sim.run_for(Duration::from_secs(6));
    let until = sim.now;
    sim.clients[a].media_stopped = true;
    // Time for the last retransmissions.
    sim.run_for(Duration::from_secs(2));

    let alice = &sim.clients[a];
    let sent_video: Vec<(u32, u16)> = alice
        .sent_on("cam", 2)
        .iter()
        .filter(|(at, _)| *at >= from && *at < until)
        .map(|(_, t)| (t.frame, t.index))
        .collect();
    let audio_sent_in_window = 6 * 50;
    let (video_sid, audio_sid) = (alice.track_sid("cam"), alice.track_sid("mic"));
    let up = sim.uplink_stats(a);
    let down = sim.downlink_stats(b);
    assert!(up.lost * 100 >= up.sent * 4, "alice's uplink lost too little: {up:?}");
    assert!(down.lost * 100 >= down.sent * 4, "bob's downlink lost too little: {down:?}");

    for i in [b, c] {
        let client = &sim.clients[i];
        let got: HashSet<(u32, u16)> = client
            .received_of(&video_sid)
            .iter()
            .filter_map(|r| r.video)
            .map(|t| (t.frame, t.index))
            .collect();
        let recovered = sent_video.iter().filter(|k| got.contains(k)).count();
        let share = recovered as f64 / sent_video.len() as f64;
        eprintln!("{}: {recovered} of {} video packets ({share:.4})", client.identity, sent_video.len());
        assert!(share >= 0.99, "{}: only {recovered} of {} video packets", client.identity, sent_video.len());

        let audio = client
            .received_of(&audio_sid)
            .iter()
            .filter(|r| r.at >= from + Duration::from_millis(100) && r.at < until)
            .count();
        eprintln!("{}: {audio} of about {audio_sent_in_window} audio packets", client.identity);
        assert!(audio < audio_sent_in_window * 97 / 100, "{}: audio lost nothing?", client.identity);
    }
}

/// Garbage from one participant (undecodable and nonsensical signals, random datagrams from
/// its addresses and from nowhere) is counted and dropped; another participant's media keeps
/// flowing complete, and nothing panics.
#[test]
fn garbage_from_one_participant_does_not_disturb_the_others() {
    let mut sim = Sim::new(5);
    let a = sim.join("alice");
    let b = sim.join("bob");
    let c = sim.join("carol");
    sim.publish(a, vec![TrackSpec::video("cam", 500_000)]);
    sim.open_data(c);
    sim.connect_all();
    sim.run_for(Duration::from_secs(1));
    let video_sid = sim.clients[a].track_sid("cam");
    let from = sim.now;
    let signals_before = [a, b].map(|i| sim.clients[i].signals.len());
    let before = sim.sfu.stats();

    let nonsense = [
        Req::Offer(lk::SessionDescription {
            r#type: "offer".into(),
            sdp: "v=0\r\ngarbage".into(),
            id: 7,
            ..Default::default()
        }),
        Req::Answer(lk::SessionDescription {
            r#type: "answer".into(),
            sdp: "nonsense".into(),
            id: 99,
            ..Default::default()
        }),
        Req::AddTrack(lk::AddTrackRequest::default()),
        Req::AddTrack(lk::AddTrackRequest { cid: "x".into(), r#type: 99, source: -4, ..Default::default() }),
        Req::Mute(lk::MuteTrackRequest { sid: "TR_nothing".into(), muted: true }),
        Req::Mute(lk::MuteTrackRequest { sid: video_sid.clone(), muted: true }),
        Req::TrackSetting(lk::UpdateTrackSettings {
            track_sids: vec![video_sid.clone(), "TR_nothing".into(), String::new()],
            quality: -3,
            width: u32::MAX,
            height: u32::MAX,
            ..Default::default()
        }),
        Req::Subscription(lk::UpdateSubscription {
            track_sids: vec!["TR_nothing".into(), String::new()],
            subscribe: true,
            participant_tracks: vec![lk::ParticipantTracks {
                participant_sid: "PA_nobody".into(),
                track_sids: vec!["TR_nobody".into()],
            }],
        }),
        Req::Trickle(lk::TrickleRequest { candidate_init: "{not json".into(), target: 7, r#final: true }),
        Req::Simulate(lk::SimulateScenario::default()),
        Req::SubscriptionPermission(lk::SubscriptionPermission::default()),
        Req::SyncState(lk::SyncState::default()),
        Req::PingReq(lk::Ping { timestamp: i64::MIN, rtt: i64::MAX }),
    ];
    let carol = (sim.clients[c].pub_addr, sim.clients[c].sub_addr);
    let nowhere = "10.0.0.99:1234".parse().expect("address");
    for round in 0..200u32 {
        let pid = sim.clients[c].pid;
        let len = (sim.rng.next_u64() % 400) as usize;
        let bytes = sim.rng.bytes(len);
        let now = sim.now;
        sim.sfu.handle_signal_bytes(now, pid, &bytes);
        sim.sfu.handle_signal_bytes(now, pid, &[0xff; 64]);
        let message = nonsense[round as usize % nonsense.len()].clone();
        sim.signal(c, message);

        // Datagrams that look like STUN, DTLS, RTP, RTCP, or nothing.
        let mut kinds: Vec<Vec<u8>> = Vec::new();
        let random = |prefix: &[u8], sim: &mut Sim| {
            let mut v = prefix.to_vec();
            let n = (sim.rng.next_u64() % 1_200) as usize;
            v.extend(sim.rng.bytes(n));
            v
        };
        kinds.push(random(&[0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42], &mut sim));
        kinds.push(random(&[22, 0xfe, 0xfd], &mut sim));
        kinds.push(random(&[23, 0xfe, 0xfd], &mut sim));
        kinds.push(random(&[0x80, 96], &mut sim));
        kinds.push(random(&[0x80, 200], &mut sim));
        kinds.push(random(&[0x81, 205], &mut sim));
        kinds.push(random(&[], &mut sim));
        kinds.push(Vec::new());
        for (k, data) in kinds.iter().enumerate() {
            let from = match k % 3 {
                0 => carol.0,
                1 => carol.1,
                _ => nowhere,
            };
            sim.inject_to_sfu(from, data);
        }
        sim.run_for(Duration::from_millis(10));
    }
    let until = sim.now;
    sim.run_for(Duration::from_millis(500));
    sim.clients[a].media_stopped = true;
    sim.run_for(Duration::from_millis(500));

    let after = sim.sfu.stats();
    assert!(after.bad_signals >= before.bad_signals + 200, "{after:?}");
    assert!(after.bad_datagrams > before.bad_datagrams + 200, "{after:?}");
    assert!(sim.clients[a].publisher.is_connected() && sim.clients[b].subscriber.is_connected());

    // Bob got every packet alice sent meanwhile, in one continuous stream.
    let bob = sim.clients[b].stream_of(&video_sid);
    assert_contiguous("bob", &bob);
    let got: HashSet<(u32, u16)> = bob.iter().filter_map(|r| r.video).map(|t| (t.frame, t.index)).collect();
    let sent: Vec<(u32, u16)> = sim.clients[a]
        .sent_on("cam", 2)
        .iter()
        .filter(|(at, _)| *at >= from && *at < until)
        .map(|(_, t)| (t.frame, t.index))
        .collect();
    let missing = sent.iter().filter(|k| !got.contains(k)).count();
    assert_eq!(missing, 0, "bob missed {missing} of {} video packets", sent.len());

    // Alice and bob heard nothing of it (beyond the periodic connection quality).
    for (i, n) in [a, b].into_iter().zip(signals_before) {
        let new: Vec<_> = sim.clients[i].signals[n..]
            .iter()
            .filter(|s| !matches!(s, lk::signal_response::Message::ConnectionQuality(_)))
            .collect();
        assert!(new.is_empty(), "{} was told {new:?}", sim.clients[i].identity);
    }
}

/// A NAT that changes its mapping mid-call (a phone moving between networks keeps its socket,
/// and the SFU sees a new address): the client's next connectivity check from the new address
/// finds its connection by ICE username, and media follows it there.
#[test]
fn media_follows_a_subscriber_whose_address_changes() {
    let mut sim = Sim::new(11);
    let a = sim.join("alice");
    let b = sim.join("bob");
    sim.publish(a, vec![TrackSpec::video("cam", 300_000)]);
    sim.connect_all();
    sim.run_for(Duration::from_secs(1));
    let sid = sim.clients[a].track_sid("cam");
    assert!(!sim.clients[b].received_of(&sid).is_empty(), "{}", sim.describe());

    let moved = "10.0.7.7:61000".parse().expect("address");
    let own = sim.clients[b].sub_addr;
    sim.rebind(own, moved);
    sim.run_for(Duration::from_secs(15));

    let last_second = sim.now - Duration::from_secs(1);
    let recent = sim.clients[b].received_of(&sid).iter().filter(|r| r.at >= last_second).count();
    assert!(recent > 10, "bob received {recent} packets in the last second; {}", sim.describe());
    assert!(sim.clients[b].subscriber.is_connected());
}

/// A NAT may hand a new client the address (IP and port) of one that vanished moments ago and
/// whose connection is still kept for a reconnect (carrier-grade NAT reuses ports across
/// subscribers; a practice behind one address does too). The new client's connectivity checks
/// name its own connections by ICE username and must reach them, not the old connections
/// that were nominated at those addresses, or the new client never connects.
#[test]
fn a_new_client_on_the_address_of_one_that_vanished_connects() {
    let mut sim = Sim::new(13);
    let a = sim.join("alice");
    let b = sim.join("bob");
    sim.publish(a, vec![TrackSpec::video("cam", 300_000)]);
    sim.publish(b, vec![TrackSpec::video("bobcam", 300_000)]);
    sim.connect_all();
    sim.run_for(Duration::from_secs(1));
    let cam = sim.clients[a].track_sid("cam");
    assert!(!sim.clients[b].received_of(&cam).is_empty(), "{}", sim.describe());

    // Bob's app dies: its signalling drops without a leave (so the SFU keeps his connections
    // for a reconnect) and his sockets are gone.
    let bob = sim.clients[b].pid;
    sim.sfu.signal_closed(sim.now, bob);
    sim.clients[b].closed = true;
    // Dave joins from behind the same NAT, which gives his two sockets bob's old ports.
    let d = sim.join("dave");
    sim.rebind(sim.clients[d].pub_addr, sim.clients[b].pub_addr);
    sim.rebind(sim.clients[d].sub_addr, sim.clients[b].sub_addr);
    sim.publish(d, vec![TrackSpec::video("davecam", 300_000)]);
    let up = sim.run_until_cond(Duration::from_secs(5), |s| {
        s.clients[d].subscriber.is_connected() && s.clients[d].publisher.is_connected()
    });
    assert!(up, "dave's connections did not come up: {}", sim.describe());
    sim.run_for(Duration::from_secs(2));
    let last_second = sim.now - Duration::from_secs(1);
    let to_dave = sim.clients[d].received_of(&cam).iter().filter(|r| r.at >= last_second).count();
    assert!(
        to_dave > 10,
        "dave received {to_dave} of alice's packets in the last second; {}",
        sim.describe()
    );
    let davecam = sim.clients[d].track_sid("davecam");
    let to_alice = sim.clients[a].received_of(&davecam).iter().filter(|r| r.at >= last_second).count();
    assert!(
        to_alice > 10,
        "alice received {to_alice} of dave's packets in the last second; {}",
        sim.describe()
    );
}

/// Datagrams from addresses nobody announced are dropped without asking every connection, and
/// a connectivity check naming an unknown ICE username finds nobody.
#[test]
fn strangers_datagrams_are_dropped() {
    let mut sim = Sim::new(12);
    let a = sim.join("alice");
    let b = sim.join("bob");
    sim.publish(a, vec![TrackSpec::video("cam", 300_000)]);
    sim.connect_all();
    sim.run_for(Duration::from_millis(500));
    let before = sim.sfu.stats().bad_datagrams;
    let stranger = "10.0.66.6:5000".parse().expect("address");
    // A binding request with USERNAME "nobody:me" (RFC 8489 layout, no integrity).
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
    stun.extend_from_slice(b"nobody:me\0\0\0");
    for data in [stun.as_slice(), &[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1][..], &[22, 0xfe, 0xfd, 0, 0][..]]
    {
        sim.inject_to_sfu(stranger, data);
    }
    assert_eq!(sim.sfu.stats().bad_datagrams, before + 3);
    sim.run_for(Duration::from_millis(500));
    assert!(sim.clients[b].subscriber.is_connected());
}
