//! Forwarding between simulated clients: media to every subscriber, data packets with the
//! sender's identity.

// LiveKit deprecated some DataPacket fields that its clients still send and read.
#![allow(deprecated)]

mod sim;

use std::collections::HashSet;
use std::time::Duration;

use sim::{Sim, TrackSpec, assert_contiguous};
use ward_sfu::protocol as lk;

/// A publishes audio and video; B and C (auto-subscribing) receive both, complete, with
/// continuous sequence numbers, starting at a keyframe.
#[test]
fn audio_and_video_reach_every_subscriber_without_gaps() {
    audio_and_video_reach_every_subscriber(1);
}

/// The same when the shell hands in the datagrams that arrive together before it polls, so
/// that a subscriber connection sends several packets after one timeout round.
#[test]
fn audio_and_video_reach_every_subscriber_when_datagrams_come_in_batches() {
    audio_and_video_reach_every_subscriber(16);
}

fn audio_and_video_reach_every_subscriber(batch: usize) {
    let mut sim = Sim::new(1);
    sim.sfu_batch_max = batch;
    let a = sim.join("alice");
    let b = sim.join("bob");
    let c = sim.join("carol");
    sim.publish(a, vec![TrackSpec::audio("mic"), TrackSpec::video("cam", 800_000)]);
    sim.connect_all();
    sim.run_for(Duration::from_secs(3));
    sim.clients[a].media_stopped = true;
    sim.run_for(Duration::from_millis(500));

    let alice = &sim.clients[a];
    let (audio_sid, video_sid) = (alice.track_sid("mic"), alice.track_sid("cam"));
    assert!(alice.received.is_empty(), "a publisher does not get its own tracks back");
    let sent_video = alice.sent_on("cam", 2);
    let sent_audio = alice.local_track("mic").audio_sent;
    for sub in [b, c] {
        let client = &sim.clients[sub];
        let who = &client.identity;
        assert!(
            client.received.iter().all(|r| r.track == audio_sid || r.track == video_sid),
            "{who}: packets of unknown tracks"
        );

        let video = client.stream_of(&video_sid);
        assert_contiguous(&format!("{who} video"), &video);
        let first = video[0].video.expect("synthetic video");
        assert!(first.starts_keyframe(), "{who}: video starts with {first:?}, not a keyframe");
        let got: HashSet<(u32, u16)> =
            video.iter().filter_map(|r| r.video).map(|t| (t.frame, t.index)).collect();
        let expected: Vec<(u32, u16)> = sent_video
            .iter()
            .filter(|(_, t)| t.frame >= first.frame)
            .map(|(_, t)| (t.frame, t.index))
            .collect();
        let missing = expected.iter().filter(|k| !got.contains(k)).count();
        assert_eq!(missing, 0, "{who}: {missing} of {} video packets missing", expected.len());
        assert_eq!(got.len(), expected.len(), "{who}: video packets that were never sent");
        // Video starts within half a second of the publisher connecting.
        assert!(first.frame < 15, "{who}: video started only at frame {}", first.frame);

        let audio = client.stream_of(&audio_sid);
        assert_contiguous(&format!("{who} audio"), &audio);
        let counters: Vec<u32> = audio.iter().map(|r| r.audio.expect("synthetic audio")).collect();
        assert!(counters.windows(2).all(|w| w[1] == w[0] + 1), "{who}: audio out of order");
        assert_eq!(
            *counters.last().expect("audio"),
            sent_audio - 1,
            "{who}: the last audio packets are missing"
        );
        assert!(counters[0] < 10, "{who}: audio started only at packet {}", counters[0]);
    }
    if batch > 1 {
        assert!(sim.sfu_batched > 100, "only {} datagrams came in a batch", sim.sfu_batched);
    }
    let stats = sim.sfu.stats();
    assert_eq!(stats.published_tracks, 2);
    assert_eq!(stats.bad_datagrams, 0);
    assert_eq!(stats.bad_signals, 0);
}

/// A data packet from B reaches A and C with B's identity (whatever B claimed), not B itself;
/// one addressed to C reaches only C.
#[test]
fn data_packets_carry_the_senders_identity_and_skip_the_sender() {
    let mut sim = Sim::new(6);
    let a = sim.join("alice");
    let b = sim.join("bob");
    let c = sim.join("carol");
    sim.open_data(b);
    sim.connect_all();
    let opened = sim.run_until_cond(Duration::from_secs(2), |s| {
        s.clients[b].pub_channels.contains_key("_reliable")
            && s.clients.iter().all(|c| c.sub_channels.values().any(|l| l == "_reliable"))
    });
    assert!(opened, "data channels did not open: {}", sim.describe());

    let packet = |payload: &[u8], to: Vec<String>| lk::DataPacket {
        kind: lk::data_packet::Kind::Reliable as i32,
        participant_identity: "mallory".into(),
        participant_sid: "PA_forged".into(),
        destination_identities: to,
        sequence: 1,
        value: Some(lk::data_packet::Value::User(lk::UserPacket {
            participant_identity: "mallory".into(),
            payload: payload.to_vec(),
            topic: Some("chat".into()),
            ..Default::default()
        })),
    };
    sim.send_data(b, &packet(b"hello everyone", Vec::new()));
    sim.run_for(Duration::from_millis(300));
    sim.send_data(b, &packet(b"only carol", vec!["carol".into()]));
    sim.run_for(Duration::from_millis(300));

    let bob_sid = sim.clients[b].sid.clone();
    let payloads = |i: usize| -> Vec<Vec<u8>> {
        sim.clients[i]
            .data
            .iter()
            .map(|p| {
                assert_eq!(p.participant_identity, "bob");
                assert_eq!(p.participant_sid, bob_sid);
                assert!(p.destination_identities.is_empty());
                match &p.value {
                    Some(lk::data_packet::Value::User(u)) => {
                        assert_eq!(u.participant_identity, "bob");
                        assert_eq!(u.topic.as_deref(), Some("chat"));
                        u.payload.clone()
                    }
                    other => panic!("not a user packet: {other:?}"),
                }
            })
            .collect()
    };
    assert_eq!(payloads(a), vec![b"hello everyone".to_vec()]);
    assert_eq!(payloads(c), vec![b"hello everyone".to_vec(), b"only carol".to_vec()]);
    assert!(sim.clients[b].data.is_empty(), "the sender got its own packet back");
    assert_eq!(sim.sfu.stats().data_packets_forwarded, 3);
}

/// Publishers are told the bitrate cap (`max_bitrate_bps_per_track` per video track) by REMB.
#[test]
fn publishers_are_capped_at_the_configured_bitrate() {
    let mut sim = sim::Sim::with_config(3, |c| c.max_bitrate_bps_per_track = 700_000);
    let a = sim.join("alice");
    let b = sim.join("bob");
    sim.publish(a, vec![TrackSpec::audio("mic"), TrackSpec::video("cam", 400_000)]);
    sim.connect_all();
    sim.run_for(Duration::from_secs(4));
    let caps = &sim.clients[a].remb_bps;
    assert!(caps.len() >= 2, "REMB is repeated: {caps:?}");
    assert!(caps.iter().all(|c| *c == 700_000), "{caps:?}");
    assert!(sim.clients[b].remb_bps.is_empty(), "subscribers publish nothing and get no cap");
}

/// The SFU's socket is bound to 0.0.0.0 (or a private address behind NAT) and announces
/// another address: clients' connectivity checks arrive addressed to the socket and must still
/// be answered.
#[test]
fn media_flows_when_the_socket_address_differs_from_the_announced_one() {
    let mut sim = sim::Sim::with_config(5, |c| c.local_addr = "0.0.0.0:7882".parse().unwrap());
    let a = sim.join("alice");
    let b = sim.join("bob");
    sim.publish(a, vec![TrackSpec::audio("mic"), TrackSpec::video("cam", 300_000)]);
    sim.connect_all();
    sim.run_for(Duration::from_secs(2));
    let video_sid = sim.clients[a].track_sid("cam");
    assert!(!sim.clients[b].stream_of(&video_sid).is_empty(), "bob receives alice's video");
}

/// Subscribers learn a track's MIME type the first time they hear of the track, before any of
/// its media: livekit-client sets up end-to-end decryption for a track only when it is known.
#[test]
fn subscribers_hear_of_a_track_with_its_mime_type() {
    let mut sim = Sim::new(9);
    let a = sim.join("alice");
    let b = sim.join("bob");
    sim.publish(a, vec![TrackSpec::audio("mic"), TrackSpec::video("cam", 300_000)]);
    sim.connect_all();
    sim.run_for(Duration::from_secs(1));
    let (mic, cam) = (sim.clients[a].track_sid("mic"), sim.clients[a].track_sid("cam"));
    let first_seen = |sid: &str| {
        sim.clients[b]
            .signals
            .iter()
            .filter_map(|m| match m {
                lk::signal_response::Message::Update(u) => Some(u.participants.clone()),
                lk::signal_response::Message::Join(j) => Some(j.other_participants.clone()),
                _ => None,
            })
            .flatten()
            .flat_map(|p| p.tracks)
            .find(|t| t.sid == sid)
            .unwrap_or_else(|| panic!("bob never heard of {sid}"))
    };
    assert_eq!(first_seen(&cam).mime_type, "video/VP8");
    assert_eq!(first_seen(&mic).mime_type, "audio/opus");
    assert!(!sim.clients[b].stream_of(&cam).is_empty(), "and the video arrived");
}
