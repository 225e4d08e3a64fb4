//! A simulation of the SFU core with LiveKit-like clients, without sockets or sleeping.
//!
//! It is not bit-for-bit repeatable: str0m draws its own randomness (ICE credentials, SSRCs,
//! DTLS keys, whose signatures vary in length by a byte or two) and hash maps iterate in a
//! per-run order. Behind a bandwidth cap such small differences move which packets a queue
//! drops, so tests assert what must hold in every run, never one run's exact packets.
//!
//! * Time: one `Instant::now()` at the start, then the clock jumps from event to event (the
//!   next datagram delivery, the SFU's or a client's timer, the next media frame).
//! * Network: every client has an uplink (to the SFU) and a downlink (from it), each with a
//!   one-way delay, a seeded random loss and an optional bandwidth cap with a bounded queue
//!   (tail drop), so congestion looks like congestion to the bandwidth estimator.
//! * Clients: two str0m peers each (publisher and subscriber, full ICE, RTP mode) that play
//!   the client role of LiveKit's signalling: `AddTrackRequest` and a publisher offer with
//!   `a=msid:<stream> <cid>` (simulcast video with rids q/h/f), answers to the SFU's subscriber
//!   offers, and synthetic VP8/Opus RTP whose payloads say which layer, frame and packet they
//!   are, so that receivers can check what arrived.
//!
//! Each integration test binary uses a part of this module only.
#![allow(dead_code)]

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime};

use prost::Message as _;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};
use ward_sfu::protocol as lk;
use ward_sfu::{Grant, JoinOptions, Output, ParticipantId, Sfu, SfuConfig};

use lk::signal_request::Message as Req;
use lk::signal_response::Message as Resp;

pub const ROOM: &str = "clinic";
/// The largest synthetic RTP payload (bytes); frames are split into packets of this size.
const MAX_PAYLOAD: usize = 1_000;
const VIDEO_FRAME_INTERVAL: Duration = Duration::from_micros(33_333);
const AUDIO_FRAME_INTERVAL: Duration = Duration::from_millis(20);
/// Keyframes are this many times larger than other frames.
const KEYFRAME_FACTOR: u64 = 3;
/// Marks synthetic payloads, after the VP8 descriptor and payload header.
/// The longest a client's peer connection waits without being given the time.
const CLIENT_MAX_SLEEP: Duration = Duration::from_millis(50);
const VIDEO_MAGIC: u8 = b'V';
const AUDIO_MAGIC: u8 = b'A';

// ---------------------------------------------------------------------------------------------
// Randomness and the network
// ---------------------------------------------------------------------------------------------

/// xorshift64*: tiny, seeded, good enough to decide which packets get lost.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // splitmix the seed so that small seeds do not start with long runs of zero bits.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// One direction of a client's access link.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    pub delay: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Serialisation rate; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// A datagram that would wait longer than this in the bottleneck queue is dropped.
    pub max_queue: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(10),
            loss: 0.0,
            rate_bps: None,
            max_queue: Duration::from_millis(250),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct LinkStats {
    pub sent: u64,
    pub lost: u64,
    pub queue_dropped: u64,
}

struct Link {
    cfg: LinkConfig,
    busy_until: Option<Instant>,
    stats: LinkStats,
    /// Each link draws its own losses, so that the order in which the SFU serves its
    /// connections does not move losses from one link to another.
    rng: XorShift,
}

impl Link {
    fn new(seed: u64) -> Self {
        Self {
            cfg: LinkConfig::default(),
            busy_until: None,
            stats: LinkStats::default(),
            rng: XorShift::new(seed),
        }
    }

    /// When a datagram of `len` bytes sent at `now` arrives, or `None` if it does not.
    fn carry(&mut self, now: Instant, len: usize) -> Option<Instant> {
        self.stats.sent += 1;
        if self.rng.chance(self.cfg.loss) {
            self.stats.lost += 1;
            return None;
        }
        let Some(rate) = self.cfg.rate_bps else { return Some(now + self.cfg.delay) };
        let start = self.busy_until.map_or(now, |b| b.max(now));
        if start - now > self.cfg.max_queue {
            self.stats.queue_dropped += 1;
            return None;
        }
        // IP + UDP headers count too.
        let bits = (len as u64 + 28) * 8;
        let done = start + Duration::from_nanos(bits * 1_000_000_000 / rate);
        self.busy_until = Some(done);
        Some(done + self.cfg.delay)
    }
}

struct InFlight {
    at: Instant,
    order: u64,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic media
// ---------------------------------------------------------------------------------------------

/// What a synthetic video payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTag {
    /// The simulcast layer (LiveKit quality: 0 = q, 1 = h, 2 = f).
    pub layer: u8,
    pub frame: u32,
    pub index: u16,
    pub count: u16,
    pub keyframe: bool,
}

impl VideoTag {
    /// The first packet of a keyframe: where a receiver can start decoding.
    pub fn starts_keyframe(&self) -> bool {
        self.keyframe && self.index == 0
    }
}

fn video_payload(tag: VideoTag, len: usize) -> Vec<u8> {
    let start = tag.index == 0;
    let mut p = Vec::with_capacity(len.max(16));
    // VP8 payload descriptor: S bit on the first packet of a frame, partition 0.
    p.push(if start { 0x10 } else { 0x00 });
    // VP8 payload header: P (inverse keyframe) bit in bit 0.
    p.push(if start && tag.keyframe { 0x00 } else { 0x01 });
    p.push(VIDEO_MAGIC);
    p.push(tag.layer);
    p.extend_from_slice(&tag.frame.to_be_bytes());
    p.extend_from_slice(&tag.index.to_be_bytes());
    p.extend_from_slice(&tag.count.to_be_bytes());
    p.push(u8::from(tag.keyframe));
    p.resize(len.max(p.len()), 0xEE);
    p
}

pub fn parse_video(p: &[u8]) -> Option<VideoTag> {
    if p.len() < 13 || p[2] != VIDEO_MAGIC {
        return None;
    }
    Some(VideoTag {
        layer: p[3],
        frame: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        index: u16::from_be_bytes([p[8], p[9]]),
        count: u16::from_be_bytes([p[10], p[11]]),
        keyframe: p[12] == 1,
    })
}

fn audio_payload(counter: u32) -> Vec<u8> {
    let mut p = vec![AUDIO_MAGIC];
    p.extend_from_slice(&counter.to_be_bytes());
    p.resize(80, 0xAA);
    p
}

fn parse_audio(p: &[u8]) -> Option<u32> {
    (p.len() >= 5 && p[0] == AUDIO_MAGIC).then(|| u32::from_be_bytes([p[1], p[2], p[3], p[4]]))
}

/// A layer to publish: its rid (None without simulcast) and bitrate.
#[derive(Debug, Clone, Copy)]
pub struct LayerSpec {
    pub rid: Option<&'static str>,
    pub bitrate_bps: u64,
}

#[derive(Debug, Clone)]
pub struct TrackSpec {
    pub cid: String,
    pub kind: MediaKind,
    pub layers: Vec<LayerSpec>,
}

impl TrackSpec {
    pub fn audio(cid: &str) -> Self {
        Self {
            cid: cid.into(),
            kind: MediaKind::Audio,
            layers: vec![LayerSpec { rid: None, bitrate_bps: 32_000 }],
        }
    }

    pub fn video(cid: &str, bitrate_bps: u64) -> Self {
        Self { cid: cid.into(), kind: MediaKind::Video, layers: vec![LayerSpec { rid: None, bitrate_bps }] }
    }

    /// Simulcast with LiveKit's rids q, h, f at the given bitrates.
    pub fn simulcast(cid: &str, rates_bps: [u64; 3]) -> Self {
        let layers = ["q", "h", "f"]
            .into_iter()
            .zip(rates_bps)
            .map(|(rid, bitrate_bps)| LayerSpec { rid: Some(rid), bitrate_bps })
            .collect();
        Self { cid: cid.into(), kind: MediaKind::Video, layers }
    }
}

fn quality_of_rid(rid: Option<&str>) -> u8 {
    match rid {
        Some("q") => 0,
        Some("h") => 1,
        _ => 2,
    }
}

/// One outgoing layer of a published track.
#[derive(Debug)]
pub struct LocalLayer {
    pub rid: Option<Rid>,
    pub quality: u8,
    pub bitrate_bps: u64,
    seq: u64,
    ts: u32,
    pub frame: u32,
    pub keyframe_pending: bool,
    /// Every packet written: (frame, index, keyframe).
    pub sent: Vec<(Instant, VideoTag)>,
    pub keyframes_sent: u32,
}

#[derive(Debug)]
pub struct LocalTrack {
    pub spec: TrackSpec,
    pub mid: Mid,
    pub layers: Vec<LocalLayer>,
    next_frame_at: Instant,
    /// Audio packets written.
    pub audio_sent: u32,
}

/// A packet a subscriber received.
#[derive(Debug, Clone)]
pub struct RxPacket {
    pub at: Instant,
    /// The track ID the SFU's offer gave this m-line.
    pub track: String,
    pub mid: Mid,
    pub seq: u64,
    pub ts: u32,
    pub video: Option<VideoTag>,
    pub audio: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

pub struct Client {
    pub identity: String,
    pub pid: ParticipantId,
    pub sid: String,
    pub pub_addr: SocketAddr,
    pub sub_addr: SocketAddr,
    pub publisher: Rtc,
    pub subscriber: Rtc,
    pub_deadline: Instant,
    sub_deadline: Instant,
    /// When the connections were last given the time.
    pub_woken: Instant,
    sub_woken: Instant,
    pub_pending: Option<SdpPendingOffer>,
    pub_offer_id: u32,
    pub tracks: Vec<LocalTrack>,
    /// The SFU's track IDs (`TR_…`) by client track ID, from `TrackPublishedResponse`s.
    pub track_sids: HashMap<String, String>,
    /// Subscriber m-lines: mid → track ID (from `a=msid:<stream> <track>` in the SFU's offers).
    pub sub_tracks: HashMap<Mid, String>,
    pub received: Vec<RxPacket>,
    /// Keyframe requests that reached the publisher connection: (when, mid, rid).
    pub keyframe_requests: Vec<(Instant, Mid, Option<Rid>)>,
    /// REMB bitrate caps that reached the publisher connection (bits per second).
    pub remb_bps: Vec<u64>,
    pub data: Vec<lk::DataPacket>,
    pub signals: Vec<Resp>,
    pub pub_channels: HashMap<String, ChannelId>,
    pub sub_channels: HashMap<ChannelId, String>,
    pub closed: bool,
    /// No more media is written while set.
    pub media_stopped: bool,
}

impl Client {
    fn new(identity: &str, index: usize, now: Instant) -> Self {
        let ip = Ipv4Addr::new(10, 0, 0, 10 + u8::try_from(index).expect("few clients"));
        let pub_addr = SocketAddr::from((ip, 50_000));
        let sub_addr = SocketAddr::from((ip, 50_001));
        Self {
            identity: identity.into(),
            pid: ParticipantId(0),
            sid: String::new(),
            pub_addr,
            sub_addr,
            publisher: client_rtc(now, pub_addr),
            subscriber: client_rtc(now, sub_addr),
            pub_deadline: now,
            sub_deadline: now,
            pub_woken: now,
            sub_woken: now,
            pub_pending: None,
            pub_offer_id: 0,
            tracks: Vec::new(),
            track_sids: HashMap::new(),
            sub_tracks: HashMap::new(),
            received: Vec::new(),
            keyframe_requests: Vec::new(),
            remb_bps: Vec::new(),
            data: Vec::new(),
            signals: Vec::new(),
            pub_channels: HashMap::new(),
            sub_channels: HashMap::new(),
            closed: false,
            media_stopped: false,
        }
    }

    pub fn track_sid(&self, cid: &str) -> String {
        self.track_sids
            .get(cid)
            .cloned()
            .unwrap_or_else(|| panic!("{}: no published track {cid}", self.identity))
    }

    pub fn local_track(&self, cid: &str) -> &LocalTrack {
        self.tracks.iter().find(|t| t.spec.cid == cid).expect("published track")
    }

    /// Packets received for one track, in arrival order.
    pub fn received_of(&self, track_sid: &str) -> Vec<&RxPacket> {
        self.received.iter().filter(|r| r.track == track_sid).collect()
    }

    /// The packets received for a track, in the order of their (rewritten) sequence numbers,
    /// without duplicates.
    pub fn stream_of(&self, track_sid: &str) -> Vec<RxPacket> {
        let mut v: Vec<RxPacket> = self.received.iter().filter(|r| r.track == track_sid).cloned().collect();
        v.sort_by_key(|r| r.seq);
        v.dedup_by_key(|r| r.seq);
        v
    }

    /// What was written on one layer of a published video track.
    pub fn sent_on(&self, cid: &str, quality: u8) -> &[(Instant, VideoTag)] {
        let t = self.local_track(cid);
        &t.layers.iter().find(|l| l.quality == quality).expect("published layer").sent
    }

    /// The subscriber's mid for a track.
    pub fn sub_mid(&self, track_sid: &str) -> Option<Mid> {
        self.sub_tracks.iter().find(|(_, t)| t.as_str() == track_sid).map(|(m, _)| *m)
    }
}

fn client_rtc(now: Instant, addr: SocketAddr) -> Rtc {
    let mut rtc =
        Rtc::builder().set_rtp_mode(true).clear_codecs().enable_opus(true, false).enable_vp8(true).build(now);
    rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
    rtc
}

pub fn grant(identity: &str) -> Grant {
    Grant {
        identity: identity.into(),
        name: identity.to_uppercase(),
        metadata: String::new(),
        room: ROOM.into(),
        can_publish: true,
        can_subscribe: true,
        can_publish_data: true,
        can_publish_sources: Vec::new(),
        hidden: false,
        can_update_own_metadata: true,
        expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000),
    }
}

fn signal(message: Req) -> lk::SignalRequest {
    lk::SignalRequest { message: Some(message) }
}

/// `a=mid:` → the track ID of its `a=msid:` line.
fn msid_tracks(sdp: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let (mut mid, mut track): (Option<String>, Option<String>) = (None, None);
    for line in sdp.lines().map(str::trim_end).chain(["m="]) {
        if line.starts_with("m=") {
            if let (Some(m), Some(t)) = (mid.take(), track.take()) {
                found.push((m, t));
            }
            mid = None;
            track = None;
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
        } else if let Some(rest) = line.strip_prefix("a=msid:") {
            track = rest.split_whitespace().nth(1).map(str::to_owned);
        }
    }
    found
}

fn signal_name(r: &Resp) -> &'static str {
    match r {
        Resp::Join(_) => "join",
        Resp::Offer(_) => "offer",
        Resp::Answer(_) => "answer",
        Resp::Update(_) => "update",
        Resp::TrackPublished(_) => "track_published",
        Resp::RequestResponse(_) => "request_response",
        Resp::SpeakersChanged(_) => "speakers",
        Resp::ConnectionQuality(_) => "quality",
        Resp::Leave(_) => "leave",
        _ => "other",
    }
}

/// Sequence numbers without holes: the SFU's rewriting hides nothing and invents nothing.
pub fn assert_contiguous(what: &str, stream: &[RxPacket]) {
    assert!(!stream.is_empty(), "{what}: nothing received");
    for w in stream.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "{what}: hole after sequence number {}", w[0].seq);
    }
}

// ---------------------------------------------------------------------------------------------
// The simulation
// ---------------------------------------------------------------------------------------------

pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub sfu: Sfu,
    pub sfu_addr: SocketAddr,
    pub clients: Vec<Client>,
    uplinks: Vec<Link>,
    downlinks: Vec<Link>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    pub rng: XorShift,
    seed: u64,
    /// When the SFU's timers last ran (its next timeout is at least 1 ms later, so that a
    /// timer that keeps asking for "now" cannot stall the clock).
    sfu_timeout_at: Option<Instant>,
    /// Datagrams from the SFU to addresses no client has.
    pub undeliverable: u64,
    /// NAT mappings: a client's own address → the address the SFU sees.
    nat: HashMap<SocketAddr, SocketAddr>,
    /// Wall time spent inside the SFU's calls (not the clients'), for the cost program.
    pub sfu_busy: Duration,
    /// Run the SFU's due timers right after each datagram, as the shell's loop does, rather
    /// than at most once per simulated millisecond (which lets timer rounds serve several
    /// datagrams and so understates their cost).
    pub eager_timers: bool,
    /// Datagrams due for the SFU at the same simulated instant handed in together, up to
    /// this many, before its outputs are polled, as the shell reads the datagrams waiting on
    /// its socket before it sends (1: each alone, as an idle loop sees them).
    pub sfu_batch_max: usize,
    /// Datagrams handed to the SFU behind another of the same batch.
    pub sfu_batched: u64,
}

static CRYPTO: Once = Once::new();

impl Sim {
    pub fn new(seed: u64) -> Self {
        Self::with_config(seed, |_| {})
    }

    pub fn with_config(seed: u64, configure: impl FnOnce(&mut SfuConfig)) -> Self {
        CRYPTO.call_once(|| {
            str0m::crypto::from_feature_flags().install_process_default();
            if std::env::var_os("RUST_LOG").is_some() {
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                    .with_test_writer()
                    .try_init();
            }
        });
        let start = Instant::now();
        let sfu_addr = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 7_882));
        let mut cfg = SfuConfig::new(sfu_addr, sfu_addr);
        cfg.id_seed = seed;
        configure(&mut cfg);
        Self {
            start,
            now: start,
            sfu: Sfu::new(cfg, start, 1_800_000_000_000),
            sfu_addr,
            clients: Vec::new(),
            uplinks: Vec::new(),
            downlinks: Vec::new(),
            in_flight: BinaryHeap::new(),
            order: 0,
            rng: XorShift::new(seed),
            seed,
            sfu_timeout_at: None,
            undeliverable: 0,
            nat: HashMap::new(),
            sfu_busy: Duration::ZERO,
            eager_timers: false,
            sfu_batch_max: 1,
            sfu_batched: 0,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// A client joins the room; returns its index.
    pub fn join(&mut self, identity: &str) -> usize {
        self.join_with(identity, JoinOptions::default())
    }

    pub fn join_with(&mut self, identity: &str, options: JoinOptions) -> usize {
        let index = self.clients.len();
        let mut client = Client::new(identity, index, self.now);
        client.pid = self.sfu.join(self.now, grant(identity), options).expect("join");
        client.sid = self.sfu.participant_sid(client.pid).expect("joined").to_owned();
        self.clients.push(client);
        let seed = self.seed.wrapping_mul(1_000).wrapping_add(2 * index as u64);
        self.uplinks.push(Link::new(seed));
        self.downlinks.push(Link::new(seed + 1));
        self.pump();
        index
    }

    pub fn client(&self, identity: &str) -> usize {
        self.clients.iter().position(|c| c.identity == identity).expect("known client")
    }

    pub fn uplink(&mut self, client: usize, cfg: LinkConfig) {
        self.uplinks[client].cfg = cfg;
    }

    pub fn downlink(&mut self, client: usize, cfg: LinkConfig) {
        self.downlinks[client].cfg = cfg;
    }

    pub fn uplink_stats(&self, client: usize) -> LinkStats {
        self.uplinks[client].stats
    }

    pub fn downlink_stats(&self, client: usize) -> LinkStats {
        self.downlinks[client].stats
    }

    pub fn signal(&mut self, client: usize, message: Req) {
        let pid = self.clients[client].pid;
        self.sfu.handle_signal(self.now, pid, signal(message));
        self.pump();
    }

    /// Announces tracks (`AddTrackRequest`) and negotiates the publisher connection with
    /// them, plus the data channels LiveKit clients open on it.
    pub fn publish(&mut self, client: usize, specs: Vec<TrackSpec>) {
        let now = self.now;
        for spec in &specs {
            let video = spec.kind == MediaKind::Video;
            let layers: Vec<lk::VideoLayer> = if video && spec.layers.len() > 1 {
                spec.layers
                    .iter()
                    .map(|l| {
                        let q = quality_of_rid(l.rid);
                        let scale = 1 << (2 - q);
                        lk::VideoLayer {
                            quality: i32::from(q),
                            width: 1280 / scale,
                            height: 720 / scale,
                            bitrate: u32::try_from(l.bitrate_bps).expect("small bitrate"),
                            rid: l.rid.unwrap_or_default().into(),
                            ..Default::default()
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let req = lk::AddTrackRequest {
                cid: spec.cid.clone(),
                name: spec.cid.clone(),
                r#type: if video { lk::TrackType::Video } else { lk::TrackType::Audio } as i32,
                width: if video { 1280 } else { 0 },
                height: if video { 720 } else { 0 },
                source: if video { lk::TrackSource::Camera } else { lk::TrackSource::Microphone } as i32,
                simulcast_codecs: if video {
                    vec![lk::SimulcastCodec {
                        codec: "vp8".into(),
                        cid: spec.cid.clone(),
                        ..Default::default()
                    }]
                } else {
                    Vec::new()
                },
                layers,
                ..Default::default()
            };
            self.signal(client, Req::AddTrack(req));
        }
        let c = &mut self.clients[client];
        let stream = format!("stream-{}", c.identity);
        let mut api = c.publisher.sdp_api();
        if c.pub_channels.is_empty() && c.pub_offer_id == 0 {
            api.add_channel_with_config(ChannelConfig {
                label: "_reliable".into(),
                ordered: true,
                reliability: Reliability::Reliable,
                ..Default::default()
            });
            api.add_channel_with_config(ChannelConfig {
                label: "_lossy".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            });
        }
        let mut added = Vec::new();
        for spec in specs {
            let simulcast = (spec.layers.len() > 1).then(|| {
                let mut s = Simulcast::new();
                for l in &spec.layers {
                    s.add_send_layer(SimulcastLayer::new(l.rid.expect("simulcast layers have rids")));
                }
                s
            });
            let mid = api.add_media(
                spec.kind,
                Direction::SendOnly,
                Some(stream.clone()),
                Some(spec.cid.clone()),
                simulcast,
            );
            added.push((spec, mid));
        }
        let (offer, pending) = api.apply().expect("publisher changes");
        c.pub_pending = Some(pending);
        c.pub_offer_id += 1;
        for (spec, mid) in added {
            let layers = spec
                .layers
                .iter()
                .map(|l| LocalLayer {
                    rid: l.rid.map(Rid::from),
                    quality: quality_of_rid(l.rid),
                    bitrate_bps: l.bitrate_bps,
                    seq: 1_000 + 10_000 * u64::from(quality_of_rid(l.rid)),
                    ts: 0,
                    frame: 0,
                    keyframe_pending: true,
                    sent: Vec::new(),
                    keyframes_sent: 0,
                })
                .collect();
            c.tracks.push(LocalTrack { spec, mid, layers, next_frame_at: now, audio_sent: 0 });
        }
        let sd = lk::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.to_sdp_string(),
            id: c.pub_offer_id,
            ..Default::default()
        };
        self.signal(client, Req::Offer(sd));
    }

    /// Opens the publisher connection with only the data channels (LiveKit clients do this
    /// before sending data).
    pub fn open_data(&mut self, client: usize) {
        self.publish(client, Vec::new());
    }

    /// Sends a `DataPacket` on the client's reliable publisher channel.
    pub fn send_data(&mut self, client: usize, packet: &lk::DataPacket) {
        let c = &mut self.clients[client];
        let id = *c.pub_channels.get("_reliable").expect("reliable channel open");
        let bytes = packet.encode_to_vec();
        c.publisher.channel(id).expect("channel").write(true, &bytes).expect("written");
        self.pump();
    }

    /// Asks the SFU for a keyframe of a subscribed track, as a decoder would (PLI).
    pub fn request_keyframe(&mut self, client: usize, track_sid: &str) {
        let c = &mut self.clients[client];
        let mid = c.sub_mid(track_sid).expect("subscribed");
        if let Some(rx) = c.subscriber.direct_api().stream_rx_by_mid(mid, None) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
        self.pump();
    }

    // -----------------------------------------------------------------------------------------
    // Running
    // -----------------------------------------------------------------------------------------

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end, |_| false);
    }

    /// Runs until `done` or `limit` passed; returns whether `done` became true.
    pub fn run_until_cond(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        self.run_until(end, |s| done(s))
    }

    fn run_until(&mut self, end: Instant, mut done: impl FnMut(&Sim) -> bool) -> bool {
        loop {
            self.pump();
            if done(self) {
                return true;
            }
            let next = self.next_event();
            if next > end {
                self.now = end;
                return false;
            }
            self.now = self.now.max(next);
            self.step();
        }
    }

    /// Everyone's subscriber connection (and the publisher connections of those that
    /// publish) is up.
    pub fn connect_all(&mut self) {
        let ok = self.run_until_cond(Duration::from_secs(5), |s| {
            s.clients
                .iter()
                .all(|c| c.subscriber.is_connected() && (c.pub_offer_id == 0 || c.publisher.is_connected()))
        });
        assert!(ok, "connections did not come up within 5 s: {}", self.describe());
    }

    /// The clients' connection states and what they heard, for failure messages.
    pub fn describe(&self) -> String {
        let mut s = format!("at {:?}, {:?}", self.elapsed(), self.sfu.stats());
        for (i, c) in self.clients.iter().enumerate() {
            let signals: Vec<&str> = c.signals.iter().map(signal_name).collect();
            s += &format!(
                "\n{}: pub connected {} sub connected {} closed {} up {:?} down {:?} signals {:?} \
                 tracks {:?} received {}",
                c.identity,
                c.publisher.is_connected(),
                c.subscriber.is_connected(),
                c.closed,
                self.uplinks[i].stats,
                self.downlinks[i].stats,
                signals,
                c.sub_tracks,
                c.received.len(),
            );
        }
        s
    }

    fn sfu_deadline(&self) -> Instant {
        let t = self.sfu.poll_timeout();
        match self.sfu_timeout_at {
            Some(last) if t <= last => last + Duration::from_millis(1),
            _ => t,
        }
    }

    fn next_event(&self) -> Instant {
        let mut next = self.sfu_deadline();
        if let Some(Reverse(f)) = self.in_flight.peek() {
            next = next.min(f.at);
        }
        for c in &self.clients {
            if c.closed {
                continue;
            }
            next = next.min(c.pub_deadline).min(c.sub_deadline);
            if c.media_stopped {
                continue;
            }
            for t in &c.tracks {
                next = next.min(t.next_frame_at);
            }
        }
        next
    }

    fn step(&mut self) {
        let now = self.now;
        // str0m must be polled after every input (an RTP packet waits in a single slot); the
        // SFU polls its own connections per datagram and sends when its outputs are polled.
        let mut batched = 0;
        while self.in_flight.peek().is_some_and(|Reverse(f)| f.at <= now) {
            let Reverse(f) = self.in_flight.pop().expect("peeked");
            let to_sfu = f.to == self.sfu_addr;
            if !to_sfu && batched > 0 {
                self.after_sfu_input();
                batched = 0;
            }
            self.deliver(f);
            if !to_sfu {
                self.pump();
                continue;
            }
            if batched > 0 {
                self.sfu_batched += 1;
            }
            batched += 1;
            if batched >= self.sfu_batch_max {
                self.after_sfu_input();
                batched = 0;
            }
        }
        if batched > 0 {
            self.after_sfu_input();
        }
        if self.sfu_deadline() <= now {
            let t = Instant::now();
            self.sfu.handle_timeout(now);
            self.sfu_busy += t.elapsed();
            self.sfu_timeout_at = Some(now);
        }
        for i in 0..self.clients.len() {
            let c = &mut self.clients[i];
            if c.closed {
                continue;
            }
            if c.pub_deadline <= now {
                c.pub_woken = now;
                let _ = c.publisher.handle_input(Input::Timeout(now));
                self.poll_client(i);
            }
            let c = &mut self.clients[i];
            if c.sub_deadline <= now {
                c.sub_woken = now;
                let _ = c.subscriber.handle_input(Input::Timeout(now));
                self.poll_client(i);
            }
        }
        for i in 0..self.clients.len() {
            self.produce_media(i);
        }
    }

    /// What the shell does after handing the SFU datagrams: send its outputs, then (with
    /// `eager_timers`) run the timers that are due.
    fn after_sfu_input(&mut self) {
        self.pump();
        if self.eager_timers {
            let now = self.now;
            let t = Instant::now();
            for _ in 0..64 {
                if self.sfu.poll_timeout() > now {
                    break;
                }
                self.sfu.handle_timeout(now);
            }
            self.sfu_busy += t.elapsed();
            self.pump();
        }
    }

    /// From now on the client's `own` address reaches the SFU as `seen` (a NAT's mapping
    /// changed); datagrams for the old address are lost.
    pub fn rebind(&mut self, own: SocketAddr, seen: SocketAddr) {
        self.nat.insert(own, seen);
    }

    fn deliver(&mut self, mut f: InFlight) {
        let now = self.now;
        if f.to != self.sfu_addr {
            if self.nat.contains_key(&f.to) {
                self.undeliverable += 1;
                return;
            }
            if let Some((own, _)) = self.nat.iter().find(|(_, seen)| **seen == f.to) {
                f.to = *own;
            }
        }
        if f.to == self.sfu_addr {
            // As the shell does: the destination is the socket's own address, which differs
            // from the announced one when the SFU binds 0.0.0.0 or sits behind NAT.
            let local = self.sfu.config().local_addr;
            let t = Instant::now();
            self.sfu.handle_receive(now, f.from, local, &f.data);
            self.sfu_busy += t.elapsed();
            return;
        }
        let Some(c) = self.clients.iter_mut().find(|c| c.pub_addr == f.to || c.sub_addr == f.to) else {
            self.undeliverable += 1;
            return;
        };
        if c.closed {
            return;
        }
        let rtc = if c.pub_addr == f.to { &mut c.publisher } else { &mut c.subscriber };
        if let Ok(r) = Receive::new(Protocol::Udp, f.from, f.to, &f.data) {
            let _ = rtc.handle_input(Input::Receive(now, r));
        }
    }

    fn send_datagram(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        let now = self.now;
        let link = if to == self.sfu_addr {
            let i = self.clients.iter().position(|c| c.pub_addr == from || c.sub_addr == from);
            i.map(|i| &mut self.uplinks[i])
        } else {
            let i = self.clients.iter().position(|c| c.pub_addr == to || c.sub_addr == to);
            i.map(|i| &mut self.downlinks[i])
        };
        let at = match link {
            Some(link) => link.carry(now, data.len()),
            None => Some(now + Duration::from_millis(10)),
        };
        let from = if to == self.sfu_addr { self.nat.get(&from).copied().unwrap_or(from) } else { from };
        if let Some(at) = at {
            self.order += 1;
            self.in_flight.push(Reverse(InFlight { at, order: self.order, from, to, data }));
        }
    }

    /// Injects a datagram as if `from` had sent it to the SFU (bypassing the links).
    pub fn inject_to_sfu(&mut self, from: SocketAddr, data: &[u8]) {
        let to = self.sfu_addr;
        self.sfu.handle_receive(self.now, from, to, data);
        self.pump();
    }

    /// Drains the SFU's and the clients' outputs until nobody has anything left to say.
    pub fn pump(&mut self) {
        loop {
            let mut busy = false;
            loop {
                let t = Instant::now();
                let output = self.sfu.poll_output();
                self.sfu_busy += t.elapsed();
                let Some(o) = output else { break };
                busy = true;
                match o {
                    Output::Transmit { source, destination, contents, .. } => {
                        self.send_datagram(source, destination, contents)
                    }
                    Output::Signal { to, message } => self.on_signal(to, *message),
                    Output::Close { to } => {
                        if let Some(c) = self.clients.iter_mut().find(|c| c.pid == to) {
                            c.closed = true;
                        }
                    }
                }
            }
            for i in 0..self.clients.len() {
                busy |= self.poll_client(i);
            }
            if !busy {
                break;
            }
        }
    }

    fn on_signal(&mut self, to: ParticipantId, message: lk::SignalResponse) {
        let Some(i) = self.clients.iter().position(|c| c.pid == to) else { return };
        let Some(message) = message.message else { return };
        let now = self.now;
        match &message {
            Resp::Offer(sd) => {
                let c = &mut self.clients[i];
                let offer = SdpOffer::from_sdp_string(&sd.sdp).expect("SFU offer parses");
                for (mid, track) in msid_tracks(&sd.sdp) {
                    c.sub_tracks.insert(Mid::from(mid.as_str()), track);
                }
                let answer = c.subscriber.sdp_api().accept_offer(offer).expect("SFU offer accepted");
                let reply = lk::SessionDescription {
                    r#type: "answer".into(),
                    sdp: answer.to_sdp_string(),
                    id: sd.id,
                    ..Default::default()
                };
                let pid = c.pid;
                self.sfu.handle_signal(now, pid, signal(Req::Answer(reply)));
            }
            Resp::Answer(sd) => {
                let c = &mut self.clients[i];
                let answer = SdpAnswer::from_sdp_string(&sd.sdp).expect("SFU answer parses");
                let pending = c.pub_pending.take().expect("an offer is outstanding");
                c.publisher.sdp_api().accept_answer(pending, answer).expect("SFU answer accepted");
            }
            Resp::TrackPublished(p) => {
                if let Some(t) = &p.track {
                    self.clients[i].track_sids.insert(p.cid.clone(), t.sid.clone());
                }
            }
            _ => {}
        }
        self.clients[i].signals.push(message);
    }

    /// Polls a client's two connections until both wait for time; true if anything happened.
    fn poll_client(&mut self, i: usize) -> bool {
        let mut busy = false;
        for publisher in [true, false] {
            loop {
                let c = &mut self.clients[i];
                if c.closed {
                    return busy;
                }
                let rtc = if publisher { &mut c.publisher } else { &mut c.subscriber };
                let out = match rtc.poll_output() {
                    Ok(o) => o,
                    Err(e) => panic!("{} {} failed: {e}", c.identity, if publisher { "pub" } else { "sub" }),
                };
                match out {
                    RtcOutput::Timeout(t) => {
                        // Like a real client's event loop, never sleep long: str0m's ICE agent
                        // only learns the time from inputs, and a connection without media
                        // timers would otherwise never start its checks.
                        let woken = if publisher { c.pub_woken } else { c.sub_woken };
                        let t = t.min(woken + CLIENT_MAX_SLEEP).max(self.now);
                        if publisher {
                            c.pub_deadline = t;
                        } else {
                            c.sub_deadline = t;
                        }
                        break;
                    }
                    RtcOutput::Transmit(t) => {
                        busy = true;
                        let (from, to, data) = (t.source, t.destination, t.contents.to_vec());
                        self.send_datagram(from, to, data);
                    }
                    RtcOutput::Event(e) => {
                        busy = true;
                        self.on_client_event(i, publisher, e);
                    }
                }
            }
        }
        busy
    }

    fn on_client_event(&mut self, i: usize, publisher: bool, e: Event) {
        let now = self.now;
        let c = &mut self.clients[i];
        match (publisher, e) {
            (true, Event::KeyframeRequest(k)) => {
                c.keyframe_requests.push((now, k.mid, k.rid));
                if let Some(t) = c.tracks.iter_mut().find(|t| t.mid == k.mid) {
                    let layer = match k.rid {
                        Some(rid) => t.layers.iter_mut().find(|l| l.rid == Some(rid)),
                        None => t.layers.first_mut(),
                    };
                    if let Some(l) = layer {
                        l.keyframe_pending = true;
                    }
                }
            }
            (true, Event::EgressBitrateEstimate(str0m::bwe::BweKind::Remb { estimate, .. })) => {
                c.remb_bps.push(estimate.as_u64());
            }
            (true, Event::ChannelOpen(id, label)) => {
                c.pub_channels.insert(label, id);
            }
            (false, Event::ChannelOpen(id, label)) => {
                c.sub_channels.insert(id, label);
            }
            (false, Event::ChannelData(d)) => {
                let packet =
                    lk::DataPacket::decode(&d.data[..]).expect("the SFU forwards valid data packets");
                c.data.push(packet);
            }
            (false, Event::RtpPacket(p)) => {
                let mid = c.subscriber.direct_api().stream_rx(&p.header.ssrc).map(|s| s.mid());
                let Some(mid) = mid else { return };
                let track = c.sub_tracks.get(&mid).cloned().unwrap_or_default();
                c.received.push(RxPacket {
                    at: now,
                    track,
                    mid,
                    seq: *p.seq_no,
                    ts: p.header.timestamp,
                    video: parse_video(&p.payload),
                    audio: parse_audio(&p.payload),
                });
            }
            _ => {}
        }
    }

    /// Writes the frames that are due on a client's published tracks.
    fn produce_media(&mut self, i: usize) {
        let now = self.now;
        let c = &mut self.clients[i];
        if c.closed || c.media_stopped {
            return;
        }
        let connected = c.publisher.is_connected();
        let vp8 = c.publisher.codec_config().find(|p| p.spec().codec == Codec::Vp8).map(|p| p.pt());
        let opus = c.publisher.codec_config().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt());
        for t in c.tracks.iter_mut() {
            if t.next_frame_at > now {
                continue;
            }
            let video = t.spec.kind == MediaKind::Video;
            t.next_frame_at += if video { VIDEO_FRAME_INTERVAL } else { AUDIO_FRAME_INTERVAL };
            if !connected {
                continue;
            }
            let mid = t.mid;
            let mut api = c.publisher.direct_api();
            if !video {
                let (Some(pt), Some(l)) = (opus, t.layers.first_mut()) else { continue };
                let Some(tx) = api.stream_tx_by_mid(mid, None) else { continue };
                tx.write_rtp(
                    RtpWrite::new(pt, l.seq.into(), l.ts, now, audio_payload(t.audio_sent))
                        .marker(t.audio_sent == 0),
                );
                l.seq += 1;
                l.ts = l.ts.wrapping_add(960);
                t.audio_sent += 1;
                continue;
            }
            let Some(pt) = vp8 else { continue };
            for l in t.layers.iter_mut() {
                let Some(tx) = api.stream_tx_by_mid(mid, l.rid) else { continue };
                let keyframe = std::mem::take(&mut l.keyframe_pending);
                let mut size = (l.bitrate_bps / 8 / 30) as usize;
                if keyframe {
                    size *= KEYFRAME_FACTOR as usize;
                    l.keyframes_sent += 1;
                }
                let count = size.div_ceil(MAX_PAYLOAD).max(1);
                for index in 0..count {
                    let tag = VideoTag {
                        layer: l.quality,
                        frame: l.frame,
                        index: u16::try_from(index).expect("small frames"),
                        count: u16::try_from(count).expect("small frames"),
                        keyframe,
                    };
                    let len = (size - index * MAX_PAYLOAD).min(MAX_PAYLOAD);
                    tx.write_rtp(
                        RtpWrite::new(pt, l.seq.into(), l.ts, now, video_payload(tag, len))
                            .marker(index + 1 == count)
                            .nackable(true),
                    );
                    l.sent.push((now, tag));
                    l.seq += 1;
                }
                l.frame += 1;
                l.ts = l.ts.wrapping_add(3_000);
            }
        }
    }
}
